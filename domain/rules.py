"""The rules of a sanctions stream, as a fold over its events in valid-time order.

Every rule is checked against the whole timeline ordered by effective date, so a
late event (recorded today, effective years ago) is judged where it lands, and an
insertion that would invalidate a later event is refused, naming that event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
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
    RENEWED = "renewed"


TERMED = (EventType.IMPOSED, EventType.EXPANDED, EventType.EASED)
"""The types of event that may carry a term (`expires`) of their own."""

Status = Literal["none", "active", "lifted", "expired"]
IntervalStatus = Literal["active", "lifted", "expired"]
"""A validity interval's status: a timeline begins at its first effective event."""


@dataclass(frozen=True)
class TimelineEntry:
    """An event that takes effect: what the valid-time fold needs of it."""

    event_id: str
    version: int
    type: EventType
    effective_date: date
    measures: frozenset[str] = frozenset()
    expires: date | None = None
    renews: str | None = None

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
    terms: tuple[Term, ...] = ()
    """The terms pending: what ends by itself, and when, in the order they end."""
    ended: tuple[tuple[str, date], ...] = ()
    """The events whose term has ended, and on which date (to say so on a renewal)."""

    @property
    def expires(self) -> date | None:
        """The next date on which this state changes by itself (None: never)."""
        return self.terms[0].expires if self.terms else None


@dataclass(frozen=True)
class Term:
    """A pending end of what one event did: the run (`imposed`), the measures it added
    (`expanded`), or an easing (`eased`, whose measures come back)."""

    expires: date
    order: tuple[date, int]
    event_id: str
    type: EventType
    measures: frozenset[str]

    @property
    def key(self) -> tuple[date, tuple[date, int]]:
        return (self.expires, self.order)


NOTHING_YET = StreamState()


class RuleBroken(Exception):
    """Raised by `apply` with the reason, in the user's terms."""


def with_term(terms: tuple[Term, ...], term: Term | None) -> tuple[Term, ...]:
    kept = tuple(t for t in terms if term is None or t.event_id != term.event_id)
    return kept if term is None else tuple(sorted((*kept, term), key=lambda t: t.key))


def term_of(entry: TimelineEntry, measures: frozenset[str]) -> Term | None:
    if entry.expires is None:
        return None
    return Term(entry.expires, entry.order, entry.event_id, entry.type, measures)


def taken_over(terms: tuple[Term, ...], measures: frozenset[str]) -> tuple[Term, ...]:
    """The pending terms once `measures` no longer come from the expansions that added them
    (eased for good, or added again by another event): an expansion's term ends only what
    it still supplies, and a term left ending nothing is no longer pending."""
    kept = (
        t if t.type is not EventType.EXPANDED else replace(t, measures=t.measures - measures)
        for t in terms
    )
    return tuple(t for t in kept if t.measures or t.type is not EventType.EXPANDED)


def next_end(state: StreamState, day: date) -> Term | None:
    """The first pending term that has ended by `day` (inclusive: `expires` is exclusive)."""
    if state.terms and state.terms[0].expires <= day:
        return state.terms[0]
    return None


def end_term(state: StreamState, term: Term) -> StreamState:
    """The state from the date on which `term` ends."""
    ended = (*state.ended, (term.event_id, term.expires))
    rest = state.terms[1:]
    if term.type is EventType.EASED:
        measures = state.measures | term.measures
    else:
        measures = frozenset() if term.type is EventType.IMPOSED else state.measures - term.measures
    if not measures:  # the run ends by its term
        return StreamState("expired", frozenset(), term.expires, state.event_ids, (), ended)
    return StreamState("active", measures, term.expires, state.event_ids, rest, ended)


def advance(state: StreamState, day: date) -> StreamState:
    """The state on `day`, after every term that has ended by then."""
    while (term := next_end(state, day)) is not None:
        state = end_term(state, term)
    return state


def apply(stream: str, state: StreamState, entry: TimelineEntry) -> StreamState:
    """The state after `entry`, or RuleBroken saying why it cannot take effect."""
    day = entry.effective_date
    state = advance(state, day)
    ended = state.ended
    if entry.type is EventType.IMPOSED:
        check_is_not_active(stream, state, day)
        term = term_of(entry, entry.measures)
        terms: tuple[Term, ...] = () if term is None else (term,)
        return StreamState("active", entry.measures, day, (entry.event_id,), terms, ended)
    if entry.type is EventType.RENEWED:
        renewed = renewed_term(stream, state, entry)
        built = (*state.event_ids, entry.event_id)
        return StreamState("active", state.measures, day, built, renewed, ended)
    check_is_active(stream, state, day, entry.type)
    built = (*state.event_ids, entry.event_id)
    if entry.type is EventType.EXPANDED:
        check_adds_a_measure(stream, state, entry)
        added = entry.measures - state.measures
        terms = with_term(taken_over(state.terms, added), term_of(entry, added))
        return StreamState("active", state.measures | entry.measures, day, built, terms, ended)
    if entry.type is EventType.EASED:
        check_eases_only_measures_in_force(stream, state, entry)
        kept = state.terms if entry.expires else taken_over(state.terms, entry.measures)
        terms = with_term(kept, term_of(entry, entry.measures))
        return StreamState("active", state.measures - entry.measures, day, built, terms, ended)
    if entry.type is EventType.LIFTED:
        return StreamState("lifted", frozenset(), day, built, (), ended)
    raise RuleBroken(f"{entry.type} does not take effect on a date")


def renewed_term(stream: str, state: StreamState, entry: TimelineEntry) -> tuple[Term, ...]:
    """The pending terms once `entry` (a renewal) has moved the end of the one it renews."""
    day, expires = entry.effective_date, entry.expires
    assert expires is not None
    if entry.renews is None and state.status != "expired":
        check_is_active(stream, state, day, entry.type)
    target = entry.renews or state.event_ids[0]
    what = "the imposition that began the run" if entry.renews is None else "event"
    term = next((t for t in state.terms if t.event_id == target), None)
    if term is None:
        ended = dict(state.ended).get(target)
        if ended is not None:
            anew = "`imposed`" if target == state.event_ids[0] else "`expanded` or `eased`"
            raise RuleBroken(
                f"the term of {what} {target} ended on {ended} (it was not renewed "
                f"before then), so it cannot be renewed on {day}; record {anew} anew"
            )
        raise RuleBroken(
            f"{what} {target} has no term in force for {stream} on {day}, so there is "
            "nothing to renew"
        )
    if expires <= term.expires:
        raise RuleBroken(
            f"the term of event {target} already runs until {term.expires}, so a renewal "
            f"until {expires} would not extend it: `expires` must be later"
        )
    return with_term(
        state.terms, Term(expires, term.order, term.event_id, term.type, term.measures)
    )


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
    return state if as_of is None else advance(state, as_of)


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
