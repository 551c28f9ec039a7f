"""The bundled real timeline, recorded on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.seed import TIMELINE_FILE, bundled_events, seed
from api.app.service import Service
from api.schemas.queries import StatusQuery

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store


def stream_events(client: TestClient, stream: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/streams/{stream}")
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_seed_records_the_bundled_timeline_once(services: Service, client: TestClient) -> None:
    first = seed(services)
    assert first.recorded == len(bundled_events()) and first.already_there == 0
    again = seed(services)
    assert again.recorded == 0 and again.already_there == first.recorded
    everything = client.get("/v1/events", params={"limit": 1000}).json()["events"]
    assert len(everything) == first.recorded
    assert {event["recorded_by"] for event in everything} == {"seed"}


def test_seeded_belarus_potash_story(services: Service, client: TestClient) -> None:
    seed(services)
    us = stream_events(client, "US/BY/potash")
    assert [(e["type"], e["effective_date"]) for e in us] == [
        ("imposed", "2021-08-09"),
        ("expanded", "2022-04-01"),
        ("lifted", "2025-12-15"),
    ]
    lift = us[-1]
    assert "General License 13" in lift["legal_basis"]
    assert "2025-12-13" in lift["note"], "the announcement day is in the note"
    assert "SDN List" in lift["note"], "the companies stay listed, which the note says"
    eu = stream_events(client, "EU/BY/potash")
    assert [(e["type"], e["effective_date"]) for e in eu if e["type"] != "renewed"][:2] == [
        ("imposed", "2021-06-24"),
        ("expanded", "2022-03-03"),
    ]
    assert eu[0]["expires"] == "2022-03-01", "the regime's end then in force (renewed since)"
    assert all(e["type"] != "lifted" for e in eu), "the EU's measures stay in force"
    for authority in ("GB", "CA", "LT"):
        assert stream_events(client, f"{authority}/BY/potash"), authority
    assert "transit_ban" in stream_events(client, "LT/BY/potash")[0]["measures"]


def test_seeded_belavia_is_eased_then_lifted(services: Service, client: TestClient) -> None:
    seed(services)
    belavia = stream_events(client, "US/BY/aviation")
    assert [(e["type"], e["effective_date"]) for e in belavia] == [
        ("imposed", "2023-08-09"),
        ("eased", "2025-09-11"),
        ("lifted", "2025-11-04"),
    ]
    # General License 12 covers three Lukashenka/Slavkali aircraft, not Belavia.
    assert "General License 12" not in belavia[-1]["legal_basis"]
    assert "SDN List" in belavia[-1]["legal_basis"]


def statuses(client: TestClient, as_of: str, **filters: str) -> dict[str, tuple[str, list[str]]]:
    response = client.get("/v1/status", params={**filters, "as_of": as_of})
    assert response.status_code == 200, response.text
    return {r["stream"]: (r["status"], sorted(r["measures"])) for r in response.json()["results"]}


# Expected values written from docs/timeline.md, not from the code: the US potash
# lift takes effect the day General License 13 was issued (2025-12-15), not the day it
# was announced (2025-12-13); the EU's measures stay; the US lifted its Syria sanctions
# by Executive Order 14312, effective 2025-07-01, after General License 25 eased them.
US_POTASH_BEFORE_LIFT = ["asset_freeze", "financing_ban", "import_ban", "services_ban"]
EU_POTASH = ["asset_freeze", "financing_ban", "import_ban", "services_ban", "transit_ban"]


def test_seeded_story_us_potash_lifted_on_the_day_of_general_license_13(
    services: Service, client: TestClient
) -> None:
    seed(services)
    potash = {"country": "BY", "commodity": "potash"}
    announced = statuses(client, "2025-12-13", **potash)
    day_before = statuses(client, "2025-12-14", **potash)
    issued = statuses(client, "2025-12-15", **potash)
    later = statuses(client, "2026-06-01", **potash)
    for answer in (announced, day_before):
        assert answer["US/BY/potash"] == ("active", US_POTASH_BEFORE_LIFT)
    for answer in (issued, later):
        assert answer["US/BY/potash"] == ("lifted", [])
    for answer in (announced, day_before, issued, later):
        assert answer["EU/BY/potash"] == ("active", EU_POTASH)
        for authority in ("GB", "CA", "LT"):
            assert answer[f"{authority}/BY/potash"][0] == "active", authority
    row = client.get(
        "/v1/status",
        params={**potash, "authority": "US", "as_of": "2025-12-15"},
    ).json()["results"][0]
    assert row["since"] == "2025-12-15" and row["in_force_since"] is None


def test_seeded_story_syria_eased_then_lifted_by_the_us_on_2025_07_01(
    services: Service, client: TestClient
) -> None:
    seed(services)
    syria = {"country": "SY", "commodity": "crude-oil"}
    assert statuses(client, "2011-08-16", **syria) == {}
    assert list(statuses(client, "2011-08-17", **syria)) == ["US/SY/crude-oil"]
    assert statuses(client, "2025-05-22", **syria)["US/SY/crude-oil"] == (
        "active",
        ["asset_freeze", "financing_ban", "import_ban", "services_ban"],
    )
    # General License 25 eases: blocked property stays blocked.
    assert statuses(client, "2025-05-23", **syria)["US/SY/crude-oil"] == (
        "active",
        ["asset_freeze"],
    )
    assert statuses(client, "2025-06-30", **syria)["US/SY/crude-oil"] == (
        "active",
        ["asset_freeze"],
    )
    lifted = statuses(client, "2025-07-01", **syria)
    assert lifted["US/SY/crude-oil"] == ("lifted", [])
    assert lifted["EU/SY/crude-oil"] == ("lifted", [])  # the EU lifted on 2025-05-28
    us = stream_events(client, "US/SY/crude-oil")
    assert [(e["type"], e["effective_date"]) for e in us] == [
        ("imposed", "2011-08-17"),
        ("eased", "2025-05-23"),
        ("lifted", "2025-07-01"),
    ]
    assert "14312" in us[-1]["legal_basis"]
    eu = stream_events(client, "EU/SY/crude-oil")
    assert [e["type"] for e in eu][-2:] == ["eased", "lifted"]
    assert [e["effective_date"] for e in eu][-2:] == ["2025-02-24", "2025-05-28"]


def test_seeded_cases_added_by_issue_12(services: Service, client: TestClient) -> None:
    seed(services)
    eu_belavia = stream_events(client, "EU/BY/aviation")
    assert [(e["type"], e["effective_date"]) for e in eu_belavia if e["type"] != "renewed"] == [
        ("imposed", "2021-06-05"),
        ("expanded", "2021-12-02"),
    ]
    assert statuses(client, "2026-06-01", country="BY", commodity="aviation") == {
        "EU/BY/aviation": ("active", ["asset_freeze", "transit_ban"]),
        "GB/BY/aviation": ("active", ["transit_ban"]),
        "US/BY/aviation": ("lifted", []),
    }
    refined = statuses(client, "2023-02-05", country="RU", commodity="refined-petroleum")
    assert refined["EU/RU/refined-petroleum"][0] == "active"
    assert "EU/RU/refined-petroleum" not in statuses(
        client, "2023-02-04", country="RU", commodity="refined-petroleum"
    )
    gas = "GB/RU/natural-gas"
    assert gas not in statuses(client, "2022-12-31", country="RU", commodity="natural-gas")
    assert statuses(client, "2023-01-01", country="RU", commodity="natural-gas")[gas][0] == (
        "active"
    )
    # General License 46 eases by licence: PdVSA stays blocked, so the stream stays active.
    venezuela = stream_events(client, "US/VE/crude-oil")[-1]
    assert (venezuela["type"], venezuela["effective_date"]) == ("eased", "2026-01-29")
    status, measures = statuses(client, "2026-01-29", country="VE")["US/VE/crude-oil"]
    assert status == "active" and "import_ban" not in measures and "asset_freeze" in measures


def test_every_seeded_event_is_sourced() -> None:
    events = bundled_events()
    streams: dict[str, int] = defaultdict(int)
    for event in events:
        assert event.legal_basis, event
        assert event.source is not None and str(event.source.url).startswith("http")
        streams[f"{event.country}/{event.commodity}"] += 1
    assert {
        "BY/potash",
        "BY/aviation",
        "RU/crude-oil",
        "IR/crude-oil",
        "VE/crude-oil",
        "SY/crude-oil",
    } <= set(streams)
    uncertain = [e for e in events if e.note and "unconfirmed" in e.note.lower()]
    assert uncertain, "uncertain facts say so in their note"
    # Facts TIMELINE.md now confirms are no longer flagged as unconfirmed.
    confirmed = {
        ("GB", "BY", "potash", "2021-08-09"),
        ("UN", "KP", "coal", "2016-03-02"),
        ("US", "RU", "diamonds", "2022-03-11"),
    }
    for event in events:
        key = (event.authority, event.country, event.commodity, str(event.effective_date))
        if key in confirmed:
            assert "unconfirmed" not in (event.note or "").lower(), key


def test_a_database_seeded_from_an_earlier_bundled_file_is_corrected_by_retractions(
    make_services: Callable[..., Service], tmp_path: Path
) -> None:
    """An earlier bundled file had the US lift on 2025-12-13 (the announcement) and no
    Syria. Seeding the current file on that database retracts the changed stream's earlier
    events and records the corrected ones: every stream then reads as a fresh seed of the
    current file does, as known now, while as known before the correction it still reads
    as it did; seeding again records nothing, and verify finds nothing wrong."""
    lines = TIMELINE_FILE.read_text(encoding="utf-8").splitlines()
    older = []
    for line in lines:
        event = json.loads(line)
        if event["country"] == "SY":
            continue
        if (event["authority"], event["country"], event["commodity"], event["type"]) == (
            "US", "BY", "potash", "lifted",
        ):  # fmt: skip
            event["effective_date"] = "2025-12-13"
        older.append(json.dumps(event))
    earlier_file = tmp_path / "earlier.jsonl"
    earlier_file.write_text("\n".join(older) + "\n", encoding="utf-8")

    svc = make_services()
    first = seed(svc, earlier_file)
    assert (first.recorded, first.retracted) == (len(older), 0)
    before_correction = svc.status(StatusQuery.of(as_of="2025-12-14")).known_at
    corrected = seed(svc)
    us_events = sum(1 for line in older if '"US", "country": "BY", "commodity": "potash"' in line)
    syria = sum(1 for line in lines if '"country": "SY"' in line)
    assert corrected.retracted == us_events == 3
    assert corrected.recorded == us_events + syria
    assert corrected.already_there == len(lines) - us_events - syria
    again = seed(svc)
    assert (again.recorded, again.retracted) == (0, 0)

    fresh = make_services()
    seed(fresh)
    svc.projector.catch_up()
    fresh.projector.catch_up()
    for day in ("2021-08-09", "2025-05-23", "2025-12-13", "2025-12-14", "2025-12-15", "2026-02-01"):
        assert answers(svc, day) == answers(fresh, day), day
    as_known_then = svc.status(
        StatusQuery.of(
            authority="US",
            country="BY",
            commodity="potash",
            as_of="2025-12-14",
            known_at=before_correction,
        )
    )
    assert as_known_then.results[0].status == "lifted"  # what was known is kept
    assert svc.verify().problems == []


def answers(svc: Service, day: str) -> list[tuple[str, str, list[str], Any]]:
    return [
        (row.stream, row.status, row.measures, row.since)
        for row in svc.status(StatusQuery.of(as_of=day)).results
    ]
