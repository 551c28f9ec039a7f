"""The write-side application: record events, read them back. A thin list of use cases."""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, StoredEvent, Transcoding

from domain.errors import EventNotFound, IdempotencyConflict, VersionConflict, WriteContention
from domain.hashing import canonical_json
from domain.keys import EventFilter, StreamKey
from domain.store.config import environment_for
from domain.store.records import IdempotencyRecord, IndexRow, PositionedEvent
from domain.store.sql import SanctionsRecorderMixin
from domain.stream import EventDraft, SanctionsStream

APPLICATION_NAME = "SanctionsTimeline"
"""The log's name: the library's config prefix, and the name tracking records follow."""
MAX_WRITE_ATTEMPTS = 5
logger = logging.getLogger("sanctions.log")
OnUndecodable = Callable[[StoredEvent, Exception], None]


class DateAsISO(Transcoding):
    """Effective dates are stored as ISO 8601 strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass(frozen=True)
class RecordedEvent:
    """A stored domain event with its global position in the log."""

    position: int
    event: SanctionsStream.Event


@dataclass(frozen=True)
class WriteOutcome:
    """What a write recorded; `replayed` when an Idempotency-Key answered it."""

    events: list[RecordedEvent]
    replayed: bool


@dataclass(frozen=True)
class IdempotentRequest:
    """The caller's key and a digest of the request body it came with."""

    caller: str
    key: str
    request_hash: str

    @classmethod
    def of(cls, caller: str, key: str, body: Any) -> IdempotentRequest:
        return cls(caller, key, hashlib.sha256(canonical_json(body)).hexdigest())


class TransactionClock:
    """Recording times that strictly increase within this process."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        moment = datetime.now(UTC)
        if moment <= self._last:
            moment = self._last + timedelta(microseconds=1)
        self._last = moment
        return moment


class SanctionsLog(Application[uuid.UUID]):
    """The append-only log of sanctions events, one aggregate per stream."""

    name = APPLICATION_NAME

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        super().__init__(env={**environment_for(database_url), **(env or {})})
        self._write_lock = threading.Lock()
        self._clock = TransactionClock()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    @property
    def store(self) -> SanctionsRecorderMixin:
        return cast(SanctionsRecorderMixin, self.recorder)

    # Writing

    def record(
        self,
        drafts: Sequence[EventDraft],
        *,
        recorded_by: str,
        idempotency: IdempotentRequest | None = None,
    ) -> WriteOutcome:
        """Record all the drafts, in order, in one transaction, or none of them."""
        with self._write_lock:
            for _ in range(MAX_WRITE_ATTEMPTS):
                if idempotency is not None:
                    earlier = self._replay(idempotency)
                    if earlier is not None:
                        return earlier
                events, index = self._decide(drafts, recorded_by)
                try:
                    recordings = self.save(
                        *events,
                        index=index,
                        idempotency=None
                        if idempotency is None
                        else IdempotencyRecord(
                            idempotency.caller,
                            idempotency.key,
                            idempotency.request_hash,
                            tuple(str(event.event_id) for event in events),
                        ),
                    )
                except IntegrityError:
                    # Another process wrote first: a stream version or the same key.
                    # Decide again on what is stored now (an expected_version then
                    # fails as it should; otherwise the rules are checked afresh).
                    continue
                return WriteOutcome(
                    [
                        RecordedEvent(recording.notification.id, event)
                        for recording, event in zip(recordings, events, strict=True)
                    ],
                    replayed=False,
                )
        raise WriteContention(drafts[0].key.name, MAX_WRITE_ATTEMPTS)

    def _replay(self, request: IdempotentRequest) -> WriteOutcome | None:
        earlier = self.store.find_idempotency(request.caller, request.key)
        if earlier is None:
            return None
        if earlier.request_hash != request.request_hash:
            raise IdempotencyConflict(request.key)
        return WriteOutcome(self.events_by_ids(earlier.event_ids), replayed=True)

    def _decide(
        self, drafts: Sequence[EventDraft], recorded_by: str
    ) -> tuple[list[SanctionsStream.Event], list[IndexRow]]:
        streams: dict[StreamKey, SanctionsStream] = {}
        events: list[SanctionsStream.Event] = []
        for draft in drafts:
            stream = streams.get(draft.key)
            if stream is None:
                stream = streams[draft.key] = self.stream(draft.key)
            if draft.expected_version is not None and draft.expected_version != stream.version:
                raise VersionConflict(draft.key.name, draft.expected_version, stream.version)
            events.append(
                stream.record(
                    draft,
                    event_id=uuid.uuid4(),
                    recorded_at=self._clock.now(),
                    recorded_by=recorded_by,
                )
            )
        for stream in streams.values():
            stream.collect_events()  # saved below, in the order they were asked for
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
            for event in events
        ]
        return events, index

    # Reading

    def stream(self, key: StreamKey) -> SanctionsStream:
        """The stream as recorded so far (empty, version 0, if nothing is)."""
        try:
            return cast(SanctionsStream, self.repository.get(key.aggregate_id))
        except AggregateNotFoundError:
            return SanctionsStream.empty(key)

    def decode(self, positioned: PositionedEvent) -> RecordedEvent:
        event = self.mapper.to_domain_event(positioned.stored)
        return RecordedEvent(positioned.position, cast(SanctionsStream.Event, event))

    def decode_tolerantly(
        self, stored: StoredEvent, on_undecodable: OnUndecodable | None = None
    ) -> SanctionsStream.Event | None:
        """The domain event, or None when its stored bytes cannot be decoded: a store
        altered behind the service's back, which readers pass over and verify reports."""
        try:
            return cast(SanctionsStream.Event, self.mapper.to_domain_event(stored))
        except Exception as error:  # any decoding failure: the bytes are not ours
            logger.error(
                "cannot decode event version %s of stream %s: %s",
                stored.originator_version,
                stored.originator_id,
                type(error).__name__,
            )
            if on_undecodable is not None:
                on_undecodable(stored, error)
            return None

    def select_events(
        self,
        where: EventFilter = EventFilter(),
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events matching the filter, in position order."""
        return [
            self.decode(p) for p in self.store.select_positioned(where, after=after, limit=limit)
        ]

    def events_by_ids(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        """The events with these ids, in the order given."""
        found = {
            str(recorded.event.event_id): recorded
            for recorded in (
                self.decode(p) for p in self.store.select_positioned(event_ids=event_ids)
            )
        }
        return [found[event_id] for event_id in event_ids]

    def event(self, event_id: uuid.UUID) -> RecordedEvent:
        """One event by id; EventNotFound if there is none."""
        found = self.select_events(EventFilter(event_id=event_id))
        if not found:
            raise EventNotFound(str(event_id))
        return found[0]

    def stream_events(self, key: StreamKey) -> list[RecordedEvent]:
        """Every event of one stream, in version order."""
        return self.select_events(EventFilter.of_stream(key))
