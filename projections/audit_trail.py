"""The audit trail: the log event by event, each with its stream's status right after it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from domain.application import SanctionsLog
from domain.keys import EventFilter
from domain.rules import Status
from domain.stream import SanctionsStream
from projections.view import StatusView


@dataclass(frozen=True)
class ReplayStep:
    """One event of the log and its stream's status as it stood right after it."""

    position: int
    event: SanctionsStream.Event
    status: Status
    measures: list[str]
    since: date | None
    expires: date | None = None


def replay_steps(
    log: SanctionsLog,
    view: StatusView,
    where: EventFilter = EventFilter(),
    known_at: datetime | None = None,
) -> Iterator[ReplayStep]:
    """Every matching event in position order, each with its stream's status as of the
    event's effective date (for a retraction, the retracted event's), known at the
    moment the event was recorded. Reads a page at a time: memory stays bounded."""
    for recorded in log.read(where):
        event = recorded.event
        if known_at is None or event.recorded_at <= known_at:
            yield step_at(log, view, recorded.position, event)


def step_at(
    log: SanctionsLog, view: StatusView, position: int, event: SanctionsStream.Event
) -> ReplayStep:
    """One event and its stream's status as of its effective date (a retraction: the
    retracted event's), known at its recording (the read models must have projected it)."""
    as_of = event.effective
    if as_of is None and isinstance(event, SanctionsStream.Retracted):
        as_of = log.event(event.retracts).event.effective
    rows = (
        []
        if as_of is None
        else view.status(EventFilter.of_stream(event.key), as_of, event.recorded_at)
    )
    if not rows:
        return ReplayStep(position, event, "none", [], None)
    row = rows[0]
    return ReplayStep(position, event, row.status, row.measures, row.since, row.expires)
