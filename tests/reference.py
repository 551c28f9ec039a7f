"""Independent yardsticks for tests: the whole log replayed in memory, and row look-ups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from itertools import groupby
from typing import cast

from domain.application import SanctionsLog
from domain.rules import TERMED, EventType, TimelineEntry
from domain.stream import SanctionsStream
from projections.model import (
    IntervalRow,
    StreamRecord,
    ValidInterval,
    replay_stream,
    sorted_rows,
)

PAGE = 1000


def logged_events(log: SanctionsLog) -> Iterator[tuple[SanctionsStream.Event, int]]:
    """Every event of the log with its position, in position order, a page at a time."""
    position = 0
    while True:
        page = log.recorder.select_notifications(
            start=position, limit=PAGE, inclusive_of_start=False
        )
        if not page:
            return
        for notification in page:
            event = log.mapper.to_domain_event(notification)
            yield cast(SanctionsStream.Event, event), notification.id
        position = page[-1].id


def row_holds(row: IntervalRow, as_of: date, known_at: datetime) -> bool:
    """Whether the row answers a read for `as_of` known at `known_at`."""
    interval = row.interval
    return (
        interval.valid_from <= as_of
        and (interval.valid_to is None or as_of < interval.valid_to)
        and row.tx_from <= known_at
        and (row.tx_to is None or known_at < row.tx_to)
    )


class InMemoryStatusModel:
    """The whole bitemporal read model, built in memory from the log."""

    def __init__(self, records: dict[str, StreamRecord], rows: list[IntervalRow]) -> None:
        self.records = records
        self._rows = sorted_rows(rows)

    def rows(self) -> list[IntervalRow]:
        return self._rows

    def status(self, stream: str, as_of: date, known_at: datetime) -> ValidInterval | None:
        for row in self._rows:
            if row.stream == stream and row_holds(row, as_of, known_at):
                return row.interval
        return None


def replay(log: SanctionsLog) -> InMemoryStatusModel:
    """The status read model as a fresh replay of the log builds it."""
    by_stream = sorted(logged_events(log), key=lambda item: (item[0].stream, item[1]))
    records: dict[str, StreamRecord] = {}
    rows: list[IntervalRow] = []
    for stream, events in groupby(by_stream, key=lambda item: item[0].stream):
        records[stream], stream_rows = replay_stream(stream, list(events))
        rows.extend(stream_rows)
    return InMemoryStatusModel(records, rows)


# An independent fold of terms: not the service's pending-term queue, but a sweep over
# every happening (an event taking effect, a term ending) in date order, each term's end
# found from the renewals of it that took effect by the date asked about.

Happening = tuple[date, int, tuple[date, int], TimelineEntry]
"""(date, 0 for a term's end and 1 for an event, the event's order, the event)."""


def term_ends(entries: list[TimelineEntry], as_of: date) -> dict[str, date]:
    """Each termed event's end as renewed by `as_of` (a valid timeline only renews a term
    before it ends, and always to a later date, so the latest renewal wins)."""
    ends = {e.event_id: e.expires for e in entries if e.expires is not None and e.type in TERMED}
    by_order = sorted(entries, key=lambda e: e.order)
    for e in by_order:
        if e.type is EventType.RENEWED and e.effective_date <= as_of and e.expires is not None:
            target = e.renews
            if target is None:  # the last imposition before it
                target = next(
                    i.event_id
                    for i in reversed(by_order)
                    if i.type is EventType.IMPOSED and i.order < e.order
                )
            ends[target] = e.expires
    return {event_id: end for event_id, end in ends.items() if end is not None}


def reference_fold(
    entries: list[TimelineEntry], as_of: date
) -> tuple[str, list[str], date | None, list[str], date | None]:
    """Status, measures, since, event ids and next end of a valid timeline on `as_of`."""
    return sweep(entries, as_of)[0]


def ended_by(entries: list[TimelineEntry], as_of: date) -> set[str]:
    """The events whose term ended (while it was pending) by `as_of`."""
    return {event_id for _, event_id, _, _ in sweep(entries, as_of)[1]}


WHAT_ENDS = {EventType.IMPOSED: "run", EventType.EXPANDED: "measures", EventType.EASED: "easing"}
Ended = tuple[date, str, str, list[str]]
"""A term that ran out: its date, its event, what ends, the measures ending or returning."""


def reference_expiries(entries: list[TimelineEntry], start: date, end: date) -> list[Ended]:
    """Every term of a valid timeline that runs out in `[start, end)`, in the order the
    sweep meets them (by date, then the order of their events)."""
    return [ended for ended in sweep(entries, date.max)[1] if start <= ended[0] < end]


def sweep(
    entries: list[TimelineEntry], as_of: date
) -> tuple[tuple[str, list[str], date | None, list[str], date | None], list[Ended]]:
    ends = term_ends(entries, as_of)
    happenings: list[Happening] = [(e.effective_date, 1, e.order, e) for e in entries]
    happenings += [(ends[e.event_id], 0, e.order, e) for e in entries if e.event_id in ends]
    status, measures, since = "none", set[str](), None
    event_ids: list[str] = []
    run: set[str] = set()  # events of the current run
    added: dict[str, set[str]] = {}  # what each expansion added
    over: set[str] = set()  # terms ended
    ended: list[Ended] = []
    for day, kind, _, e in sorted(happenings, key=lambda h: h[:3]):
        if day > as_of:
            break
        if kind == 0:
            if e.event_id not in run or e.event_id in over or added.get(e.event_id) == set():
                continue  # not of this run, ended, or an expansion no longer supplying any
            over.add(e.event_id)
            before = set(measures)
            if e.type is EventType.IMPOSED:
                measures = set()
            elif e.type is EventType.EXPANDED:
                measures -= added[e.event_id]
            else:
                measures |= e.measures
            ended.append((day, e.event_id, WHAT_ENDS[e.type], sorted(before ^ measures)))
            since = day
            if not measures:
                status, run = "expired", set()
            continue
        since = day
        if e.type is EventType.IMPOSED:
            status, measures, run, event_ids = "active", set(e.measures), set(), []
        elif e.type is EventType.EXPANDED:
            new = set(e.measures) - measures
            for supplied in added.values():  # the measures it adds are its own from now on
                supplied -= new
            added[e.event_id] = new
            measures |= e.measures
        elif e.type is EventType.EASED:
            measures -= e.measures
            if e.expires is None:  # eased for good: no earlier expansion supplies them
                for supplied in added.values():
                    supplied -= e.measures
        elif e.type is EventType.LIFTED:
            status, measures, run = "lifted", set(), set()
        run.add(e.event_id)
        event_ids.append(e.event_id)
    pending = [ends[i] for i in run if i in ends and i not in over and added.get(i) != set()]
    expires = min(pending) if status == "active" and pending else None
    return (status, sorted(measures), since, event_ids, expires), ended


def happening_days(entries: list[TimelineEntry], as_of: date) -> set[date]:
    """Every date on or before `as_of` on which an event takes effect or a term of the
    run it belongs to would end (a superset of the days the answer changes)."""
    ends = term_ends(entries, as_of)
    days = {e.effective_date for e in entries} | set(ends.values())
    return {day for day in days if day <= as_of}
