"""How many transactions a write and a read cost, counted at the database connection, so
that round trips cannot creep back unnoticed.

A transaction is a BEGIN, or a statement run on its own outside one (autocommit);
PostgreSQL's pool pings a connection before lending it (an empty query), which is not
counted. Only the calling thread's statements count (a background projector or
listener does its own work), and the service is called as the routes call it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from eventsourcing import sqlite as library_sqlite
from psycopg.pq import TransactionStatus

from api.app.service import Service
from api.schemas.queries import StatusQuery
from domain.keys import StreamKey
from domain.recorded import IdempotentRequest
from domain.rules import EventType
from domain.stream import EventDraft

pytestmark = pytest.mark.integration  # real stores, connections counted in process

Counts = Counter[str]


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Counts]]:
    """Count this thread's transactions (`begin`, `autocommit`) and the statements
    inside them, on every connection either store opens from now on."""
    counts: Counts = Counter()
    thread = threading.get_ident()

    def ours() -> bool:
        return threading.get_ident() == thread

    def read(statement: str) -> None:
        """Count the reads of a stream's stored history — its events, its projected
        entries or intervals, row by row — which a write's cost would grow with."""
        text = " ".join(statement.split())
        if "topic, state FROM" in text and "originator_id IN" in text:
            counts["read events"] += 1
        for table in ("projected_entries", "status_intervals"):
            if text.startswith("SELECT *") and table in text and "stream IN" in text:
                counts[f"read {table}"] += 1

    def traced(connection: sqlite3.Connection) -> Callable[[str], None]:
        def trace(statement: str) -> None:
            if not ours():
                return
            word = statement.strip().split(None, 1)[0].upper() if statement.strip() else ""
            if word == "BEGIN":
                counts["begin"] += 1
            elif word in ("COMMIT", "ROLLBACK", "PRAGMA"):
                return
            else:
                counts["statements" if connection.in_transaction else "autocommit"] += 1
                read(statement)

        return trace

    create = library_sqlite.SQLiteConnectionPool._create_connection

    def create_traced(pool: Any) -> Any:
        connection = create(pool)
        raw = connection._sqlite_conn
        raw.set_trace_callback(traced(raw))
        return connection

    monkeypatch.setattr(library_sqlite.SQLiteConnectionPool, "_create_connection", create_traced)

    begin = psycopg.Connection.transaction
    execute = psycopg.Cursor.execute
    executemany = psycopg.Cursor.executemany

    def transaction(self: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:
        if ours():
            counts["begin"] += 1
        return begin(self, *args, **kwargs)

    def note(cursor: psycopg.Cursor[Any], query: Any) -> None:
        if not ours() or not str(query).strip() or str(query) == "SQL('')":
            return  # the pool's ping
        idle = cursor.connection.info.transaction_status == TransactionStatus.IDLE
        counts["autocommit" if idle else "statements"] += 1
        read(query.as_string(cursor) if hasattr(query, "as_string") else str(query))

    def traced_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        note(self, query)
        return execute(self, query, *args, **kwargs)

    def traced_executemany(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        note(self, query)
        return executemany(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "transaction", transaction)
    monkeypatch.setattr(psycopg.Cursor, "execute", traced_execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", traced_executemany)

    def taken() -> Counts:
        found = Counter(counts)
        counts.clear()
        return found

    yield taken


KEY = StreamKey("US", "BY", "potash")


def draft(kind: EventType, day: date, measure: str, key: StreamKey = KEY) -> list[EventDraft]:
    return [EventDraft(kind, key, day, frozenset({measure}))]


def transactions(counts: Counts) -> int:
    return counts["begin"] + counts["autocommit"]


@pytest.mark.shared_store
def test_a_write_is_one_transaction_and_its_projection_one_more(
    monkeypatch: pytest.MonkeyPatch, make_services: Callable[..., Service]
) -> None:
    with counting(monkeypatch) as taken:
        svc = make_services()
        svc.record(draft(EventType.IMPOSED, date(2021, 8, 9), "import_ban"), recorded_by="t")
        svc.status(StatusQuery.of(authority="US", country="BY", commodity="potash"))
        taken()

        # A stream this process has written: the write, and the projection behind it.
        svc.record(draft(EventType.EXPANDED, date(2022, 1, 1), "quota"), recorded_by="t")
        short = taken()
        assert transactions(short) == 2

        # With an Idempotency-Key: one look-up for the key first.
        request = IdempotentRequest("wendy", "k-1", "digest")
        svc.record(
            draft(EventType.EXPANDED, date(2022, 6, 1), "asset_freeze"),
            recorded_by="t",
            idempotency=request,
        )
        assert transactions(taken()) == 3

        # A stream not yet known here: its events are read once, in one query.
        other = StreamKey("US", "BY", "crude-oil")
        svc.record(draft(EventType.IMPOSED, date(2021, 8, 9), "import_ban", other), recorded_by="t")
        assert transactions(taken()) == 3

        # The write's cost does not grow with the stream: 40 more events, same count.
        for day in range(1, 41):
            kind = EventType.EXPANDED if day % 2 else EventType.EASED
            on = date(2023, 1, 1) + timedelta(days=day)
            svc.record(draft(kind, on, "price_cap"), recorded_by="t")
            taken()
        svc.record(draft(EventType.EXPANDED, date(2024, 1, 1), "services_ban"), recorded_by="t")
        long = taken()
        assert transactions(long) == 2
        # Nor its statements: neither side reads the stream's earlier events or rows.
        assert long["statements"] <= short["statements"], (short, long)
        assert not [name for name in long if name.startswith("read ")], long


def test_a_status_read_is_two_or_three_statements_each_on_its_own(
    monkeypatch: pytest.MonkeyPatch, make_services: Callable[..., Service]
) -> None:
    with counting(monkeypatch) as taken:
        svc = make_services()
        svc.record(draft(EventType.IMPOSED, date(2021, 8, 9), "import_ban"), recorded_by="t")
        taken()
        answer = svc.status(
            StatusQuery.of(authority="US", country="BY", commodity="potash", as_of="2022-01-01")
        )
        assert answer.results[0].status == "active"
        counts = taken()
        # Where the projector stands and the oldest event it has not shown (one
        # statement), whether a write is under way (PostgreSQL only: SQLite's writers
        # are this process's), then the read itself; each a statement on its own.
        store = svc.log.store.dialect
        assert counts["begin"] == 0, counts
        assert counts["autocommit"] == (3 if store == "postgres" else 2), counts
