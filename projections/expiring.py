"""What ends by itself in a window of valid time: every term that runs out, as known at a moment.

The bitemporal read model says which streams have a term running out in the window (an
interval whose next end, `expires`, falls in it, as known at the moment). Several terms may
end on one day, and an end may fall on the day of an event, so one interval does not name
every end: each such stream's timeline, as known at the moment, is folded by the rules, and
every term that runs out while it is pending is noted as the fold passes it. A term renewed
before its end runs out at its renewed date; one cut off by a lift never runs out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from domain import rules
from domain.keys import EventFilter
from domain.rules import EventType, StreamState, TimelineEntry
from domain.stream import SanctionsStream
from projections.view import StatusView

Ends = Literal["run", "measures", "easing"]
ENDS: dict[EventType, Ends] = {
    EventType.IMPOSED: "run",  # the stream becomes `expired`
    EventType.EXPANDED: "measures",  # the measures the expansion added end
    EventType.EASED: "easing",  # the eased measures are in force again
}


@dataclass(frozen=True)
class Expiry:
    """A term that runs out: on `date` (the first day without it), what `event_id` did ends."""

    stream: str
    date: date
    event_id: str
    ends: Ends
    measures: list[str]
    """The measures that end (`run`, `measures`) or return (`easing`) on `date`."""


def known_entries(
    events: Iterable[SanctionsStream.Event], known_at: datetime
) -> list[TimelineEntry]:
    """The entries of one stream's events that count as known at `known_at`: recorded by
    then, and not retracted by a retraction recorded by then."""
    known = [event for event in events if event.recorded_at <= known_at]
    retracted = {
        str(event.retracts) for event in known if isinstance(event, SanctionsStream.Retracted)
    }
    return [
        event.entry()
        for event in known
        if isinstance(event, SanctionsStream.TakesEffect) and str(event.event_id) not in retracted
    ]


def term_ends(stream: str, entries: Iterable[TimelineEntry]) -> list[Expiry]:
    """Every term of a timeline that runs out while pending, in the order they run out.

    An entry that cannot take effect (only in a store altered behind the service's back)
    is passed over, as the read models pass it over."""
    found: list[Expiry] = []

    def run_out(state: StreamState, day: date) -> StreamState:
        while (term := rules.next_end(state, day)) is not None:
            after = rules.end_term(state, term)
            changed = sorted(state.measures ^ after.measures)
            found.append(Expiry(stream, term.expires, term.event_id, ENDS[term.type], changed))
            state = after
        return state

    state = rules.NOTHING_YET
    for entry in rules.in_valid_time_order(entries):
        state = run_out(state, entry.effective_date)
        try:
            state = rules.apply(stream, state, entry)
        except rules.RuleBroken:
            continue
    run_out(state, date.max)
    return found


def expiries(
    view: StatusView,
    events_of: Callable[[list[str]], dict[str, list[SanctionsStream.Event]]],
    where: EventFilter,
    window: tuple[date, date],
    known_at: datetime,
) -> list[Expiry]:
    """Every term of the matching streams that runs out in `window` (`[from, to)`), as known
    at `known_at`, by date and then stream (one stream's ends of one day in the fold's order)."""
    start, end = window
    streams = view.streams_with_ends(where, start, end, known_at)
    events = events_of(streams)
    found = [
        expiry
        for stream in streams
        for expiry in term_ends(stream, known_entries(events[stream], known_at))
        if start <= expiry.date < end
    ]
    return sorted(found, key=lambda expiry: (expiry.date, expiry.stream))
