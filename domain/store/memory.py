"""The event store in memory: the library's POPO recorder, with the look-ups, side records
and write checks of the SQL stores, so that service tests need no database file.

One lock guards everything: a write's checks (stream versions, Idempotency-Keys, event
ids) and its rows (events, index, keys, the log's clock) are taken together or not at
all, as the SQL stores do in one transaction. Positions run 1, 2, 3, … without gaps.
The read models, tokens and webhooks are SQL tables: they sit in an in-memory SQLite
database of this store's own (`database()`), opened when first asked for.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.utils import Environment, EnvType

from domain.keys import EventFilter
from domain.store.cursor import JUST_AFTER, Dialect, Transactions
from domain.store.records import (
    EventStore,
    IdempotencyRecord,
    IndexRow,
    PositionedEvent,
    Selection,
    StreamShape,
    TrackedPosition,
    moved_streams,
)
from domain.store.signals import Signals
from domain.store.writes import StaleStreams, WriteExtras


def matches(row: IndexRow, where: EventFilter) -> bool:
    """Whether an index row is one `where` asks for (as `sql.key_clauses` reads it: one
    stream by its name, else each key given)."""
    stream = where.stream
    if stream is not None:
        if row.stream != stream:
            return False
    elif any(
        wanted is not None and wanted != found
        for wanted, found in (
            (where.authority, row.authority),
            (where.country, row.country),
            (where.commodity, row.commodity),
        )
    ):
        return False
    return where.type is None or row.type == where.type.value


class InMemorySQLite(Transactions):
    """An in-memory SQLite database (shared by the pool's connections, gone with them)."""

    dialect: Dialect = "sqlite"

    def __init__(self) -> None:
        name = f"file:sanctions-{uuid.uuid4().hex}?mode=memory&cache=shared"
        self.datastore = SQLiteDatastore(name, lock_timeout=30)

    def qualified(self, table: str) -> str:
        return table


class MemoryStore(EventStore, POPOApplicationRecorder):
    """The `EventStore` in memory."""

    dialect = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[tuple[UUID, int], IndexRow] = {}
        self._event_ids: set[UUID] = set()
        self._keys: dict[tuple[str, str], IdempotencyRecord] = {}
        self._last_recorded_at: datetime | None = None
        self._database: InMemorySQLite | None = None
        self._database_opening = threading.Lock()

    # Writing

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        extras = WriteExtras.given(kwargs)
        index, keys, versions, stamp = (
            extras.index,
            extras.idempotency,
            extras.versions,
            extras.stamp,
        )
        with self._database_lock:
            if versions:
                moved = moved_streams(versions, self._shapes(list(versions)))
                if moved:
                    raise StaleStreams(moved)
            last: datetime | None = None
            if stamp is not None:
                now = datetime.now(UTC)
                if self._last_recorded_at is not None:
                    now = max(now, self._last_recorded_at + JUST_AFTER)
                stamped, last = stamp(now)
                stored_events = stamped
            self._assert_uniqueness(stored_events)
            self._assert_side_rows_unique(index, keys)
            positions = self._update_table(stored_events)
            for row in index:
                self._index[(row.originator_id, row.originator_version)] = row
                self._event_ids.add(row.event_id)
            for key in keys:
                self._keys[(key.caller, key.key)] = dataclasses.replace(key, replaces=None)
            if last is not None:
                self._last_recorded_at = last
        self._notify_listeners()
        return positions

    def _assert_side_rows_unique(
        self, index: Sequence[IndexRow], keys: Sequence[IdempotencyRecord]
    ) -> None:
        """IntegrityError, as the SQL stores' constraints raise it, for an index row or an
        Idempotency-Key already stored or given twice."""
        places = [(row.originator_id, row.originator_version) for row in index]
        event_ids = [row.event_id for row in index]
        pairs = [(key.caller, key.key) for key in keys]
        for found, stored in ((places, self._index), (event_ids, self._event_ids)):
            if len(set(found)) < len(found) or any(item in stored for item in found):
                raise IntegrityError(f"index row already recorded: {found}")
        if len(set(pairs)) < len(pairs) or any(
            pair in self._keys and (key.replaces is None or self._keys[pair].fence != key.replaces)
            for pair, key in zip(pairs, keys, strict=True)
        ):
            raise IntegrityError(f"Idempotency-Key already recorded: {pairs}")

    # What a write is decided on

    def find_idempotencies(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        with self._database_lock:
            return {pair: self._keys[pair] for pair in keys if pair in self._keys}

    def fence_idempotencies(
        self, fences: Sequence[IdempotencyRecord]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        with self._database_lock:
            for fence in fences:
                pair = (fence.caller, fence.key)
                stored = self._keys.get(pair)
                if stored is None or stored.fence is not None:
                    self._keys[pair] = fence
            return {(f.caller, f.key): self._keys[(f.caller, f.key)] for f in fences}

    def select_streams(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        with self._database_lock:
            found = {
                stream_id: [positioned.stored for positioned in self._stream(stream_id)]
                for stream_id in stream_ids
            }
        return {stream_id: events for stream_id, events in found.items() if events}

    def stored_shapes(self, stream_ids: Sequence[UUID]) -> dict[UUID, StreamShape]:
        with self._database_lock:
            return self._shapes(stream_ids)

    def _shapes(self, stream_ids: Sequence[UUID]) -> dict[UUID, StreamShape]:
        shapes: dict[UUID, StreamShape] = {}
        for stream_id in stream_ids:
            events = [positioned.stored for positioned in self._stream(stream_id)]
            if events:
                size = sum(len(event.state) for event in events)
                shapes[stream_id] = (events[-1].originator_version, len(events), size)
        return shapes

    # Reading

    def _stream(self, stream_id: UUID) -> list[PositionedEvent]:
        """One stream's events in version order, with their positions (lock held)."""
        places = self._stored_events_index.get(str(stream_id), {})
        return [
            PositionedEvent(places[version] + 1, self._stored_events[places[version]])
            for version in sorted(places)
        ]

    def _positioned(self, after: int = 0) -> Iterator[PositionedEvent]:
        """Every event after position `after`, in position order (lock held)."""
        for place in range(max(after, 0), len(self._stored_events)):
            yield PositionedEvent(place + 1, self._stored_events[place])

    def select(self, selection: Selection) -> list[PositionedEvent]:
        where, after, limit = selection.where, selection.after, selection.limit
        wanted_ids = set(selection.event_ids)
        wanted_streams = set(selection.streams)
        found: list[PositionedEvent] = []
        with self._database_lock:
            for positioned in self._positioned(after or 0):
                stored = positioned.stored
                row = self._index.get((UUID(str(stored.originator_id)), stored.originator_version))
                if (
                    row is None
                    or not matches(row, where)
                    or (where.event_id is not None and row.event_id != where.event_id)
                    or (wanted_ids and str(row.event_id) not in wanted_ids)
                    or (wanted_streams and row.stream not in wanted_streams)
                ):
                    continue
                if limit is not None and len(found) >= limit:
                    break
                found.append(PositionedEvent(positioned.position, stored, row.stream))
        return found

    def count(self, where: EventFilter = EventFilter()) -> int:
        with self._database_lock:
            return sum(1 for row in self._index.values() if matches(row, where))

    def streams_in_order(self, up_to: int, page: int = 5000) -> Iterator[list[PositionedEvent]]:
        for stream_id in self._ids_stored():
            with self._database_lock:
                events = [found for found in self._stream(stream_id) if found.position <= up_to]
            if events:
                yield events

    def stream_range(
        self, lowest: str | None, below: str | None, up_to: int
    ) -> list[PositionedEvent]:
        found: list[PositionedEvent] = []
        for stream_id in self._ids_stored():
            if (lowest is not None and stream_id.hex < lowest) or (
                below is not None and stream_id.hex >= below
            ):
                continue
            with self._database_lock:
                found.extend(event for event in self._stream(stream_id) if event.position <= up_to)
        return found

    def range_statement(self) -> str | None:
        return None  # another process cannot see this one's memory

    def first_after(self, after: int | TrackedPosition) -> PositionedEvent | None:
        if isinstance(after, TrackedPosition):
            with self.database().autocommit() as cursor:
                cursor.execute(
                    f"SELECT notification_id FROM {after.table} WHERE application_name = ?",
                    (after.application_name,),
                )
                row = cursor.fetchone()
            after = 0 if row is None else int(row["notification_id"])
        with self._database_lock:
            return next(self._positioned(after), None)

    def _ids_stored(self) -> list[UUID]:
        """Every stream id with stored events, in the order of their hex digits."""
        with self._database_lock:
            return sorted(
                UUID(stream_id) for stream_id, places in self._stored_events_index.items() if places
            )

    # Verification

    def stream_ids(self) -> list[UUID]:
        with self._database_lock:
            indexed = {originator_id for originator_id, _ in self._index}
        return sorted(indexed | set(self._ids_stored()))

    def stored_stream(self, originator_id: UUID) -> list[PositionedEvent]:
        with self._database_lock:
            return self._stream(originator_id)

    def indexed_stream(self, originator_id: UUID) -> list[IndexRow]:
        with self._database_lock:
            rows = [
                row for (stream_id, _), row in self._index.items() if stream_id == originator_id
            ]
        return sorted(rows, key=lambda row: row.originator_version)

    # Recording times

    def horizon(self) -> datetime | None:
        return None  # every writer is in this process: the log's write lock tells

    def last_recorded_at(self) -> datetime | None:
        with self._database_lock:
            return self._last_recorded_at

    # The database around the store

    def database(self) -> Transactions:
        with self._database_opening:
            if self._database is None:
                self._database = InMemorySQLite()
            return self._database

    def open_signals(self) -> Signals:
        return Signals()

    def ping(self) -> None:
        return None

    def is_missing_tables(self, error: Exception) -> bool:
        return False

    def setup(self) -> None:
        return None  # nothing to create: the store is there as long as this process is

    def close(self) -> None:
        """Close the SQLite database beside the store (its tables are gone with it)."""
        with self._database_opening:
            if self._database is not None:
                self._database.datastore.close()


class MemoryFactory(POPOFactory):
    """The library's POPO persistence, with the `MemoryStore` as application recorder
    (`PERSISTENCE_MODULE=domain.store.memory:MemoryFactory`)."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.stores: list[MemoryStore] = []

    def application_recorder(self) -> ApplicationRecorder:
        store = MemoryStore()
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()
