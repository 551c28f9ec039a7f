"""The app a user might write instead of this service: the baseline of bench/versus.py.

A plain FastAPI app that takes the same posted event as the service (the same pydantic
input model, `EventIn`), and stores each as one row: one INSERT and one commit per
request. No hash chain, no rules, no read models, no idempotency. Two twins:

- SQLite: WAL, `synchronous=FULL` (each commit is durable, as the service's), one
  connection per worker thread, waiting up to 30 s for the write lock;
- PostgreSQL: psycopg with a connection pool, one INSERT + commit per request, in a schema
  of its own.

It answers `POST /v1/events` with 201 and the row's id, `GET /healthz` with 200, and
checks the bearer token as a plain app would (a set of tokens in memory).

Run it as uvicorn runs any app (bench/versus.py does)::

    PEER_DATABASE_URL=sqlite:////tmp/peer.db .venv/bin/uvicorn --app-dir bench peer:app
    PEER_DATABASE_URL='postgresql://postgres@127.0.0.1:5432/test?schema=peer' \\
        .venv/bin/uvicorn --app-dir bench peer:app --workers 2
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qs, urlparse

from fastapi import Depends, FastAPI, Header, HTTPException
from psycopg import sql
from psycopg_pool import ConnectionPool

from api.schemas.requests import EventIn

TOKENS = frozenset(os.environ.get("PEER_TOKENS", "bench-writer-token").split(","))
CREATE = "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body TEXT NOT NULL)"
INSERT_SQLITE = "INSERT INTO events (id, body) VALUES (?, ?)"
INSERT_POSTGRES = "INSERT INTO events (id, body) VALUES (%s, %s)"


class SqliteEvents:
    """One connection per thread; WAL and synchronous=FULL, like the service's SQLite."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        with self.connection() as conn:
            conn.execute(CREATE)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self.local.conn = conn
        return conn

    def insert(self, event_id: str, body: str) -> None:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT_SQLITE, (event_id, body))
        conn.execute("COMMIT")

    def close(self) -> None:
        pass  # each thread's connection closes with the process


class PostgresEvents:
    """A psycopg pool; the table in the URL's `schema`."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        schema = parse_qs(parsed.query).get("schema", ["peer"])[0]
        dsn = parsed._replace(query="").geturl()
        self.pool = ConnectionPool(
            dsn,
            min_size=4,
            max_size=20,
            kwargs={"options": f"-c search_path={schema}"},
            open=True,
        )
        with self.pool.connection() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(CREATE)

    def insert(self, event_id: str, body: str) -> None:
        with self.pool.connection() as conn:  # commits on leaving
            conn.execute(INSERT_POSTGRES, (event_id, body))

    def close(self) -> None:
        self.pool.close()


def open_events(url: str) -> SqliteEvents | PostgresEvents:
    if url.startswith("sqlite:///"):
        return SqliteEvents(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEvents(url)
    raise SystemExit(f"PEER_DATABASE_URL: sqlite:///PATH or postgresql://…, not {url!r}")


store: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    store["events"] = open_events(os.environ["PEER_DATABASE_URL"])
    yield
    store.pop("events").close()


app = FastAPI(title="peer", lifespan=lifespan)


def writer(authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise HTTPException(status_code=401, detail="a writer's bearer token is needed")


@app.post("/v1/events", status_code=201, dependencies=[Depends(writer)])
def record(event: EventIn) -> dict[str, str]:
    event_id = str(uuid.uuid4())
    store["events"].insert(event_id, event.model_dump_json(exclude_none=True))
    return {"event_id": event_id}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
