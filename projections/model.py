"""The status read model as pure data: what a projection stores, without any SQL.

A stream's valid-time timeline is a list of intervals (`valid_from` inclusive,
`valid_to` exclusive, `None` when open). Each time the stream's record changes (an
event, late or not, or a retraction), the intervals that no longer hold are closed
in transaction time (`tx_to`) and the new ones opened (`tx_from`), both at the
`recorded_at` of the event that changed the record. Nothing is rewritten in place,
so any read by `as_of` and `known_at` is a lookup of the one row whose valid interval
holds `as_of` and whose transaction interval holds `known_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import groupby
from typing import NamedTuple

from domain.rules import (
    NOTHING_YET,
    EventType,
    RuleBroken,
    Status,
    StreamState,
    TimelineEntry,
    apply,
    end_term,
    in_valid_time_order,
    next_end,
)
from domain.stream import SanctionsStream


class ValidInterval(NamedTuple):
    """One stretch of valid time over which a stream's status does not change.

    (Named tuples, not dataclasses: a rebuild hashes and compares millions of them.)
    """

    valid_from: date
    valid_to: date | None
    status: Status
    measures: tuple[str, ...]
    event_ids: tuple[str, ...]
    event_id: str
    in_force_since: date | None
    """Where the run of `active` intervals this one belongs to began (None unless active)."""
    expires: date | None = None
    """The next date on which the status changes by itself: the earliest pending term."""
    term_ended: bool = False
    """Whether the interval began where the term of `event_id` ended (not on its date)."""

    @property
    def since(self) -> date:
        """The effective date of the last change: where this interval begins."""
        return self.valid_from


class IntervalRow(NamedTuple):
    """A valid interval as known over a transaction-time interval."""

    stream: str
    interval: ValidInterval
    tx_from: datetime
    tx_to: datetime | None = None


def valid_intervals(stream: str, entries: Iterable[TimelineEntry]) -> list[ValidInterval]:
    """The consecutive intervals of a timeline, from its first effective event.

    Events effective on the same day fold into one interval. An entry that cannot
    take effect (possible only in a store altered behind the service's back) is
    passed over, so a projection never stops on it; `verify` reports such stores.
    """
    days: list[tuple[date, StreamState, str, bool]] = []

    def change(day: date, state: StreamState, event_id: str, term_ended: bool) -> None:
        if days and days[-1][0] == day:  # same day: one interval, named by the last change
            days.pop()
        days.append((day, state, event_id, term_ended))

    def end_terms(state: StreamState, day: date | None) -> StreamState:
        while (term := next_end(state, day or date.max)) is not None:
            state = end_term(state, term)
            change(term.expires, state, term.event_id, True)
        return state

    state = NOTHING_YET
    for day, same_day in groupby(in_valid_time_order(entries), key=lambda e: e.effective_date):
        state = end_terms(state, day)
        last_id = None
        for entry in same_day:
            try:
                state = apply(stream, state, entry)
            except RuleBroken:
                continue
            last_id = entry.event_id
        if last_id is not None:
            change(day, state, last_id, False)
    end_terms(state, None)
    intervals: list[ValidInterval] = []
    for index, (day, state, event_id, term_ended) in enumerate(days):
        intervals.append(
            ValidInterval(
                valid_from=day,
                valid_to=days[index + 1][0] if index + 1 < len(days) else None,
                status=state.status,
                measures=tuple(sorted(state.measures)),
                event_ids=state.event_ids,
                event_id=event_id,
                in_force_since=in_force_since(intervals[-1] if intervals else None, state, day),
                expires=state.expires,
                term_ended=term_ended,
            )
        )
    return intervals


def in_force_since(previous: ValidInterval | None, state: StreamState, day: date) -> date | None:
    """When the current run of `active` began, for a state that starts on `day` right
    after the `previous` interval (None unless active)."""
    if state.status != "active":
        return None
    if previous is not None and previous.in_force_since is not None:
        return previous.in_force_since
    return day


@dataclass
class StreamRecord:
    """What the projection keeps of one stream to recompute it on the next event."""

    stream: str
    entries: dict[str, TimelineEntry] = field(default_factory=dict)
    open_rows: list[IntervalRow] = field(default_factory=list)
    version: int = 0
    last_position: int = 0


@dataclass(frozen=True)
class Changes:
    """The row changes one event causes: rows to close (at `at`) and rows to open."""

    stream: str
    at: datetime
    closed: list[IntervalRow]
    opened: list[IntervalRow]
    added_entry: TimelineEntry | None
    retracted_id: str | None


def project(record: StreamRecord, event: SanctionsStream.Event, position: int) -> Changes:
    """Evolve `record` by one event, returning the rows it closes and opens."""
    return Changes(record.stream, *evolve(record, event, position))


Evolved = tuple[datetime, list[IntervalRow], list[IntervalRow], TimelineEntry | None, str | None]


def evolve(record: StreamRecord, event: SanctionsStream.Event, position: int) -> Evolved:
    """`project`'s work: when, the rows closed and opened, the entry added or retracted."""
    added: TimelineEntry | None = None
    retracted: str | None = None
    if isinstance(event, SanctionsStream.TakesEffect):
        added = event.entry()
        record.entries[added.event_id] = added
    elif isinstance(event, SanctionsStream.Retracted):
        retracted = str(event.retracts)
        record.entries.pop(retracted, None)
    record.version = event.originator_version
    record.last_position = position
    at = event.recorded_at
    tail = None if added is None else appended(record, added)
    if tail is not None:
        # Only the last rows change: the intervals before them are the very same.
        keep, new_tail = tail
        old_rows = record.open_rows[keep:]
        old_tail = [row.interval for row in old_rows]
        closed = [
            IntervalRow(row.stream, row.interval, row.tx_from, at)
            for row in old_rows
            if row.interval not in new_tail
        ]
        opened = [IntervalRow(record.stream, i, at) for i in new_tail if i not in old_tail]
        record.open_rows = [
            *record.open_rows[:keep],
            *(row for row in old_rows if row.interval in new_tail),
            *opened,
        ]
        return at, closed, opened, added, retracted
    wanted = valid_intervals(record.stream, record.entries.values())
    wanted_set = set(wanted)
    kept = {row.interval for row in record.open_rows}
    closed = [row._replace(tx_to=at) for row in record.open_rows if row.interval not in wanted_set]
    opened = [
        IntervalRow(record.stream, interval, at) for interval in wanted if interval not in kept
    ]
    record.open_rows = [row for row in record.open_rows if row.interval in wanted_set] + opened
    record.open_rows.sort(key=lambda row: row.interval.valid_from)
    return at, closed, opened, added, retracted


def appended(record: StreamRecord, added: TimelineEntry) -> tuple[int, list[ValidInterval]] | None:
    """The intervals after an entry that lands at the end of valid time (the usual
    case), from the last interval alone: how many open intervals stay as they are, and
    the ones after them. None when a full refold is needed."""
    rows = record.open_rows
    if (
        not rows
        or rows[-1].interval.expires is not None
        or added.expires is not None
        or added.type is EventType.RENEWED
        or added.effective_date < rows[-1].interval.valid_from  # before a term's end
    ):
        return None  # terms end between events: only the full fold places them
    if any(
        entry.effective_date > added.effective_date
        for entry in record.entries.values()
        if entry is not added
    ):
        return None
    last = rows[-1].interval
    state = StreamState(last.status, frozenset(last.measures), last.valid_from, last.event_ids)
    try:
        after = apply(record.stream, state, added)
    except RuleBroken:
        return len(rows), []  # passed over, as a full fold would
    same_day = added.effective_date == last.valid_from  # folds into one interval
    before = (rows[-2].interval if len(rows) > 1 else None) if same_day else last
    interval = ValidInterval(
        valid_from=added.effective_date,
        valid_to=None,
        status=after.status,
        measures=tuple(sorted(after.measures)),
        event_ids=after.event_ids,
        event_id=added.event_id,
        in_force_since=in_force_since(before, after, added.effective_date),
    )
    if same_day:
        return len(rows) - 1, [interval]
    bounded = ValidInterval(
        last.valid_from,
        added.effective_date,
        last.status,
        last.measures,
        last.event_ids,
        last.event_id,
        last.in_force_since,
        last.expires,
        last.term_ended,
    )
    return len(rows) - 1, [bounded, interval]


def current_interval(record: StreamRecord) -> ValidInterval | None:
    """The last interval of the stream as known now (the state after every event)."""
    return record.open_rows[-1].interval if record.open_rows else None


def replay_stream(
    stream: str, events: Iterable[tuple[SanctionsStream.Event, int]]
) -> tuple[StreamRecord, list[IntervalRow]]:
    """A stream's final record and every bitemporal row it ever had, closed or open,
    from its events (with their positions) in version order."""
    record = StreamRecord(stream)
    closed: list[IntervalRow] = []
    for event, position in events:
        closed.extend(evolve(record, event, position)[1])
    return record, closed + record.open_rows


def sorted_rows(rows: Sequence[IntervalRow]) -> list[IntervalRow]:
    return sorted(rows, key=lambda row: (row.stream, row.tx_from, row.interval.valid_from))
