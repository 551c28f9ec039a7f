"""Request bodies: an event as clients post it, and a batch of them.

`EventIn` validates field by field, so a 422 lists every invalid field at once. Its JSON
Schema is a discriminated union on `type` (the same field names, a variant per kind of event),
saying what JSON Schema can of the rules the domain checks after: `measures` non-empty for
`imposed`/`expanded`/`eased` and none for `lifted` or `renewed`, `retracts` and a `note`
only with `retracted`, `effective_date` except for `retracted`, `expires` only with the
types that have a term and required with `renewed`, `renews` only with `renewed`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AnyUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictInt,
    StrictStr,
    TypeAdapter,
    UrlConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from api.schemas import patterns
from api.schemas.inputs import iso_date
from domain.errors import InvalidInput
from domain.keys import StreamKey, parse_authority, parse_commodity, parse_country
from domain.rules import EventType, Measure
from domain.stream import EventDraft

_UUID = patterns.compiled(patterns.UUID)
_HTTP_URL = patterns.compiled(patterns.HTTP_URL)
URL_MAX_LENGTH = 2048


def _iso_date_string(value: Any) -> Any:
    # Only `YYYY-MM-DD`: pydantic alone would also take numbers as Unix times.
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("date_format", "must be a date written YYYY-MM-DD")
    try:
        return iso_date(value)
    except ValueError as error:
        raise PydanticCustomError("date_value", "{reason}", {"reason": str(error)}) from None


def code(parse: Callable[[str], str], pattern: str, what: str) -> Callable[[str], str]:
    """A validator normalising a code, or saying (with close matches) why it is unknown. Only
    the documented form is taken: not, say, `ß`, which Python upper-cases to the code `SS`."""
    written = patterns.compiled(pattern)

    def check(value: str) -> str:
        try:
            normal = parse(value)
        except InvalidInput as error:
            raise PydanticCustomError(
                "unknown_code", "{reason}", {"reason": error.message}
            ) from None
        if not written.fullmatch(value):
            raise PydanticCustomError(
                "unknown_code",
                "{value} is not written as {what}",
                {"value": repr(value), "what": what},
            )
        return normal

    return check


def uuid_text(value: Any) -> Any:
    """Only the hyphenated form (pydantic alone also takes braces, `urn:uuid:` and 32 digits)."""
    if isinstance(value, str) and not _UUID.fullmatch(value):
        raise PydanticCustomError(
            "uuid_parsing", "must be a UUID written as hex digits grouped 8-4-4-4-12"
        )
    return value


def _url_text(value: Any) -> Any:
    if isinstance(value, str) and len(value) <= URL_MAX_LENGTH and not _HTTP_URL.fullmatch(value):
        raise PydanticCustomError(
            "url_parsing",
            "must be an http(s) URL with a host name or IP address, in RFC 3986 characters",
        )
    return value


def _whole(value: Any) -> Any:
    """A JSON number with no fraction (`3.0`) is the integer JSON Schema says it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _string(pattern: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "description": description, **extra}


IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date_string),
    WithJsonSchema(_string(f"^{patterns.DATE}$", "A date, YYYY-MM-DD", format="date")),
]
Uuid = Annotated[UUID, BeforeValidator(uuid_text)]
HttpUrl = Annotated[
    AnyUrl,
    UrlConstraints(max_length=URL_MAX_LENGTH, allowed_schemes=["http", "https"]),
    BeforeValidator(_url_text),
    WithJsonSchema(
        _string(f"^{patterns.HTTP_URL}$", "An http(s) URL", minLength=1, maxLength=URL_MAX_LENGTH)
    ),
]
AUTHORITY_FORM = "an ISO 3166-1 alpha-2 country code or EU or UN"
COUNTRY_FORM = "an ISO 3166-1 alpha-2 country code"
COMMODITY_FORM = "a slug of the commodity catalogue (GET /v1/commodities)"

AUTHORITY = patterns.padded(patterns.AUTHORITY)
COUNTRY = patterns.padded(patterns.COUNTRY)
COMMODITY = patterns.padded(patterns.COMMODITY)


def _documented(pattern: str, max_length: int, description: str) -> Any:
    """A code's field in a request body: its length bound and its documented form."""
    return Field(
        max_length=max_length,
        description=f"{description}, in any case",
        json_schema_extra={"pattern": pattern},
    )


Authority = Annotated[
    StrictStr,
    _documented(AUTHORITY, 16, f"Who sanctions: {AUTHORITY_FORM}"),
    AfterValidator(code(parse_authority, AUTHORITY, AUTHORITY_FORM)),
]
Country = Annotated[
    StrictStr,
    _documented(COUNTRY, 16, f"Whom: {COUNTRY_FORM}"),
    AfterValidator(code(parse_country, COUNTRY, COUNTRY_FORM)),
]
Commodity = Annotated[
    StrictStr,
    _documented(COMMODITY, 100, f"What: {COMMODITY_FORM}"),
    AfterValidator(code(parse_commodity, COMMODITY, COMMODITY_FORM)),
]
Measures = Annotated[list[Measure], Field(max_length=50)]
NoMeasures = Annotated[list[Measure], Field(max_length=0, description="None: empty or null")]
LegalBasis = Annotated[StrictStr, Field(max_length=2000)]
Note = Annotated[StrictStr, Field(max_length=8000)]
ExpectedVersion = Annotated[
    StrictInt,
    Field(
        ge=0,
        description="The stream's version as last seen (0 for a new stream); 409 if it is not",
    ),
    BeforeValidator(_whole),
]


class SourceIn(BaseModel):
    """Where the fact comes from."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    title: Annotated[StrictStr, Field(max_length=1000)] | None = None
    published: IsoDate | None = None


EXAMPLE = {
    "type": "imposed",
    "authority": "US",
    "country": "BY",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["asset_freeze", "import_ban"],
    "legal_basis": "Executive Order 14038",
    "source": {
        "url": "https://home.treasury.gov/news/press-releases/jy0312",
        "title": "Treasury Sanctions the Lukashenka Regime",
        "published": "2021-08-09",
    },
}


class _Event(BaseModel):
    """Every field an event may carry, in the contract's order (a documentation model: the
    variants below narrow it by `type`; EventIn is what validates)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    authority: Authority
    country: Country
    commodity: Commodity
    effective_date: IsoDate | None = None
    measures: Measures | None = None
    retracts: Uuid | None = None
    legal_basis: LegalBasis | None = None
    source: SourceIn | None = None
    note: Note | None = None
    expected_version: ExpectedVersion | None = None
    expires: IsoDate | None = None
    renews: Uuid | None = None


class MeasuresEventIn(_Event):
    """`imposed`, `expanded` or `eased`: takes effect on a date, naming at least one measure."""

    type: Literal["imposed", "expanded", "eased"]
    effective_date: IsoDate
    measures: Annotated[Measures, Field(min_length=1)]
    retracts: None = None
    expires: IsoDate | None = Field(
        default=None,
        description="The end of its term (exclusive), later than effective_date; none: no term",
    )
    renews: None = None


class LiftedEventIn(_Event):
    """`lifted`: ends every measure on a date, so names none."""

    type: Literal["lifted"]
    effective_date: IsoDate
    measures: NoMeasures | None = None
    retracts: None = None
    expires: None = None
    renews: None = None


class RenewedEventIn(_Event):
    """`renewed`: moves the end of a term, on a date, to a later `expires`."""

    type: Literal["renewed"]
    effective_date: IsoDate
    measures: NoMeasures | None = None
    retracts: None = None
    expires: IsoDate = Field(description="The term's new end (exclusive), later than the current")
    renews: Uuid | None = Field(
        default=None,
        description="The event whose term it extends; none: the imposition that began the run",
    )


class RetractedEventIn(_Event):
    """`retracted`: withdraws a recorded event from the record, saying why; no date."""

    type: Literal["retracted"]
    effective_date: None = None
    measures: NoMeasures | None = None
    retracts: Uuid = Field(description="The id of the event withdrawn")
    expires: None = None
    renews: None = None
    note: Annotated[
        Note,
        Field(description="Why (not blank)", json_schema_extra={"pattern": patterns.NOT_SPACE}),
    ]


EventVariant = TypeAdapter(
    Annotated[
        MeasuresEventIn | LiftedEventIn | RenewedEventIn | RetractedEventIn,
        Field(discriminator="type"),
    ]
)


class EventIn(_Event):
    """An event as clients post it (docs/reference/rest.md, `POST /v1/events`)."""

    type: EventType

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Documented as the union of its variants: what JSON Schema can say of the rules."""
        union = handler(EventVariant.core_schema)
        return {
            **union,
            "title": "EventIn",
            "description": "An event as clients post it; which fields it needs depends on `type`.",
            "examples": [EXAMPLE],
        }

    def draft(self) -> EventDraft:
        """The domain draft; InvalidInput (422) for unknown codes or a misfit payload."""
        return EventDraft(
            type=self.type,
            key=StreamKey(self.authority, self.country, self.commodity),
            effective_date=self.effective_date,
            measures=frozenset(self.measures or ()),
            retracts=self.retracts,
            legal_basis=self.legal_basis,
            source=None
            if self.source is None
            else {
                "url": str(self.source.url),
                "title": self.source.title,
                "published": None
                if self.source.published is None
                else self.source.published.isoformat(),
            },
            note=self.note,
            expected_version=self.expected_version,
            expires=self.expires,
            renews=self.renews,
        )

    def request_body(self) -> dict[str, Any]:
        """The body as it matters for Idempotency-Key comparison."""
        return self.model_dump(mode="json", exclude_none=True)


class BatchIn(BaseModel):
    """`POST /v1/events:batch`: all or none, in order."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]
