"""Turning request input into domain values, with errors located in the request."""

from __future__ import annotations

from collections.abc import Callable
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
    """Parse a query parameter that may be absent."""
    if value is None:
        return None
    return located(("query",), lambda: _parse_named(parse, value, field))


def _parse_named(parse: Callable[[str], str], value: str, field: str) -> str:
    try:
        return parse(value)
    except InvalidInput as error:
        raise InvalidInput(field, error.message) from None
