"""Each question the service answers, declared once: a frozen query object per question.

The HTTP face takes one as its query parameters (FastAPI reads the fields, their documented
patterns and their checks, from the model: `Annotated[StatusQuery, Query()]`), the CLI builds one
from its options with `of` (unchecked: the service parses the raw values and names every bad one
in its own words), the service takes it, and the remote client sends it as the query string of
its `PATH`. A new filter is a field here (and how the service reads it, `where`), plus the CLI
option that fills it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from api.schemas import patterns
from api.schemas.answers import EventPage, ReplayOut, StatusOut, TimelineOut
from api.schemas.audit import ConsistencyOut, InclusionOut
from api.schemas.changes import DiffOut, ExpiringOut, ScreenOut
from api.schemas.inputs import MAX_POSITION, event_filter, parse_as_of, parse_known_at
from api.schemas.receipts import EnvelopeOut
from api.schemas.requests import (
    AUTHORITY,
    AUTHORITY_FORM,
    COMMODITY,
    COMMODITY_FORM,
    COUNTRY,
    COUNTRY_FORM,
    code,
    uuid_text,
)
from domain.catalogue import commodity_for_hs
from domain.errors import InvalidInput
from domain.keys import EventFilter, parse_authority, parse_commodity, parse_country
from domain.rules import EventType

_MOMENT = patterns.compiled(patterns.blank_or(patterns.MOMENT))
_AT_THE_EDGE = patterns.compiled(patterns.MOMENT_AT_THE_EDGE)
_DATE = patterns.compiled(patterns.blank_or(patterns.DATE))


def refused(message: str) -> PydanticCustomError:
    """A validation error whose message is the service's own words."""
    return PydanticCustomError("value_error", "{reason}", {"reason": message})


def string_schema(pattern: str, description: str, **extra: Any) -> WithJsonSchema:
    """The documented form of a string parameter: exactly the pattern it is checked against."""
    return WithJsonSchema(
        {"type": "string", "pattern": pattern, "description": description, **extra}
    )


def _blank_or(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """`check` for a filter that may be absent or blank (the same as absent)."""

    def optional(value: str | None) -> str | None:
        if value is None or not value.strip():
            return value
        check(value)
        return value

    return optional


def _filter(fragment: str, form: str, example: str) -> WithJsonSchema:
    return string_schema(
        patterns.blank_or(fragment),
        f"Only streams of {form}, in any case (blank: any)",
        examples=[example],
    )


def _check_as_of(value: str | None) -> str | None:
    if value is None or _DATE.fullmatch(value):
        return value
    try:
        parse_as_of(value, datetime.now(UTC).date())
    except InvalidInput as error:
        raise refused(error.message) from None
    raise refused(f"{value!r} is not a date written YYYY-MM-DD")


def _check_known_at(value: str | None) -> str | None:
    if value is None:
        return None
    if _AT_THE_EDGE.match(value):
        raise refused(
            f"{value!r}: on 0001-01-01 give an offset at or behind UTC, on 9999-12-31 one at or "
            "ahead of it, so that the moment stays within years 1 to 9999"
        )
    if _MOMENT.fullmatch(value):
        return value
    try:
        parse_known_at(value, datetime.now(UTC))
    except InvalidInput as error:
        raise refused(error.message) from None
    raise refused(
        f"{value!r} is not an RFC 3339 timestamp YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM] "
        "or a date YYYY-MM-DD"
    )


def _check_hs(value: str) -> str:
    try:
        commodity_for_hs(value)
    except InvalidInput as error:
        raise refused(error.message) from None
    return value


AuthorityFilter = Annotated[
    str | None,
    _filter(patterns.AUTHORITY, AUTHORITY_FORM, "US"),
    AfterValidator(_blank_or(code(parse_authority, AUTHORITY, AUTHORITY_FORM))),
]
CountryFilter = Annotated[
    str | None,
    _filter(patterns.COUNTRY, COUNTRY_FORM, "BY"),
    AfterValidator(_blank_or(code(parse_country, COUNTRY, COUNTRY_FORM))),
]
CommodityFilter = Annotated[
    str | None,
    _filter(patterns.COMMODITY, COMMODITY_FORM, "potash"),
    AfterValidator(_blank_or(code(parse_commodity, COMMODITY, COMMODITY_FORM))),
]
AsOf = Annotated[
    str | None,
    string_schema(
        patterns.blank_or(patterns.DATE),
        "Valid time: the date, YYYY-MM-DD (blank: today, UTC)",
        examples=["2023-06-01"],
    ),
    AfterValidator(_check_as_of),
]
KnownAt = Annotated[
    str | None,
    string_schema(
        patterns.blank_or(patterns.MOMENT),
        "Transaction time: an RFC 3339 timestamp (UTC when it has no offset) or a date "
        "(00:00 UTC); blank: now. A later moment is answered as now. On 0001-01-01 an offset "
        "ahead of UTC, and on 9999-12-31 one behind it, are refused.",
        examples=["2026-01-15T12:00:00Z"],
        **{"not": {"pattern": patterns.MOMENT_AT_THE_EDGE}},
    ),
    AfterValidator(_check_known_at),
]
HsCode = Annotated[
    str,
    string_schema(
        patterns.padded(patterns.HS_CODE),
        "A Harmonized System code: 2 to 10 digits, a dot allowed between any two, starting "
        "with an HS prefix some catalogue commodity covers (GET /v1/commodities)",
        examples=["3104.20"],
    ),
    AfterValidator(_check_hs),
]
Origin = Annotated[
    str,
    string_schema(
        patterns.padded(patterns.COUNTRY),
        "The country of origin: " + COUNTRY_FORM + ", in any case",
        examples=["BY"],
    ),
    AfterValidator(code(parse_country, COUNTRY, COUNTRY_FORM)),
]
ShipmentDate = Annotated[
    str | None,
    string_schema(
        patterns.blank_or(patterns.DATE),
        "The shipment's date, YYYY-MM-DD (blank: today, UTC)",
        examples=["2025-12-15"],
    ),
    AfterValidator(_check_as_of),
]


class Question(BaseModel):
    """A question as asked: raw values, parsed by the service (`where`, `parse_as_of`, …)."""

    model_config = ConfigDict(frozen=True)

    PATH: ClassVar[str]
    """Where the REST API answers it."""
    ANSWER: ClassVar[type[BaseModel]]
    """What it is answered with."""

    @classmethod
    def of(cls, **values: Any) -> Self:
        """The question as a user typed it: unchecked, so the service names every bad value
        in its own words (the HTTP face checks the parameters before)."""
        return cls.model_construct(**values)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """The question a command asks: its options named as the fields (`locals()`), taken
        unchecked as `of` does."""
        return cls.of(**{name: options[name] for name in cls.model_fields if name in options})

    def params(self) -> dict[str, str]:
        """The query string asking it of a server: every given value."""
        return {
            name: value.value if isinstance(value, EventType) else str(value)
            for name, value in self.model_dump(by_alias=True).items()
            if value is not None
        }


class StreamQuestion(Question):
    """A question about the streams a key filter picks (any key left out: all)."""

    country: CountryFilter = None
    commodity: CommodityFilter = None
    authority: AuthorityFilter = None

    def where(self) -> EventFilter:
        """The streams asked about (InvalidInput naming every unknown code)."""
        return event_filter(self.authority, self.country, self.commodity)


class StatusQuery(StreamQuestion):
    """What was in force on `as_of` (valid time), as recorded by `known_at` (knowledge time)."""

    PATH = "/v1/status"
    ANSWER = StatusOut

    as_of: AsOf = None
    known_at: KnownAt = None


class TimelineQuery(StreamQuestion):
    """Each stream's consecutive validity intervals, as recorded by `known_at`."""

    PATH = "/v1/timeline"
    ANSWER = TimelineOut

    known_at: KnownAt = None


class ReplayQuery(StreamQuestion):
    """Every matching event in log order with its stream's status after it."""

    PATH = "/v1/audit/replay"
    ANSWER = ReplayOut

    known_at: KnownAt = None


class DiffQuery(StreamQuestion):
    """What differs between the points (`from_as_of`, `from_known_at`) and (`to_as_of`,
    `to_known_at`)."""

    PATH = "/v1/status/diff"
    ANSWER = DiffOut

    from_as_of: AsOf = None
    from_known_at: KnownAt = None
    to_as_of: AsOf = None
    to_known_at: KnownAt = None


def _day(description: str, example: str) -> WithJsonSchema:
    """The documented form of a date parameter (blank: its default)."""
    return string_schema(patterns.blank_or(patterns.DATE), description, examples=[example])


WindowStart = Annotated[
    str | None,
    _day("The first date of the window, YYYY-MM-DD (blank: today, UTC)", "2027-01-01"),
    AfterValidator(_check_as_of),
]
WindowEnd = Annotated[
    str | None,
    _day(
        "The date after the window (not in it), YYYY-MM-DD, not before `from` (blank: 90 days "
        "after `from`)",
        "2027-04-01",
    ),
    AfterValidator(_check_as_of),
]


class ExpiringQuery(StreamQuestion):
    """Every term that runs out in `[from, to)` (valid time), as recorded by `known_at`."""

    PATH = "/v1/expiring"
    ANSWER = ExpiringOut

    from_: Annotated[WindowStart, Field(alias="from")] = None
    to: WindowEnd = None
    known_at: KnownAt = None


class ScreenQuery(Question):
    """A shipment: the commodity its HS code falls under, and each authority's status on
    `date` for that origin."""

    PATH = "/v1/screen"
    ANSWER: ClassVar[type[BaseModel]] = ScreenOut

    hs: HsCode
    origin: Origin
    date: ShipmentDate = None
    authority: AuthorityFilter = None


class ReceiptQuery(ScreenQuery):
    """A shipment screened as `ScreenQuery` is, as recorded by `known_at`, answered with a
    signed receipt of the question, the answer and the events it follows from."""

    PATH = "/v1/screen/receipt"
    ANSWER = EnvelopeOut

    known_at: KnownAt = None


class EventsQuery(StreamQuestion):
    """A page of the log in position order: the events after position `after`."""

    PATH = "/v1/events"
    ANSWER = EventPage

    type: EventType | None = None
    after: Annotated[int | None, Field(ge=0, le=MAX_POSITION, description="a position")] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100

    def where(self) -> EventFilter:
        return event_filter(self.authority, self.country, self.commodity, self.type)


TreeSize = Annotated[
    int | None,
    Field(ge=0, le=MAX_POSITION, description="A tree size (default: the latest checkpoint's)"),
]


class InclusionQuery(Question):
    """The RFC 9162 inclusion proof of an event in the log's tree of a given size."""

    PATH = "/v1/audit/proof/inclusion"
    ANSWER = InclusionOut

    event_id: Annotated[
        UUID,
        Field(description="The event's id", examples=["0b6f7c52-4d1e-4a8e-9f51-2f1d6a3c9e10"]),
        BeforeValidator(uuid_text),
    ]
    size: TreeSize = None


class ConsistencyQuery(Question):
    """The RFC 9162 consistency proof between two sizes of the log's tree."""

    PATH = "/v1/audit/proof/consistency"
    ANSWER = ConsistencyOut

    from_size: Annotated[
        int, Field(alias="from", ge=0, le=MAX_POSITION, description="The earlier tree size")
    ]
    to: TreeSize = None
