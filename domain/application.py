"""The write-side application: record events, read them back. A thin list of use cases."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    PersistenceError,
    StoredEvent,
)

from domain.drafts import EventDraft
from domain.errors import (
    DomainError,
    EventNotFound,
    StreamDamaged,
    WriteContention,
)
from domain.group_commit import Attempt, CommitQueue, Fences, Write, answer_replays
from domain.kept_stream import KeptStream
from domain.keys import EventFilter, StreamKey
from domain.recorded import (
    IdempotentRequest,
    OnUndecodable,
    Page,
    RecordedEvent,
    Undecodable,
    WriteOutcome,
)
from domain.store.config import environment_for
from domain.store.cursor import as_bytes
from domain.store.failed_writes import FailedWrites
from domain.store.kept import Recent, StreamStates
from domain.store.records import DateAsISO, EventStore
from domain.store.signals import Signals
from domain.store.stamping import Stamper
from domain.store.writes import StaleStreams, WriteExtras
from domain.stream import SanctionsStream

APPLICATION_NAME = "SanctionsTimeline"
"""The log's name: the library's config prefix, and the name tracking records follow."""
MAX_WRITE_ATTEMPTS = 5
logger = logging.getLogger("sanctions.log")


class SanctionsLog(Application[uuid.UUID]):
    """The append-only log of sanctions events, one aggregate per stream."""

    name = APPLICATION_NAME

    def __init__(
        self, database_url: str, env: dict[str, str] | None = None, *, replica: bool = False
    ) -> None:
        """The log in the database at `database_url`; a `replica` (a PostgreSQL standby,
        read only) is opened without creating anything and is never written to."""
        self.database_url = database_url
        base = environment_for(database_url, create=not replica)
        super().__init__(env={**base, **(env or {})})
        if not isinstance(self.recorder, EventStore):
            raise TypeError(f"{type(self.recorder).__name__} is not an EventStore")
        self._write_lock = threading.Lock()
        self.states = StreamStates()
        self.recent = Recent()
        self.commits = CommitQueue(self._commit_group)
        self.fences = Fences()
        self.failures = FailedWrites(self.store, self.page, self.events_by_ids, self.fences)
        # A standby cannot LISTEN: its waiters poll.
        self.signals = Signals() if replica else self.store.open_signals()

    def forget_kept(self) -> None:
        """Forget the streams' states and the recent events kept in memory (the store
        was set up again: its positions start over)."""
        self.states.clear()
        self.recent.clear()

    def close(self) -> None:
        self.signals.close()
        super().close()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    @property
    def store(self) -> EventStore:
        """The event store (the library's recorder, checked to be one when the log opens)."""
        return cast(EventStore, self.recorder)

    # Writing

    def record(
        self,
        drafts: Sequence[EventDraft],
        *,
        recorded_by: str,
        idempotency: IdempotentRequest | None = None,
    ) -> WriteOutcome:
        """Record all the drafts, in order, in one transaction, or none of them.

        Concurrent writes are committed together (group commit, `domain.group_commit`), each
        decided in arrival order and answered with its own outcome. When the database
        fails, the outcome is found out by the events' ids: recorded (answered as
        usual), certainly not recorded (NotRecorded), or unknown (OutcomeUnknown, when
        even that check fails). A write retried with its Idempotency-Key records once."""
        write = Write(drafts, recorded_by, idempotency)
        if idempotency is not None and idempotency.received is not None:
            write.submitted = min(write.submitted, idempotency.received)
        return self.commits.submit(write)

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

    def _commit_group(self, group: list[Write]) -> None:
        """Decide the group's writes in order and store the accepted ones in one
        transaction, answering every write."""
        attempt: Attempt | None = None
        for _ in range(MAX_WRITE_ATTEMPTS):
            if attempt is not None and self.failures.stored_after_all(attempt):
                return  # an earlier try committed before its connection was lost
            try:
                pending = answer_replays(
                    group, self.store.find_idempotencies, self.events_by_ids, self.fences
                )
                attempt = self._decide(pending)
            except StaleStreams as stale:
                self.states.forget(stale.stream_ids)
                attempt = None
                continue
            except PersistenceError as error:
                self.failures.before_commit(group, error)
                return
            if attempt is None:
                return  # every write answered: replayed, or refused
            # The store stamps and encodes the events inside its write lock (`stamper`);
            # what it is handed here only says which rows to insert.
            rows = [
                StoredEvent(e.originator_id, e.originator_version, "", b"") for e in attempt.events
            ]
            stamper = Stamper(attempt.events, self.mapper)
            extras = WriteExtras.of_group(attempt, stamper)
            try:
                with self._write_lock:
                    positions = self.recorder.insert_events(rows, extras=extras)
            except IntegrityError:
                # Another process wrote to these streams (StaleStreams) or stored one of
                # the keys first: decide again on what is stored now.
                self.states.forget(attempt.versions)
                continue
            except PersistenceError as error:
                self.states.forget(attempt.versions)
                self.failures.after_failure(attempt, error)
                return
            assert positions is not None and len(positions) == len(rows)
            attempt.answer(positions, stamper.stamped)
            attempt.chain(stamper.stamped, stamper.sizes())
            self.recent.add(map(RecordedEvent, positions, stamper.stamped))
            for state in attempt.states.values():
                self.states.put(state)
            return
        self.failures.not_recorded(
            [write for write in group if not write.answered],
            lambda write: WriteContention(write.drafts[0].key.name, MAX_WRITE_ATTEMPTS),
            None,
        )

    def _decide(self, writes: list[Write]) -> Attempt | None:
        """Each write decided, in order, on the streams as its predecessors in the group
        left them; a refused write is answered with its error and leaves them as they
        were. None when no write is left to store; StaleStreams when a refusal was
        decided on a kept state that another process has moved on since."""
        if not writes:
            return None
        drafts = (draft for write in writes for draft in write.drafts)
        committed, loaded = self.states.of(drafts, self.store.select_streams, self.mapper)
        attempt = Attempt(committed)
        refused: list[tuple[Write, DomainError]] = []
        for write in writes:
            try:
                attempt.add(write)
            except DomainError as error:
                refused.append((write, error))
        self._check_refusals(refused, committed, loaded)
        self._answer_refusals(refused)
        return attempt.ready()

    def _answer_refusals(self, refused: list[tuple[Write, DomainError]]) -> None:
        """Answer the refused writes with their refusals, but a keyed one whose key is
        stored by now as a replay: another process may have committed that very key's
        events between this group's key look-up and its reading of the streams, and the
        write was then refused on a state holding its own events. A key is committed
        in the transaction of its events, so a look-up made after the streams were read
        sees every key whose events they hold. Refusals only: no cost to a write that
        is accepted."""
        keyed = [write for write, _ in refused if write.request is not None]
        if keyed:
            answer_replays(keyed, self.store.find_idempotencies, self.events_by_ids, self.fences)
        for write, refusal in refused:
            if not write.answered:
                write.answer(error=refusal)

    def _check_refusals(
        self,
        refused: list[tuple[Write, DomainError]],
        committed: dict[uuid.UUID, KeptStream | StreamDamaged],
        loaded: set[uuid.UUID],
    ) -> None:
        """A write refused on a state kept in memory is refused only once the store says
        that state is current (the version check at commit only guards what is stored):
        else StaleStreams, and the group is decided again on what is stored."""
        kept = {draft.key.aggregate_id for write, _ in refused for draft in write.drafts} - loaded
        versions = {
            stream_id: (state.version, state.stored_size)
            for stream_id in kept
            if isinstance(state := committed[stream_id], KeptStream)
        }
        if not versions:
            return
        moved = self.store.stale_streams(versions)
        if moved:
            raise StaleStreams(moved)

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
