"""What the write side keeps in memory: the latest state of the streams it writes, so
a write's cost does not grow with its stream, and the events it committed lately, for
the projector in the same process."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from eventsourcing.persistence import Mapper, StoredEvent

from domain.drafts import EventDraft
from domain.errors import StreamDamaged
from domain.kept_stream import KeptStream
from domain.keys import StreamKey
from domain.recorded import RecordedEvent
from domain.stream import SanctionsStream

STREAM_STATES = 20_000
"""How many streams' states are kept in memory (least recently written ones go)."""
RECENT_EVENTS = 20_000
"""How many of the events this process committed last are kept for its projector."""


def fold_stream(
    mapper: Mapper[uuid.UUID], key: StreamKey, stored: Sequence[StoredEvent]
) -> KeptStream | StreamDamaged:
    """A stream's state from its stored events (empty if none), or StreamDamaged naming
    why they do not make one."""
    if not stored:
        return KeptStream.empty(key)
    try:
        state: KeptStream | None = None
        for record in stored:
            event = cast(SanctionsStream.Event, mapper.to_domain_event(record))
            if state is None:  # as the first event starts a stream: named by the event
                state = KeptStream.empty(event.key)
            event.mutate(state)
        assert state is not None
        state.stored_size = sum(len(record.state) for record in stored)
        return state
    except Exception as error:  # whatever the damage, never a 500: name it
        return StreamDamaged(key.name, type(error).__name__)


class Recent:
    """The events this process committed lately, by position: the projector in the
    same process takes them from here instead of reading them back, as long as they
    follow on from where it stands (another process's events, or a position a failed
    transaction used up, send it to the store)."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self.size = size
        self._events: OrderedDict[int, RecordedEvent] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, recorded: Iterable[RecordedEvent]) -> None:
        with self._lock:
            for event in recorded:
                self._events[event.position] = event
            while len(self._events) > self.size:
                self._events.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def following(self, position: int, limit: int) -> list[RecordedEvent]:
        """The events at position + 1, + 2, … for as long as they run on unbroken."""
        found: list[RecordedEvent] = []
        with self._lock:
            while len(found) < limit:
                event = self._events.get(position + 1 + len(found))
                if event is None:
                    break
                found.append(event)
        return found


class StreamStates:
    """The latest known state of recently written streams, least recently used dropped
    first. Every state is as committed; a write decides on copies."""

    def __init__(self, size: int = STREAM_STATES) -> None:
        self.size = size
        self._states: OrderedDict[uuid.UUID, KeptStream] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, stream_id: uuid.UUID) -> KeptStream | None:
        with self._lock:
            state = self._states.get(stream_id)
            if state is not None:
                self._states.move_to_end(stream_id)
            return state

    def put(self, state: KeptStream) -> None:
        with self._lock:
            self._states[state.id] = state
            self._states.move_to_end(state.id)
            while len(self._states) > self.size:
                self._states.popitem(last=False)

    def of(
        self,
        drafts: Iterable[EventDraft],
        select_streams: Callable[[list[uuid.UUID]], dict[uuid.UUID, list[StoredEvent]]],
        mapper: Mapper[uuid.UUID],
    ) -> tuple[dict[uuid.UUID, KeptStream | StreamDamaged], set[uuid.UUID]]:
        """The current state of every stream the drafts are for: kept here, or loaded (one
        query for all those not kept, by `select_streams`); StreamDamaged for one whose
        stored events do not make a stream. And which of them were loaded now."""
        keys = {draft.key.aggregate_id: draft.key for draft in drafts}
        states: dict[uuid.UUID, KeptStream | StreamDamaged] = {}
        for stream_id in keys:
            kept = self.get(stream_id)
            if kept is not None:
                states[stream_id] = kept
        missing = [stream_id for stream_id in keys if stream_id not in states]
        if missing:
            stored = select_streams(missing)
            for stream_id in missing:
                loaded = fold_stream(mapper, keys[stream_id], stored.get(stream_id, []))
                if isinstance(loaded, KeptStream):
                    self.put(loaded)
                states[stream_id] = loaded
        return states, set(missing)

    def forget(self, stream_ids: Iterable[uuid.UUID]) -> None:
        with self._lock:
            for stream_id in stream_ids:
                self._states.pop(stream_id, None)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
