"""Independent yardsticks for tests: the whole log replayed in memory, and row look-ups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from itertools import groupby
from typing import cast

from domain.application import SanctionsLog
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
