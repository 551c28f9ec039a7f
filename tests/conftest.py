"""Fixtures: every storage-dependent test runs on SQLite and on PostgreSQL.

Each test gets its own SQLite file or its own PostgreSQL schema, dropped afterwards,
so runs never leak into each other.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright
from psycopg.sql import SQL, Identifier

from api.app.bootstrap import build_service
from api.app.service import Service
from api.app.settings import Settings
from api.http.app import create_app

POSTGRES_URL = os.environ.get(
    "SANCTIONS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TOKENS = "alice:admin:admin-token,wendy:writer:writer-token,rita:reader:reader-token"
ADMIN = {"Authorization": "Bearer admin-token"}
WRITER = {"Authorization": "Bearer writer-token"}
READER = {"Authorization": "Bearer reader-token"}
US_POTASH_IMPOSED = {
    "type": "imposed",
    "authority": "US",
    "country": "BY",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["import_ban"],
}
"""The simplest write: the US imposes an import ban on Belarusian potash."""
IRAN_GOLD = {
    "type": "imposed",
    "authority": "EU",
    "country": "IR",
    "commodity": "gold",
    "effective_date": "2012-01-23",
    "measures": ["import_ban"],
    "legal_basis": "Council Decision 2012/35/CFSP",
    "source": {"url": "https://eur-lex.europa.eu/eli/dec/2012/35/oj"},
}
"""An event the bundled timeline lacks: a log of it grows by one (60 to 61 events)."""


ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`sanctions ARGS…` as a user runs it, on the given store."""
    env = {
        **os.environ,
        "SANCTIONS_DATABASE_URL": database_url,
        "SANCTIONS_API_TOKENS": "",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def audit_check(database_url: str, kept: Path, url: str, *options: str) -> tuple[int, str]:
    """`sanctions audit check KEPT --url URL OPTIONS…`: its exit code and all it said."""
    done = run_cli(database_url, "audit", "check", str(kept), "--url", url, *options)
    return done.returncode, done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store: in memory (no database file), a SQLite file, or a PostgreSQL
    schema of its own. A test marked `shared_store` is not run on the in-memory store."""
    if request.param == "memory":
        yield "memory:"
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/sanctions.db"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


@pytest.fixture
def make_services(database_url: str) -> Iterator[Callable[..., Service]]:
    """Build services on the test's store; several builds act like restarts."""
    built: list[Service] = []

    def make(**settings: object) -> Service:
        svc = build_service(
            Settings(database_url=database_url, **{"api_tokens": TOKENS, **settings})
        )
        built.append(svc)
        return svc

    yield make
    for svc in built:
        svc.log.close()


@pytest.fixture
def services(make_services: Callable[..., Service]) -> Service:
    return make_services()


@pytest.fixture
def client(services: Service) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        yield test_client


@pytest.fixture
def serve() -> Iterator[Callable[[Service], str]]:
    """Serve a built service with uvicorn on a free port in a thread; yields a starter
    that answers the server's base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(svc: Service) -> str:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(
    make_services: Callable[..., Service], serve: Callable[[Service], str]
) -> Callable[..., str]:
    """Serve the real app on the test's store, built with the given settings."""

    def start(**settings: object) -> str:
        return serve(make_services(**settings))

    return start


SLOW_SESSIONS = {("test_readme.py", "test_examples_give_the_output_they_show")}
"""Each document's console blocks run as one shell session, servers and all (10-20 s each)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that drives Chromium carries the `browser` mark, whichever module it is in;
    the documents' sessions carry `slow`. A test that needs a store other processes, raw SQL
    or a restart can reach (`shared_store`), or a browser, is not run on the in-memory store."""
    kept, left_out = [], []
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        if (item.path.name, getattr(item, "originalname", item.name)) in SLOW_SESSIONS:
            item.add_marker(pytest.mark.slow)
        in_memory = (
            getattr(item, "callspec", None) and item.callspec.params.get("database_url") == "memory"
        )
        needs_more = item.get_closest_marker("shared_store") or item.get_closest_marker("browser")
        (left_out if in_memory and needs_more else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system Chromium, driven by Playwright (never a downloaded browser)."""
    assert Path(CHROMIUM).exists(), "the system Chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
