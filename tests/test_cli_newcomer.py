"""What a newcomer meets first: which database a writing command writes (and that none is
created by surprise), errors that blame the setting actually given, a hint for a bare-date
`known_at`, and `--help` text that never stops mid-sentence."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.store.config import database_location, missing_event_store
from tests.conftest import free_port
from tests.test_cli import SANCTIONS, created, sanctions

pytestmark = pytest.mark.e2e  # the `sanctions` command run as a user runs it

WRITING = [
    ["seed"],
    ["token", "create", "bob"],
    ["import", "{events}"],
    ["token", "revoke", "bob"],
    ["rebuild"],
    ["audit", "rotate-key", "{key}"],
]
"""Every command that writes the store (`serve` and `project` run the service itself)."""
CREATING = {"seed", "import"}
"""Those that may create a new database, given --create."""


@pytest.mark.shared_store
def test_writing_commands_name_their_database_and_create_none_unless_told(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path}/nested/sanctions.db"
    where = database_location(database_url)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"type": "imposed", "authority": "US", "country": "NZ",
                                  "commodity": "potash", "effective_date": "2021-08-09",
                                  "measures": ["import_ban"]}) + "\n")  # fmt: skip
    fill = {"{events}": str(events), "{key}": str(tmp_path / "new.key")}
    for command in WRITING:
        args = [fill.get(arg, arg) for arg in command]
        refused = sanctions(*args, database=database_url)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        assert f"no database at {where}" in refused.stderr, (command, refused.stderr)
        if command[0] in CREATING or command[:2] == ["token", "create"]:
            assert "add --create to create this one" in refused.stderr, refused.stderr
        assert refused.stdout == "" and "Traceback" not in refused.stderr
        assert not created(database_url), command
        assert not (tmp_path / "new.key").exists()

    made = sanctions("seed", "--create", database=database_url)
    assert made.returncode == 0, made.stderr
    assert made.stderr.strip() == f"creating a new database at {where}"
    assert missing_event_store(database_url) is None
    for command in WRITING:
        args = [fill.get(arg, arg) for arg in command]
        done = sanctions(*args, database=database_url)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stderr.splitlines()[0] == f"writing to {where}", (command, done.stderr)
    token = sanctions("token", "create", "carol", database=database_url)
    assert re.fullmatch(r"st_\S+\n", token.stdout), token.stdout  # the token alone on stdout


def test_a_writing_command_run_elsewhere_says_where_and_creates_nothing(tmp_path: Path) -> None:
    """The default database is ./data/sanctions.db where the command runs: run from another
    folder, `token create` and `seed` name that file and leave the folder as it was."""
    for command in (["token", "create", "analyst", "--role", "writer"], ["seed"]):
        result = sanctions(*command, cwd=tmp_path)
        assert result.returncode == 1 and result.stdout == "", result.stdout
        assert f"no database at sqlite:///{tmp_path}/data/sanctions.db" in result.stderr
        assert "--create" in result.stderr
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://h/db", "unsupported database URL 'mysql://h/db'"),
        ("sqlite://", "the sqlite URL names no file"),
        ("postgresql://127.0.0.1:{port}/db", "cannot look at postgresql://127.0.0.1:{port}/db"),
    ],
)
def test_database_errors_name_the_setting_that_was_given(url: str, says: str) -> None:
    port = str(free_port())  # nothing listens there
    url, says = url.replace("{port}", port), says.replace("{port}", port)
    for command in (["status", "BY"], ["seed", "--create"], ["token", "create", "x"]):
        given = sanctions("--database", url, *command)
        assert given.returncode in (1, 2) and given.stdout == "", (command, given.stdout)
        assert f"error: --database: {says}" in given.stderr, (command, given.stderr)
        assert "SANCTIONS_DATABASE_URL" not in given.stderr.split("\n")[0], given.stderr
        assert "Traceback" not in given.stderr
        from_environment = sanctions(*command, database=url)
        assert f"error: SANCTIONS_DATABASE_URL: {says}" in from_environment.stderr, (
            command,
            from_environment.stderr,
        )


HELP_GROUPS = [[], ["token"], ["audit"]]
SENTENCE_END = (".", "?", ")")


def commands_listed(help_text: str) -> dict[str, list[str]]:
    """The Commands panel of a group's `--help`: each command's lines of description."""
    panel = help_text.split("─ Commands ─", 1)[1].split("╰", 1)[0]
    rows: dict[str, list[str]] = {}
    name = ""
    for line in panel.splitlines()[1:]:
        cells = re.fullmatch(r"│ (\S*)\s+(.*?)\s*│", line)
        assert cells, line
        name = cells.group(1) or name
        rows.setdefault(name, []).append(cells.group(2))
    return rows


@pytest.mark.parametrize("group", HELP_GROUPS, ids=lambda g: " ".join(g) or "sanctions")
def test_help_never_stops_mid_sentence(group: list[str]) -> None:
    # On a terminal wide enough for any line, each command's summary is one line of
    # whole sentences: a break inside it could only come from the help text itself.
    wide = sanctions(*group, "--help", columns=400)
    assert wide.returncode == 0, wide.stderr
    listed = commands_listed(wide.stdout)
    assert listed
    for name, lines in listed.items():
        assert len(lines) == 1, (name, lines)
        assert lines[0].endswith(SENTENCE_END), (name, lines[0])
    # On an ordinary terminal nothing is cut short with an ellipsis, here or in any
    # command's own help.
    for args in [[*group, "--help"], *([*group, name, "--help"] for name in listed)]:
        shown = sanctions(*args, columns=80)
        assert shown.returncode == 0, (args, shown.stderr)
        for line in shown.stdout.splitlines():
            text = line.rstrip(" │")
            if not text.lstrip().startswith("Usage:"):  # `[ARGS]...` is click's own
                assert not text.endswith(("…", "...")), (args, line)


def test_a_bare_date_known_at_gets_a_note_of_its_moment(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/seeded.db"
    assert sanctions("seed", "--create", database=database).returncode == 0
    today = datetime.now(UTC).date().isoformat()
    asked = ["status", "BY", "potash", "--authority", "US", "--as-of", "2023-06-01", "--json"]
    bare = sanctions(*asked, "--known-at", today, database=database)
    midnight = sanctions(*asked, "--known-at", f"{today}T00:00:00Z", database=database)
    assert bare.returncode == midnight.returncode == 0, bare.stderr
    # The same answer as at the moment the day began: the events seeded since then are
    # not known yet.
    assert json.loads(bare.stdout) == json.loads(midnight.stdout)
    assert json.loads(bare.stdout)["results"][0]["status"] == "none"
    note = " ".join(bare.stderr.split())
    assert f"note: --known-at {today} is read as {today}T00:00:00Z, the start of that day" in note
    assert "transaction time" in note and "--as-of" in note
    assert midnight.stderr == ""
    diff = sanctions("diff", "BY", "--from-known-at", today, "--json", database=database)
    assert diff.returncode == 0, diff.stderr
    assert f"--from-known-at {today} is read as" in " ".join(diff.stderr.split())


def test_serve_names_its_database_and_a_busy_port_before_opening_any(tmp_path: Path) -> None:
    """`serve` says which database it serves (creating it, the first time), and on a port
    another server holds it says so, pointing at --port, before it opens or seeds one."""
    database_url = f"sqlite:///{tmp_path}/data/sanctions.db"
    with socket.socket() as holder:  # another server on the port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        busy = sanctions("serve", "--seed", "--port", str(port), database=database_url)
    assert busy.returncode == 1, (busy.stdout, busy.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr, busy.stderr
    assert "--port N" in busy.stderr and "Traceback" not in busy.stderr, busy.stderr
    assert not created(database_url), "a busy port opened (and seeded) a database first"

    port = free_port()
    output = tmp_path / "serve.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [*SANCTIONS, "serve", "--port", str(port)],
            env={
                **os.environ,
                "SANCTIONS_DATABASE_URL": database_url,
                "SANCTIONS_API_TOKENS": "t",
                "COLUMNS": "200",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "creating a new database at" not in output.read_text():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    first = output.read_text().splitlines()[0]
    assert first == f"creating a new database at {database_location(database_url)}", first


def test_an_empty_answer_at_a_known_at_before_the_record_says_so(tmp_path: Path) -> None:
    """A `--known-at` before anything was recorded answers an empty table, which must not
    read as "nothing in force": a note says nothing was recorded by then, and what
    --known-at means beside --as-of."""
    database_url = f"sqlite:///{tmp_path}/sanctions.db"
    assert sanctions("seed", "--create", database=database_url).returncode == 0
    for command in (["status", "BY", "potash"], ["timeline", "BY", "potash"]):
        early = sanctions(*command, "--known-at", "2020-01-01T00:00:00Z", database=database_url)
        assert early.returncode == 0, early.stderr
        assert "US/BY/potash" not in early.stdout, early.stdout
        assert "no event matching this question had been recorded by 2020-01-01T00:00:00" in (
            early.stderr
        ), early.stderr
        assert "the date a law is read on is --as-of" in early.stderr, early.stderr
        now = sanctions(*command, database=database_url)
        assert "US/BY/potash" in now.stdout and "note:" not in now.stderr, now.stderr
