"""The answers to status and timeline reads: one implementation for REST and the CLI."""

from __future__ import annotations

from datetime import date, datetime

from api.inputs import optional
from api.schemas import IntervalOut, StatusOut, StatusResult, TimelineOut
from domain.hashing import format_timestamp
from domain.keys import StreamKey, parse_authority, parse_commodity, parse_country
from domain.persistence import EventFilter
from domain.rules import EventType
from projections.view import KeyFilter, StatusViewMixin


def key_filter(authority: str | None, country: str | None, commodity: str | None) -> KeyFilter:
    """Validated, normalised stream-key filters (InvalidInput on an unknown code)."""
    return KeyFilter(
        authority=optional(parse_authority, authority, "authority"),
        country=optional(parse_country, country, "country"),
        commodity=optional(parse_commodity, commodity, "commodity"),
    )


def event_filter(
    authority: str | None, country: str | None, commodity: str | None, type: EventType | None = None
) -> EventFilter:
    """Validated key filters (as for status reads), plus an event type."""
    keys = key_filter(authority, country, commodity)
    return EventFilter(
        authority=keys.authority,
        country=keys.country,
        commodity=keys.commodity,
        type=None if type is None else type.value,
    )


def key_fields(stream: str) -> dict[str, str]:
    key = StreamKey.from_name(stream)
    return {
        "stream": key.name,
        "authority": key.authority,
        "country": key.country,
        "commodity": key.commodity,
    }


def status_answer(
    view: StatusViewMixin, where: KeyFilter, as_of: date, known_at: datetime
) -> StatusOut:
    """Each matching stream with anything effective by `as_of`, as recorded by `known_at`;
    with all three keys given and nothing effective, one row with status `none`."""
    results = [
        StatusResult(
            **key_fields(row.stream),
            status=row.status,  # type: ignore[arg-type]
            measures=row.measures,
            since=row.since,
            event_ids=row.event_ids,
        )
        for row in view.status(where, as_of, known_at)
    ]
    if not results and where.is_one_stream:
        key = StreamKey(where.authority or "", where.country or "", where.commodity or "")
        results = [
            StatusResult(
                **key_fields(key.name), status="none", measures=[], since=None, event_ids=[]
            )
        ]
    return StatusOut(as_of=as_of, known_at=format_timestamp(known_at), results=results)


def timeline_answer(view: StatusViewMixin, where: KeyFilter, known_at: datetime) -> TimelineOut:
    """The consecutive validity intervals of each matching stream, as recorded by `known_at`."""
    return TimelineOut(
        known_at=format_timestamp(known_at),
        intervals=[
            IntervalOut(
                **key_fields(row.stream),
                valid_from=row.valid_from,
                valid_to=row.valid_to,
                status=row.status,  # type: ignore[arg-type]
                measures=row.measures,
                event_id=row.event_id,
            )
            for row in view.timeline(where, known_at)
        ],
    )
