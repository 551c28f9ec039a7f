"""A fresh replay of the whole log, in memory: the yardstick the stored read models meet."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from domain.application import SanctionsLog
from domain.persistence import EventFilter
from domain.stream import SanctionsStream
from projections.model import InMemoryStatusModel
from projections.view import KeyFilter, StatusViewMixin

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


def replay(log: SanctionsLog) -> InMemoryStatusModel:
    """The status read model as a fresh replay of the log builds it."""
    model = InMemoryStatusModel()
    for event, position in logged_events(log):
        model.apply(event, position)
    return model


@dataclass(frozen=True)
class ReplayStep:
    """One event of the log and its stream's status as it stood right after it."""

    position: int
    event: SanctionsStream.Event
    status: str
    measures: list[str]
    since: date | None


def replay_steps(
    log: SanctionsLog,
    view: StatusViewMixin,
    where: EventFilter = EventFilter(),
    known_at: datetime | None = None,
) -> Iterator[ReplayStep]:
    """Every matching event in position order, each with its stream's status as of the
    event's effective date (for a retraction, the retracted event's), known at the
    moment the event was recorded. Reads a page at a time: memory stays bounded."""
    position: int | None = None
    while True:
        page = log.select_events(where, after=position, limit=PAGE)
        if not page:
            return
        for recorded in page:
            event = recorded.event
            if known_at is None or event.recorded_at <= known_at:
                yield _step(log, view, recorded.position, event)
        position = page[-1].position


def _step(
    log: SanctionsLog, view: StatusViewMixin, position: int, event: SanctionsStream.Event
) -> ReplayStep:
    as_of = event.effective
    if as_of is None and isinstance(event, SanctionsStream.Retracted):
        as_of = log.event(event.retracts).event.effective
    key = event.key
    rows = (
        view.status(KeyFilter(key.authority, key.country, key.commodity), as_of, event.recorded_at)
        if as_of is not None
        else []
    )
    if not rows:
        return ReplayStep(position, event, "none", [], None)
    row = rows[0]
    return ReplayStep(position, event, row.status, row.measures, row.since)
