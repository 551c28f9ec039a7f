"""Path and header parameters as the OpenAPI document states them, checked so.

Each one's schema is a pattern saying exactly which values are taken (see
`api.schemas.patterns`); its validator refuses any other with the service's own words. Query
parameters are the fields of the questions in `api.schemas.queries`.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Header, Path
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from api.schemas import patterns
from api.schemas import requests as shapes
from api.schemas.inputs import MAX_POSITION
from api.schemas.queries import string_schema
from domain.keys import parse_authority, parse_commodity, parse_country


def _in_path(fragment: str, form: str, example: str) -> WithJsonSchema:
    return string_schema(patterns.padded(fragment), f"{form}, in any case", examples=[example])


AuthorityPath = Annotated[
    str,
    Path(),
    _in_path(patterns.AUTHORITY, "Who sanctions: " + shapes.AUTHORITY_FORM, "US"),
    AfterValidator(shapes.code(parse_authority, shapes.AUTHORITY, shapes.AUTHORITY_FORM)),
]
CountryPath = Annotated[
    str,
    Path(),
    _in_path(patterns.COUNTRY, "Whom: " + shapes.COUNTRY_FORM, "BY"),
    AfterValidator(shapes.code(parse_country, shapes.COUNTRY, shapes.COUNTRY_FORM)),
]
CommodityPath = Annotated[
    str,
    Path(),
    _in_path(patterns.COMMODITY, "What: " + shapes.COMMODITY_FORM, "potash"),
    AfterValidator(shapes.code(parse_commodity, shapes.COMMODITY, shapes.COMMODITY_FORM)),
]
EventIdPath = Annotated[UUID, Path(description="The event's id"), BeforeValidator(shapes.uuid_text)]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID"),
    string_schema(
        f"^{patterns.SPACE}*(?:{patterns.at_most(MAX_POSITION)}{patterns.SPACE}*)?$",
        "A reconnecting client: resume after this position (blank: ignored)",
    ),
]
