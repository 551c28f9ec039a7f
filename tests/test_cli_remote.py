"""`sanctions --url http://HOST:PORT …`: the reading commands asked of a running server."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from api.cli.remote import Remote, RemoteError
from api.schemas.queries import StatusQuery, TimelineQuery
from domain.store.config import database_location
from tests.conftest import free_port
from tests.test_cli import sanctions

pytestmark = pytest.mark.e2e  # the `sanctions` command against a running server

READER = {"SANCTIONS_TOKEN": "reader-token"}  # a reader in conftest's TOKENS


@pytest.fixture
def server(database_url: str, live_server: Callable[..., str]) -> str:
    """A server on the seeded store, its read models caught up; its base URL."""
    assert sanctions("seed", "--create", database=database_url).returncode == 0
    base = live_server()
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/readyz").json().get("projection_lag_events") != 0:
        assert time.monotonic() < deadline, "the server's read models did not catch up"
        time.sleep(0.05)
    return base


def table_and_title(output: str) -> tuple[str, str]:
    """The table (from its top border) and its title, spaces and line breaks removed."""
    title, _, table = output.partition("┏")
    return "┏" + table, "".join(title.split())


@pytest.mark.shared_store
def test_reading_commands_answer_the_same_from_a_server(server: str, database_url: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    questions = [
        ["status", "BY", "potash", "--as-of", "2026-01-15", "--known-at", now],
        ["status", "BY", "--authority", "US", "--as-of", "2023-06-01", "--known-at", now],
        ["timeline", "BY", "potash", "--known-at", now],
        ["replay", "BY", "potash", "--authority", "US", "--known-at", now],
        ["replay", "--known-at", now, "--wide"],
        ["diff", "BY", "--from-as-of", "2021-01-01", "--to-as-of", "2026-01-15",
         "--from-known-at", now, "--to-known-at", now],
        ["screen", "3104.20", "BY", "--date", "2025-12-15"],
    ]  # fmt: skip
    for question in questions:
        local = sanctions("--database", database_url, *question, env=READER)
        remote = sanctions("--url", server, *question, env=READER)
        assert local.returncode == remote.returncode == 0, (question, remote.stderr)
        local_table, local_title = table_and_title(local.stdout)
        remote_table, remote_title = table_and_title(remote.stdout)
        assert remote_table == local_table, question
        assert ("lifted" if question[0] == "screen" else "US/BY/potash") in remote_table
        assert "from" + server in remote_title and "from" + server not in local_title
        assert "from" + database_location(database_url) in local_title
        as_json = [*question, "--json"] if "--wide" not in question else ["replay", "--json"]
        local_json = sanctions("--database", database_url, *as_json)
        remote_json = sanctions("--url", server + "/", *as_json)
        assert remote_json.stdout == local_json.stdout and local_json.stdout, as_json
    local = sanctions("--database", database_url, "verify", "--json")
    remote = sanctions("--url", server, "verify", "--json", env=READER)
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert json.loads(remote.stdout)["events_checked"] > 0
    said = sanctions("--url", server, "verify", env=READER)
    assert said.returncode == 0 and f"from {server}" in said.stdout


def test_a_server_refusing_a_question_is_a_cli_error(server: str) -> None:
    invalid = sanctions(
        "--url", server, "status", "XX", "potatoes", "--authority", "ZZ", "--as-of", "2023-02-30"
    )
    assert invalid.returncode == 2 and invalid.stdout == ""
    for name in ("COUNTRY:", "COMMODITY:", "--authority:"):
        assert name in invalid.stderr, invalid.stderr
    assert "query." not in invalid.stderr
    day = sanctions("--url", server, "status", "BY", "--as-of", "2023-02-30")
    assert day.returncode == 2 and "--as-of: 2023-02-30 is not a date that exists" in day.stderr
    overflow = sanctions(
        "--url", server, "timeline", "BY", "--known-at", "0001-01-01T00:00:00+14:00"
    )
    assert overflow.returncode == 2 and "--known-at:" in overflow.stderr
    unauthenticated = sanctions("--url", server, "verify")  # verification needs a reader token
    assert unauthenticated.returncode == 2
    assert "401" in unauthenticated.stderr and "SANCTIONS_TOKEN" in unauthenticated.stderr
    wrong = sanctions("--url", server, "verify", env={"SANCTIONS_TOKEN": "not-a-token"})
    assert wrong.returncode == 2 and "unknown token" in wrong.stderr


def test_an_unreachable_server_is_exit_1() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    result = sanctions("--url", base, "status", "BY")
    assert result.returncode == 1 and f"cannot reach {base}" in result.stderr
    assert "Traceback" not in result.stderr


def test_other_commands_refuse_url() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    # `serve`'s port (8000) taken, as by a server a user left running: --url is still the
    # answer, not the busy port (if something else has the port already, all the same).
    holder = socket.socket()
    with contextlib.suppress(OSError):
        holder.bind(("127.0.0.1", 8000))
        holder.listen()
    for command in (
        ["seed"],
        ["serve"],
        ["export"],
        ["rebuild"],
        ["project"],
        ["token", "list"],
        ["token", "create", "x"],
    ):
        result = sanctions("--url", base, *command)
        assert result.returncode == 2, command
        assert f"`sanctions {' '.join(command[:2])}` works on a database, not over --url" in (
            result.stderr
        ), (command, result.stderr)
    holder.close()
    both = sanctions("--url", base, "--database", "sqlite:///x.db", "status", "BY")
    assert both.returncode == 2 and "not both" in both.stderr
    schemeless = sanctions("--url", "127.0.0.1:8000", "status", "BY")
    assert schemeless.returncode == 2 and "http://HOST:PORT" in schemeless.stderr


def problem_server(status: int, body: object, content_type: str) -> Remote:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer t"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"Content-Type": content_type})

    return Remote("http://server:1", "t", transport=httpx.MockTransport(answer))


def test_problem_documents_become_errors_with_an_exit_code() -> None:
    problem = "application/problem+json"
    invalid = {
        "status": 422,
        "title": "Invalid input",
        "detail": "query.as_of: no",
        "errors": [
            {"field": "query.as_of", "message": "no", "type": "value_error"},
            {"field": "query.country", "message": "unknown", "type": "value_error"},
        ],
    }
    with pytest.raises(RemoteError) as refused:
        problem_server(422, invalid, problem).status(StatusQuery.of(country="XX", as_of="x"))
    assert refused.value.exit_code == 2
    assert refused.value.fields == [("query.as_of", "no"), ("query.country", "unknown")]
    unavailable = {"status": 503, "title": "Service unavailable", "detail": "database down"}
    with pytest.raises(RemoteError) as failed:
        problem_server(503, unavailable, problem).verify()
    assert failed.value.exit_code == 1 and "503 Service unavailable: database down" in str(
        failed.value
    )
    with pytest.raises(RemoteError) as gateway:
        problem_server(502, b"<html>bad gateway</html>", "text/html").timeline(
            TimelineQuery.of(country="BY")
        )
    assert gateway.value.exit_code == 1 and "502 Bad Gateway" in str(gateway.value)
    with pytest.raises(RemoteError) as other:
        problem_server(200, {"hello": "world"}, "application/json").verify()
    assert other.value.exit_code == 1 and "sanctions-timeline" in str(other.value)
