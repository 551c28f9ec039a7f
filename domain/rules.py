"""The rules of a sanctions stream, as a fold over its events in valid-time order.

Every rule is checked against the whole timeline ordered by effective date, so a
late event (recorded today, effective years ago) is judged where it lands, and an
insertion that would invalidate a later event is refused, naming that event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Literal, get_args

from domain.errors import RuleViolation

Measure = Literal[
    "import_ban",
    "export_ban",
    "transit_ban",
    "asset_freeze",
    "financing_ban",
    "services_ban",
    "price_cap",
    "quota",
    "licence_requirement",
]
MEASURES: tuple[str, ...] = get_args(Measure)


class EventType(StrEnum):
    IMPOSED = "imposed"
    EXPANDED = "expanded"
    EASED = "eased"
    LIFTED = "lifted"
    RETRACTED = "retracted"


Status = Literal["none", "active", "lifted"]
IntervalStatus = Literal["active", "lifted"]
"""A validity interval's status: a timeline begins at its first effective event."""


@dataclass(frozen=True)
class TimelineEntry:
    """An event that takes effect: what the valid-time fold needs of it."""

    event_id: str
    version: int
    type: EventType
    effective_date: date
    measures: frozenset[str] = frozenset()

    @property
    def order(self) -> tuple[date, int]:
        """Valid-time order: effective date, then recording order within the stream."""
        return (self.effective_date, self.version)

    def describe(self) -> str:
        return f"event {self.event_id} ({self.type} effective {self.effective_date})"


@dataclass(frozen=True)
class StreamState:
    """A stream's status on some date: what is in force and which events built it."""

    status: Status = "none"
    measures: frozenset[str] = frozenset()
    since: date | None = None
    event_ids: tuple[str, ...] = field(default=())


NOTHING_YET = StreamState()


class RuleBroken(Exception):
    """Raised by `apply` with the reason, in the user's terms."""


def apply(stream: str, state: StreamState, entry: TimelineEntry) -> StreamState:
    """The state after `entry`, or RuleBroken saying why it cannot take effect."""
    day = entry.effective_date
    if entry.type is EventType.IMPOSED:
        check_is_not_active(stream, state, day)
        return StreamState("active", entry.measures, day, (entry.event_id,))
    check_is_active(stream, state, day, entry.type)
    built = (*state.event_ids, entry.event_id)
    if entry.type is EventType.EXPANDED:
        check_adds_a_measure(stream, state, entry)
        return StreamState("active", state.measures | entry.measures, day, built)
    if entry.type is EventType.EASED:
        check_eases_only_measures_in_force(stream, state, entry)
        return StreamState("active", state.measures - entry.measures, day, built)
    if entry.type is EventType.LIFTED:
        return StreamState("lifted", frozenset(), day, built)
    raise RuleBroken(f"{entry.type} does not take effect on a date")


def check_is_not_active(stream: str, state: StreamState, day: date) -> None:
    if state.status == "active":
        raise RuleBroken(
            f"{stream} is already active on {day} (since {state.since}), so it cannot "
            "be imposed again; record `expanded` to add measures"
        )


def check_is_active(stream: str, state: StreamState, day: date, verb: str) -> None:
    if state.status != "active":
        raise RuleBroken(f"{stream} is not active on {day}, so it cannot be {verb}")


def check_adds_a_measure(stream: str, state: StreamState, entry: TimelineEntry) -> None:
    if entry.measures <= state.measures:
        raise RuleBroken(
            f"every measure named ({', '.join(sorted(entry.measures))}) is already in "
            f"force for {stream} on {entry.effective_date}, so nothing would be expanded"
        )


def check_eases_only_measures_in_force(
    stream: str, state: StreamState, entry: TimelineEntry
) -> None:
    missing = entry.measures - state.measures
    if missing:
        raise RuleBroken(
            f"{', '.join(sorted(missing))} not in force for {stream} on "
            f"{entry.effective_date}, so it cannot be eased"
        )
    if not state.measures - entry.measures:
        raise RuleBroken(
            f"easing {', '.join(sorted(entry.measures))} would leave no measure in force "
            f"for {stream} on {entry.effective_date}; record `lifted` instead"
        )


def in_valid_time_order(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    return sorted(entries, key=lambda entry: entry.order)


def fold(stream: str, entries: Iterable[TimelineEntry], as_of: date | None = None) -> StreamState:
    """The state on `as_of` (or after every entry) of a valid timeline."""
    state = NOTHING_YET
    for entry in in_valid_time_order(entries):
        if as_of is not None and entry.effective_date > as_of:
            break
        state = apply(stream, state, entry)
    return state


def first_broken(stream: str, entries: Iterable[TimelineEntry]) -> tuple[TimelineEntry, str] | None:
    """The first entry, in valid-time order, that cannot take effect, and why."""
    state = NOTHING_YET
    for entry in in_valid_time_order(entries):
        try:
            state = apply(stream, state, entry)
        except RuleBroken as broken:
            return entry, str(broken)
    return None


def check_can_insert(stream: str, entries: Sequence[TimelineEntry], new: TimelineEntry) -> None:
    """RuleViolation if `new` cannot take effect, or would break a later event."""
    broken = first_broken(stream, [*entries, new])
    if broken is None:
        return
    entry, reason = broken
    if entry is new:
        raise RuleViolation(reason)
    raise RuleViolation(
        f"recording this {new.type} event effective {new.effective_date} would break "
        f"{entry.describe()}: {reason}",
        breaks_event_id=entry.event_id,
    )


def check_can_remove(stream: str, entries: Sequence[TimelineEntry], target: TimelineEntry) -> None:
    """RuleViolation if a remaining event depends on `target` (retract it first)."""
    remaining = [entry for entry in entries if entry.event_id != target.event_id]
    broken = first_broken(stream, remaining)
    if broken is None:
        return
    entry, reason = broken
    raise RuleViolation(
        f"{entry.describe()} depends on {target.describe()}; retract it first "
        f"(without the target: {reason})",
        breaks_event_id=entry.event_id,
    )
