"""Export and import: a round trip into an empty store gives the same answers."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from api.app.bootstrap import build_service
from api.app.seed import bundled_events, seed
from api.app.settings import Settings
from api.schemas.answers import EventIn
from api.schemas.queries import StatusQuery, TimelineQuery
from tests.conftest import POSTGRES_URL, drop_schema, run_cli

pytestmark = pytest.mark.e2e  # `sanctions export` and `sanctions import`

ROOT = Path(__file__).resolve().parents[1]


def answers(database_url: str) -> list[Any]:
    """Statuses on several dates and the timelines (what the CLI and API answer)."""
    svc = build_service(Settings(database_url=database_url))
    try:
        svc.projector.catch_up()
        found: list[Any] = []
        for day in ("2021-07-01", "2022-04-01", "2023-06-01", "2025-11-01", "2026-01-15"):
            for country in ("BY", "RU", "IR", "VE"):
                answer = svc.status(StatusQuery.of(country=country, as_of=day))
                found.append([r.model_dump(exclude={"event_ids"}) for r in answer.results])
        for country in ("BY", "RU"):
            timeline = svc.timeline(TimelineQuery.of(country=country))
            found.append([i.model_dump(exclude={"event_id"}) for i in timeline.intervals])
        return found
    finally:
        svc.close()


@pytest.fixture
def second_store(database_url: str, tmp_path: Path) -> Any:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/imported.db"
        return
    schema = f"imp_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


@pytest.mark.shared_store
def test_export_then_import_into_an_empty_store_gives_the_same_answers(
    database_url: str, second_store: str, tmp_path: Path
) -> None:
    svc = build_service(Settings(database_url=database_url))
    try:
        seed(svc)
        wrong = svc.log.select_events()[0].event
    finally:
        svc.close()
    # A retraction in the log, to check `retracts` is mapped to the new event id.
    svc = build_service(Settings(database_url=database_url))
    try:
        svc.log.record(
            [
                EventIn(
                    type="expanded",
                    authority=wrong.key.authority,
                    country=wrong.key.country,
                    commodity=wrong.key.commodity,
                    effective_date="2030-01-01",
                    measures=["quota"],
                ).draft()
            ],
            recorded_by="t",
        )
        late = svc.log.select_events()[-1].event
        svc.log.record(
            [
                EventIn(
                    type="retracted",
                    authority=late.key.authority,
                    country=late.key.country,
                    commodity=late.key.commodity,
                    retracts=late.event_id,
                    note="test",
                ).draft()
            ],
            recorded_by="t",
        )
    finally:
        svc.close()
    exported = tmp_path / "log.jsonl"
    result = run_cli(database_url, "export", "--output", str(exported))
    assert result.returncode == 0, result.stderr
    lines = exported.read_text().splitlines()
    count = len(bundled_events()) + 2  # the seeded events, an expansion and its retraction
    assert len(lines) == count and json.loads(lines[0])["position"]
    imported = run_cli(second_store, "import", str(exported), "--batch", "10", "--create")
    assert imported.returncode == 0, imported.stderr
    batches = batches_of(lines, 10)
    assert f"{count} events recorded, 0 already there ({batches} batches)" in imported.stdout
    again = run_cli(second_store, "import", str(exported), "--batch", "10")
    assert f"0 events recorded, {count} already there" in again.stdout
    assert answers(second_store) == answers(database_url)


@pytest.mark.shared_store
def test_export_filters_and_csv(database_url: str, tmp_path: Path) -> None:
    svc = build_service(Settings(database_url=database_url))
    try:
        seed(svc)
    finally:
        svc.close()
    result = run_cli(
        database_url, "export", "--country", "BY", "--commodity", "potash", "--format", "csv"
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and {row["country"] for row in rows} == {"BY"}
    us = [row for row in rows if row["stream"] == "US/BY/potash"]
    assert [row["type"] for row in us] == ["imposed", "expanded", "lifted"]
    assert us[0]["measures"] == "asset_freeze;import_ban" and us[0]["source_url"].startswith("http")
    assert run_cli(database_url, "export", "--format", "xml").returncode == 2


@pytest.mark.shared_store
def test_import_is_validated_first_and_resumable(database_url: str, tmp_path: Path) -> None:
    good = {
        "type": "imposed",
        "authority": "US",
        "commodity": "potash",
        "effective_date": "2021-08-09",
        "measures": ["import_ban"],
    }
    countries = ["BY", "RU", "IR", "VE", "KP", "SY"]
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(json.dumps({**good, "country": c}) for c in countries)
        + "\n"
        + json.dumps({**good, "country": "XX"})
        + "\n"
    )
    invalid = run_cli(database_url, "import", str(path), "--batch", "2", "--create")
    assert invalid.returncode == 2 and "line 7" in invalid.stderr
    assert json.loads(run_cli(database_url, "status", "RU", "--json").stdout)["results"] == []
    # A rule broken in the third batch: the first two batches stay recorded.
    lines = [json.dumps({**good, "country": c}) for c in countries]
    lines.insert(4, json.dumps({**good, "country": "BY"}))  # BY imposed twice: 409
    path.write_text("\n".join(lines) + "\n")
    failed = run_cli(database_url, "import", str(path), "--batch", "2")
    assert failed.returncode == 2 and "already active" in failed.stderr
    del lines[4]
    path.write_text("\n".join(lines) + "\n")
    resumed = run_cli(database_url, "import", str(path), "--batch", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 events recorded, 4 already there" in resumed.stdout


def batches_of(lines: list[str], size: int) -> int:
    """How many batches an import of these lines makes: `size` lines each, and a new one
    started before a line that names (retracts or renews) an event of the current batch."""
    batches, current = 0, []
    for line in map(json.loads, lines):
        named = line.get("retracts") or line.get("renews")
        if len(current) == size or (named is not None and named in current):
            batches, current = batches + 1, []
        current.append(line["event_id"])
    return batches + (1 if current else 0)
