"""Turning request input into domain values, with errors located in the request."""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime
from typing import TypeVar

from domain.errors import InvalidInput
from domain.keys import EventFilter, parse_authority, parse_commodity, parse_country
from domain.rules import EventType

T = TypeVar("T")


def located(location: tuple[str | int, ...], build: Callable[[], T]) -> T:
    """Run `build`, prefixing any InvalidInput's field with where it came from."""
    try:
        return build()
    except InvalidInput as error:
        prefix = "".join(f"{part}." for part in location)
        first, *rest = [InvalidInput(prefix + e.field, e.message) for e in error.every]
        raise InvalidInput(first.field, first.message, more=rest) from None


def collect(errors: list[InvalidInput], parse: Callable[[], T]) -> T | None:
    """Run `parse`, keeping its InvalidInput in `errors` (None then), so that every bad
    input of a request is named at once by `InvalidInput.raise_all(errors)`."""
    try:
        return parse()
    except InvalidInput as error:
        errors.extend(error.every)
        return None


def renamed(field: str, parse: Callable[[], T]) -> T:
    """Run `parse`, naming the query parameter `field` in any InvalidInput it raises."""
    try:
        return parse()
    except InvalidInput as error:
        raise InvalidInput(f"query.{field}", error.message) from None


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


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_POSITION = 2**63 - 1
"""The largest position either database can hold (a signed 64-bit integer)."""
POSITION = re.compile(r"[0-9]{1,19}")


def parse_position(value: str, field: str) -> int:
    """A position in the log written in ASCII digits; InvalidInput when it is not one."""
    text = value.strip()
    if not POSITION.fullmatch(text) or int(text) > MAX_POSITION:
        raise InvalidInput(field, f"must be a position: a whole number from 0 to {MAX_POSITION}")
    return int(text)


def iso_date(value: str) -> date:
    """A date written `YYYY-MM-DD`; ValueError saying, in words, what is wrong with it."""
    if not ISO_DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a date that exists: {_why_not(value)}") from None


def _why_not(value: str) -> str:
    year, month, day = (int(part) for part in value.split("-"))
    if year == 0:
        return "there is no year 0"
    if not 1 <= month <= 12:
        return f"there is no month {month:02d}"
    days = calendar.monthrange(year, month)[1]
    return f"{calendar.month_name[month]} {year} has {days} days, not {day}"


def parse_as_of(value: str | None, today: date) -> date:
    """`as_of`: a date `YYYY-MM-DD`, today (UTC) when absent or empty."""
    if value is None or not value.strip():
        return today
    try:
        return iso_date(value.strip())
    except ValueError as error:
        raise InvalidInput("query.as_of", str(error)) from None


def parse_known_at(value: str | None, now: datetime) -> datetime:
    """`known_at`: an RFC 3339 timestamp (UTC when no offset is given), now when absent.

    A bare date `YYYY-MM-DD` means 00:00 UTC that day (the answer echoes the moment
    it was given for). A moment after now is answered as now: the record cannot yet
    say what will be known later, and an answer must never change once given.
    """
    if value is None or not value.strip():
        return now
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    try:
        if len(text) == 10:
            moment = datetime.combine(iso_date(text), datetime.min.time())
        else:
            iso_date(text[:10])  # says which day does not exist, if one does not
            moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as error:
        reason = str(error) if "exist" in str(error) else "it is not an RFC 3339 timestamp"
        raise InvalidInput(
            "query.known_at", f"{value!r}: {reason} (e.g. 2026-01-15T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            "query.known_at", f"{value!r} falls outside years 1 to 9999 once its offset is applied"
        ) from None
    return min(moment, now)


def check_query_names(given: Iterable[str], allowed: Collection[str]) -> None:
    """InvalidInput naming every query parameter not in `allowed` (never silently
    ignored: `?asof=` would otherwise answer for today), with the close allowed name."""
    errors = []
    for name in given:
        if name in allowed:
            continue
        close = difflib.get_close_matches(name.lower().replace("-", "_"), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(allowed)) or "none"
        errors.append(
            InvalidInput(
                f"query.{name}", f"unknown query parameter{hint} (this route takes: {known})"
            )
        )
    InvalidInput.raise_all(errors)


def event_filter(
    authority: str | None,
    country: str | None,
    commodity: str | None,
    type: EventType | None = None,
) -> EventFilter:
    """Validated, normalised stream-key filters (InvalidInput naming every unknown code)."""
    errors: list[InvalidInput] = []
    where = EventFilter(
        authority=collect(errors, lambda: optional(parse_authority, authority, "authority")),
        country=collect(errors, lambda: optional(parse_country, country, "country")),
        commodity=collect(errors, lambda: optional(parse_commodity, commodity, "commodity")),
        type=type,
    )
    InvalidInput.raise_all(errors)
    return where
