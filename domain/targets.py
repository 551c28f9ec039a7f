"""Events that name an earlier event of their stream: which one a retraction or a
renewal may name. (What the named event's removal or new end would do to the timeline
is the fold's to say: `domain.rules`.)"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Protocol

from domain.errors import RuleViolation
from domain.keys import StreamKey
from domain.rules import TERMED, EventType, TimelineEntry, check_can_remove


class KnownEvents(Protocol):
    """What a stream knows of its events: each one's type, which are retracted, and the
    entries of its timeline (those that take effect, not retracted)."""

    @property
    def key(self) -> StreamKey: ...

    @property
    def types(self) -> Mapping[str, EventType]: ...

    @property
    def retracted(self) -> Set[str]: ...

    @property
    def entries(self) -> Mapping[str, TimelineEntry]: ...


def check_retraction_target(known: KnownEvents, target: str) -> None:
    """RuleViolation unless `target` is an event of the stream that may be retracted: not
    a retraction, not retracted already, and no remaining event depends on it."""
    stream, kind = known.key.name, known.types.get(target)
    if kind is None:
        raise RuleViolation(f"{stream} has no event {target} to retract")
    if kind is EventType.RETRACTED:
        raise RuleViolation(
            f"event {target} is itself a retraction and cannot be retracted; "
            "record the retracted event again instead"
        )
    if target in known.retracted:
        raise RuleViolation(f"event {target} of {stream} is already retracted")
    check_can_remove(stream, list(known.entries.values()), known.entries[target])


def check_renewal_target(known: KnownEvents, target: str) -> None:
    """RuleViolation unless `target` is an event of the stream with a term of its own."""
    stream, kind = known.key.name, known.types.get(target)
    if kind is None:
        raise RuleViolation(f"{stream} has no event {target} to renew")
    if target in known.retracted:
        raise RuleViolation(f"event {target} of {stream} is retracted, so it cannot be renewed")
    if kind not in TERMED:
        raise RuleViolation(
            f"event {target} is {kind}, which has no term; a renewal names the "
            "imposed, expanded or eased event whose term it extends"
        )
    if known.entries[target].expires is None:
        raise RuleViolation(f"event {target} ({kind}) has no term, so there is nothing to renew")
