"""The problem document every refusal is answered with, and how routes document it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

PROBLEM_MEDIA_TYPE = "application/problem+json"


class InvalidField(BaseModel):
    """One invalid part of a request."""

    field: str = Field(
        description="Where it is: `body.country`, `body.events.2.measures`, `query.as_of`, "
        "`path.country`, `header.Last-Event-ID`, or `body` for the body as a whole"
    )
    message: str = Field(description="What is wrong with it, in words")
    type: str = Field(description="A machine-readable kind, e.g. `unknown_code`, `missing`")


def _absent_not_null(schema: dict[str, Any]) -> None:
    """Optional fields are absent when they do not apply, not null: no `default: null`."""
    for field in schema.get("properties", {}).values():
        if field.get("default", 0) is None:
            del field["default"]


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`). Fields beyond these may be
    added; those listed are present when the problem is of their kind."""

    model_config = ConfigDict(extra="allow", title="Problem", json_schema_extra=_absent_not_null)

    type: str = Field(
        description="A URI naming the kind of problem, "
        "e.g. https://sanctions-timeline.dev/problems/rule-violation"
    )
    title: str = Field(description="A short summary of the kind of problem")
    status: int = Field(ge=400, le=599, description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request, in words")
    errors: list[InvalidField] | SkipJsonSchema[None] = Field(
        default=None,
        description="422: every invalid part of the request, all at once",
    )
    index: Annotated[int, Field(ge=0)] | SkipJsonSchema[None] = Field(
        default=None, description="A refused batch: the zero-based index of the failing event"
    )
    stream: str | None = Field(
        default=None,
        description="The stream concerned (version conflicts, damaged streams, refused batches)",
    )
    breaks_event_id: str | None = Field(
        default=None,
        description="409 rule violation: the recorded event the write would break, if any",
    )
    expected_version: int | SkipJsonSchema[None] = Field(
        default=None, description="409 version conflict: the version the write expected"
    )
    actual_version: int | SkipJsonSchema[None] = Field(
        default=None, description="409 version conflict: the stream's version"
    )
    outcome: Literal["not_recorded", "unknown"] | SkipJsonSchema[None] = Field(
        default=None,
        description="503 on a write: `not_recorded` when nothing was certainly recorded, "
        "`unknown` when it cannot be known (a retry with the same Idempotency-Key is safe)",
    )


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}

MEANINGS = {
    401: "Missing, unknown or revoked bearer token",
    403: "The token's role is not allowed to do this",
    404: "No such resource (the path names nothing)",
    409: "Conflict",
    413: "Request body too large",
    415: "A write whose Content-Type is not application/json",
    422: "Invalid input: every invalid field is listed in `errors`, including any unknown "
    "query parameter",
    503: "The database is unreachable or the server is shutting down",
}


def problems(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status answered with a problem document. A meaning
    given as `_409="…"` replaces the general one."""
    return {
        status: {
            "description": meanings.get(f"_{status}", MEANINGS[status]),
            "content": PROBLEM_CONTENT,
        }
        for status in statuses
    }
