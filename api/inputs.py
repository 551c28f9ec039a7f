"""Turning request input into domain values, with errors located in the request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TypeVar

from domain.errors import InvalidInput

T = TypeVar("T")


def located(location: tuple[str | int, ...], build: Callable[[], T]) -> T:
    """Run `build`, prefixing any InvalidInput's field with where it came from."""
    try:
        return build()
    except InvalidInput as error:
        field = ".".join(str(part) for part in (*location, error.field))
        raise InvalidInput(field, error.message) from None


def optional(parse: Callable[[str], str], value: str | None, field: str) -> str | None:
    """Parse a query parameter that may be absent (or given empty, which is the same)."""
    if value is None or not value.strip():
        return None
    return located(("query",), lambda: _parse_named(parse, value, field))


def _parse_named(parse: Callable[[str], str], value: str, field: str) -> str:
    try:
        return parse(value)
    except InvalidInput as error:
        raise InvalidInput(field, error.message) from None


def parse_as_of(value: str | None, today: date) -> date:
    """`as_of`: a date `YYYY-MM-DD`, today (UTC) when absent or empty."""
    if value is None or not value.strip():
        return today
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("query.as_of", f"{value!r} is not a date written YYYY-MM-DD") from None


def parse_known_at(value: str | None, now: datetime) -> datetime:
    """`known_at`: an RFC 3339 timestamp (UTC when no offset is given), now when absent.

    A bare date means the start of that day, UTC.

    A moment after now is answered as now: the record cannot yet say what will be
    known later, and an answer must never change once given.
    """
    if value is None or not value.strip():
        return now
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "query.known_at", f"{value!r} is not an RFC 3339 timestamp (e.g. 2026-01-15T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(moment.astimezone(UTC), now)
