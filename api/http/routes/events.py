"""Recording events and reading the log back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from api.app.identity import Caller
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
