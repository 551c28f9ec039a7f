"""The status read model in SQL: projecting batches of events, and the reads it answers.

Each batch of events is projected in one transaction that also writes the library's
tracking record, so a projector killed at any instant resumes exactly where the
last committed batch ended: nothing skipped, nothing applied twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import Tracking

from domain.hashing import format_timestamp
from domain.keys import EventFilter
from domain.store.sql import Cursor, key_clauses
from domain.stream import SanctionsStream
from projections.log.tree import Leaf, LogTree, leaf_data
from projections.model import Changes, IntervalRow, StreamRecord, project
from projections.rows import (
    StatusRow,
    TimelineRow,
    current_params,
    entry_of,
    entry_params,
    interval_params,
    interval_row_of,
    status_row_of,
    timeline_row_of,
)
from projections.shadow import ShadowTables
from projections.tables import OPEN_TIME, READ_MODELS, TRACKED_APPLICATION, ReadModelTables

IN_CHUNK = 500
KEPT_RECORDS = 20_000
"""Streams whose projection records are kept in memory between batches."""


class ProjectionMoved(Exception):
    """Another projector committed past the position this one started from."""


class StatusView:
    """The read models' SQL, shared by both databases, on the read models' tables it is
    given (`tables`: one database's connection, tracking record and DDL). It holds the
    log's Merkle tree (`tree`), which it grows in the transaction of every batch, and
    the shadow tables a rebuild fills and swaps in (`shadow`)."""

    def __init__(self, tables: ReadModelTables) -> None:
        self.tables = tables
        self.tree = LogTree(tables)
        self.shadow = ShadowTables(tables, self.tree)
        self._kept: OrderedDict[str, StreamRecord] = OrderedDict()
        self._kept_at: int | None = None
        """The tracking position at which the kept stream records are exact."""

    # Setting up, and where the read models stand

    def create_table(self) -> None:
        """Create the tracking table, the read models and the tables kept beside them."""
        self.tables.create_table()

    def ensure_format(self) -> None:
        """Drop read models written in another format (they are rebuilt from the log by
        the next catch-up) and record the current one."""
        self.tables.ensure_format(self.tree.tables_replaced)

    def position(self, application_name: str = TRACKED_APPLICATION) -> int:
        """The position of the last event the read models have committed."""
        return self.tables.position(application_name)

    def tracking_table(self) -> str:
        """The tracking record's table, as statements spell it."""
        return self.tables.tracking_table()

    # Projecting

    def project_batch(
        self,
        events: Sequence[tuple[SanctionsStream.Event, int]],
        tracking: Tracking,
        *,
        expected_position: int,
    ) -> None:
        """Project events (with their positions) into the status read models and the
        log's Merkle tree, and record `tracking`, atomically."""
        try:
            with self.tables.projection_transaction() as cursor:
                position = self.tables.claim(cursor)
                if position != expected_position:
                    raise ProjectionMoved
                records = self._records(cursor, position, {event.stream for event, _ in events})
                changes = [
                    project(records.setdefault(event.stream, StreamRecord(event.stream)), event, at)
                    for event, at in events
                ]
                self._write(cursor, changes, records)
                self.tree.append_leaves(
                    cursor,
                    [
                        Leaf(pos, str(event.event_id), leaf_data(event.hash))
                        for event, pos in events
                    ],
                )
                self.tables.record_tracking(cursor, tracking)
                self.tables.announce(cursor, tracking.notification_id)
        except BaseException:
            self.forget_records()  # some may have been evolved by what was not committed
            raise
        self._kept_at = tracking.notification_id
        for record in records.values():
            self._kept[record.stream] = record
            self._kept.move_to_end(record.stream)
        while len(self._kept) > KEPT_RECORDS:
            self._kept.popitem(last=False)

    def _records(self, cursor: Cursor, position: int, streams: set[str]) -> dict[str, StreamRecord]:
        """The streams' records as the read models hold them at `position`: kept from the
        batches this view committed (exact while the tracking record is where the last
        of them left it: nothing else writes these tables), else read."""
        if self._kept_at != position:
            self.forget_records()
        records = {stream: kept for stream in streams if (kept := self._kept.get(stream))}
        missing = sorted(streams - records.keys())
        if missing:
            records.update(self._load_records(cursor, missing))
        return records

    def forget_records(self) -> None:
        """Forget the stream records kept in memory (the tables were replaced)."""
        self._kept = OrderedDict()
        self._kept_at = None

    def _load_records(self, cursor: Cursor, streams: list[str]) -> dict[str, StreamRecord]:
        records = {stream: StreamRecord(stream) for stream in streams}
        for start in range(0, len(streams), IN_CHUNK):
            chunk = streams[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('projected_entries')}"
                f" WHERE stream IN ({marks})",
                chunk,
            )
            for row in cursor.fetchall():
                records[row["stream"]].entries[row["event_id"]] = entry_of(row)
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('status_intervals')}"
                f" WHERE stream IN ({marks}) AND tx_to = ?",
                [*chunk, OPEN_TIME],
            )
            for row in cursor.fetchall():
                records[row["stream"]].open_rows.append(interval_row_of(row))
            cursor.execute(
                "SELECT stream, version, last_position"
                f" FROM {self.tables.qualified('current_status')} WHERE stream IN ({marks})",
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
        added = [entry_params(c.stream, c.added_entry) for c in changes if c.added_entry]
        if added:
            cursor.executemany(
                f"INSERT INTO {self.tables.qualified('projected_entries')}"
                " VALUES (?,?,?,?,?,?,?,?)",
                added,
            )
        retracted = [(c.retracted_id,) for c in changes if c.retracted_id is not None]
        if retracted:
            cursor.executemany(
                f"DELETE FROM {self.tables.qualified('projected_entries')} WHERE event_id = ?",
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
                f"UPDATE {self.tables.qualified('status_intervals')} SET tx_to = ?"
                " WHERE stream = ? AND valid_from = ? AND tx_from = ?"
                f" AND tx_to = '{OPEN_TIME}'",
                to_close,
            )
        if opened_here:
            cursor.executemany(
                f"INSERT INTO {self.tables.qualified('status_intervals')}"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [interval_params(row) for row in opened_here.values()],
            )
        touched = sorted({c.stream for c in changes})
        cursor.executemany(
            f"DELETE FROM {self.tables.qualified('current_status')} WHERE stream = ?",
            [(stream,) for stream in touched],
        )
        cursor.executemany(
            f"INSERT INTO {self.tables.qualified('current_status')} VALUES (?,?,?,?,?,?,?,?,?,?)",
            [current_params(records[stream]) for stream in touched],
        )

    # Reading

    def _select_intervals(self, clauses: list[str], params: list[Any], order: str) -> list[Any]:
        with self.tables.autocommit() as cursor:  # one statement: no BEGIN and ROLLBACK around it
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('status_intervals')}"
                f" WHERE {' AND '.join(clauses)} ORDER BY {order}",
                params,
            )
            return cursor.fetchall()

    def status(self, where: EventFilter, as_of: date, known_at: datetime) -> list[StatusRow]:
        """Each matching stream's status on `as_of`, as recorded by `known_at`."""
        clauses, params = key_clauses(where)
        day, moment = as_of.isoformat(), format_timestamp(known_at)
        clauses += ["valid_from <= ?", "valid_to > ?", "tx_from <= ?", "tx_to > ?"]
        params += [day, day, moment, moment]
        return [status_row_of(row) for row in self._select_intervals(clauses, params, "stream")]

    def timeline(self, where: EventFilter, known_at: datetime) -> list[TimelineRow]:
        """Every valid-time interval of the matching streams, as recorded by `known_at`."""
        clauses, params = key_clauses(where)
        moment = format_timestamp(known_at)
        clauses += ["tx_from <= ?", "tx_to > ?"]
        params += [moment, moment]
        rows = self._select_intervals(clauses, params, "stream, valid_from")
        return [timeline_row_of(row) for row in rows]

    def streams_with_ends(
        self, where: EventFilter, start: date, end: date, known_at: datetime
    ) -> list[str]:
        """The matching streams with a term pending that would run out in `[start, end)`, as
        recorded by `known_at` (every stream a term of runs out then, and maybe more: a
        term may have been renewed or cut off by a lift before its end)."""
        clauses, params = key_clauses(where)
        moment = format_timestamp(known_at)
        clauses += ["expires >= ?", "expires < ?", "tx_from <= ?", "tx_to > ?"]
        params += [start.isoformat(), end.isoformat(), moment, moment]
        with self.tables.autocommit() as cursor:
            cursor.execute(
                f"SELECT DISTINCT stream FROM {self.tables.qualified('status_intervals')}"
                f" WHERE {' AND '.join(clauses)} ORDER BY stream",
                params,
            )
            return [row["stream"] for row in cursor.fetchall()]

    def all_interval_rows(self) -> list[IntervalRow]:
        """Every row of the bitemporal table (for verification and tests)."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {self.tables.qualified('status_intervals')}")
            return [interval_row_of(row) for row in cursor.fetchall()]

    def stream_rows(self, stream: str) -> list[IntervalRow]:
        """Every row of one stream in the bitemporal table."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('status_intervals')} WHERE stream = ?",
                (stream,),
            )
            return [interval_row_of(row) for row in cursor.fetchall()]

    def current_row(self, stream: str) -> tuple[Any, ...] | None:
        """The stored current status of one stream, as the columns `current_params` writes."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('current_status')} WHERE stream = ?",
                (stream,),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return (
            row["stream"],
            row["authority"],
            row["country"],
            row["commodity"],
            int(row["version"]),
            int(row["last_position"]),
            row["status"],
            row["measures"],
            row["since"],
            row["event_ids"],
        )

    def streams(self, where: EventFilter, known_at: datetime | None = None) -> list[str]:
        """The matching streams that have any event (recorded by `known_at`, if given), sorted."""
        clauses, params = key_clauses(where)
        statement = f"SELECT stream FROM {self.tables.qualified('current_status')}"
        if known_at is not None:  # a stream was known once any of its intervals was
            clauses, params = [*clauses, "tx_from <= ?"], [*params, format_timestamp(known_at)]
            table = self.tables.qualified("status_intervals")
            statement = f"SELECT DISTINCT stream FROM {table}"
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(statement + " ORDER BY stream", params)
            return [row["stream"] for row in cursor.fetchall()]

    def projected_streams(self) -> list[str]:
        """Every stream any read model holds a row for."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT stream FROM {self.tables.qualified('status_intervals')}"
                f" UNION SELECT stream FROM {self.tables.qualified('current_status')}"
            )
            return [row["stream"] for row in cursor.fetchall()]

    def counts(self) -> dict[str, int]:
        counts = {}
        with self.tables.transaction(commit=False) as cursor:
            for table in READ_MODELS:
                cursor.execute(f"SELECT COUNT(*) AS n FROM {self.tables.qualified(table)}")
                counts[table] = int(cursor.fetchone()["n"])
        return counts


__all__ = ["ProjectionMoved", "StatusRow", "StatusView", "TimelineRow"]
