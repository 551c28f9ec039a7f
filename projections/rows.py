"""Read-model rows to and from their stored columns: one encoding, used by every writer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
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
    expires: date | None = None


@dataclass(frozen=True)
class TimelineRow:
    """One valid-time interval of a stream as answered by a read."""

    stream: str
    valid_from: date
    valid_to: date | None
    status: IntervalStatus
    measures: list[str]
    event_id: str
    term_ended: bool = False


PLAIN = re.compile(r"[ !#-\[\]-~]*")
"""Printable ASCII but the quote and the backslash: text that `json.dumps` leaves as it is."""


@lru_cache(maxsize=4096)
def _json_of(values: tuple[str, ...]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def json_list(values: Sequence[str]) -> str:
    """A compact JSON array, as `json.dumps` writes it: strings that need no escaping
    (measure names, event ids) are joined; anything else is left to `json.dumps`."""
    try:
        if values and PLAIN.fullmatch("".join(values)):
            return '["' + '","'.join(values) + '"]'
    except TypeError:  # not all strings (a store altered behind the service's back)
        pass
    return _json_of(tuple(values))


def interval_params(row: IntervalRow) -> tuple[Any, ...]:
    """A `status_intervals` row's columns."""
    return intervals_params(row.stream, [row])[0]


def intervals_params(stream: str, rows: Iterable[IntervalRow]) -> list[tuple[Any, ...]]:
    """The columns of rows of one stream; each interval and moment is encoded once, though
    a rebuild writes most of them twice (open, then closed)."""
    authority, country, commodity = stream.split("/")
    heads: dict[int, tuple[Any, ...]] = {}
    moments: dict[datetime, str] = {}
    lists: dict[int, str] = {}  # a bounded interval shares its lists with the open one

    def listed(values: tuple[str, ...]) -> str:
        found = lists.get(id(values))
        if found is None:
            found = lists[id(values)] = json_list(values)
        return found

    params = []
    for row in rows:
        interval = row.interval
        head = heads.get(id(interval))
        if head is None:
            head = heads[id(interval)] = (
                stream,
                authority,
                country,
                commodity,
                interval.valid_from.isoformat(),
                OPEN_DATE if interval.valid_to is None else interval.valid_to.isoformat(),
                interval.status,
                listed(interval.measures),
                listed(interval.event_ids),
                interval.event_id,
            )
        tx_from = moments.get(row.tx_from) or moments.setdefault(
            row.tx_from, format_timestamp(row.tx_from)
        )
        tx_to = (
            OPEN_TIME
            if row.tx_to is None
            else moments.get(row.tx_to)
            or moments.setdefault(row.tx_to, format_timestamp(row.tx_to))
        )
        since = interval.in_force_since
        expires = interval.expires
        params.append(
            (
                *head,
                tx_from,
                tx_to,
                None if since is None else since.isoformat(),
                None if expires is None else expires.isoformat(),
                int(interval.term_ended),
            )
        )
    return params


def entry_params(stream: str, entry: TimelineEntry) -> tuple[Any, ...]:
    """A `projected_entries` row's columns."""
    return (
        entry.event_id,
        stream,
        entry.version,
        entry.type.value,
        entry.effective_date.isoformat(),
        json_list(sorted(entry.measures)),
        None if entry.expires is None else entry.expires.isoformat(),
        entry.renews,
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
            expires=date_or_none(row["expires"]),
            term_ended=bool(row["term_ended"]),
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
        expires=date_or_none(row["expires"]),
    )


def timeline_row_of(row: Any) -> TimelineRow:
    return TimelineRow(
        stream=row["stream"],
        valid_from=date.fromisoformat(row["valid_from"]),
        valid_to=valid_to_of(row["valid_to"]),
        status=cast(IntervalStatus, row["status"]),
        measures=json.loads(row["measures"]),
        event_id=row["event_id"],
        term_ended=bool(row["term_ended"]),
    )


def entry_of(row: Any) -> TimelineEntry:
    """A `projected_entries` row read back."""
    return TimelineEntry(
        row["event_id"],
        int(row["version"]),
        EventType(row["type"]),
        date.fromisoformat(row["effective_date"]),
        frozenset(json.loads(row["measures"])),
        date_or_none(row["expires"]),
        row["renews"],
    )
