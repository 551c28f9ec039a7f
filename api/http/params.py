"""Query, path and header parameters as the OpenAPI document states them, checked so.

Each parameter's schema is a pattern saying exactly which values are taken (see
`api.schemas.patterns`); its validator refuses any other with the service's own words where
the service has them. The service then parses the value as before: a blank filter or date is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Path, Query
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from api.schemas import patterns
from api.schemas.inputs import MAX_POSITION, parse_as_of, parse_known_at
from api.schemas.requests import (
    AUTHORITY_FORM,
    COMMODITY_FORM,
    COUNTRY_FORM,
    code,
    uuid_text,
)
from domain.catalogue import commodity_for_hs
from domain.errors import InvalidInput
from domain.keys import parse_authority, parse_commodity, parse_country

_MOMENT = patterns.compiled(patterns.blank_or(patterns.MOMENT))
_AT_THE_EDGE = patterns.compiled(patterns.MOMENT_AT_THE_EDGE)
_DATE = patterns.compiled(patterns.blank_or(patterns.DATE))


def _refused(message: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", "{reason}", {"reason": message})


def _blank_or(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """`check` for a filter that may be absent or blank (the same as absent)."""

    def optional(value: str | None) -> str | None:
        if value is None or not value.strip():
            return value
        check(value)
        return value

    return optional


def _string(pattern: str, description: str, **extra: Any) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "pattern": pattern, "description": description, **extra}
    )


def _filter(fragment: str, form: str, example: str) -> WithJsonSchema:
    return _string(
        patterns.blank_or(fragment),
        f"Only streams of {form}, in any case (blank: any)",
        examples=[example],
    )


def _in_path(fragment: str, form: str, example: str) -> WithJsonSchema:
    return _string(patterns.padded(fragment), f"{form}, in any case", examples=[example])


def _check_as_of(value: str | None) -> str | None:
    if value is None or _DATE.fullmatch(value):
        return value
    try:
        parse_as_of(value, datetime.now(UTC).date())
    except InvalidInput as error:
        raise _refused(error.message) from None
    raise _refused(f"{value!r} is not a date written YYYY-MM-DD")


def _check_known_at(value: str | None) -> str | None:
    if value is None:
        return None
    if _AT_THE_EDGE.match(value):
        raise _refused(
            f"{value!r}: on 0001-01-01 give an offset at or behind UTC, on 9999-12-31 one at or "
            "ahead of it, so that the moment stays within years 1 to 9999"
        )
    if _MOMENT.fullmatch(value):
        return value
    try:
        parse_known_at(value, datetime.now(UTC))
    except InvalidInput as error:
        raise _refused(error.message) from None
    raise _refused(
        f"{value!r} is not an RFC 3339 timestamp YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM] "
        "or a date YYYY-MM-DD"
    )


AUTHORITY = patterns.padded(patterns.AUTHORITY)
COUNTRY = patterns.padded(patterns.COUNTRY)
COMMODITY = patterns.padded(patterns.COMMODITY)

AuthorityFilter = Annotated[
    str | None,
    Query(),
    _filter(patterns.AUTHORITY, AUTHORITY_FORM, "US"),
    AfterValidator(_blank_or(code(parse_authority, AUTHORITY, AUTHORITY_FORM))),
]
CountryFilter = Annotated[
    str | None,
    Query(),
    _filter(patterns.COUNTRY, COUNTRY_FORM, "BY"),
    AfterValidator(_blank_or(code(parse_country, COUNTRY, COUNTRY_FORM))),
]
CommodityFilter = Annotated[
    str | None,
    Query(),
    _filter(patterns.COMMODITY, COMMODITY_FORM, "potash"),
    AfterValidator(_blank_or(code(parse_commodity, COMMODITY, COMMODITY_FORM))),
]
AsOf = Annotated[
    str | None,
    Query(),
    _string(
        patterns.blank_or(patterns.DATE),
        "Valid time: the date, YYYY-MM-DD (blank: today, UTC)",
        examples=["2023-06-01"],
    ),
    AfterValidator(_check_as_of),
]
KnownAt = Annotated[
    str | None,
    Query(),
    _string(
        patterns.blank_or(patterns.MOMENT),
        "Transaction time: an RFC 3339 timestamp (UTC when it has no offset) or a date "
        "(00:00 UTC); blank: now. A later moment is answered as now. On 0001-01-01 an offset "
        "ahead of UTC, and on 9999-12-31 one behind it, are refused.",
        examples=["2026-01-15T12:00:00Z"],
        **{"not": {"pattern": patterns.MOMENT_AT_THE_EDGE}},
    ),
    AfterValidator(_check_known_at),
]


def _check_hs(value: str) -> str:
    try:
        commodity_for_hs(value)
    except InvalidInput as error:
        raise _refused(error.message) from None
    return value


HsCode = Annotated[
    str,
    Query(),
    _string(
        patterns.padded(patterns.HS_CODE),
        "A Harmonized System code: 2 to 10 digits, a dot allowed between any two, starting "
        "with an HS prefix some catalogue commodity covers (GET /v1/commodities)",
        examples=["3104.20"],
    ),
    AfterValidator(_check_hs),
]
Origin = Annotated[
    str,
    Query(),
    _in_path(patterns.COUNTRY, "The country of origin: " + COUNTRY_FORM, "BY"),
    AfterValidator(code(parse_country, COUNTRY, COUNTRY_FORM)),
]
ShipmentDate = Annotated[
    str | None,
    Query(),
    _string(
        patterns.blank_or(patterns.DATE),
        "The shipment's date, YYYY-MM-DD (blank: today, UTC)",
        examples=["2025-12-15"],
    ),
    AfterValidator(_check_as_of),
]


AuthorityPath = Annotated[
    str,
    Path(),
    _in_path(patterns.AUTHORITY, "Who sanctions: " + AUTHORITY_FORM, "US"),
    AfterValidator(code(parse_authority, AUTHORITY, AUTHORITY_FORM)),
]
CountryPath = Annotated[
    str,
    Path(),
    _in_path(patterns.COUNTRY, "Whom: " + COUNTRY_FORM, "BY"),
    AfterValidator(code(parse_country, COUNTRY, COUNTRY_FORM)),
]
CommodityPath = Annotated[
    str,
    Path(),
    _in_path(patterns.COMMODITY, "What: " + COMMODITY_FORM, "potash"),
    AfterValidator(code(parse_commodity, COMMODITY, COMMODITY_FORM)),
]
EventIdPath = Annotated[UUID, Path(description="The event's id"), BeforeValidator(uuid_text)]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID"),
    _string(
        f"^{patterns.SPACE}*(?:{patterns.at_most(MAX_POSITION)}{patterns.SPACE}*)?$",
        "A reconnecting client: resume after this position (blank: ignored)",
    ),
]
EventIdQuery = Annotated[
    UUID,
    Query(description="The event's id", examples=["0b6f7c52-4d1e-4a8e-9f51-2f1d6a3c9e10"]),
    BeforeValidator(uuid_text),
]
TreeSize = Annotated[
    int | None,
    Query(ge=0, le=MAX_POSITION, description="A tree size (default: the latest checkpoint's)"),
]
