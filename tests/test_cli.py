"""The `sanctions` command: the real program, started as a user would start it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.app.bootstrap import build_service
from api.app.settings import Settings
from domain.store.config import database_location, missing_event_store
from tests.conftest import POSTGRES_URL, free_port, run_cli

pytestmark = pytest.mark.e2e  # the `sanctions` command run as a user runs it

SANCTIONS = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).resolve().parents[1]
READING = [
    ["status", "BY", "potash"],
    ["timeline", "BY"],
    ["replay"],
    ["verify"],
    ["export"],
    ["token", "list"],
]


def sanctions(
    *args: str,
    database: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    columns: int = 200,
) -> subprocess.CompletedProcess[str]:
    """`sanctions ARGS…` as a user runs it: SANCTIONS_DATABASE_URL is `database` (unset
    when None), in `cwd`, on a terminal `columns` wide."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SANCTIONS_DATABASE_URL", "SANCTIONS_TOKEN")
    }
    environment |= {"SANCTIONS_API_TOKENS": "", "COLUMNS": str(columns), **(env or {})}
    if database is not None:
        environment["SANCTIONS_DATABASE_URL"] = database
    return subprocess.run(
        [*SANCTIONS, *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def schema_exists(schema: str) -> bool:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    return found is not None


def created(database_url: str) -> bool:
    """Whether anything of the store exists: the SQLite file or its folder, the schema."""
    if database_url.startswith("sqlite"):
        return Path(database_url.split("///", 1)[1]).parent.exists()
    return schema_exists(database_url.split("schema=", 1)[1])


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`sanctions serve --seed` on a free port; yields its base URL and its output file."""
    port = free_port()
    output = tmp_path / "serve.out"
    env = {**os.environ, "SANCTIONS_DATABASE_URL": database_url, "SANCTIONS_API_TOKENS": ""}
    with output.open("w") as out:
        process = subprocess.Popen(
            [*SANCTIONS, "serve", "--seed", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield base, output
    finally:
        process.terminate()
        process.wait(timeout=30)


def imposed_by(authority: str) -> dict[str, Any]:
    return {
        "type": "imposed",
        "authority": authority,
        "country": "BY",
        "commodity": "potash",
        "effective_date": "2022-02-01",
        "measures": ["transit_ban"],
    }


@pytest.mark.shared_store
def test_serve_seed_serves_the_bundled_timeline_and_prints_an_admin_token(
    served: tuple[str, Path], database_url: str
) -> None:
    base, output = served
    stream = httpx.get(f"{base}/v1/streams/US/BY/potash").json()
    assert [e["type"] for e in stream["events"]] == ["imposed", "expanded", "lifted"]
    printed = re.findall(r"token: (\S+)", output.read_text())
    assert len(printed) == 1, output.read_text()
    [admin_token] = printed

    def post_as(token: str, authority: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(f"{base}/v1/events", json=imposed_by(authority), headers=headers)

    response = post_as(admin_token, "PL")
    assert response.status_code == 201, response.text
    assert response.json()["recorded_by"] == "admin"
    almost = admin_token[:-1] + ("A" if admin_token[-1] != "A" else "B")
    assert post_as(almost, "LV").status_code == 401

    # Tokens made by `sanctions token create` work on the running server at once, each
    # as its own name and role, and none is the admin token printed at the start.
    writer = run_cli(database_url, "token", "create", "xavier", "--role", "writer")
    reader = run_cli(database_url, "token", "create", "yvonne")  # reader by default
    assert writer.returncode == 0 and reader.returncode == 0, writer.stderr + reader.stderr
    writer_token, reader_token = writer.stdout.strip(), reader.stdout.strip()
    assert len({admin_token, writer_token, reader_token}) == 3
    response = post_as(writer_token, "EE")
    assert response.status_code == 201, response.text
    assert response.json()["recorded_by"] == "xavier"
    refused = post_as(reader_token, "LV")
    assert refused.status_code == 403, refused.text
    assert "yvonne has role reader" in refused.json()["detail"]
    recorded = httpx.get(f"{base}/v1/events", params={"country": "BY", "limit": 1000}).json()
    assert {(e["authority"], e["recorded_by"]) for e in recorded["events"]} >= {
        ("PL", "admin"),
        ("EE", "xavier"),
    }
    assert "LV" not in {e["authority"] for e in recorded["events"]}


@pytest.mark.shared_store
def test_token_create_prints_a_working_token(database_url: str) -> None:
    created = run_cli(database_url, "token", "create", "bob", "--role", "writer", "--create")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("st_")
    duplicate = run_cli(database_url, "token", "create", "bob", "--role", "writer")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    bad_role = run_cli(database_url, "token", "create", "eve", "--role", "emperor")
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr

    svc = build_service(Settings(database_url=database_url, api_tokens=""))
    try:
        caller = svc.tokens.authenticate(token)
        assert caller is not None and (caller.name, caller.role.label) == ("bob", "writer")
        assert svc.tokens.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert svc.tokens.authenticate(token[::-1]) is None
    finally:
        svc.log.close()


@pytest.mark.shared_store
def test_seed_command_is_idempotent(database_url: str) -> None:
    first = run_cli(database_url, "seed", "--create")
    assert first.returncode == 0, first.stderr
    assert re.search(r"[1-9]\d* events recorded, 0 already there", first.stdout)
    second = run_cli(database_url, "seed")
    assert re.search(r"^0 events recorded, [1-9]\d* already there", second.stdout)


@pytest.mark.shared_store
def test_status_timeline_and_rebuild_commands(database_url: str) -> None:
    assert run_cli(database_url, "seed", "--create").returncode == 0
    then = run_cli(database_url, "status", "BY", "potash", "--as-of", "2023-06-01", "--json")
    assert then.returncode == 0, then.stderr
    statuses = {r["stream"]: r["status"] for r in json.loads(then.stdout)["results"]}
    assert statuses["US/BY/potash"] == "active" and statuses["EU/BY/potash"] == "active"
    later = json.loads(
        run_cli(
            database_url, "status", "by", "--authority", "us", "--as-of", "2026-01-15", "--json"
        ).stdout
    )
    assert {r["stream"]: r["status"] for r in later["results"]}["US/BY/potash"] == "lifted"
    before_any = json.loads(
        run_cli(
            database_url,
            "status",
            "BY",
            "potash",
            "--authority",
            "US",
            "--known-at",
            "2020-01-01T00:00:00Z",
            "--json",
        ).stdout
    )
    assert before_any["results"][0]["status"] == "none"
    table = run_cli(database_url, "status", "BY", "potash", "--as-of", "2026-01-15")
    assert "US/BY/potash" in table.stdout and "lifted" in table.stdout
    timeline = json.loads(run_cli(database_url, "timeline", "BY", "potash", "--json").stdout)
    us = [i for i in timeline["intervals"] if i["stream"] == "US/BY/potash"]
    assert [(i["valid_from"], i["valid_to"]) for i in us] == [
        ("2021-08-09", "2022-04-01"),
        ("2022-04-01", "2025-12-15"),
        ("2025-12-15", None),
    ]
    rebuilt = run_cli(database_url, "rebuild")
    assert rebuilt.returncode == 0 and "events projected" in rebuilt.stdout
    again = json.loads(run_cli(database_url, "timeline", "BY", "potash", "--json").stdout)
    assert again["intervals"] == timeline["intervals"]
    bad = run_cli(database_url, "status", "XX")
    assert bad.returncode == 2 and "ISO 3166" in bad.stderr


@pytest.mark.shared_store
def test_reading_commands_never_create_a_database(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path}/nested/sanctions.db"
    where = database_location(database_url)
    assert missing_event_store(database_url) is not None and not created(database_url)
    for command in READING:
        result = sanctions(*command, database=database_url)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"no database at {where}" in result.stderr, (command, result.stderr)
        assert (
            "sanctions seed --create" in result.stderr and "sanctions serve --seed" in result.stderr
        )
        assert not created(database_url), command
    if database_url.startswith("sqlite"):
        assert str(tmp_path / "nested" / "sanctions.db") in where
    else:
        assert "?schema=" in where and "@127.0.0.1:5432/test" in where
    # A writing command told to creates it; then the same reads answer.
    made = sanctions("token", "create", "reader", "--create", database=database_url)
    assert made.returncode == 0, made.stderr
    assert missing_event_store(database_url) is None
    for command in READING:
        result = sanctions(*command, database=database_url)
        assert result.returncode == 0, (command, result.stderr)


def test_the_default_database_is_looked_for_where_the_command_runs(tmp_path: Path) -> None:
    """Run from another folder, `sanctions status` neither creates ./data/ nor answers an
    empty table: it names the file it looked for."""
    result = sanctions("status", "BY", "potash", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert f"no database at sqlite:///{tmp_path}/data/sanctions.db" in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.shared_store
def test_database_option_overrides_the_environment(database_url: str, tmp_path: Path) -> None:
    assert sanctions("seed", "--create", database=database_url).returncode == 0
    elsewhere = f"sqlite:///{tmp_path}/elsewhere/none.db"
    missing = sanctions("status", "BY", "potash", database=elsewhere)
    assert missing.returncode == 1 and "elsewhere/none.db" in missing.stderr
    found = sanctions("--database", database_url, "status", "BY", "potash", database=elsewhere)
    assert found.returncode == 0, found.stderr
    assert "US/BY/potash" in found.stdout
    title = "".join(found.stdout.split("┏")[0].split())
    assert "from" + database_location(database_url) in title
    assert not (tmp_path / "elsewhere").exists()
    assert "password" not in database_location("postgresql://u:password@h:5432/db?schema=s")
