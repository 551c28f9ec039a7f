"""What the event store keeps beside the library's events, the interface it offers, and
how it stores dates."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from eventsourcing.persistence import StoredEvent, Transcoding

from domain.keys import EventFilter


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
class IdempotencyRecord:
    """An Idempotency-Key, the request it came with, and the events it recorded."""

    caller: str
    key: str
    request_hash: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True)
class PositionedEvent:
    """A stored event, its global position in the log, and (when the event index
    knows it) its stream's name."""

    position: int
    stored: StoredEvent
    stream: str | None = None


class EventStore(ABC):
    """The look-ups the service needs of its event store, beyond the library's own.

    The recorders write `IndexRow`s and `IdempotencyRecord`s in the same transaction
    as the events they describe (passed to `insert_events()` as `index=` and
    `idempotency=`).
    """

    @abstractmethod
    def find_idempotencies(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], IdempotencyRecord]:
        """The records earlier requests with these (caller, key) pairs left."""

    @abstractmethod
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


class DateAsISO(Transcoding):
    """Effective dates are stored as ISO 8601 strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)
