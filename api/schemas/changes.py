"""Response models of the questions analysts ask next: what changed between two bitemporal
points (`GET /v1/status/diff`), does a shipment fall under a measure (`GET /v1/screen`), and
what ends by itself in the coming days (`GET /v1/expiring`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.schemas.answers import StatusResult, StreamStatusOut


class PointOut(BaseModel):
    as_of: date = Field(description="Valid time")
    known_at: str = Field(description="Transaction time, the settled moment answered for")


class ChangeOut(BaseModel):
    stream: str
    authority: str
    country: str
    commodity: str
    before: StreamStatusOut
    after: StreamStatusOut
    event_ids: list[str] = Field(
        description="The events (and retractions) that count at one point and not at the "
        "other: what accounts for the difference, in log order"
    )


class DiffOut(BaseModel):
    from_: PointOut = Field(alias="from", serialization_alias="from")
    to: PointOut
    changes: list[ChangeOut]

    model_config = {"populate_by_name": True}


class ScreenOut(BaseModel):
    hs: str = Field(description="The HS code as given")
    commodity: str = Field(description="The catalogue commodity with the longest HS prefix")
    origin: str = Field(description="The country of origin, ISO 3166-1 alpha-2")
    date: date
    results: list[StatusResult] = Field(
        description="One row per authority with any event for that country and commodity"
    )


class ExpiryOut(BaseModel):
    stream: str
    authority: str
    country: str
    commodity: str
    date: Annotated[
        date, Field(description="The first date without what the event did (its term's end)")
    ]
    event_id: str = Field(description="The event whose term ends")
    ends: Literal["run", "measures", "easing"] = Field(
        description="What ends: `run` — an imposition's term, the stream becomes `expired`; "
        "`measures` — an expansion's term, the measures it added end; `easing` — an "
        "easing's term (a licence), the eased measures are in force again"
    )
    measures: list[str] = Field(
        description="The measures that end (`run`, `measures`) or return (`easing`) that day"
    )


class ExpiringOut(BaseModel):
    from_: date = Field(
        alias="from", serialization_alias="from", description="First date of the window"
    )
    to: date = Field(description="The date after the window (not in it)")
    known_at: str = Field(description="Transaction time, the settled moment answered for")
    expiries: list[ExpiryOut] = Field(
        description="Every term that runs out in [from, to), as known at `known_at`, by "
        "date and then stream"
    )

    model_config = {"populate_by_name": True}
