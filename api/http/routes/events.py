"""Recording events and reading the log back."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Annotated, Any, cast

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from api.app.identity import Caller, Role
from api.app.service import Service, Written
from api.http.deps import ReadDep, Reader, ServiceDep, Writer, asked, in_worker_thread
from api.http.limits import RECEIVED
from api.http.params import EventIdPath
from api.http.problem_types import problems
from api.schemas.answers import BatchIn, EventIn, EventOut, EventPage, EventsOut
from api.schemas.inputs import located
from api.schemas.queries import EventsQuery
from domain.recorded import IdempotentRequest, RecordedEvent

router = APIRouter(prefix="/v1", tags=["events"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe writes: the same key and body answer the recorded event.",
    ),
]
PENDING = {
    "Projection-Pending": {
        "description": "`true` when the event is recorded but the read models did not show "
        "it within the wait: reads catch up shortly",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
LOCATION = {
    "Location": {
        "description": "The recorded event: /v1/events/{event_id}",
        "schema": {"type": "string"},
    },
    **PENDING,
}
WRITE_PROBLEMS = problems(
    409,
    413,
    415,
    422,
    503,
    _409="Breaks a domain rule (`breaks_event_id` names a later event it would break), "
    "`expected_version` mismatch, an Idempotency-Key reused with another body, a damaged stream",
    _422="Malformed or invalid input: every invalid field is listed in `errors` (in a batch, "
    "`index` names the first failing event)",
    _503="The database is unreachable: `outcome` says whether nothing was recorded",
)


def answer(response: Response, written: Written) -> None:
    """201 (200 for a replay), and `Projection-Pending: true` when the read models did
    not show the write in time: it is recorded all the same."""
    response.status_code = 200 if written.replayed else 201
    if written.projection_pending:
        response.headers["Projection-Pending"] = "true"


def _out(recorded: RecordedEvent) -> EventOut:
    return EventOut.of(recorded.position, recorded.event)


def _idempotency(
    request: Request, caller: str, key: str | None, body: Any
) -> IdempotentRequest | None:
    """The key and body, and when the request arrived (its attempt began then)."""
    if key is None:
        return None
    return IdempotentRequest.of(caller, key, body, request.scope.get(RECEIVED))


@router.post(
    "/events",
    status_code=201,
    response_model=EventOut,
    responses={
        200: {"description": "Idempotent replay: the event already recorded", "model": EventOut},
        201: {"description": "Recorded", "headers": LOCATION},
        **WRITE_PROBLEMS,
    },
    summary="Record one event",
)
@in_worker_thread
def record_event(
    body: EventIn,
    caller: Writer,
    svc: ServiceDep,
    response: Response,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> EventOut:
    return record_one(svc, caller, body, idempotency_key, request, response)


def record_one(
    svc: Service,
    caller: Caller,
    body: EventIn,
    key: str | None,
    request: Request,
    response: Response,
) -> EventOut:
    """One event recorded (blocks: run in a worker thread); its status and headers set on
    `response`."""
    draft = located(("body",), body.draft)
    outcome = svc.record(
        [draft],
        recorded_by=caller.name,
        idempotency=_idempotency(request, caller.name, key, {"event": body.request_body()}),
    )
    event = _out(outcome.events[0])
    answer(response, outcome)
    response.headers["Location"] = f"/v1/events/{event.event_id}"
    return event


@router.post(
    "/events:batch",
    status_code=201,
    response_model=EventsOut,
    responses={
        200: {"description": "Idempotent replay: the events already recorded", "model": EventsOut},
        201: {"description": "Recorded, all of them", "headers": PENDING},
        **WRITE_PROBLEMS,
    },
    summary="Record up to 1,000 events, all or none, in order",
)
@in_worker_thread
def record_batch(
    body: BatchIn,
    caller: Writer,
    svc: ServiceDep,
    response: Response,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> EventsOut:
    drafts = [
        located(("body", "events", index), event.draft) for index, event in enumerate(body.events)
    ]
    outcome = svc.record(
        drafts,
        recorded_by=caller.name,
        idempotency=_idempotency(
            request,
            caller.name,
            idempotency_key,
            {"batch": [e.request_body() for e in body.events]},
        ),
    )
    answer(response, outcome)
    return EventsOut(events=[_out(recorded) for recorded in outcome.events])


@asked(router, EventsQuery, "The log, in position order")
@in_worker_thread
def list_events(svc: ReadDep, _: Reader, query: Annotated[EventsQuery, Query()]) -> EventPage:
    return svc.events(query)


@router.get(
    "/events/{event_id}",
    response_model=EventOut,
    responses=problems(404, 422, 503, _404="No event has this id"),
    summary="One stored event",
)
@in_worker_thread
def get_event(event_id: EventIdPath, svc: ReadDep, _: Reader) -> EventOut:
    return svc.event(event_id)


class RecordShortcut:
    """`POST /v1/events` in its common case, answered without the framework's routing,
    dependencies and answer validation — a third of a write's CPU on this path.

    The common case: no query string, a writer's bearer token the service already knows
    (`TokenTable.cached_caller`), at most one `Idempotency-Key` of 1 to 255 characters, and a
    body that is a valid `EventIn`. Anything else returns False before anything is done,
    and `record_event` answers it through the framework: every refusal of input, token or
    role is the route's own. From the record on the answer is the route's too: the same
    `svc.record` in a worker thread, the same 201/200 and headers, the body as FastAPI
    writes `EventOut`, and an error answered by the app's own handler of its type."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.route = next(
            route
            for route in router.routes
            if isinstance(route, APIRoute) and route.endpoint is record_event
        )

    async def __call__(
        self, scope: Scope, headers: dict[bytes, bytes], body: bytes, receive: Receive, send: Send
    ) -> bool:
        """Answer the write of `scope` and `body` if it is the common case: True when done."""
        if scope["method"] != "POST" or scope["path"] != "/v1/events" or scope["query_string"]:
            return False
        svc: Service = self.app.state.service
        caller = known_writer(svc, headers.get(b"authorization"))
        keys = [value for name, value in scope["headers"] if name == b"idempotency-key"]
        if caller is None or len(keys) > 1 or (keys and not 1 <= len(keys[0]) <= 255):
            return False  # the route judges several keys, or one of a length it refuses
        key = keys[0].decode("latin-1") if keys else None
        try:
            event_in = EventIn.model_validate(json.loads(body.decode("utf-8")))
        except (ValueError, ValidationError, RecursionError):
            return False  # the route names what is wrong, where
        scope["route"] = self.route  # the request's log line and metrics name the route
        scope.setdefault("state", {})["caller"] = caller.name
        request = Request(scope, receive)
        response: Response
        try:
            response = await run_in_threadpool(shortcut_answer, svc, caller, event_in, key, request)
        except Exception as error:
            response = await self.answer_error(request, error)
        await response(scope, receive, send)
        return True

    async def answer_error(self, request: Request, error: Exception) -> Response:
        """`error` answered as the app answers it: by its handler, found as Starlette finds
        it (the nearest class of `error` that has one)."""
        handler: Callable[..., Any] | None = next(
            (
                self.app.exception_handlers[kind]
                for kind in type(error).__mro__
                if kind in self.app.exception_handlers
            ),
            None,
        )
        if handler is None:
            raise error
        if inspect.iscoroutinefunction(handler):
            answered = await handler(request, error)
        else:
            answered = await run_in_threadpool(handler, request, error)
        return cast(Response, answered)


def known_writer(svc: Service, authorization: bytes | None) -> Caller | None:
    """The caller of a bearer token the service knows without a read, if a writer."""
    if authorization is None:
        return None
    scheme, token = get_authorization_scheme_param(authorization.decode("latin-1"))
    if scheme.lower() != "bearer" or not token:
        return None
    caller = svc.tokens.cached_caller(token)
    return caller if caller is not None and caller.may(Role.WRITER) else None


def shortcut_answer(
    svc: Service, caller: Caller, body: EventIn, key: str | None, request: Request
) -> Response:
    """What `record_event` answers, as FastAPI writes it (run in a worker thread)."""
    headers = Response()  # the route's own `response`, holding its status and headers
    del headers.headers["content-length"]
    event = record_one(svc, caller, body, key, request, headers)
    answered = Response(
        event.model_dump_json(by_alias=True),
        status_code=headers.status_code,
        media_type="application/json",
    )
    answered.headers.raw.extend(headers.headers.raw)
    return answered
