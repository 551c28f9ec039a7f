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
import pycountry
import pytest
from eventsourcing import sqlite as library_sqlite
from psycopg.pq import TransactionStatus
from psycopg.sql import SQL, Identifier

from api.app.service import Service
from api.schemas.queries import StatusQuery
from domain.keys import StreamKey
from domain.recorded import IdempotentRequest
from domain.rules import EventType
from domain.store.cursor import Cursor
from domain.stream import EventDraft
from tests.conftest import POSTGRES_URL

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

    def note(cursor: psycopg.Cursor[Any], query: Any, executed: int = 1) -> None:
        if not ours() or not str(query).strip() or str(query) == "SQL('')":
            return  # the pool's ping
        idle = cursor.connection.info.transaction_status == TransactionStatus.IDLE
        counts["autocommit" if idle else "statements"] += executed
        read(query.as_string(cursor) if hasattr(query, "as_string") else str(query))

    def traced_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        note(self, query)
        return execute(self, query, *args, **kwargs)

    def traced_executemany(self: psycopg.Cursor[Any], query: Any, rows: Any, **kw: Any) -> Any:
        rows = list(rows)
        note(self, query, executed=len(rows))  # the server executes it once a row
        return executemany(self, query, rows, **kw)

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


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_on_postgresql_a_groups_rows_take_a_few_statements_not_one_a_row(
    monkeypatch: pytest.MonkeyPatch, make_services: Callable[..., Service], database_url: str
) -> None:
    # Each row of an executemany is a statement PostgreSQL executes on its own; the
    # index, the read models and the tree take several rows an event. Recorded at once,
    # 1,203 events (more than two multi-row statements' worth) must cost statements by
    # the table, not by the row, and every row must still be there.
    authorities = ("US", "GB", "EU", "CA", "UN")
    keys = [StreamKey(a, c.alpha_2, "potash") for c in pycountry.countries for a in authorities]
    drafts = [draft(EventType.IMPOSED, date(2021, 8, 9), "import_ban", key)[0] for key in keys]
    drafts = drafts[:1203]
    with counting(monkeypatch) as taken:
        svc = make_services()
        taken()
        svc.record(drafts, recorded_by="t")
        counts = taken()
    assert counts["statements"] < 120, counts  # one a row was more than 10,000
    schema = database_url.rsplit("schema=", 1)[1]
    with psycopg.connect(database_url.split("?")[0], autocommit=True) as conn:
        for table, expected in (
            ("event_index", 1203),
            ("log_leaves", 1203),
            ("current_status", 1203),
            ("projected_entries", 1203),
            ("status_intervals", 1203),
        ):
            found = conn.execute(
                SQL("SELECT count(*) FROM {}").format(Identifier(schema, table))
            ).fetchone()
            assert found is not None and found[0] == expected, table
    last = drafts[-1].key
    answer = svc.status(
        StatusQuery.of(authority=last.authority, country=last.country, commodity=last.commodity)
    )
    assert [row.status for row in answer.results] == ["active"]


@pytest.mark.postgres
def test_a_many_row_insert_keeps_every_row_within_postgresqls_parameter_limit() -> None:
    # 1,000 rows of 140 columns: 140,000 parameters, more than a statement may carry
    # (65,535), so the rows go in statements of at most 468; all arrive, in order.
    width, count = 140, 1000
    rows = [[row * width + column for column in range(width)] for row in range(count)]
    with psycopg.connect(POSTGRES_URL) as conn:
        raw = conn.cursor()
        columns = ", ".join(f"c{column} int" for column in range(width))
        raw.execute(f"CREATE TEMPORARY TABLE wide ({columns})")
        marks = ",".join("?" * width)
        Cursor(raw, "postgres").executemany(f"INSERT INTO wide VALUES ({marks})", rows)
        raw.execute("SELECT * FROM wide ORDER BY c0")
        assert [list(found) for found in raw.fetchall()] == rows
