"""What a recorder writes beside the events, in their transaction, and the reads a write
is decided on: recording times and the log's clock, the event index, Idempotency-Keys,
the check that the streams a group was decided on have not moved, and streams and
keys read in bulk."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.group_commit import Attempt
from domain.hashing import format_timestamp, parse_timestamp
from domain.recorded import IdempotencyRecord
from domain.store.cursor import JUST_AFTER, Cursor, as_bytes
from domain.store.records import IndexRow, moved_streams

Stamp = Callable[[datetime], tuple[list[StoredEvent], datetime]]
"""Given the moment a write's first event is recorded, its events as stored (their
recording times and hashes filled in) and the recording time of its last event."""
CHUNK = 500
"""Streams or keys per statement, where a statement lists them."""


FENCE_PATTERN = '{"fence":%'
"""How a fence's `event_ids` column starts (a record's holds a JSON list)."""


def fence_text(fence: str) -> str:
    return json.dumps({"fence": fence}, separators=(",", ":"))


def stored_text(record: IdempotencyRecord) -> str:
    """What a record (or fence) stores in the `event_ids` column."""
    if record.fence is not None:
        return fence_text(record.fence)
    return json.dumps(list(record.event_ids))


def record_of(caller: str, key: str, request_hash: str, stored: str) -> IdempotencyRecord:
    """A record (or fence) as read from its row."""
    found = json.loads(stored)
    if isinstance(found, dict):
        return IdempotencyRecord(caller, key, request_hash, (), fence=str(found["fence"]))
    return IdempotencyRecord(caller, key, request_hash, tuple(found))


class StaleStreams(IntegrityError):
    """A write was decided on streams that another process has written to since: decide
    it again on what is stored now."""

    def __init__(self, stream_ids: Sequence[UUID]) -> None:
        super().__init__(f"{len(stream_ids)} stream(s) moved on since the write was decided")
        self.stream_ids = list(stream_ids)


@dataclass(frozen=True)
class WriteExtras:
    """What a write's transaction does beside inserting its events, passed to the
    recorder's `insert_events()` as `extras=`: check that the streams it was decided on
    are still at `versions` (stream id: version, stored size), give the events their
    recording times (`stamp`), and store the `index` rows and Idempotency-Keys with them.
    A write without extras (the library's own) is stored as it is."""

    versions: dict[UUID, tuple[int, int]] = field(default_factory=dict)
    stamp: Stamp | None = None
    index: Sequence[IndexRow] = ()
    idempotency: Sequence[IdempotencyRecord] = ()

    @classmethod
    def of_group(cls, attempt: Attempt, stamp: Stamp) -> WriteExtras:
        """The extras of a group decided by group commit."""
        index = [
            IndexRow(
                event.originator_id,
                event.originator_version,
                event.event_id,
                event.stream,
                event.key.authority,
                event.key.country,
                event.key.commodity,
                event.TYPE.value,
            )
            for event in attempt.events
        ]
        return cls(attempt.versions, stamp, index, attempt.keys)

    @staticmethod
    def given(kwargs: Mapping[str, Any]) -> WriteExtras:
        """The extras `insert_events()` was given (none: a write of the library's own)."""
        extras = kwargs.get("extras", NO_EXTRAS)
        assert isinstance(extras, WriteExtras)
        return extras


NO_EXTRAS = WriteExtras()


class Tables(Protocol):
    """What the write side's SQL needs of the recorder whose tables it writes."""

    events_table_name: str

    def qualified(self, table: str) -> str: ...

    def id_param(self, value: UUID) -> Any: ...

    def id_value(self, value: Any) -> UUID: ...

    def autocommit(self) -> AbstractContextManager[Cursor]: ...


class WriteSide:
    """The write side's own SQL, on the tables of one recorder (which says how ids and
    tables are spelt)."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    @property
    def events_table(self) -> str:
        return self.tables.qualified(self.tables.events_table_name)

    def stamped(
        self,
        cursor: Cursor,
        now: datetime,
        stored_events: Sequence[StoredEvent],
        extras: WriteExtras,
    ) -> Sequence[StoredEvent]:
        """Inside the write lock: the events as stored, recorded at `now` or just after the
        last recorded event, whichever is later, so that `recorded_at` rises with the
        position across every process that writes to this database."""
        if extras.stamp is None:
            return stored_events
        clock = self.tables.qualified("log_clock")
        cursor.execute(f"SELECT last_recorded_at FROM {clock} WHERE id = 1")
        row = cursor.fetchone()
        if row is not None:
            now = max(now, parse_timestamp(row["last_recorded_at"]) + JUST_AFTER)
        stamped, last = extras.stamp(now)
        statement = (
            f"UPDATE {clock} SET last_recorded_at = ? WHERE id = 1"
            if row is not None
            else f"INSERT INTO {clock} (last_recorded_at, id) VALUES (?, 1)"
        )
        cursor.execute(statement, (format_timestamp(last),))
        return stamped

    def side_rows(self, cursor: Cursor, extras: WriteExtras) -> None:
        """The index rows and Idempotency-Keys, after the events."""
        if extras.index:
            cursor.executemany(
                f"INSERT INTO {self.tables.qualified('event_index')} VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        self.tables.id_param(row.originator_id),
                        row.originator_version,
                        str(row.event_id),
                        row.stream,
                        row.authority,
                        row.country,
                        row.commodity,
                        row.type,
                    )
                    for row in extras.index
                ],
            )
        keys = self.tables.qualified("idempotency_keys")
        fenced = [
            (key.caller, key.key, fence_text(key.replaces))
            for key in extras.idempotency
            if key.replaces is not None
        ]
        if fenced:
            # A key whose fence this write may replace: the fence goes, if it is still
            # the one the write was decided on; if not, the insert below conflicts.
            cursor.executemany(
                f"DELETE FROM {keys} WHERE caller = ? AND key = ? AND event_ids = ?", fenced
            )
        if extras.idempotency:
            cursor.executemany(
                f"INSERT INTO {keys} VALUES (?,?,?,?)",
                [
                    (key.caller, key.key, key.request_hash, stored_text(key))
                    for key in extras.idempotency
                ],
            )

    def check_versions(self, cursor: Cursor, extras: WriteExtras) -> None:
        """Inside the write lock, before anything is written: StaleStreams unless every
        stream a write was decided on is still at the version it was decided on (another
        process may have written to it since this one last looked)."""
        versions = extras.versions
        if not versions:
            return
        moved = moved_streams(versions, self.shapes_in(cursor, list(versions)))
        if moved:
            raise StaleStreams(moved)

    def stored_shapes(self, stream_ids: Sequence[UUID]) -> dict[UUID, tuple[int, int, int]]:
        """Each stream's highest version, number of events and bytes stored (absent:
        nothing stored)."""
        with self.tables.autocommit() as cursor:
            return self.shapes_in(cursor, stream_ids)

    def shapes_in(
        self, cursor: Cursor, stream_ids: Sequence[UUID]
    ) -> dict[UUID, tuple[int, int, int]]:
        stored: dict[UUID, tuple[int, int, int]] = {}
        for start in range(0, len(stream_ids), CHUNK):
            chunk = stream_ids[start : start + CHUNK]
            cursor.execute(
                "SELECT originator_id, MAX(originator_version) AS version, COUNT(*) AS n,"
                " SUM(LENGTH(state)) AS size"
                f" FROM {self.events_table}"
                f" WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id",
                [self.tables.id_param(stream_id) for stream_id in chunk],
            )
            for row in cursor.fetchall():
                shape = (int(row["version"]), int(row["n"]), int(row["size"]))
                stored[self.tables.id_value(row["originator_id"])] = shape
        return stored

    def select_streams(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of these streams, in version order (one query per
        `CHUNK` streams); a stream with none is absent."""
        rows = self.rows_in_chunks(
            stream_ids,
            lambda count: (
                "SELECT originator_id, originator_version, topic, state"
                f" FROM {self.events_table} WHERE originator_id"
                f" IN ({','.join('?' * count)}) ORDER BY originator_id, originator_version"
            ),
            lambda chunk: [self.tables.id_param(stream_id) for stream_id in chunk],
        )
        found: dict[UUID, list[StoredEvent]] = {}
        for row in rows:
            stream_id = self.tables.id_value(row["originator_id"])
            stored = StoredEvent(
                originator_id=stream_id,
                originator_version=int(row["originator_version"]),
                topic=row["topic"],
                state=as_bytes(row["state"]),
            )
            found.setdefault(stream_id, []).append(stored)
        return found

    def find_idempotencies(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        """The stored records of these (caller, key) pairs (one query per `CHUNK`)."""
        rows = self.rows_in_chunks(
            keys,
            lambda count: (
                "SELECT caller, key, request_hash, event_ids"
                f" FROM {self.tables.qualified('idempotency_keys')} WHERE "
                + " OR ".join(["(caller = ? AND key = ?)"] * count)
            ),
            lambda chunk: [part for pair in chunk for part in pair],
        )
        found: dict[tuple[str, str], IdempotencyRecord] = {}
        for row in rows:
            found[(row["caller"], row["key"])] = record_of(
                row["caller"], row["key"], row["request_hash"], row["event_ids"]
            )
        return found

    def fence_idempotencies(
        self, fences: Sequence[IdempotencyRecord]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        """Store each fence in its key's place unless a record of events is there (a
        fence there is replaced); what is stored for each key afterwards. One statement
        per key, each a transaction of its own: a key being stored by a transaction not
        yet committed is waited for (its unique row), then found."""
        keys = self.tables.qualified("idempotency_keys")
        with self.tables.autocommit() as cursor:
            for fence in fences:
                cursor.execute(
                    f"INSERT INTO {keys} AS k (caller, key, request_hash, event_ids)"
                    " VALUES (?,?,?,?) ON CONFLICT (caller, key) DO UPDATE"
                    " SET request_hash = excluded.request_hash, event_ids = excluded.event_ids"
                    " WHERE k.event_ids LIKE ?",
                    (
                        fence.caller,
                        fence.key,
                        fence.request_hash,
                        stored_text(fence),
                        FENCE_PATTERN,
                    ),
                )
        return self.find_idempotencies([(fence.caller, fence.key) for fence in fences])

    def rows_in_chunks(
        self,
        items: Sequence[Any],
        statement: Callable[[int], str],
        params: Callable[[Sequence[Any]], list[Any]],
    ) -> list[Any]:
        """The rows of `statement` (made for a chunk's number of items) over every
        `CHUNK` items, each chunk one autocommit statement."""
        rows: list[Any] = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            with self.tables.autocommit() as cursor:
                cursor.execute(statement(len(chunk)), params(chunk))
                rows.extend(cursor.fetchall())
        return rows
