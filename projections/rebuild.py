"""Rebuilding the read models from the log into the shadow tables, on every core.

The log is cut into ranges of stream ids. Each range is read in (stream, version)
order, decoded, and folded stream by stream into the rows the projection would have
written (`model.replay_stream`: the incremental projection's own step), which go to the
shadow tables. Ranges are built in worker processes while this process writes them,
when the log is large enough to pay for starting workers and another process can read
the store (a file or a server, and the library's plain JSON mapper); otherwise here,
the same way. The Merkle tree's leaves are written unordered beside them, put in
position order and the tree built once every range is in.

Workers are spawned (this process holds connections and threads); at most `IN_FLIGHT`
ranges per worker are built and not yet written, so memory stays bounded; a worker's
failure fails the rebuild, and the shadow tables are never swapped in.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent, Transcoding

from domain.application import SanctionsLog
from domain.store.config import postgres_conninfo, sqlite_path
from domain.store.sql import as_bytes
from domain.stream import SanctionsStream
from projections.log.tree import leaf_data
from projections.model import replay_stream
from projections.rows import current_params, entry_params, intervals_params
from projections.shadow import Built, ShadowTables

Progress = Callable[[int, int], None]
Row = tuple[Any, ...]
IdRange = tuple[str | None, str | None]

WORKER_THRESHOLD = 50_000
"""Events below which a rebuild runs in this process: starting workers costs ~1 s."""
EVENTS_PER_RANGE = 5_000
IN_FLIGHT = 2
"""Ranges per worker being built or built and not yet written."""


def rebuild_shadow(
    log: SanctionsLog,
    shadow: ShadowTables,
    snapshot: int,
    batch_size: int,
    progress: Progress | None = None,
) -> int:
    """Rebuild every read model, as of position `snapshot`, into the shadow tables (the
    caller swaps them in); the number of stored events read. In this process, a range
    holds about `batch_size` events."""
    shadow.begin_shadow()
    source = source_of(log)
    if source is not None and snapshot >= WORKER_THRESHOLD:
        built = in_workers(source, id_ranges(snapshot, EVENTS_PER_RANGE), snapshot)
    else:
        reader, mapper = PooledReader(log), log.mapper
        ranges = id_ranges(snapshot, max(1, batch_size))
        built = (build_range(reader, mapper, bounds, snapshot) for bounds in ranges)
    done = 0
    for rows in built:
        for position, stored in rows.undecodable:  # logged as the projector logs them
            log.decode_tolerantly(stored, position=position)
        shadow.write_shadow(rows)
        done += rows.events
        if progress is not None:
            progress(done, snapshot)
    shadow.finish_shadow()
    return done


def id_ranges(snapshot: int, per_range: int) -> list[IdRange]:
    """Consecutive ranges of stream ids, as hex (lowest inclusive, highest exclusive,
    None: unbounded), that cover every id, about `per_range` events each: ids are
    uniform (uuid5 of the stream's name)."""
    count = max(1, min(4096, -(-snapshot // per_range)))
    cuts: list[str | None] = [f"{(n << 128) // count:032x}" for n in range(1, count)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


# Reading a range


class RangeReader(Protocol):
    def rows(self, bounds: IdRange, snapshot: int) -> Iterator[Any]:
        """The stored events of the streams in `bounds`, up to `snapshot`, in (stream,
        version) order, as rows with `position`, `originator_id`, `originator_version`,
        `topic` and `state`."""
        ...


def range_params(dialect: str, bounds: IdRange, snapshot: int) -> tuple[Any, ...]:
    lo, hi = bounds
    if dialect == "postgres":
        return (UUID(lo or "0" * 32), UUID(hi or "f" * 32), snapshot)
    # SQLite keeps ids as text: nothing sorts below "", nor above "g" among hex ids.
    return (lo or "", hi or "g", snapshot)


class PooledReader:
    """Reads ranges through the log's own connections (in this process)."""

    def __init__(self, log: SanctionsLog) -> None:
        self.log = log

    def rows(self, bounds: IdRange, snapshot: int) -> Iterator[Any]:
        for found in self.log.store.stream_range(*bounds, snapshot):
            stored = found.stored
            yield {
                "position": found.position,
                "originator_id": stored.originator_id,
                "originator_version": stored.originator_version,
                "topic": stored.topic,
                "state": stored.state,
            }


# Building a range


def build_range(reader: RangeReader, mapper: Mapper[UUID], bounds: IdRange, snapshot: int) -> Built:
    """The rows of every stream whose id is in `bounds`, from its events up to `snapshot`."""
    built = Built()
    stream_id: Any = None
    originator_id = UUID(int=0)
    events: list[tuple[SanctionsStream.Event, int]] = []
    for row in reader.rows(bounds, snapshot):
        built.events += 1
        if row["originator_id"] != stream_id:
            add_stream(built, events)
            stream_id, events = row["originator_id"], []
            originator_id = stream_id if isinstance(stream_id, UUID) else UUID(stream_id)
        stored = StoredEvent(
            originator_id=originator_id,
            originator_version=int(row["originator_version"]),
            topic=row["topic"],
            state=as_bytes(row["state"]),
        )
        position = int(row["position"])
        try:
            event: SanctionsStream.Event = mapper.to_domain_event(stored)  # type: ignore[assignment]
        except Exception:  # passed over; the writer logs it as decode_tolerantly does
            built.undecodable.append((position, stored))
            continue
        events.append((event, position))
        built.leaves.append((position, str(event.event_id), leaf_data(event.hash)))
    add_stream(built, events)
    return built


def add_stream(built: Built, events: list[tuple[SanctionsStream.Event, int]]) -> None:
    if not events:
        return
    record, rows = replay_stream(events[0][0].stream, events)
    built.intervals.extend(intervals_params(record.stream, rows))
    built.entries.extend(entry_params(record.stream, entry) for entry in record.entries.values())
    built.currents.append(current_params(record))


# Worker processes


@dataclass(frozen=True)
class Source:
    """What another process needs to read ranges of the log (picklable)."""

    dialect: str
    location: str  # a SQLite file's path, or a PostgreSQL conninfo
    query: str
    transcodings: tuple[Transcoding, ...]


def source_of(log: SanctionsLog) -> Source | None:
    """How a worker reads this log, or None when only this process can: an in-memory
    SQLite database, or a mapper that is not the library's plain JSON one."""
    mapper = log.mapper
    transcoder = mapper.transcoder
    if (
        type(mapper) is not Mapper
        or mapper.cipher is not None
        or mapper.compressor is not None
        or type(transcoder) is not JSONTranscoder
    ):
        return None
    query = log.store.range_statement()
    if query is None:
        return None
    dialect = log.store.database().dialect
    if dialect == "postgres":
        location = postgres_conninfo(log.database_url)
    else:
        location = sqlite_path(log.database_url)
        if ":memory:" in location or "mode=memory" in location or not os.path.exists(location):
            return None
    transcodings = tuple(transcoder.names.values())
    return Source(dialect, location, query, transcodings)


class OwnConnection:
    """Reads ranges through a connection of its own (in a worker)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        if source.dialect == "postgres":
            import psycopg
            from psycopg.rows import dict_row

            self.connection: Any = psycopg.connect(
                source.location, autocommit=True, row_factory=dict_row
            )
            self.query = source.query.replace("?", "%s")
        else:
            import sqlite3

            self.connection = sqlite3.connect(f"file:{source.location}?mode=ro", uri=True)
            self.connection.row_factory = sqlite3.Row
            self.query = source.query

    def rows(self, bounds: IdRange, snapshot: int) -> Iterator[Any]:
        params = range_params(self.source.dialect, bounds, snapshot)
        yield from self.connection.execute(self.query, params).fetchall()


_worker: tuple[OwnConnection, Mapper[UUID]] | None = None


def start_worker(source: Source) -> None:
    global _worker
    transcoder = JSONTranscoder()
    for transcoding in source.transcodings:
        transcoder.register(transcoding)
    _worker = (OwnConnection(source), Mapper(transcoder=transcoder))


def build_in_worker(bounds: IdRange, snapshot: int) -> Built:
    assert _worker is not None, "start_worker first"
    reader, mapper = _worker
    return build_range(reader, mapper, bounds, snapshot)


def in_workers(source: Source, ranges: list[IdRange], snapshot: int) -> Iterator[Built]:
    """Each range built in a worker process, as they come (in no particular order)."""
    workers = max(1, min(len(ranges), os.cpu_count() or 1))
    context = multiprocessing.get_context("spawn")
    pending = iter(ranges)
    running: set[Future[Built]] = set()
    with ProcessPoolExecutor(workers, context, start_worker, (source,)) as pool:
        try:
            while True:
                while len(running) < workers * IN_FLIGHT:
                    bounds = next(pending, None)
                    if bounds is None:
                        break
                    running.add(pool.submit(build_in_worker, bounds, snapshot))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
