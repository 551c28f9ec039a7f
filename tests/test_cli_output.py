"""What the `sanctions` commands print: help, errors under the command's own names,
tables that fit a terminal, import summaries; and what the program loads to start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import ROOT, sanctions

pytestmark = pytest.mark.e2e  # the `sanctions` command run as a user runs it

HEAVY = (
    "fastapi",
    "uvicorn",
    "eventsourcing",
    "psycopg",
    "httpx",
    "api.app.service",
    "api.app.bootstrap",
)


def loaded_modules(code: str) -> set[str]:
    """The modules loaded once `code` has run in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_web_framework_or_storage() -> None:
    loaded = loaded_modules("import api.cli.main")
    assert "typer" in loaded
    for module in HEAVY:
        assert module not in loaded, module


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["token", "create", "--help"]])
def test_help_loads_no_web_framework_storage_or_pydantic(args: list[str]) -> None:
    loaded = loaded_modules(
        "from api.cli.main import app\n"
        "try:\n"
        f"    app({args!r}, prog_name='sanctions')\n"
        "except SystemExit:\n"
        "    pass"
    )
    for module in (*HEAVY, "pydantic"):
        assert module not in loaded, module


def test_flags_show_as_plain_flags_in_help() -> None:
    for command, flag in [
        ("status", "--json"),
        ("timeline", "--json"),
        ("replay", "--json"),
        ("replay", "--wide"),
        ("verify", "--json"),
        ("serve", "--seed"),
    ]:
        result = sanctions(command, "--help", columns=100)
        assert result.returncode == 0, result.stderr
        [line] = [line for line in result.stdout.splitlines() if f" {flag} " in line]
        assert re.search(rf"{flag}\s+[A-Z]", line), (command, line)  # straight to its help
        assert "<bool>" not in line and "--no-" not in line, (command, line)
    top = sanctions("--help", columns=100).stdout
    assert re.search(r"--database\s+URL", top) and re.search(r"--url\s+http://HOST:PORT", top)


@pytest.mark.shared_store
def test_errors_name_the_commands_own_arguments(database_url: str, tmp_path: Path) -> None:
    assert sanctions("seed", "--create", database=database_url).returncode == 0
    every = sanctions("status", "XX", "potatoes", "--authority", "ZZ", database=database_url)
    assert every.returncode == 2 and every.stdout == ""
    lines = every.stderr.splitlines()
    for name in ("COUNTRY", "COMMODITY", "--authority"):
        assert any(line.startswith(f"error: {name}: ") for line in lines), (name, lines)
    assert "query." not in every.stderr
    for args, name in [
        (["status", "BY", "--as-of", "2023-02-30"], "--as-of"),
        (["status", "BY", "--known-at", "yesterday"], "--known-at"),
        (["timeline", "BY", "--known-at", "2023-13-01"], "--known-at"),
        (["replay", "BY", "--authority", "ZZ"], "--authority"),
    ]:
        result = sanctions(*args, database=database_url)
        assert result.returncode == 2, args
        assert result.stderr.startswith(f"error: {name}: "), (args, result.stderr)


@pytest.mark.shared_store
def test_known_at_overflow_is_a_clean_error(database_url: str) -> None:
    assert sanctions("seed", "--create", database=database_url).returncode == 0
    for command in (["status", "BY"], ["timeline", "BY"], ["replay"]):
        result = sanctions(
            *command, "--known-at", "0001-01-01T00:00:00+14:00", database=database_url
        )
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.startswith("error: --known-at: '0001-01-01T00:00:00+14:00' falls")
        assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.shared_store
def test_replay_fits_80_columns_and_wide_shows_every_column(database_url: str) -> None:
    assert sanctions("seed", "--create", database=database_url).returncode == 0
    narrow = sanctions("replay", database=database_url, columns=80)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "status after" in narrow.stdout and "recorded_at" not in narrow.stdout
    assert "US/BY/potash" in narrow.stdout  # a stream name is not cut
    timestamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
    wide = sanctions("replay", "--wide", database=database_url, columns=80)
    assert wide.returncode == 0, wide.stderr
    assert "recorded_at" in wide.stdout and "recorded_by" in wide.stdout
    rows = [line for line in wide.stdout.splitlines() if "US/BY/potash" in line]
    assert len(rows) == 3 and all(timestamp.search(row) for row in rows)  # one line each


def jsonl(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


@pytest.mark.shared_store
def test_import_says_how_many_batches_and_why(database_url: str, tmp_path: Path) -> None:
    def imposed(country: str) -> dict[str, object]:
        return {
            "type": "imposed",
            "authority": "US",
            "country": country,
            "commodity": "potash",
            "effective_date": "2021-08-09",
            "measures": ["import_ban"],
        }

    three = jsonl(tmp_path / "three.jsonl", [imposed(c) for c in ("BY", "RU", "IR")])
    for recorded, already in ((3, 0), (0, 3)):
        result = sanctions("import", str(three), "--batch", "2", "--create", database=database_url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            f"{recorded} events recorded, {already} already there (2 batches): 2 events per batch"
        )
    two = jsonl(tmp_path / "two.jsonl", [imposed(c) for c in ("KP", "SY")])
    one = sanctions("import", str(two), database=database_url)
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == "2 events recorded, 0 already there (1 batch)"
    event_id = "5b0d6a1e-3c55-4f0e-9a56-52a8c8f2f6a1"
    retracted = jsonl(
        tmp_path / "retracted.jsonl",
        [
            {**imposed("VE"), "event_id": event_id},
            {
                "type": "retracted",
                "authority": "US",
                "country": "VE",
                "commodity": "potash",
                "retracts": event_id,
                "note": "recorded by mistake",
            },
        ],
    )
    split = sanctions("import", str(retracted), database=database_url)
    assert split.returncode == 0, split.stderr
    assert split.stdout.strip() == (
        "2 events recorded, 0 already there (2 batches): a retraction of an event in the same "
        "batch starts a new batch"
    )
