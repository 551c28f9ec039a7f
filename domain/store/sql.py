"""The SQL both databases share: a `?`-placeholder cursor, and the recorders' side tables.

Following the library's `searchabletimestamps` example, the application recorder is
subclassed so that, in the very transaction that stores a batch of events, it also
writes an index of those events (their ids and stream keys, for look-ups and
filters) and the Idempotency-Key that produced them. Either everything is stored or
nothing is: an acknowledged write can neither lose its key nor its index entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.hashing import parse_timestamp
from domain.keys import EventFilter
from domain.recorded import IdempotencyRecord
from domain.store.cursor import JUST_AFTER, Cursor, Dialect, Transactions, as_bytes
from domain.store.records import (
    EventStore,
    IndexRow,
    PositionedEvent,
    Selection,
    StreamShape,
    TrackedPosition,
)
from domain.store.signals import Signals
from domain.store.writes import WriteSide

__all__ = ["JUST_AFTER", "Cursor", "Dialect", "SanctionsRecorderMixin", "Transactions", "as_bytes"]

SIDE_TABLES = (
    "CREATE TABLE IF NOT EXISTS {event_index} ("
    " originator_id {id_type} NOT NULL,"
    " originator_version BIGINT NOT NULL,"
    " event_id TEXT NOT NULL UNIQUE,"
    " stream TEXT NOT NULL,"
    " authority TEXT NOT NULL,"
    " country TEXT NOT NULL,"
    " commodity TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " PRIMARY KEY (originator_id, originator_version))",
    "CREATE INDEX IF NOT EXISTS event_index_country_commodity"
    " ON {event_index} (country, commodity)",
    "CREATE INDEX IF NOT EXISTS event_index_stream ON {event_index} (stream)",
    "CREATE TABLE IF NOT EXISTS {log_clock} ("
    " id INTEGER PRIMARY KEY,"
    " last_recorded_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {idempotency_keys} ("
    " caller TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " request_hash TEXT NOT NULL,"
    " event_ids TEXT NOT NULL,"
    " PRIMARY KEY (caller, key))",
)


def key_clauses(where: EventFilter, prefix: str = "") -> tuple[list[str], list[Any]]:
    """SQL conditions (`?` placeholders) on a table with `stream`, `authority`, `country`,
    `commodity` (and `type`) columns; one stream is asked for by its narrowest index."""
    if where.stream is not None:
        clauses, params = [f"{prefix}stream = ?"], [where.stream]
    else:
        clauses, params = [], []
        for column in ("authority", "country", "commodity"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{prefix}{column} = ?")
                params.append(value)
    if where.type is not None:
        clauses.append(f"{prefix}type = ?")
        params.append(where.type.value)
    return clauses, params


class SanctionsRecorderMixin(Transactions, EventStore):
    """The `EventStore` in SQL; subclasses say how ids and tables are spelt. What a write
    is decided on and writes beside its events is the `writes` helper's SQL."""

    events_table_name: str
    position_column: str

    def id_param(self, value: UUID) -> Any:
        raise NotImplementedError

    def id_value(self, value: Any) -> UUID:
        raise NotImplementedError

    @cached_property
    def writes(self) -> WriteSide:
        return WriteSide(self)

    def select_streams(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        return self.writes.select_streams(stream_ids)

    def stored_shapes(self, stream_ids: Sequence[UUID]) -> dict[UUID, StreamShape]:
        return self.writes.stored_shapes(stream_ids)

    def find_idempotencies(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        return self.writes.find_idempotencies(keys)

    def fence_idempotencies(
        self, fences: Sequence[IdempotencyRecord]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        return self.writes.fence_idempotencies(fences)

    def side_table_statements(self, id_type: str) -> list[str]:
        return [
            statement.format(
                event_index=self.qualified("event_index"),
                idempotency_keys=self.qualified("idempotency_keys"),
                log_clock=self.qualified("log_clock"),
                id_type=id_type,
            )
            for statement in SIDE_TABLES
        ]

    def is_missing_tables(self, error: Exception) -> bool:
        """Whether `error` says the store's schema or tables are not there."""
        return False

    def setup(self) -> None:
        """Create the store's tables (again), as on first start."""
        self.create_table()  # type: ignore[attr-defined]  # the library's recorder has it

    def database(self) -> Transactions:
        return self

    def open_signals(self) -> Signals:
        return Signals()

    def horizon(self) -> datetime | None:
        """A moment before which nothing more can be recorded by any process (None when
        the database cannot tell: SQLite, whose writers are in one process)."""
        return None

    def last_recorded_at(self) -> datetime | None:
        """The recording time of the last committed event."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT last_recorded_at FROM {self.qualified('log_clock')}")
            row = cursor.fetchone()
        return None if row is None else parse_timestamp(row["last_recorded_at"])

    def positioned(self, row: Any, stream: str | None = None) -> PositionedEvent:
        """A stored event (and its position) from a row selected as `event_position`,
        `originator_id`, `originator_version`, `topic`, `state`."""
        return PositionedEvent(
            int(row["event_position"]),
            StoredEvent(
                originator_id=self.id_value(row["originator_id"]),
                originator_version=int(row["originator_version"]),
                topic=row["topic"],
                state=as_bytes(row["state"]),
            ),
            stream,
        )

    def select(self, selection: Selection) -> list[PositionedEvent]:
        where, after, limit = selection.where, selection.after, selection.limit
        event_ids, streams = selection.event_ids, selection.streams
        clauses, params = key_clauses(where, "i.")
        if streams:
            clauses.append(f"i.stream IN ({','.join('?' * len(streams))})")
            params.extend(streams)
        if where.event_id is not None:
            clauses.append("i.event_id = ?")
            params.append(str(where.event_id))
        if event_ids:
            clauses.append(f"i.event_id IN ({','.join('?' * len(event_ids))})")
            params.extend(event_ids)
        if after is not None:
            clauses.append(f"s.{self.position_column} > ?")
            params.append(after)
        statement = (
            f"SELECT s.{self.position_column} AS event_position, s.originator_id,"
            " s.originator_version, s.topic, s.state, i.stream"
            f" FROM {self.qualified(self.events_table_name)} s"
            f" JOIN {self.qualified('event_index')} i"
            " ON i.originator_id = s.originator_id"
            " AND i.originator_version = s.originator_version"
        )
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        statement += f" ORDER BY s.{self.position_column}"
        if limit is not None:
            statement += " LIMIT ?"
            params.append(limit)
        with self.transaction(commit=False) as cursor:
            self.serial_plans(cursor)
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        return [self.positioned(row, row["stream"]) for row in rows]

    def serial_plans(self, cursor: Cursor) -> None:
        """Keep this transaction's queries to one process: each reads a handful of rows by
        index, and a parallel plan (which PostgreSQL picks when it overestimates the rows
        of a stream) costs milliseconds to start its workers."""

    def count(self, where: EventFilter = EventFilter()) -> int:
        clauses, params = key_clauses(where)
        statement = f"SELECT COUNT(*) AS n FROM {self.qualified('event_index')}"
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        with self.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            return int(cursor.fetchone()["n"])

    def streams_in_order(self, up_to: int, page: int = 5000) -> Iterator[list[PositionedEvent]]:
        """In version order: keyset pages over the (stream id, version) primary key."""
        table = self.qualified(self.events_table_name)
        after: tuple[Any, int] | None = None
        current: list[PositionedEvent] = []
        while True:
            statement = (
                f"SELECT {self.position_column} AS event_position, originator_id,"
                f" originator_version, topic, state FROM {table}"
                f" WHERE {self.position_column} <= ?"
            )
            params: list[Any] = [up_to]
            if after is not None:
                statement += " AND (originator_id, originator_version) > (?, ?)"
                params.extend(after)
            statement += " ORDER BY originator_id, originator_version LIMIT ?"
            params.append(page)
            with self.transaction(commit=False) as cursor:
                cursor.execute(statement, params)
                rows = cursor.fetchall()
            if not rows:
                break
            for row in rows:
                positioned = self.positioned(row)
                if current and current[0].stored.originator_id != positioned.stored.originator_id:
                    yield current
                    current = []
                current.append(positioned)
            last = rows[-1]
            after = (last["originator_id"], int(last["originator_version"]))
        if current:
            yield current

    def first_after(self, after: int | TrackedPosition) -> PositionedEvent | None:
        """One statement in autocommit: where the tracking record stands, and what follows."""
        start: str = "?"
        params: list[Any] = [after]
        if isinstance(after, TrackedPosition):
            start = f"COALESCE((SELECT notification_id FROM {after.table}"
            start += " WHERE application_name = ?), 0)"
            params = [after.application_name]
        position = self.position_column
        with self.autocommit() as cursor:
            cursor.execute(
                f"SELECT {position} AS event_position, originator_id, originator_version,"
                f" topic, state FROM {self.qualified(self.events_table_name)}"
                f" WHERE {position} > {start} ORDER BY {position} LIMIT 1",
                params,
            )
            row = cursor.fetchone()
        return None if row is None else self.positioned(row)

    def stream_range(
        self, lowest: str | None, below: str | None, up_to: int
    ) -> list[PositionedEvent]:
        clauses, params = [f"{self.position_column} <= ?"], [up_to]
        for bound, clause in ((lowest, "originator_id >= ?"), (below, "originator_id < ?")):
            if bound is not None:
                clauses.append(clause)
                params.append(self.id_param(UUID(bound)))
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {self.position_column} AS event_position, originator_id,"
                " originator_version, topic, state"
                f" FROM {self.qualified(self.events_table_name)} WHERE {' AND '.join(clauses)}"
                " ORDER BY originator_id, originator_version",
                params,
            )
            rows = cursor.fetchall()
        return [self.positioned(row) for row in rows]

    def range_statement(self) -> str | None:
        return (
            f"SELECT {self.position_column} AS position, originator_id, originator_version,"
            f" topic, state FROM {self.qualified(self.events_table_name)}"
            f" WHERE originator_id >= ? AND originator_id < ? AND {self.position_column} <= ?"
            " ORDER BY originator_id, originator_version"
        )

    # For verification: the store read as it is, without trusting it.

    def stream_ids(self) -> list[UUID]:
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_id FROM {self.qualified(self.events_table_name)}"
                f" UNION SELECT originator_id FROM {self.qualified('event_index')}"
            )
            ids = {self.id_value(row["originator_id"]) for row in cursor.fetchall()}
        return sorted(ids)

    def stored_stream(self, originator_id: UUID) -> list[PositionedEvent]:
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {self.position_column} AS event_position, originator_id,"
                " originator_version, topic, state"
                f" FROM {self.qualified(self.events_table_name)}"
                " WHERE originator_id = ? ORDER BY originator_version",
                (self.id_param(originator_id),),
            )
            rows = cursor.fetchall()
        return [self.positioned(row) for row in rows]

    def indexed_stream(self, originator_id: UUID) -> list[IndexRow]:
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.qualified('event_index')}"
                " WHERE originator_id = ? ORDER BY originator_version",
                (self.id_param(originator_id),),
            )
            rows = cursor.fetchall()
        return [
            IndexRow(
                originator_id,
                int(row["originator_version"]),
                UUID(row["event_id"]),
                row["stream"],
                row["authority"],
                row["country"],
                row["commodity"],
                row["type"],
            )
            for row in rows
        ]

    def ping(self) -> None:
        with self.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 AS ok")
            cursor.fetchone()
