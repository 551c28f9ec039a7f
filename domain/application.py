"""The write-side application: record events, read them back. A thin list of use cases."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import cast

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    PersistenceError,
    StoredEvent,
    Transcoding,
)

from domain.errors import (
    DomainError,
    EventNotFound,
    IdempotencyConflict,
    NotRecorded,
    OutcomeUnknown,
    StreamDamaged,
    VersionConflict,
    WriteContention,
)
from domain.keys import EventFilter, StreamKey
from domain.recorded import (
    IdempotentRequest,
    OnUndecodable,
    Page,
    RecordedEvent,
    Undecodable,
    WriteOutcome,
)
from domain.store.config import environment_for, postgres_conninfo
from domain.store.records import IdempotencyRecord, IndexRow
from domain.store.signals import Signals
from domain.store.sql import SanctionsRecorderMixin, as_bytes
from domain.store.stamping import UNSTAMPED, Stamper
from domain.stream import EventDraft, SanctionsStream

APPLICATION_NAME = "SanctionsTimeline"
"""The log's name: the library's config prefix, and the name tracking records follow."""
MAX_WRITE_ATTEMPTS = 5
OUTCOME_CHECKS = (0.0, 0.5)
"""Pauses before each look, after a failed write, for whether it was recorded: a commit
under way when the connection was lost lands (or not) within moments."""
logger = logging.getLogger("sanctions.log")


class DateAsISO(Transcoding):
    """Effective dates are stored as ISO 8601 strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class SanctionsLog(Application[uuid.UUID]):
    """The append-only log of sanctions events, one aggregate per stream."""

    name = APPLICATION_NAME

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        super().__init__(env={**environment_for(database_url), **(env or {})})
        self._write_lock = threading.Lock()
        self.signals = self._signals()

    def _signals(self) -> Signals:
        if self.store.dialect == "postgres":
            from domain.store.postgres import ListenNotify, PostgresSanctionsRecorder

            recorder = cast(PostgresSanctionsRecorder, self.recorder)
            return ListenNotify(postgres_conninfo(self.database_url), recorder.signal_names())
        return Signals()

    def close(self) -> None:
        self.signals.close()
        super().close()

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
        """Record all the drafts, in order, in one transaction, or none of them.

        Every write carries an idempotency key (the caller's, or one made for it), so a
        write retried after a lost connection, by the library or here, records once.
        When the database fails, the outcome is checked through that key: recorded
        (answered as usual), certainly not recorded (NotRecorded), or unknown
        (OutcomeUnknown, when even that check fails)."""
        request = idempotency or IdempotentRequest(recorded_by, f"auto:{uuid.uuid4()}", "")
        with self._write_lock:
            attempted = False
            for _ in range(MAX_WRITE_ATTEMPTS):
                earlier = self._replay(request, ours=attempted)
                if earlier is not None:
                    return earlier
                events, index = self._decide(drafts, recorded_by)
                stamper = Stamper(events, self.mapper)
                key = IdempotencyRecord(
                    request.caller,
                    request.key,
                    request.request_hash,
                    tuple(str(event.event_id) for event in events),
                )
                attempted = True
                try:
                    recordings = self.save(*events, stamp=stamper, index=index, idempotency=key)
                except IntegrityError:
                    # Another process wrote first (a stream version or the same key), or
                    # this very write committed before its connection was lost: the key
                    # tells which. Else decide again on what is stored now (an
                    # expected_version then fails as it should).
                    continue
                except PersistenceError as error:
                    return self._outcome_after(request, error)
                return WriteOutcome(
                    [
                        RecordedEvent(recording.notification.id, event)
                        for recording, event in zip(recordings, stamper.stamped, strict=True)
                    ],
                    replayed=False,
                )
        raise WriteContention(drafts[0].key.name, MAX_WRITE_ATTEMPTS)

    def horizon(self) -> datetime:
        """A moment at or before which no event still to be committed can be recorded:
        an answer as known at any moment up to it can no longer change."""
        stored = self.store.horizon()  # every process's writes, where the database tells
        if stored is not None:
            return stored
        now = datetime.now(UTC)  # read before looking at the lock: see below
        if not self._write_lock.locked():
            # A write not yet started stamps its events with the clock after taking the
            # lock, so later than `now`.
            return now - timedelta(microseconds=1)
        last = self.store.last_recorded_at()  # a write under way stamps after it
        return last if last is not None else datetime.min.replace(tzinfo=UTC)

    def _replay(self, request: IdempotentRequest, *, ours: bool) -> WriteOutcome | None:
        """What an earlier request with this key recorded, if any (`ours`: an earlier
        attempt of this very write, answered as recorded now, not as a replay)."""
        earlier = self.store.find_idempotency(request.caller, request.key)
        if earlier is None:
            return None
        if earlier.request_hash != request.request_hash:
            raise IdempotencyConflict(request.key)
        return WriteOutcome(self.events_by_ids(earlier.event_ids), replayed=not ours)

    def _outcome_after(self, request: IdempotentRequest, error: PersistenceError) -> WriteOutcome:
        """After the database failed mid-write: the write's outcome, found by its key."""
        for pause in OUTCOME_CHECKS:
            time.sleep(pause)
            try:
                found = self._replay(request, ours=True)
            except PersistenceError:
                raise OutcomeUnknown(type(error).__name__) from error
            if found is not None:
                return found
        raise NotRecorded(type(error).__name__) from error

    def _decide(
        self, drafts: Sequence[EventDraft], recorded_by: str
    ) -> tuple[list[SanctionsStream.Event], list[IndexRow]]:
        streams: dict[StreamKey, SanctionsStream] = {}
        events: list[SanctionsStream.Event] = []
        for number, draft in enumerate(drafts):
            try:
                stream = streams.get(draft.key)
                if stream is None:
                    stream = streams[draft.key] = self.stream(draft.key)
                if draft.expected_version is not None and draft.expected_version != stream.version:
                    raise VersionConflict(draft.key.name, draft.expected_version, stream.version)
                event = stream.record(
                    draft,
                    event_id=uuid.uuid4(),
                    recorded_at=UNSTAMPED,
                    recorded_by=recorded_by,
                )
            except DomainError as error:
                raise error.at(number, draft.key.name) from None
            events.append(event)
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
        """The stream as recorded so far (empty, version 0, if nothing is); StreamDamaged
        if its stored events no longer make a stream (altered outside the service)."""
        try:
            return cast(SanctionsStream, self.repository.get(key.aggregate_id))
        except AggregateNotFoundError:
            return SanctionsStream.empty(key)
        except PersistenceError:
            raise  # the database, not the stream: answered 503
        except Exception as error:  # whatever the damage, never a 500: name it
            raise StreamDamaged(key.name, type(error).__name__) from error

    def notification_pages(
        self, *, up_to: int | None = None, page: int = 5000
    ) -> Iterator[Sequence[Notification]]:
        """Every stored event in position order (up to position `up_to`), a page at a
        time, undecoded."""
        position = 0
        while up_to is None or position < up_to:
            notifications = self.recorder.select_notifications(
                start=position, limit=page, stop=up_to, inclusive_of_start=False
            )
            if not notifications:
                return
            yield notifications
            position = notifications[-1].id

    def decode_tolerantly(
        self,
        stored: StoredEvent,
        on_undecodable: OnUndecodable | None = None,
        *,
        position: int | None = None,
        stream: str | None = None,
    ) -> SanctionsStream.Event | None:
        """The domain event, or None when its stored bytes cannot be decoded: a store
        altered behind the service's back, which readers pass over and verify reports."""
        if isinstance(stored.state, str):  # a SQLite BLOB rewritten as TEXT behind our back
            stored = StoredEvent(
                stored.originator_id,
                stored.originator_version,
                stored.topic,
                as_bytes(stored.state),
            )
        try:
            return cast(SanctionsStream.Event, self.mapper.to_domain_event(stored))
        except Exception as error:  # any decoding failure: the bytes are not ours
            found = Undecodable(
                position,
                stream,
                uuid.UUID(str(stored.originator_id)),
                stored.originator_version,
                error,
            )
            logger.error("%s", found.describe())
            if on_undecodable is not None:
                on_undecodable(found)
            return None

    def page(
        self,
        where: EventFilter = EventFilter(),
        *,
        after: int | None = None,
        limit: int | None = None,
        event_ids: Sequence[str] = (),
        streams: Sequence[str] = (),
    ) -> Page:
        """Events matching the filter (and `event_ids` and `streams`, if given), in position
        order; an event whose stored bytes cannot be decoded is passed over, named in
        `undecodable`."""
        rows = self.store.select_positioned(
            where,
            after=after,
            limit=None if limit is None else limit + 1,
            event_ids=event_ids,
            streams=streams,
        )
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        undecodable: list[Undecodable] = []
        events = []
        for row in rows:
            event = self.decode_tolerantly(
                row.stored, undecodable.append, position=row.position, stream=row.stream
            )
            if event is not None:
                events.append(RecordedEvent(row.position, event))
        return Page(events, undecodable, rows[-1].position if rows else None, more)

    def read(
        self,
        where: EventFilter = EventFilter(),
        *,
        page_size: int = 1000,
        on_undecodable: OnUndecodable | None = None,
    ) -> Iterator[RecordedEvent]:
        """Every matching event in position order, a page at a time (bounded memory);
        undecodable ones are passed over and given to `on_undecodable`."""
        position: int | None = None
        while True:
            page = self.page(where, after=position, limit=page_size)
            if on_undecodable is not None:
                for found in page.undecodable:
                    on_undecodable(found)
            yield from page.events
            if not page.more:
                return
            position = page.last_position

    @staticmethod
    def check_decodable(page: Page) -> None:
        """StreamDamaged naming the first event of `page` that could not be decoded."""
        for found in page.undecodable:
            raise StreamDamaged(found.stream or str(found.stream_id), found.describe())

    def select_events(
        self,
        where: EventFilter = EventFilter(),
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events matching the filter, in position order (undecodable ones passed over)."""
        return self.page(where, after=after, limit=limit).events

    def events_by_ids(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        """The events with these ids, in the order given (StreamDamaged if one of them
        can no longer be decoded)."""
        page = self.page(event_ids=event_ids)
        self.check_decodable(page)
        by_id = {str(recorded.event.event_id): recorded for recorded in page.events}
        return [by_id[event_id] for event_id in event_ids]

    def event(self, event_id: uuid.UUID) -> RecordedEvent:
        """One event by id; EventNotFound if there is none, StreamDamaged if it cannot
        be decoded."""
        page = self.page(EventFilter(event_id=event_id))
        self.check_decodable(page)
        if not page.events:
            raise EventNotFound(str(event_id))
        return page.events[0]

    def stream_events(self, key: StreamKey) -> list[RecordedEvent]:
        """Every event of one stream, in version order."""
        return self.select_events(EventFilter.of_stream(key))
