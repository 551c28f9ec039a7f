"""Group commit: the queue of writes, and a group decided write by write.

Writes that arrive while a transaction is being committed queue up; when it is done,
the first of them leads: it takes every queued write (up to `MAX_GROUP_EVENTS`
events), and the log decides them in arrival order and stores them in one
transaction, each answered with its own outcome. Under load, N concurrent writes
cost one commit (one fsync, one table lock) instead of N. No thread of its own: the
leader is one of the writing threads, and it hands the lead to the next queued
write as soon as its group is committed.

A group is decided on the streams' states the write side keeps (`KeptStream`); a
state another process has moved on, or the store changed behind the service's back,
is caught inside the write's transaction (the store compares each stream's version,
number of events and stored bytes with what the group was decided on) and the group
decided again. What is SQL about it lives in `domain.store`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.drafts import EventDraft
from domain.errors import (
    DomainError,
    IdempotencyConflict,
    OutcomeUnknown,
    StreamDamaged,
    VersionConflict,
)
from domain.kept_stream import KeptStream
from domain.recorded import IdempotencyRecord, IdempotentRequest, RecordedEvent, WriteOutcome
from domain.stream import SanctionsStream

MAX_GROUP_EVENTS = 2000
"""A group stops growing at this many events (a single larger write is a group alone)."""
UNSTAMPED = datetime.min.replace(tzinfo=UTC)
"""A decided event's recording time until the store stamps it, inside its write lock."""


@dataclass(eq=False)
class Write:
    """One caller's write, waiting in the queue for its outcome."""

    drafts: Sequence[EventDraft]
    recorded_by: str
    request: IdempotentRequest | None
    outcome: WriteOutcome | None = None
    error: BaseException | None = None
    answered: bool = False
    lead: bool = False
    """Woken to lead the next group."""
    wake: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)
    """When the attempt began (this process's monotonic clock): when its request
    reached the server, where the API says, else when it was handed to the log."""
    replaces: str | None = None
    """The fence this write's key record replaces (see `Fences`), as last looked up."""

    @property
    def size(self) -> int:
        return len(self.drafts)

    def answer(
        self, outcome: WriteOutcome | None = None, error: BaseException | None = None
    ) -> None:
        """Give the write its outcome (or the error it fails with) and wake its caller."""
        self.outcome, self.error, self.answered = outcome, error, True
        self.wake.set()

    def result(self) -> WriteOutcome:
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


CommitGroup = Callable[[list[Write]], None]
"""Decides and stores a group, answering each write. A second write with an
Idempotency-Key already in the group is kept for the next group (answered then as
the first one's replay)."""


class CommitQueue:
    """Writes queue here; one at a time leads a group through `commit_group`."""

    def __init__(self, commit_group: CommitGroup, max_events: int = MAX_GROUP_EVENTS) -> None:
        self.commit_group = commit_group
        self.max_events = max_events
        self._lock = threading.Lock()
        self._queue: deque[Write] = deque()
        self._leading = False
        self.groups = 0
        """Groups committed so far (for tests and metrics)."""

    def submit(self, write: Write) -> WriteOutcome:
        """Queue the write and block until it is answered (leading groups meanwhile
        whenever it is this write's turn)."""
        with self._lock:
            self._queue.append(write)
            if not self._leading:
                self._leading = write.lead = True
        while True:
            if write.lead:
                write.lead = False
                self._lead()
            if write.answered:
                return write.result()
            write.wake.wait()
            write.wake.clear()

    def _take(self) -> list[Write]:
        group: list[Write] = []
        events = 0
        while self._queue and (not group or events + self._queue[0].size <= self.max_events):
            write = self._queue.popleft()
            group.append(write)
            events += write.size
        return group

    def _lead(self) -> None:
        with self._lock:
            group, later = without_repeated_keys(self._take())
        try:
            self.commit_group(group)
        except BaseException as error:  # every write of the group hears of it
            for write in group:
                if not write.answered:
                    write.answer(error=error)
        finally:
            self.groups += 1
            with self._lock:
                self._queue.extendleft(reversed(later))
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.wake.set()
                else:
                    self._leading = False


class Attempt:
    """A group's writes decided on the streams' states: the events to store (and the
    stream versions they were decided on), and whom to answer."""

    def __init__(self, committed: dict[uuid.UUID, KeptStream | StreamDamaged]) -> None:
        self.committed = committed
        self.states: dict[uuid.UUID, KeptStream] = {}
        """Every stream the accepted writes touch, as they leave it (copies)."""
        self.versions: dict[uuid.UUID, tuple[int, int]] = {}
        """The version and stored size each of those streams had when the group was
        decided (what the store must still hold when the group is stored)."""
        self.decided: list[tuple[Write, list[SanctionsStream.Event]]] = []
        self.events: list[SanctionsStream.Event] = []

    def add(self, write: Write) -> None:
        """Decide one write on the streams as the writes before it left them; a
        DomainError (located at the draft) leaves them so."""
        touched: dict[uuid.UUID, KeptStream] = {}
        events: list[SanctionsStream.Event] = []
        for number, draft in enumerate(write.drafts):
            try:
                stream_id = draft.key.aggregate_id
                stream = touched.get(stream_id)
                if stream is None:
                    stream = touched[stream_id] = self._latest(stream_id).copy()
                if draft.expected_version is not None and draft.expected_version != stream.version:
                    raise VersionConflict(draft.key.name, draft.expected_version, stream.version)
                event = stream.record(
                    draft,
                    event_id=uuid.uuid4(),
                    recorded_at=UNSTAMPED,
                    recorded_by=write.recorded_by,
                    hashed=False,  # hashed once stamped
                )
            except DomainError as error:
                raise error.at(number, draft.key.name) from None
            events.append(event)
        for stream_id, stream in touched.items():
            stream.collect_events()  # stored below, in the order they were asked for
            latest = self._latest(stream_id)
            self.versions.setdefault(stream_id, (latest.version, latest.stored_size))
            self.states[stream_id] = stream
        self.decided.append((write, events))
        self.events.extend(events)

    def _latest(self, stream_id: uuid.UUID) -> KeptStream:
        state = self.states.get(stream_id) or self.committed[stream_id]
        if isinstance(state, StreamDamaged):
            raise StreamDamaged(state.stream or "", state.reason)
        return state

    def ready(self) -> Attempt | None:
        """This attempt, or None if no write is left to store."""
        return self if self.decided else None

    @property
    def keys(self) -> list[IdempotencyRecord]:
        """The Idempotency-Keys to store with the events, one per keyed write."""
        return [
            IdempotencyRecord(
                write.request.caller,
                write.request.key,
                write.request.request_hash,
                tuple(str(event.event_id) for event in events),
                replaces=write.replaces,
            )
            for write, events in self.decided
            if write.request is not None
        ]

    @property
    def event_ids(self) -> list[str]:
        return [str(event.event_id) for event in self.events]

    @property
    def first_id(self) -> str:
        return str(self.events[0].event_id)

    def answer(self, positions: Sequence[int], stored: Sequence[SanctionsStream.Event]) -> None:
        """Answer each write with its events as stored (in the order decided)."""
        start = 0
        for write, events in self.decided:
            end = start + len(events)
            recorded = [
                RecordedEvent(position, event)
                for position, event in zip(positions[start:end], stored[start:end], strict=True)
            ]
            write.answer(WriteOutcome(recorded, replayed=False))
            start = end

    def chain(
        self, stored: Sequence[SanctionsStream.Event], sizes: Iterable[tuple[uuid.UUID, int]]
    ) -> None:
        """Chain the streams' states on from the events as stored: their hashes, and the
        bytes each stored event (stream id, size) added."""
        for event in stored:
            self.states[event.originator_id].last_hash = event.hash
        for stream_id, size in sizes:
            self.states[stream_id].stored_size += size

    def fail(self, error: DomainError, cause: BaseException) -> None:
        error.__cause__ = cause
        for write, _ in self.decided:
            write.answer(error=error)


def without_repeated_keys(group: Iterable[Write]) -> tuple[list[Write], list[Write]]:
    """The writes to decide now, and those put off: a write whose (caller, key) an earlier
    write of the group has is answered once that one is stored (as its replay)."""
    now: list[Write] = []
    later: list[Write] = []
    seen: set[tuple[str, str]] = set()
    for write in group:
        request = write.request
        if request is None:
            now.append(write)
        elif (request.caller, request.key) in seen:
            later.append(write)
        else:
            seen.add((request.caller, request.key))
            now.append(write)
    return now, later


class Fences:
    """The fences this process has seen, and when: which writes may replace one.

    After the database fails during a keyed write, "nothing was recorded" is true of
    the key only if no other attempt with it — in this process or another, sent
    earlier by a client that gave up waiting — can still record it. So before saying
    so, the log stores a fence in the key's place (`EventStore.fence_idempotencies`):
    an attempt that would record the key afterwards finds its place taken (the key's
    unique row) and is decided again. An attempt may replace a fence only if it began
    after the fence was written: its process saw that very fence before the attempt
    began (its request reached the server; `Write.submitted`), by a look-up or by
    writing the fence itself. An attempt begun earlier records nothing and is
    answered that its outcome is unknown (some retry may yet record the key), never
    "not recorded". A retry whose process sees the fence for
    the first time is answered so too, and the next retry goes through: a fence costs
    at most one extra retry per process, and nothing on a write that meets none (the
    fence is found by the key look-up every keyed write makes anyway).

    A monotonic clock of one process orders the fence's sighting and the write's
    start; what is forgotten (past `limit` keys) only costs another retry."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def saw(self, caller: str, key: str, fence: str) -> None:
        """The fence is stored (committed) for the key, as of now."""
        with self._lock:
            seen = self._seen.get((caller, key))
            if seen is not None and seen[0] == fence:
                return  # the first sighting counts
            self._seen[(caller, key)] = (fence, time.monotonic())
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def may_replace(self, write: Write, fence: str) -> bool:
        """Whether `write` began after this process saw `fence` stored."""
        assert write.request is not None
        with self._lock:
            seen = self._seen.get((write.request.caller, write.request.key))
        return seen is not None and seen[0] == fence and seen[1] < write.submitted


def answer_replays(
    group: list[Write],
    find_keys: Callable[[list[tuple[str, str]]], dict[tuple[str, str], IdempotencyRecord]],
    events_by_ids: Callable[[Sequence[str]], list[RecordedEvent]],
    fences: Fences,
) -> list[Write]:
    """Answer the writes whose Idempotency-Key is stored (the earlier outcome, or
    IdempotencyConflict for another body: one look-up for the group), and those that
    began before a fence stored in their key's place (`Fences`); the writes still to
    decide."""
    keyed = [w.request for w in group if w.request is not None and not w.answered]
    stored = find_keys([(request.caller, request.key) for request in keyed])
    pending = []
    for write in group:
        if write.answered:
            continue
        request = write.request
        earlier = None if request is None else stored.get((request.caller, request.key))
        write.replaces = None
        if earlier is None or request is None:
            pending.append(write)
        elif earlier.fence is not None:
            if fences.may_replace(write, earlier.fence):
                write.replaces = earlier.fence
                pending.append(write)
            else:
                fences.saw(request.caller, request.key, earlier.fence)
                write.answer(error=OutcomeUnknown.superseded(request.key))
        elif earlier.request_hash != request.request_hash:
            write.answer(error=IdempotencyConflict(request.key))
        else:
            try:
                events = events_by_ids(earlier.event_ids)
            except DomainError as error:
                write.answer(error=error)
            else:
                write.answer(WriteOutcome(events, replayed=True))
    return pending
