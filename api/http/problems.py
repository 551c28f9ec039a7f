"""RFC 9457 problem documents, and the one place domain errors become HTTP statuses."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.app.receipts import ReceiptNotReady
from api.app.webhooks.registry import SubscriptionNotFound
from api.http.retry import mark_lost, may_retry
from domain.errors import (
    DomainError,
    EventNotFound,
    IdempotencyConflict,
    InvalidInput,
    NotInTree,
    NotRecorded,
    OutcomeUnknown,
    RuleViolation,
    StreamDamaged,
    TreeMismatch,
    VersionConflict,
    WriteContention,
)
from projections.projector import RebuildInProgress

PROBLEM_TYPE_BASE = "https://sanctions-timeline.dev/problems/"
logger = logging.getLogger("sanctions.api")

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    431: "Request header fields too large",
    422: "Invalid input",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An `application/problem+json` answer."""
    body = {
        "type": PROBLEM_TYPE_BASE + (kind or str(status)),
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(
        jsonable_encoder(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


class ProblemError(Exception):
    """Raised by routes and dependencies for a problem that is not a domain error."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "message": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


BATCH_FIELD = re.compile(r"^body\.events\.(\d+)(\.|$)")


def invalid_fields(errors: list[dict[str, Any]]) -> JSONResponse:
    """A 422 listing every invalid field; in a batch, `index` names the first bad event."""
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    extra: dict[str, Any] = {}
    for error in errors:
        if found := BATCH_FIELD.match(error["field"]):
            extra["index"] = int(found.group(1))
            break
    return problem(422, summary or "invalid request", kind="invalid-input", errors=errors, **extra)


def where_in_batch(error: DomainError) -> dict[str, Any]:
    """`index` (and `stream`) of the batch event that failed, when the write was a batch."""
    if error.index is None:
        return {}
    return {"index": error.index, "stream": error.stream}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    path = request.scope["path"]
    return sorted(
        {
            method
            for route in iter_route_contexts(request.app.routes)
            if route.methods
            and (pattern := getattr(route, "path_regex", None)) is not None
            and pattern.match(path)
            for method in route.methods
        }
    )


def nothing_served(request: Request) -> str:
    """The detail of a 404 for a path no route serves: the path asked, and where the
    routes are listed."""
    path = request.url.path
    shown = path if len(path) <= 200 else path[:200] + "…"
    roots = sorted(
        {
            "/v1/" + re.split(r"[/:{]", route_path[len("/v1/") :], maxsplit=1)[0]
            for route in iter_route_contexts(request.app.routes)
            if (route_path := getattr(route, "path", "")).startswith("/v1/")
        }
    )
    return (
        f"nothing is served at {shown}: every route is listed at /docs (and in /openapi.json); "
        f"the API's paths start with {', '.join(roots)}"
    )


Members = Callable[[Any], dict[str, Any]]


def _message_only(_: Exception) -> dict[str, Any]:
    return {}


ANSWERED: dict[type[Exception], tuple[int, str, Members]] = {
    RuleViolation: (
        409,
        "rule-violation",
        lambda exc: {"breaks_event_id": exc.breaks_event_id, **where_in_batch(exc)},
    ),
    VersionConflict: (
        409,
        "version-conflict",
        lambda exc: {
            "stream": exc.stream,
            "expected_version": exc.expected,
            "actual_version": exc.actual,
            **{key: value for key, value in where_in_batch(exc).items() if key == "index"},
        },
    ),
    WriteContention: (
        503,
        "write-contention",
        lambda _: {"headers": {"Retry-After": "1"}, "outcome": "not_recorded"},
    ),
    StreamDamaged: (409, "stream-damaged", lambda exc: {"stream": exc.stream}),
    IdempotencyConflict: (409, "idempotency-conflict", _message_only),
    RebuildInProgress: (409, "rebuild-in-progress", _message_only),
    EventNotFound: (404, "not-found", _message_only),
    SubscriptionNotFound: (404, "not-found", _message_only),
    NotInTree: (404, "not-found", _message_only),
    TreeMismatch: (503, "tree-mismatch", _message_only),
    ReceiptNotReady: (503, "receipt-not-ready", lambda _: {"headers": {"Retry-After": "2"}}),
}
"""The errors of the service each with its status, problem kind and the members it adds to
its message (headers among them, when it sends any)."""


def answering(
    status: int, kind: str, members: Members
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """The handler answering such an error with its problem document."""

    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return problem(status, str(exc), kind=kind, **members(exc))

    return handler


def install(app: FastAPI) -> None:
    """Map every error the service can raise to a problem document."""

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_fields(field_errors(list(exc.errors())))

    @app.exception_handler(InvalidInput)
    async def on_invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return invalid_fields(
            [{"field": e.field, "message": e.message, "type": "value_error"} for e in exc.every]
        )

    for error, (status, kind, members) in ANSWERED.items():
        app.add_exception_handler(error, answering(status, kind, members))

    @app.exception_handler(ProblemError)
    async def on_problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.detail, kind=exc.kind, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":  # Starlette's: no route matched
            detail = nothing_served(request)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(exc.status_code, detail, headers=headers)

    @app.exception_handler(PersistenceError)
    async def on_storage(request: Request, exc: PersistenceError) -> JSONResponse:
        service = getattr(request.app.state, "service", None)
        if may_retry(request.scope) and service is not None and service.connection_lost(exc):
            # A read whose connection died: asked once more, on a fresh connection
            # (api.http.retry), and this answer dropped.
            logger.warning("storage error: %s; the read is asked again", type(exc).__name__)
            mark_lost(request.scope)
            return problem(503, "the database is unavailable", kind="unavailable")
        logger.error("storage error: %s", type(exc).__name__)
        if service is not None:  # tables gone from a database that answers: set up again
            with contextlib.suppress(Exception):
                await run_in_threadpool(service.recover, exc)
        if request.method in ("GET", "HEAD"):
            return problem(503, "the database is unavailable", kind="unavailable")
        # A write that fails here never reached its commit: the log converts failures
        # during the commit into NotRecorded or OutcomeUnknown, checked by its key.
        if request.headers.get("Idempotency-Key") is not None:
            # This request recorded nothing, but an earlier attempt with its key may
            # still commit; only the log can fence that off (`domain.group_commit.Fences`).
            return problem(
                503,
                "the database is unavailable; this request recorded nothing, but whether an "
                "earlier one with its Idempotency-Key did is unknown: retry with that key",
                kind="unavailable",
                outcome="unknown",
            )
        return problem(
            503,
            "the database is unavailable; nothing was recorded",
            kind="unavailable",
            outcome="not_recorded",
        )

    @app.exception_handler(NotRecorded)
    async def on_not_recorded(_: Request, exc: NotRecorded) -> JSONResponse:
        return problem(503, exc.message, kind="unavailable", outcome="not_recorded")

    @app.exception_handler(OutcomeUnknown)
    async def on_outcome_unknown(_: Request, exc: OutcomeUnknown) -> JSONResponse:
        return problem(503, exc.message, kind="unavailable", outcome="unknown")

    @app.exception_handler(Exception)
    async def on_bug(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return problem(500, "an internal error occurred", kind="internal")
