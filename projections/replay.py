"""A fresh replay of the whole log, in memory: the yardstick the stored read models meet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from domain.application import SanctionsLog
from domain.stream import SanctionsStream
from projections.model import InMemoryStatusModel

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
