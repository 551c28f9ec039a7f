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

import httpx
import pytest

from api.bootstrap import build_service
from api.settings import Settings
from tests.conftest import free_port, run_cli

SANCTIONS = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).resolve().parents[1]


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


def test_serve_seed_serves_the_bundled_timeline_and_prints_an_admin_token(
    served: tuple[str, Path], database_url: str
) -> None:
    base, output = served
    stream = httpx.get(f"{base}/v1/streams/US/BY/potash").json()
    assert [e["type"] for e in stream["events"]] == ["imposed", "expanded", "lifted"]
    token = re.search(r"token: (\S+)", output.read_text())
    assert token, output.read_text()
    body = {
        "type": "imposed",
        "authority": "PL",
        "country": "BY",
        "commodity": "potash",
        "effective_date": "2022-02-01",
        "measures": ["transit_ban"],
    }
    headers = {"Authorization": f"Bearer {token.group(1)}"}
    response = httpx.post(f"{base}/v1/events", json=body, headers=headers)
    assert response.status_code == 201 and response.json()["recorded_by"] == "admin"
    assert token.group(1) not in run_cli(database_url, "token", "create", "x").stdout


def test_token_create_prints_a_working_token(database_url: str) -> None:
    created = run_cli(database_url, "token", "create", "bob", "--role", "writer")
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
    finally:
        svc.log.close()


def test_seed_command_is_idempotent(database_url: str) -> None:
    first = run_cli(database_url, "seed")
    assert first.returncode == 0, first.stderr
    assert re.search(r"[1-9]\d* events recorded, 0 already there", first.stdout)
    second = run_cli(database_url, "seed")
    assert re.search(r"^0 events recorded, [1-9]\d* already there", second.stdout)


def test_status_timeline_and_rebuild_commands(database_url: str) -> None:
    assert run_cli(database_url, "seed").returncode == 0
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
        ("2022-04-01", "2025-12-13"),
        ("2025-12-13", None),
    ]
    rebuilt = run_cli(database_url, "rebuild")
    assert rebuilt.returncode == 0 and "events projected" in rebuilt.stdout
    again = json.loads(run_cli(database_url, "timeline", "BY", "potash", "--json").stdout)
    assert again["intervals"] == timeline["intervals"]
    bad = run_cli(database_url, "status", "XX")
    assert bad.returncode == 2 and "ISO 3166" in bad.stderr
