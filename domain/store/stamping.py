"""Recording times given inside the store's write lock."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from eventsourcing.persistence import Mapper, StoredEvent

from domain.stream import SanctionsStream


class Stamper:
    """Gives decided events their recording times, once the store holds its write lock:
    the first at the moment it is given, each next one a microsecond later, with the
    hash chain recomputed (an event's hash covers its `recorded_at`)."""

    def __init__(self, events: Sequence[SanctionsStream.Event], mapper: Mapper[uuid.UUID]):
        self.decided = list(events)
        self.stamped = self.decided
        self.stored: list[StoredEvent] = []
        self.mapper = mapper

    def __call__(self, first: datetime) -> tuple[list[StoredEvent], datetime]:
        last_hash: dict[str, str] = {}
        stamped = []
        at = first
        for number, event in enumerate(self.decided):
            at = first + timedelta(microseconds=number)
            prev_hash = last_hash.get(event.stream, event.prev_hash)
            times: dict[str, Any] = {"recorded_at": at, "timestamp": at, "prev_hash": prev_hash}
            times["hash"] = event.computed_hash(**times)
            event = dataclasses.replace(event, **times)
            last_hash[event.stream] = event.hash
            stamped.append(event)
        self.stamped = stamped
        self.stored = [self.mapper.to_stored_event(event) for event in stamped]
        return self.stored, at

    def sizes(self) -> list[tuple[uuid.UUID, int]]:
        """Each stored event's stream id and bytes, as last stamped."""
        return [
            (cast(uuid.UUID, record.originator_id), len(record.state)) for record in self.stored
        ]
