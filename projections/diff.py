"""What differs between two bitemporal points: which streams changed, and which events say why.

A point is a valid time and a transaction time, (`as_of`, `known_at`). Two dates at one
knowledge time answer "what changed in force between them"; one date at two knowledge
times answers "what did corrections and late reports change in what we knew". Both are
the same comparison: each stream's status row at one point against its row at the other,
each found by index in the bitemporal read model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from domain.keys import EventFilter
from domain.rules import RuleBroken, fold
from domain.stream import SanctionsStream
from projections.expiring import known_entries
from projections.rows import StatusRow
from projections.view import StatusView


@dataclass(frozen=True)
class Point:
    """A bitemporal point: what was in force on `as_of`, as recorded by `known_at`."""

    as_of: date
    known_at: datetime


@dataclass(frozen=True)
class StreamChange:
    """One stream whose status or measures differ between the two points (`None`: the
    stream had nothing effective at that point)."""

    stream: str
    before: StatusRow | None
    after: StatusRow | None


def changed_streams(
    view: StatusView, where: EventFilter, before: Point, after: Point
) -> list[StreamChange]:
    """Every matching stream whose status or measures differ between the points, by stream."""
    then = {row.stream: row for row in view.status(where, before.as_of, before.known_at)}
    now = {row.stream: row for row in view.status(where, after.as_of, after.known_at)}
    return [
        StreamChange(stream, then.get(stream), now.get(stream))
        for stream in sorted(then.keys() | now.keys())
        if _state(then.get(stream)) != _state(now.get(stream))
    ]


def _state(row: StatusRow | None) -> tuple[str, tuple[str, ...]]:
    return ("none", ()) if row is None else (row.status, tuple(sorted(row.measures)))


def accounting_events(
    events: Iterable[SanctionsStream.Event], before: Point, after: Point
) -> list[str]:
    """The ids of a stream's events (and retractions) that count at one point and not at
    the other, in the order given (the log's).

    An event counts at (D, T) when it was recorded by T, takes effect by D, and no
    retraction of it was recorded by T. A retraction counts when it was recorded by T
    and the event it retracts takes effect by D: it is what took that event away. An
    event whose term has ended by D (as known at T) at one point and not at the other
    is listed too: the end of its term accounts for the difference.
    """
    listed = list(events)
    effective = {
        str(event.event_id): event.effective_date
        for event in listed
        if isinstance(event, SanctionsStream.TakesEffect)
    }
    retracted_at: dict[str, list[datetime]] = {}
    for event in listed:
        if isinstance(event, SanctionsStream.Retracted):
            retracted_at.setdefault(str(event.retracts), []).append(event.recorded_at)

    def counts(event: SanctionsStream.Event, point: Point) -> bool:
        if event.recorded_at > point.known_at:
            return False
        if isinstance(event, SanctionsStream.Retracted):
            day = effective.get(str(event.retracts))
            return day is not None and day <= point.as_of
        if not isinstance(event, SanctionsStream.TakesEffect):
            return False
        return event.effective_date <= point.as_of and not any(
            at <= point.known_at for at in retracted_at.get(str(event.event_id), ())
        )

    ended = ended_terms(listed, before) ^ ended_terms(listed, after)
    return [
        str(event.event_id)
        for event in listed
        if counts(event, before) != counts(event, after) or str(event.event_id) in ended
    ]


def ended_terms(events: list[SanctionsStream.Event], point: Point) -> set[str]:
    """The events of one stream whose term has ended by `point.as_of`, as known then."""
    entries = known_entries(events, point.known_at)
    if not entries:
        return set()
    try:
        state = fold(events[0].stream, entries, point.as_of)
    except RuleBroken:  # a store altered behind the service's back: `verify` says so
        return set()
    return {event_id for event_id, _ in state.ended}
