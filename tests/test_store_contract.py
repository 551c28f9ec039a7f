"""The `EventStore` contract, on every store: in memory, a SQLite file, a PostgreSQL schema.

Each behaviour is checked against what the test itself wrote, kept in plain lists and
filtered with plain comprehensions (`Written`), never against another store method.
The events are made up (the store neither decodes nor checks what it keeps), so these
tests say what a store must do whatever the model becomes. The memory cases need no
database file: `pytest -m unit tests/test_store_contract.py` runs them alone, in a second.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from api.app.bootstrap import build_service
from api.app.settings import Settings
from api.schemas.queries import StatusQuery
from domain.application import SanctionsLog
from domain.keys import EventFilter, StreamKey
from domain.rules import EventType
from domain.store.memory import MemoryStore
from domain.store.records import (
    EventStore,
    IdempotencyRecord,
    IndexRow,
    PositionedEvent,
    TrackedPosition,
)
from domain.store.writes import StaleStreams, WriteExtras
from domain.stream import EventDraft
from tests.conftest import POSTGRES_URL, drop_schema

pytestmark = pytest.mark.integration  # a SQLite file or a PostgreSQL schema; memory: `unit`

STREAMS = [
    ("US", "BY", "potash"),
    ("US", "BY", "crude-oil"),
    ("EU", "BY", "potash"),
    ("EU", "RU", "steel"),
]
TYPES = [EventType.IMPOSED, EventType.EXPANDED, EventType.EASED]


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """An empty store of each kind: in memory, a SQLite file, a PostgreSQL schema of its
    own (dropped afterwards)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = (
        f"sqlite:///{tmp_path}/store.db"
        if request.param == "sqlite"
        else f"{POSTGRES_URL}?schema={schema}"
    )
    log = SanctionsLog(url)
    try:
        yield log.store
    finally:
        log.close()
        if request.param == "postgres":
            drop_schema(schema)


# What the test wrote, and what a store should therefore answer


@dataclass(frozen=True)
class Row:
    position: int
    stored: StoredEvent
    index: IndexRow | None


@dataclass
class Written:
    """Every event written so far, as the test wrote it and the store numbered it."""

    rows: list[Row] = field(default_factory=list)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)

    def stream(self, stream_id: uuid.UUID) -> list[Row]:
        return sorted(
            (row for row in self.rows if row.stored.originator_id == stream_id),
            key=lambda row: row.stored.originator_version,
        )

    def indexed(self) -> list[Row]:
        return [row for row in self.rows if row.index is not None]

    def shape(self, stream_id: uuid.UUID) -> tuple[int, int, int]:
        rows = self.stream(stream_id)
        return (
            max(row.stored.originator_version for row in rows),
            len(rows),
            sum(len(row.stored.state) for row in rows),
        )


def stream_id(name: tuple[str, str, str]) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(name))


def draft(
    written: Written, name: tuple[str, str, str], kind: EventType, *, indexed: bool = True
) -> tuple[StoredEvent, IndexRow | None]:
    """The next event of a stream, and its index row (None: a write without one)."""
    sid = stream_id(name)
    version = written.versions.get(sid, 0) + 1
    written.versions[sid] = version
    event_id = uuid.uuid4()
    stored = StoredEvent(sid, version, f"topic-{kind.value}", f"{event_id}:{version}".encode())
    index = IndexRow(sid, version, event_id, "/".join(name), *name, kind.value) if indexed else None
    return stored, index


def write(
    store: EventStore,
    written: Written,
    batch: Sequence[tuple[StoredEvent, IndexRow | None]],
    **kwargs: Any,
) -> list[int]:
    """Insert the batch with its index rows; note what was written with its positions."""
    index = [row for _, row in batch if row is not None]
    extras = WriteExtras(index=index, **kwargs)
    positions = store.insert_events([stored for stored, _ in batch], extras=extras)
    assert positions is not None and len(positions) == len(batch)
    written.rows.extend(
        Row(position, stored, row) for position, (stored, row) in zip(positions, batch, strict=True)
    )
    return list(positions)


def extras(batch: Sequence[tuple[StoredEvent, IndexRow | None]], **kwargs: Any) -> WriteExtras:
    """What goes with a batch that is not noted as written: its index rows, and `kwargs`."""
    return WriteExtras(index=[row for _, row in batch if row is not None], **kwargs)


def forget_versions(written: Written, batch: Sequence[tuple[StoredEvent, IndexRow | None]]) -> None:
    """A write that failed: its streams' next versions are as before it."""
    for stored, _ in batch:
        sid = uuid.UUID(str(stored.originator_id))
        written.versions[sid] = min(written.versions[sid], stored.originator_version - 1)


@pytest.fixture
def filled(store: EventStore) -> Written:
    """Four streams, written in four transactions of mixed streams and types, the last
    event without an index row (the library's own kind of write)."""
    written = Written()
    for round_ in range(4):
        batch = [
            draft(written, STREAMS[(round_ + n) % 4], TYPES[(round_ * 3 + n) % 3]) for n in range(3)
        ]
        write(store, written, batch)
    write(store, written, [draft(written, STREAMS[0], EventType.EASED, indexed=False)])
    return written


def identity(found: Sequence[PositionedEvent]) -> list[tuple[int, StoredEvent]]:
    return [(event.position, normal(event.stored)) for event in found]


def normal(stored: StoredEvent) -> StoredEvent:
    """A stored event as the test wrote it (ids as UUIDs, state as bytes)."""
    return StoredEvent(
        uuid.UUID(str(stored.originator_id)),
        stored.originator_version,
        stored.topic,
        bytes(stored.state),
    )


def expected(rows: Sequence[Row]) -> list[tuple[int, StoredEvent]]:
    return [(row.position, row.stored) for row in rows]


# Positions


def test_positions_rise_with_each_event_in_the_order_written(
    store: EventStore, filled: Written
) -> None:
    positions = [row.position for row in filled.rows]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    notifications = store.select_notifications(start=None, limit=100)
    assert [(n.id, normal(n)) for n in notifications] == expected(filled.rows)
    assert store.max_notification_id() == positions[-1]


def test_notifications_page_on_from_a_position(store: EventStore, filled: Written) -> None:
    middle = filled.rows[5].position
    page = store.select_notifications(start=middle, limit=3, inclusive_of_start=False)
    assert [n.id for n in page] == [row.position for row in filled.rows[6:9]]


def test_first_after_a_position_is_the_next_event(store: EventStore, filled: Written) -> None:
    for row, following in zip(filled.rows, filled.rows[1:], strict=False):
        found = store.first_after(row.position)
        assert found is not None
        assert (found.position, normal(found.stored)) == (following.position, following.stored)
    assert store.first_after(filled.rows[-1].position) is None
    first = store.first_after(0)
    assert first is not None and first.position == filled.rows[0].position


def test_first_after_a_tracking_record_reads_where_it_stands(
    store: EventStore, filled: Written
) -> None:
    database = store.database()
    table = database.qualified("contract_tracking")
    with database.transaction(commit=True) as cursor:
        cursor.execute(
            f"CREATE TABLE {table} (application_name TEXT PRIMARY KEY, notification_id BIGINT)"
        )
    tracked = TrackedPosition(table, "contract")
    first = store.first_after(tracked)  # no record yet: from the start
    assert first is not None and first.position == filled.rows[0].position
    with database.transaction(commit=True) as cursor:
        cursor.execute(f"INSERT INTO {table} VALUES (?, ?)", ("contract", filled.rows[6].position))
        cursor.execute(f"INSERT INTO {table} VALUES (?, ?)", ("other", filled.rows[1].position))
    found = store.first_after(tracked)
    assert found is not None and found.position == filled.rows[7].position
    assert normal(found.stored) == filled.rows[7].stored


# Filters


FILTERS = [
    EventFilter(),
    EventFilter(authority="US"),
    EventFilter(country="BY"),
    EventFilter(authority="EU", country="BY"),
    EventFilter(commodity="potash"),
    EventFilter("US", "BY", "potash"),
    EventFilter(type=EventType.EXPANDED),
    EventFilter(country="BY", type=EventType.IMPOSED),
    EventFilter("EU", "RU", "steel", EventType.EASED),
    EventFilter(authority="UK"),
]


def wanted(row: Row, where: EventFilter) -> bool:
    index = row.index
    return index is not None and all(
        value is None or value == found
        for value, found in (
            (where.authority, index.authority),
            (where.country, index.country),
            (where.commodity, index.commodity),
            (None if where.type is None else where.type.value, index.type),
            (where.event_id, index.event_id),
        )
    )


@pytest.mark.parametrize("where", FILTERS, ids=str)
def test_a_filter_selects_the_indexed_events_it_names_in_position_order(
    store: EventStore, filled: Written, where: EventFilter
) -> None:
    found = store.select_positioned(where)
    matching = [row for row in filled.rows if wanted(row, where)]
    assert identity(found) == expected(matching)
    assert [event.stream for event in found] == [row.index.stream for row in matching if row.index]
    assert store.count(where) == len(matching)


def test_after_and_limit_page_through_a_filter(store: EventStore, filled: Written) -> None:
    where = EventFilter(country="BY")
    matching = [row for row in filled.rows if wanted(row, where)]
    after = matching[1].position
    found = store.select_positioned(where, after=after, limit=3)
    assert identity(found) == expected([row for row in matching if row.position > after][:3])


def test_events_are_found_by_id_and_by_stream_name(store: EventStore, filled: Written) -> None:
    some = [filled.indexed()[n] for n in (7, 2, 4)]
    ids = [str(row.index.event_id) for row in some if row.index]
    found = store.select_positioned(event_ids=ids)
    assert identity(found) == expected(sorted(some, key=lambda row: row.position))
    one = some[0].index
    assert one is not None
    by_filter = store.select_positioned(EventFilter(event_id=one.event_id))
    assert identity(by_filter) == expected([some[0]])
    names = ["US/BY/crude-oil", "EU/RU/steel"]
    by_name = store.select_positioned(streams=names)
    indexed = filled.indexed()
    assert identity(by_name) == expected(
        [r for r in indexed if r.index and r.index.stream in names]
    )


# Streams


def test_a_stream_reads_back_in_version_order_with_its_positions(
    store: EventStore, filled: Written
) -> None:
    for name in STREAMS:
        sid = stream_id(name)
        assert identity(store.stored_stream(sid)) == expected(filled.stream(sid))
        indexed = [row.index for row in filled.stream(sid) if row.index is not None]
        assert store.indexed_stream(sid) == indexed
    assert store.stored_stream(uuid.uuid4()) == []


def test_streams_are_selected_together_and_absent_when_empty(
    store: EventStore, filled: Written
) -> None:
    ids = [stream_id(name) for name in STREAMS[:2]] + [uuid.uuid4()]
    found = store.select_streams(ids)
    assert {sid: [normal(e) for e in events] for sid, events in found.items()} == {
        sid: [row.stored for row in filled.stream(sid)] for sid in ids[:2]
    }
    assert store.stored_shapes(ids) == {sid: filled.shape(sid) for sid in ids[:2]}


def test_every_stream_in_id_order_up_to_a_position(store: EventStore, filled: Written) -> None:
    up_to = filled.rows[8].position
    ids = sorted({uuid.UUID(str(row.stored.originator_id)) for row in filled.rows}, key=str)
    assert store.stream_ids() == ids
    expected_streams = [
        expected([row for row in filled.stream(sid) if row.position <= up_to]) for sid in ids
    ]
    found = [identity(stream) for stream in store.streams_in_order(up_to, page=2)]
    assert found == [stream for stream in expected_streams if stream]


def test_a_range_of_stream_ids_reads_those_streams_only(store: EventStore, filled: Written) -> None:
    ids = sorted(stream_id(name).hex for name in STREAMS)
    up_to = filled.rows[-2].position
    for lowest, below in [(None, None), (ids[1], ids[3]), (None, ids[2]), (ids[2], None)]:
        inside = [
            sid
            for sid in ids
            if (lowest is None or sid >= lowest) and (below is None or sid < below)
        ]
        rows = [
            row for sid in inside for row in filled.stream(uuid.UUID(sid)) if row.position <= up_to
        ]
        assert identity(store.stream_range(lowest, below, up_to)) == expected(rows)


# Writes: all or nothing


def test_a_version_taken_twice_stores_nothing_of_its_write(
    store: EventStore, filled: Written
) -> None:
    before = store.max_notification_id()
    fresh = draft(filled, STREAMS[1], EventType.EXPANDED)
    taken = filled.stream(stream_id(STREAMS[2]))[-1]
    again = StoredEvent(taken.stored.originator_id, taken.stored.originator_version, "x", b"x")
    key = IdempotencyRecord("wendy", "k-1", "hash", ("a",))
    with pytest.raises(IntegrityError):
        store.insert_events([fresh[0], again], extras=extras([fresh], idempotency=[key]))
    forget_versions(filled, [fresh])
    assert store.max_notification_id() == before
    assert store.find_idempotencies([("wendy", "k-1")]) == {}
    assert identity(store.select_positioned()) == expected(filled.indexed())


def test_an_idempotency_key_is_stored_with_its_write_and_only_once(
    store: EventStore, filled: Written
) -> None:
    first = IdempotencyRecord("wendy", "k-1", "hash-1", ("e1", "e2"))
    other = IdempotencyRecord("rita", "k-1", "hash-2", ("e3",))
    write(store, filled, [draft(filled, STREAMS[0], EventType.EXPANDED)], idempotency=[first])
    write(store, filled, [draft(filled, STREAMS[1], EventType.EASED)], idempotency=[other])
    pairs = [("wendy", "k-1"), ("rita", "k-1"), ("wendy", "k-2")]
    assert store.find_idempotencies(pairs) == {pairs[0]: first, pairs[1]: other}

    before = store.max_notification_id()
    repeated = draft(filled, STREAMS[2], EventType.EXPANDED)
    key = IdempotencyRecord("wendy", "k-1", "hash-3", ("e4",))
    with pytest.raises(IntegrityError):
        store.insert_events([repeated[0]], extras=extras([repeated], idempotency=[key]))
    forget_versions(filled, [repeated])
    assert store.max_notification_id() == before
    assert store.find_idempotencies(pairs[:1]) == {pairs[0]: first}
    assert identity(store.stored_stream(stream_id(STREAMS[2]))) == expected(
        filled.stream(stream_id(STREAMS[2]))
    )


def test_a_write_decided_on_a_moved_stream_is_refused(store: EventStore, filled: Written) -> None:
    sid = stream_id(STREAMS[0])
    version, _, size = filled.shape(sid)
    assert store.stale_streams({sid: (version, size)}) == []
    assert store.stale_streams({sid: (version - 1, size)}) == [sid]
    assert store.stale_streams({uuid.uuid4(): (1, 10)}) != []
    fresh = uuid.uuid4()
    assert store.stale_streams({fresh: (0, 0)}) == []

    before = store.max_notification_id()
    late = draft(filled, STREAMS[0], EventType.EXPANDED)
    with pytest.raises(StaleStreams) as refused:
        store.insert_events([late[0]], extras=extras([late], versions={sid: (version, size + 1)}))
    assert refused.value.stream_ids == [sid]
    assert store.max_notification_id() == before
    write(store, filled, [late], versions={sid: (version, size)})
    assert store.stored_shapes([sid]) == {sid: filled.shape(sid)}


# Recording times


def test_stamped_times_rise_across_writes(store: EventStore) -> None:
    written = Written()
    given: list[datetime] = []
    future = datetime.now(UTC) + timedelta(hours=1)

    def stamp_at(last: datetime | None) -> Callable[[datetime], Any]:
        def stamp(now: datetime) -> tuple[list[StoredEvent], datetime]:
            given.append(now)
            stamped = [
                StoredEvent(
                    s.originator_id, s.originator_version, s.topic, now.isoformat().encode()
                )
                for s, _ in batch
            ]
            return stamped, last or now

        return stamp

    assert store.last_recorded_at() is None
    batch = [draft(written, STREAMS[0], EventType.IMPOSED)]
    store.insert_events([s for s, _ in batch], extras=extras(batch, stamp=stamp_at(future)))
    assert store.last_recorded_at() == future
    stored = store.stored_stream(stream_id(STREAMS[0]))
    assert bytes(stored[0].stored.state) == given[0].isoformat().encode()  # the stamped rows

    batch = [draft(written, STREAMS[1], EventType.IMPOSED)]
    store.insert_events([s for s, _ in batch], extras=extras(batch, stamp=stamp_at(None)))
    assert given[1] == future + timedelta(microseconds=1)  # after the last, not the clock
    assert store.last_recorded_at() == given[1]
    horizon = store.horizon()
    assert horizon is None or horizon <= datetime.now(UTC)


# Many writers


def test_concurrent_writers_each_get_their_own_positions(store: EventStore) -> None:
    written = Written()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        name = ("XX", f"C{n}", "goods")
        try:
            for _ in range(5):
                with lock:
                    batch = [draft(written, name, EventType.IMPOSED)]
                positions = store.insert_events([s for s, _ in batch], extras=extras(batch))
                assert positions is not None
                with lock:
                    written.rows.append(Row(positions[0], batch[0][0], batch[0][1]))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    in_order = sorted(written.rows, key=lambda row: row.position)
    assert len({row.position for row in in_order}) == 30
    assert identity(store.select_positioned()) == expected(in_order)
    for n in range(6):
        sid = stream_id(("XX", f"C{n}", "goods"))
        assert [e.stored.originator_version for e in store.stored_stream(sid)] == [1, 2, 3, 4, 5]


def race_for(store: EventStore, sid: uuid.UUID, version: int, writers: int) -> dict[int, bool]:
    """`writers` threads released at once, each inserting `version` of the stream: which
    of them had their event stored."""
    barrier = threading.Barrier(writers)
    outcomes: dict[int, bool] = {}

    def writer(n: int) -> None:
        stored = StoredEvent(sid, version, "topic", f"writer {n}".encode())
        index = IndexRow(sid, version, uuid.uuid4(), "US/BY/potash", *STREAMS[0], "imposed")
        barrier.wait()
        try:
            store.insert_events([stored], extras=WriteExtras(index=[index]))
        except IntegrityError:
            outcomes[n] = False
        else:
            outcomes[n] = True

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_of_writers_racing_for_one_version_one_wins(store: EventStore) -> None:
    sid = stream_id(STREAMS[0])
    for version in range(1, 4):
        outcomes = race_for(store, sid, version, 4)
        winners = [n for n, won in outcomes.items() if won]
        assert len(outcomes) == 4 and len(winners) == 1, outcomes
        stored = store.stored_stream(sid)
        assert [event.stored.originator_version for event in stored] == list(range(1, version + 1))
        assert bytes(stored[-1].stored.state) == f"writer {winners[0]}".encode()
        assert store.count() == version


def test_the_store_answers_a_ping(store: EventStore) -> None:
    store.ping()
    assert store.is_missing_tables(RuntimeError("not a storage error")) is False


# The whole service on `memory:`


def test_the_service_runs_on_a_memory_url() -> None:
    """Written, read through the read models (in an in-memory SQLite beside the store),
    verified and rebuilt, with no database file."""
    svc = build_service(Settings(database_url="memory:", api_tokens="alice:admin:admin-token"))
    try:
        assert isinstance(svc.log.store, MemoryStore)
        key = StreamKey("US", "BY", "potash")
        imposed = EventDraft(EventType.IMPOSED, key, date(2021, 8, 9), frozenset({"import_ban"}))
        svc.record([imposed], recorded_by="t")
        query = StatusQuery.of(authority="US", country="BY", commodity="potash", as_of="2022-01-01")
        assert svc.status(query).results[0].status == "active"
        assert svc.verify().problems == []
        assert svc.rebuild().events == 1
        assert svc.status(query).results[0].status == "active"
    finally:
        svc.close()
