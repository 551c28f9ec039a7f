"""What the benchmarks share: the real app served by uvicorn in a thread, and a client; or
the ``sanctions`` command in processes of its own on a fresh database (``bench/writes.py``)."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import psycopg
import uvicorn
from psycopg.sql import SQL, Identifier
from scaleout import EVENTS_TABLE, Cluster, Layout, start_layout  # bench/scaleout.py

from api.app.service import Service
from api.http.app import create_app


class BenchError(RuntimeError):
    """The run cannot go on: a wrong answer, a failed child, a server that will not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(svc: Service, headers: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """The app on `svc`, served by uvicorn in a thread; a keep-alive client bound to it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60.0
        ) as client:
            wait_until_healthy(client, thread)
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        svc.close()  # the app's lifespan closes it too; closing twice is harmless
        if thread.is_alive():
            raise BenchError("uvicorn did not stop within 30 s")


def wait_until_healthy(client: httpx.Client, thread: threading.Thread) -> None:
    """Return once `/healthz` answers 200 (this also opens the keep-alive connection)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise BenchError("uvicorn stopped before answering /healthz")
        with contextlib.suppress(httpx.TransportError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.05)
    raise BenchError("/healthz did not answer within 30 s")


# Servers in processes of their own (bench/writes.py)

WRITER_TOKEN = "bench-writer-token"


@dataclass
class Databases:
    """Fresh databases; `drop` removes one, `drop_all` every one still there."""

    postgres_url: str
    workdir: Path
    made: list[str] = field(default_factory=list)

    def fresh(self, kind: str) -> str:
        suffix = uuid.uuid4().hex[:10]
        url = (
            f"sqlite:///{self.workdir / f'writes-{suffix}.db'}"
            if kind == "sqlite"
            else f"{self.postgres_url}?{urlencode({'schema': f'writes_{suffix}'})}"
        )
        self.made.append(url)
        return url

    def count(self, url: str, table: str | None = None) -> int:
        """Rows of `table` (default: the log's events) in the database of `url`."""
        if url.startswith("sqlite"):
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
                query = f"SELECT count(*) FROM {table or 'stored_events'}"
                return int(conn.execute(query).fetchone()[0])
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            name = Identifier(schema_of(url), table or EVENTS_TABLE)
            query = SQL("SELECT count(*) FROM {}").format(name)
            row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0

    def drop(self, url: str) -> None:
        if url in self.made:
            self.made.remove(url)
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
            return
        with psycopg.connect(self.postgres_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET lock_timeout = '30s'")
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema_of(url))))

    def drop_all(self) -> None:
        for url in list(self.made):
            self.drop(url)


def schema_of(url: str) -> str:
    return parse_qs(urlparse(url).query)["schema"][0]


def service_env(url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANCTIONS_")}
    env.update(SANCTIONS_DATABASE_URL=url, PYTHONUNBUFFERED="1", **settings)
    return env


class Server:
    """`layout` on a fresh database of `kind` (or on `url`, which is dropped with it); the
    base URL; stopped and dropped on exit."""

    def __init__(
        self, sanctions: str, dbs: Databases, kind: str, layout: Layout, url: str | None = None
    ):
        self.dbs, self.layout = dbs, layout
        self.url = url or dbs.fresh(kind)
        rundir = Path(tempfile.mkdtemp(prefix="run-", dir=dbs.workdir))
        # start_layout turns the embedded projector on for `single`, runs `project` else
        env = service_env(
            self.url,
            SANCTIONS_API_TOKENS=f"bench:writer:{WRITER_TOKEN}",
            SANCTIONS_EMBEDDED_PROJECTOR="false",
        )
        self.cluster = Cluster(sanctions, rundir, env)
        self.problems: list[str] = []

    def __enter__(self) -> Server:
        try:
            port = start_layout(self.cluster, self.layout)[0]
        except BaseException:
            self.__exit__()
            raise
        self.base = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.problems += self.cluster.stop()
        finally:
            self.dbs.drop(self.url)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {WRITER_TOKEN}"},
            timeout=60.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def cpu(self) -> float:
        """CPU seconds so far of every process of the layout."""
        return self.cluster.cpu_seconds()

    def tail(self) -> str:
        """The end of every process's log, for an error message."""
        logs = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in self.cluster.processes)
        return f"; the service's logs end:\n{logs}"

    def count(self) -> int:
        """The events in its log."""
        return self.dbs.count(self.url)

    def check_log(self, answered: int) -> None:
        """The log must hold exactly the events answered 201."""
        self.cluster.check_alive()
        stored = self.count()
        if stored != answered:
            self.problems.append(f"the log holds {stored} events, {answered} were answered 201")


def refusal(response: httpx.Response) -> str:
    return f"{response.status_code}: {response.text[:300]}"
