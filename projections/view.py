"""The status read model in SQL, on the library's SQLite and PostgreSQL tracking recorders.

Each batch of events is projected in one transaction that also writes the library's
tracking record, so a projector killed at any instant resumes exactly where the
last committed batch ended: nothing skipped, nothing applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier

from domain.hashing import format_timestamp
from domain.persistence import Cursor, Dialect, Transactions
from domain.rules import EventType, TimelineEntry
from domain.stream import SanctionsStream
from projections.model import (
    Changes,
    IntervalRow,
    StreamRecord,
    ValidInterval,
    current_interval,
    project,
)

OPEN_DATE = "9999-12-31"
OPEN_TIME = "9999-12-31T23:59:59.999999Z"
TRACKED_APPLICATION = "SanctionsTimeline"
IN_CHUNK = 500


class ProjectionMoved(Exception):
    """Another projector committed past the position this one started from."""


@dataclass(frozen=True)
class KeyFilter:
    """Which streams a read is about; every part optional."""

    authority: str | None = None
    country: str | None = None
    commodity: str | None = None

    @property
    def is_one_stream(self) -> bool:
        return None not in (self.authority, self.country, self.commodity)


@dataclass(frozen=True)
class StatusRow:
    """One stream's status as answered by a read."""

    stream: str
    status: str
    measures: list[str]
    since: date | None
    event_ids: list[str]


@dataclass(frozen=True)
class TimelineRow:
    """One valid-time interval of a stream as answered by a read."""

    stream: str
    valid_from: date
    valid_to: date | None
    status: str
    measures: list[str]
    event_id: str


TABLES = {
    "status_intervals": "CREATE TABLE IF NOT EXISTS {name} ("
    " stream {text} NOT NULL, authority {text} NOT NULL, country {text} NOT NULL,"
    " commodity {text} NOT NULL, valid_from {text} NOT NULL, valid_to {text} NOT NULL,"
    " status {text} NOT NULL, measures {text} NOT NULL, event_ids {text} NOT NULL,"
    " event_id {text} NOT NULL, tx_from {text} NOT NULL, tx_to {text} NOT NULL)",
    "projected_entries": "CREATE TABLE IF NOT EXISTS {name} ("
    " event_id {text} PRIMARY KEY, stream {text} NOT NULL, version BIGINT NOT NULL,"
    " type {text} NOT NULL, effective_date {text} NOT NULL, measures {text} NOT NULL)",
    "current_status": "CREATE TABLE IF NOT EXISTS {name} ("
    " stream {text} PRIMARY KEY, authority {text} NOT NULL, country {text} NOT NULL,"
    " commodity {text} NOT NULL, version BIGINT NOT NULL, last_position BIGINT NOT NULL,"
    " status {text} NOT NULL, measures {text} NOT NULL, since {text},"
    " event_ids {text} NOT NULL)",
}
INDEXES = (
    ("status_intervals_stream", "status_intervals", "stream, valid_from"),
    ("status_intervals_open", "status_intervals", "stream, tx_to"),
    ("status_intervals_country", "status_intervals", "country, commodity, valid_from"),
    ("status_intervals_authority", "status_intervals", "authority, valid_from"),
    ("projected_entries_stream", "projected_entries", "stream"),
)
SHADOW_SUFFIX = "_rebuild"
READ_MODELS = ("status_intervals", "projected_entries", "current_status")


@lru_cache(maxsize=4096)
def _json_of(values: tuple[str, ...]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _json(values: Sequence[str]) -> str:
    """A compact JSON array; measure sets and event-id lists repeat, so it is cached."""
    return _json_of(tuple(values))


def _interval_params(row: IntervalRow) -> tuple[Any, ...]:
    authority, country, commodity = row.stream.split("/")
    interval = row.interval
    return (
        row.stream,
        authority,
        country,
        commodity,
        interval.valid_from.isoformat(),
        OPEN_DATE if interval.valid_to is None else interval.valid_to.isoformat(),
        interval.status,
        _json(interval.measures),
        _json(interval.event_ids),
        interval.event_id,
        format_timestamp(row.tx_from),
        OPEN_TIME if row.tx_to is None else format_timestamp(row.tx_to),
    )


def _interval_of(row: Any) -> ValidInterval:
    return ValidInterval(
        valid_from=date.fromisoformat(row["valid_from"]),
        valid_to=None if row["valid_to"] == OPEN_DATE else date.fromisoformat(row["valid_to"]),
        status=row["status"],
        measures=tuple(json.loads(row["measures"])),
        event_ids=tuple(json.loads(row["event_ids"])),
        event_id=row["event_id"],
    )


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def interval_row_of(row: Any) -> IntervalRow:
    return IntervalRow(
        stream=row["stream"],
        interval=_interval_of(row),
        tx_from=_timestamp(row["tx_from"]),
        tx_to=None if row["tx_to"] == OPEN_TIME else _timestamp(row["tx_to"]),
    )


class StatusViewMixin(Transactions):
    """The read model's SQL, shared by both databases."""

    dialect: Dialect
    text_type: str

    def qualified(self, table: str) -> str:
        raise NotImplementedError

    def claim(self, cursor: Cursor) -> int:
        """Lock the tracking record for this transaction; the position it holds."""
        raise NotImplementedError

    _insert_tracking: Any  # the library's tracking recorder provides it

    def read_model_statements(self) -> list[str]:
        return [self._table_ddl(table, table) for table in READ_MODELS] + self._index_ddl()

    def _table_ddl(self, table: str, name: str) -> str:
        return TABLES[table].format(name=self.qualified(name), text=self.text_type)

    def _index_ddl(self) -> list[str]:
        return [
            f"CREATE INDEX IF NOT EXISTS {index} ON {self.qualified(table)} ({columns})"
            for index, table, columns in INDEXES
        ]

    # Projecting

    def project_batch(
        self,
        events: Sequence[tuple[SanctionsStream.Event, int]],
        tracking: Tracking,
        *,
        expected_position: int,
    ) -> None:
        """Project events (with their positions) and record `tracking`, atomically."""
        with self.transaction(commit=True) as cursor:
            if self.claim(cursor) != expected_position:
                raise ProjectionMoved
            records = self._load_records(cursor, sorted({event.stream for event, _ in events}))
            changes = [
                project(records.setdefault(event.stream, StreamRecord(event.stream)), event, pos)
                for event, pos in events
            ]
            self._write(cursor, changes, records)
            self._insert_tracking(cursor.raw, tracking)

    def _load_records(self, cursor: Cursor, streams: list[str]) -> dict[str, StreamRecord]:
        records = {stream: StreamRecord(stream) for stream in streams}
        for start in range(0, len(streams), IN_CHUNK):
            chunk = streams[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor.execute(
                f"SELECT * FROM {self.qualified('projected_entries')} WHERE stream IN ({marks})",
                chunk,
            )
            for row in cursor.fetchall():
                records[row["stream"]].entries[row["event_id"]] = TimelineEntry(
                    row["event_id"],
                    int(row["version"]),
                    EventType(row["type"]),
                    date.fromisoformat(row["effective_date"]),
                    frozenset(json.loads(row["measures"])),
                )
            cursor.execute(
                f"SELECT * FROM {self.qualified('status_intervals')}"
                f" WHERE stream IN ({marks}) AND tx_to = ?",
                [*chunk, OPEN_TIME],
            )
            for row in cursor.fetchall():
                records[row["stream"]].open_rows.append(interval_row_of(row))
            cursor.execute(
                "SELECT stream, version, last_position"
                f" FROM {self.qualified('current_status')} WHERE stream IN ({marks})",
                chunk,
            )
            for row in cursor.fetchall():
                record = records[row["stream"]]
                record.version = int(row["version"])
                record.last_position = int(row["last_position"])
        for record in records.values():
            record.open_rows.sort(key=lambda r: r.interval.valid_from)
        return records

    def _write(
        self, cursor: Cursor, changes: list[Changes], records: dict[str, StreamRecord]
    ) -> None:
        added = [c.added_entry for c in changes if c.added_entry is not None]
        if added:
            cursor.executemany(
                f"INSERT INTO {self.qualified('projected_entries')} VALUES (?,?,?,?,?,?)",
                [
                    (
                        e.event_id,
                        c.stream,
                        e.version,
                        e.type.value,
                        e.effective_date.isoformat(),
                        _json(sorted(e.measures)),
                    )
                    for c in changes
                    if (e := c.added_entry) is not None
                ],
            )
        retracted = [(c.retracted_id,) for c in changes if c.retracted_id is not None]
        if retracted:
            cursor.executemany(
                f"DELETE FROM {self.qualified('projected_entries')} WHERE event_id = ?",
                retracted,
            )
        # Rows opened and closed within this batch are written once, already closed.
        opened_here = {
            (row.stream, row.interval, row.tx_from): row for c in changes for row in c.opened
        }
        to_close: list[tuple[Any, ...]] = []
        for change in changes:
            for row in change.closed:
                key = (row.stream, row.interval, row.tx_from)
                if key in opened_here:
                    opened_here[key] = row
                else:
                    to_close.append(
                        (
                            format_timestamp(change.at),
                            row.stream,
                            row.interval.valid_from.isoformat(),
                            format_timestamp(row.tx_from),
                        )
                    )
        if to_close:
            cursor.executemany(
                f"UPDATE {self.qualified('status_intervals')} SET tx_to = ?"
                " WHERE stream = ? AND valid_from = ? AND tx_from = ?"
                f" AND tx_to = '{OPEN_TIME}'",
                to_close,
            )
        if opened_here:
            cursor.executemany(
                f"INSERT INTO {self.qualified('status_intervals')}"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [_interval_params(row) for row in opened_here.values()],
            )
        touched = {c.stream for c in changes}
        cursor.executemany(
            f"DELETE FROM {self.qualified('current_status')} WHERE stream = ?",
            [(stream,) for stream in touched],
        )
        cursor.executemany(
            f"INSERT INTO {self.qualified('current_status')} VALUES (?,?,?,?,?,?,?,?,?,?)",
            [self._current_params(records[stream]) for stream in sorted(touched)],
        )

    @staticmethod
    def _current_params(record: StreamRecord) -> tuple[Any, ...]:
        authority, country, commodity = record.stream.split("/")
        interval = current_interval(record)
        return (
            record.stream,
            authority,
            country,
            commodity,
            record.version,
            record.last_position,
            "none" if interval is None else interval.status,
            _json(() if interval is None else interval.measures),
            None if interval is None else interval.since.isoformat(),
            _json(() if interval is None else interval.event_ids),
        )

    # Rebuilding into shadow tables, swapped in at the end in one transaction

    def begin_shadow(self) -> None:
        """Fresh, index-less copies of the read-model tables to rebuild into."""
        with self.transaction(commit=True) as cursor:
            for table in READ_MODELS:
                cursor.execute(f"DROP TABLE IF EXISTS {self.qualified(table + SHADOW_SUFFIX)}")
                cursor.execute(self._table_ddl(table, table + SHADOW_SUFFIX))

    def write_shadow(self, records: Sequence[tuple[StreamRecord, list[IntervalRow]]]) -> None:
        """Write whole streams (their final record and every row) into the shadow tables."""
        rows = [_interval_params(row) for _, stream_rows in records for row in stream_rows]
        entries = [
            (
                entry.event_id,
                record.stream,
                entry.version,
                entry.type.value,
                entry.effective_date.isoformat(),
                _json(sorted(entry.measures)),
            )
            for record, _ in records
            for entry in record.entries.values()
        ]
        currents = [self._current_params(record) for record, _ in records]
        suffix = SHADOW_SUFFIX
        with self.transaction(commit=True) as cursor:
            if rows:
                cursor.executemany(
                    f"INSERT INTO {self.qualified('status_intervals' + suffix)}"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
            if entries:
                cursor.executemany(
                    f"INSERT INTO {self.qualified('projected_entries' + suffix)}"
                    " VALUES (?,?,?,?,?,?)",
                    entries,
                )
            if currents:
                cursor.executemany(
                    f"INSERT INTO {self.qualified('current_status' + suffix)}"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    currents,
                )

    def swap_shadow(self, application_name: str, position: int) -> None:
        """Replace the read models by the shadow tables, and the tracking record by
        `position` (the last event the shadow tables hold), in one transaction."""
        with self.transaction(commit=True) as cursor:
            self.claim(cursor)
            for table in READ_MODELS:
                cursor.execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
                shadow = self.qualified(table + SHADOW_SUFFIX)
                cursor.execute(f"ALTER TABLE {shadow} RENAME TO {self.bare(table)}")
            for statement in self._index_ddl():
                cursor.execute(statement)
            cursor.execute(
                f"DELETE FROM {self.tracking_table()} WHERE application_name = ?",
                (application_name,),
            )
            if position > 0:
                self._insert_tracking(cursor.raw, Tracking(application_name, position))

    def bare(self, table: str) -> str:
        """A table's name as ALTER TABLE ... RENAME TO wants it (never qualified)."""
        return table

    def tracking_table(self) -> str:
        raise NotImplementedError

    def position(self, application_name: str = TRACKED_APPLICATION) -> int:
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT notification_id FROM {self.tracking_table()} WHERE application_name = ?",
                (application_name,),
            )
            row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])

    # Reading

    def _key_clauses(self, where: KeyFilter) -> tuple[list[str], list[Any]]:
        if where.is_one_stream:  # the narrowest index: one stream's rows
            return ["stream = ?"], [f"{where.authority}/{where.country}/{where.commodity}"]
        clauses, params = [], []
        for column in ("authority", "country", "commodity"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return clauses, params

    def _select_intervals(self, clauses: list[str], params: list[Any], order: str) -> list[Any]:
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.qualified('status_intervals')}"
                f" WHERE {' AND '.join(clauses)} ORDER BY {order}",
                params,
            )
            return cursor.fetchall()

    def status(self, where: KeyFilter, as_of: date, known_at: datetime) -> list[StatusRow]:
        """Each matching stream's status on `as_of`, as recorded by `known_at`."""
        clauses, params = self._key_clauses(where)
        day, moment = as_of.isoformat(), format_timestamp(known_at)
        clauses += ["valid_from <= ?", "valid_to > ?", "tx_from <= ?", "tx_to > ?"]
        params += [day, day, moment, moment]
        rows = self._select_intervals(clauses, params, "stream")
        return [
            StatusRow(
                stream=row["stream"],
                status=row["status"],
                measures=json.loads(row["measures"]),
                since=date.fromisoformat(row["valid_from"]),
                event_ids=json.loads(row["event_ids"]),
            )
            for row in rows
        ]

    def timeline(self, where: KeyFilter, known_at: datetime) -> list[TimelineRow]:
        """Every valid-time interval of the matching streams, as recorded by `known_at`."""
        clauses, params = self._key_clauses(where)
        moment = format_timestamp(known_at)
        clauses += ["tx_from <= ?", "tx_to > ?"]
        params += [moment, moment]
        rows = self._select_intervals(clauses, params, "stream, valid_from")
        return [
            TimelineRow(
                stream=row["stream"],
                valid_from=date.fromisoformat(row["valid_from"]),
                valid_to=None
                if row["valid_to"] == OPEN_DATE
                else date.fromisoformat(row["valid_to"]),
                status=row["status"],
                measures=json.loads(row["measures"]),
                event_id=row["event_id"],
            )
            for row in rows
        ]

    def all_interval_rows(self) -> list[IntervalRow]:
        """Every row of the bitemporal table (for verification and tests)."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {self.qualified('status_intervals')}")
            return [interval_row_of(row) for row in cursor.fetchall()]

    def stream_rows(self, stream: str) -> list[IntervalRow]:
        """Every row of one stream in the bitemporal table."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.qualified('status_intervals')} WHERE stream = ?", (stream,)
            )
            return [interval_row_of(row) for row in cursor.fetchall()]

    def current_row(self, stream: str) -> dict[str, Any] | None:
        """The stored current status of one stream, in plain values."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.qualified('current_status')} WHERE stream = ?", (stream,)
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return {
            "version": int(row["version"]),
            "status": row["status"],
            "measures": json.loads(row["measures"]),
            "since": row["since"],
        }

    def projected_streams(self) -> list[str]:
        """Every stream any read model holds a row for."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT stream FROM {self.qualified('status_intervals')}"
                f" UNION SELECT stream FROM {self.qualified('current_status')}"
            )
            return [row["stream"] for row in cursor.fetchall()]

    def counts(self) -> dict[str, int]:
        counts = {}
        with self.transaction(commit=False) as cursor:
            for table in READ_MODELS:
                cursor.execute(f"SELECT COUNT(*) AS n FROM {self.qualified(table)}")
                counts[table] = int(cursor.fetchone()["n"])
        return counts


class SQLiteStatusView(StatusViewMixin, SQLiteTrackingRecorder):
    dialect: Dialect = "sqlite"
    text_type = "TEXT"

    def __init__(self, datastore: SQLiteDatastore) -> None:
        super().__init__(datastore)

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self.read_model_statements()

    def qualified(self, table: str) -> str:
        return table

    def tracking_table(self) -> str:
        return "tracking"

    def claim(self, cursor: Cursor) -> int:
        # A write first, so the transaction holds SQLite's write lock before it reads.
        cursor.execute(
            "UPDATE tracking SET notification_id = notification_id WHERE application_name = ?",
            (TRACKED_APPLICATION,),
        )
        cursor.execute(
            "SELECT notification_id FROM tracking WHERE application_name = ?",
            (TRACKED_APPLICATION,),
        )
        row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])


class PostgresStatusView(StatusViewMixin, PostgresTrackingRecorder):
    dialect: Dialect = "postgres"
    text_type = 'TEXT COLLATE "C"'

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, tracking_table_name="status_tracking")
        self.sql_create_statements.extend(
            Composed([SQL(statement)]) for statement in self.read_model_statements()
        )

    def qualified(self, table: str) -> str:
        return Identifier(self.datastore.schema, table).as_string()

    def tracking_table(self) -> str:
        return self.qualified(self.tracking_table_name)

    def bare(self, table: str) -> str:
        return Identifier(table).as_string()

    def claim(self, cursor: Cursor) -> int:
        cursor.execute(
            f"SELECT notification_id FROM {self.tracking_table()}"
            " WHERE application_name = ? FOR UPDATE",
            (TRACKED_APPLICATION,),
        )
        row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])
