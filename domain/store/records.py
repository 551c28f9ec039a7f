"""What the event store keeps beside the library's events, the interface it offers, and
how it stores dates."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent, Transcoding

from domain.keys import EventFilter
from domain.recorded import IdempotencyRecord as IdempotencyRecord  # stored beside events
from domain.store.cursor import Transactions
from domain.store.signals import Signals

StreamShape = tuple[int, int, int]
"""A stream as stored: its highest version, its number of events, its bytes in all."""


@dataclass(frozen=True)
class IndexRow:
    """What look-ups and filters need of one stored event."""

    originator_id: UUID
    originator_version: int
    event_id: UUID
    stream: str
    authority: str
    country: str
    commodity: str
    type: str


@dataclass(frozen=True)
class PositionedEvent:
    """A stored event, its global position in the log, and (when the event index
    knows it) its stream's name."""

    position: int
    stored: StoredEvent
    stream: str | None = None


@dataclass(frozen=True)
class Selection:
    """Which indexed events a read asks for: those matching `where`, with one of
    `event_ids` and in one of `streams` (when given), after position `after` (None: from
    the start), at most `limit` (None: all)."""

    where: EventFilter
    after: int | None = None
    limit: int | None = None
    event_ids: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackedPosition:
    """Where a tracking record in the store's database says a reader stands: its table
    (as statements spell it) and the application name it tracks."""

    table: str
    application_name: str


def moved_streams(
    versions: dict[UUID, tuple[int, int]], stored: dict[UUID, StreamShape]
) -> list[UUID]:
    """The streams not stored as (version, size) says: versions 1 to `version`, one
    event each, `size` bytes in all."""
    return [
        stream_id
        for stream_id, (version, size) in versions.items()
        if stored.get(stream_id, (0, 0, 0)) != (version, version, size)
    ]


class EventStore(ApplicationRecorder, ABC):
    """Everything the service asks of its event store: the library's application
    recorder (`insert_events`, `select_notifications`, `max_notification_id`, …) and
    the look-ups below.

    `insert_events()` takes, beside the placeholder rows, `extras=` (a `WriteExtras`:
    the stream versions the write was decided on, the `Stamp` called inside the write
    lock with the recording time, the `IndexRow`s and `IdempotencyRecord`s); all are
    stored in one transaction with the events, or nothing is (`StaleStreams` when a
    stream moved, `IntegrityError` on a conflict).
    """

    @abstractmethod
    def find_idempotencies(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        """The records earlier requests with these (caller, key) pairs left (a fence
        among them, where one was answered "not recorded" and none recorded since)."""

    @abstractmethod
    def fence_idempotencies(
        self, fences: Sequence[IdempotencyRecord]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        """Store each fence (`IdempotencyRecord.fencing`) in its key's place, unless a
        record of events is there already (a fence there is replaced); then what is
        stored for each key. A write whose record finds a fence in its place, not the
        one it `replaces`, fails with IntegrityError."""

    def select_positioned(
        self,
        where: EventFilter = EventFilter(),
        *,
        after: int | None = None,
        limit: int | None = None,
        event_ids: Sequence[str] = (),
        streams: Sequence[str] = (),
    ) -> list[PositionedEvent]:
        """Stored events matching `where` (and, if given, with one of `event_ids` and in
        one of `streams`), in position order, with their positions."""
        return self.select(Selection(where, after, limit, tuple(event_ids), tuple(streams)))

    @abstractmethod
    def select(self, selection: Selection) -> list[PositionedEvent]:
        """The indexed events `selection` asks for, in position order, with their positions
        and stream names (what `select_positioned` answers)."""

    @abstractmethod
    def count(self, where: EventFilter = EventFilter()) -> int:
        """How many events match `where`."""

    @abstractmethod
    def streams_in_order(self, up_to: int, page: int = 5000) -> Iterator[list[PositionedEvent]]:
        """Every stream's stored events (positions up to `up_to`), one stream at a time."""

    @abstractmethod
    def stream_ids(self) -> list[UUID]:
        """Every stream id found in the events table or in the index written with it."""

    @abstractmethod
    def stored_stream(self, originator_id: UUID) -> list[PositionedEvent]:
        """One stream's stored events, in version order, with their positions."""

    @abstractmethod
    def indexed_stream(self, originator_id: UUID) -> list[IndexRow]:
        """What the index, written in the same transactions, says the stream holds."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    # What a write is decided on

    @abstractmethod
    def select_streams(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of these streams, in version order; a stream with none is absent."""

    @abstractmethod
    def stored_shapes(self, stream_ids: Sequence[UUID]) -> dict[UUID, StreamShape]:
        """Each stream's `StreamShape` (absent: nothing stored)."""

    def stale_streams(self, versions: dict[UUID, tuple[int, int]]) -> list[UUID]:
        """The streams no longer stored at the (version, size) a decision was made on."""
        return moved_streams(versions, self.stored_shapes(list(versions)))

    # Recording times

    @abstractmethod
    def horizon(self) -> datetime | None:
        """A moment before which nothing more can be recorded by any process (None when
        the store cannot tell: its writers are all in this process)."""

    @abstractmethod
    def last_recorded_at(self) -> datetime | None:
        """The recording time of the last committed event (None: nothing recorded)."""

    # Reading on

    @abstractmethod
    def first_after(self, after: int | TrackedPosition) -> PositionedEvent | None:
        """The first stored event after a position, or after where a tracking record
        stands (0 without one), read in one statement; None if there is none."""

    @abstractmethod
    def stream_range(
        self, lowest: str | None, below: str | None, up_to: int
    ) -> list[PositionedEvent]:
        """The stored events (positions up to `up_to`) of the streams whose ids, as 32
        lower-case hex digits, are at least `lowest` and below `below` (None: unbounded),
        in (stream id, version) order."""

    @abstractmethod
    def range_statement(self) -> str | None:
        """A statement another process's own connection reads `stream_range` with (`?`
        placeholders: lowest id, id below, up to; columns `position`, `originator_id`,
        `originator_version`, `topic`, `state`); None when only this process can."""

    # The database around the store

    @abstractmethod
    def database(self) -> Transactions:
        """The SQL database the read models and the tables beside the events (tokens,
        webhooks) live in."""

    @abstractmethod
    def open_signals(self) -> Signals:
        """The wake-ups between processes sharing this store (its own `Signals` when
        there is nothing to listen to)."""

    @abstractmethod
    def is_missing_tables(self, error: Exception) -> bool:
        """Whether `error` says the store's schema or tables are not there."""

    def is_connection_lost(self, error: Exception) -> bool:
        """Whether `error` says the connection it ran on died (the work may be tried again
        on a fresh one); never where there is no connection to lose."""
        return False

    @abstractmethod
    def setup(self) -> None:
        """Create the store's tables (again), as on first start."""


class DateAsISO(Transcoding):
    """Effective dates are stored as ISO 8601 strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)
