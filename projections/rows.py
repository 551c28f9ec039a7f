"""Read-model rows to and from their stored columns: one encoding, used by every writer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, cast

from domain.hashing import format_timestamp
from domain.rules import EventType, IntervalStatus, Status, TimelineEntry
from projections.model import IntervalRow, StreamRecord, ValidInterval, current_interval
from projections.tables import OPEN_DATE, OPEN_TIME


@dataclass(frozen=True)
class StatusRow:
    """One stream's status as answered by a read."""

    stream: str
    status: Status
    measures: list[str]
    since: date | None
    in_force_since: date | None
    event_ids: list[str]


@dataclass(frozen=True)
class TimelineRow:
    """One valid-time interval of a stream as answered by a read."""

    stream: str
    valid_from: date
    valid_to: date | None
    status: IntervalStatus
    measures: list[str]
    event_id: str


@lru_cache(maxsize=4096)
def _json_of(values: tuple[str, ...]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def json_list(values: Sequence[str]) -> str:
    """A compact JSON array; measure sets and event-id lists repeat, so it is cached."""
    return _json_of(tuple(values))


def interval_params(row: IntervalRow) -> tuple[Any, ...]:
    """A `status_intervals` row's columns."""
    authority, country, commodity = row.stream.split("/")
    interval = row.interval
    return (
        row.stream,
        authority,
        country,
        commodity,
        interval.valid_from.isoformat(),
        OPEN_DATE if interval.valid_to is None else interval.valid_to.isoformat(),
        interval.status,
        json_list(interval.measures),
        json_list(interval.event_ids),
        interval.event_id,
        format_timestamp(row.tx_from),
        OPEN_TIME if row.tx_to is None else format_timestamp(row.tx_to),
        None if interval.in_force_since is None else interval.in_force_since.isoformat(),
    )


def entry_params(stream: str, entry: TimelineEntry) -> tuple[Any, ...]:
    """A `projected_entries` row's columns."""
    return (
        entry.event_id,
        stream,
        entry.version,
        entry.type.value,
        entry.effective_date.isoformat(),
        json_list(sorted(entry.measures)),
    )


def current_params(record: StreamRecord) -> tuple[Any, ...]:
    """A `current_status` row's columns."""
    authority, country, commodity = record.stream.split("/")
    interval = current_interval(record)
    return (
        record.stream,
        authority,
        country,
        commodity,
        record.version,
        record.last_position,
        "none" if interval is None else interval.status,
        json_list(() if interval is None else interval.measures),
        None if interval is None else interval.since.isoformat(),
        json_list(() if interval is None else interval.event_ids),
    )


def valid_to_of(value: str) -> date | None:
    return None if value == OPEN_DATE else date.fromisoformat(value)


def date_or_none(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def timestamp_of(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def interval_row_of(row: Any) -> IntervalRow:
    """A `status_intervals` row read back."""
    return IntervalRow(
        stream=row["stream"],
        interval=ValidInterval(
            valid_from=date.fromisoformat(row["valid_from"]),
            valid_to=valid_to_of(row["valid_to"]),
            status=cast(Status, row["status"]),
            measures=tuple(json.loads(row["measures"])),
            event_ids=tuple(json.loads(row["event_ids"])),
            event_id=row["event_id"],
            in_force_since=date_or_none(row["in_force_since"]),
        ),
        tx_from=timestamp_of(row["tx_from"]),
        tx_to=None if row["tx_to"] == OPEN_TIME else timestamp_of(row["tx_to"]),
    )


def status_row_of(row: Any) -> StatusRow:
    return StatusRow(
        stream=row["stream"],
        status=cast(Status, row["status"]),
        measures=json.loads(row["measures"]),
        since=date.fromisoformat(row["valid_from"]),
        in_force_since=date_or_none(row["in_force_since"]),
        event_ids=json.loads(row["event_ids"]),
    )


def timeline_row_of(row: Any) -> TimelineRow:
    return TimelineRow(
        stream=row["stream"],
        valid_from=date.fromisoformat(row["valid_from"]),
        valid_to=valid_to_of(row["valid_to"]),
        status=cast(IntervalStatus, row["status"]),
        measures=json.loads(row["measures"]),
        event_id=row["event_id"],
    )


def entry_of(row: Any) -> TimelineEntry:
    """A `projected_entries` row read back."""
    return TimelineEntry(
        row["event_id"],
        int(row["version"]),
        EventType(row["type"]),
        date.fromisoformat(row["effective_date"]),
        frozenset(json.loads(row["measures"])),
    )
