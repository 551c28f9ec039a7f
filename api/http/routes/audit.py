"""For auditors: replay, verification, and the live stream of recorded events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from api.app.service import Service
from api.http.deps import Auditor, ReadDep, Reader, ServiceDep, asked, in_worker_thread
from api.http.live import LiveFeed, LiveResponse
from api.http.params import LastEventId
from api.http.problem_types import problems
from api.http.problems import ProblemError
from api.schemas.answers import EventOut, SkippedEvent, VerifyOut
from api.schemas.inputs import MAX_POSITION, event_filter, parse_position
from api.schemas.queries import AuthorityFilter, CommodityFilter, CountryFilter, ReplayQuery
from domain.keys import EventFilter
from domain.recorded import Undecodable
from domain.rules import EventType

router = APIRouter(prefix="/v1", tags=["audit"])

STREAM_PAGE = 100
"""Events read, encoded and sent at a time by a live stream."""
STREAM_RETRY_AFTER_SECONDS = 5


def _sse_event(kind: str, model: str, id_required: bool) -> dict[str, Any]:
    """One kind of Server-Sent Event as schemathesis and OpenAPI 3.1 read it: an object of
    its fields, `data` a JSON document of `model`."""
    return {
        "type": "object",
        "required": ["event", "data", *(["id"] if id_required else [])],
        "properties": {
            "event": {"const": kind},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{model}"},
            },
        },
    }


STREAMED_EVENT: dict[str, Any] = {
    "description": "One Server-Sent Event: its `event` name, its position as `id` and its "
    "`data`, a JSON document",
    "oneOf": [
        _sse_event("event", "EventOut", id_required=True),
        _sse_event("problem", "SkippedEvent", id_required=False),
    ],
}


def skipped_event(found: Undecodable) -> ServerSentEvent:
    """An SSE `problem` event for a stored event that cannot be decoded (still given its
    position as id, so a client resuming from it does not ask for it again)."""
    return ServerSentEvent(
        data=SkippedEvent.of(found).model_dump_json(),
        id=None if found.position is None else str(found.position),
        event="problem",
    )


@asked(
    router,
    ReplayQuery,
    "Every matching event, in position order, with its stream's status after it",
)
@in_worker_thread
def replay(svc: ReadDep, _: Reader, query: Annotated[ReplayQuery, Query()]) -> StreamingResponse:
    """Streamed as it is read, so any size of log is answered in bounded memory."""
    steps = svc.replay(query)

    def body() -> Iterator[bytes]:
        yield b'{"steps":['
        for index, step in enumerate(steps):
            yield (b"," if index else b"") + step.model_dump_json().encode()
        yield b"]}"

    return StreamingResponse(body(), media_type="application/json")


@router.get(
    "/audit/verify",
    response_model=VerifyOut,
    responses=problems(503),
    summary="Recompute every hash chain; compare every read model with a fresh replay",
)
@in_worker_thread
def verify(svc: ServiceDep, _: Auditor) -> VerifyOut:
    return svc.verify()


@router.get(
    "/events/stream",
    summary="Server-Sent Events, one per recorded event (id = position), resumable",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`event` events (data: a stored event) and `problem` events (data: "
            "a stored event that cannot be decoded), each with its position as `id`",
            "content": {"text/event-stream": {"schema": STREAMED_EVENT}},
        },
        **problems(422, 503),
    },
)
async def stream_events(
    request: Request,
    svc: ServiceDep,
    _: Reader,
    country: CountryFilter = None,
    commodity: CommodityFilter = None,
    authority: AuthorityFilter = None,
    type: EventType | None = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_POSITION, description="Start after this position")
    ] = None,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """From the start of the log, or after `Last-Event-ID` (a reconnecting client) or
    `after`; then each event as it is recorded. Keep-alive comments are sent while idle."""
    where = event_filter(authority, country, commodity, type)
    position = after or 0
    if last_event_id is not None and last_event_id.strip():
        position = parse_position(last_event_id, "header.Last-Event-ID")
    settings = svc.settings
    feed = LiveFeed.of(request)
    if not feed.admit():
        raise ProblemError(
            503,
            f"this server already serves {settings.max_streams} live streams; "
            "try again later, or on another server",
            kind="too-many-streams",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
        )
    feed.bound_send_buffer(request)
    signals = svc.log.signals

    async def events() -> AsyncIterator[bytes]:
        """Pages of events, each sent whole once the one before has left (the server waits
        for the socket to drain), so a stream holds at most a page and a socket buffer."""
        nonlocal position
        while True:
            seen = signals.seen("events")  # before reading: nothing recorded after is missed
            chunk, last = await feed.read(encoded_page, svc, where, position)
            if chunk:
                yield chunk
            if last is None:
                await feed.recorded_since(seen)
            else:
                position = last

    return LiveResponse(
        feed,
        events(),
        ping=settings.sse_ping_seconds,
        send_timeout=settings.sse_send_timeout_seconds,
    )


def encoded_page(svc: Service, where: EventFilter, after: int) -> tuple[bytes, int | None]:
    """The next events after `after` as Server-Sent Events, encoded (in a worker thread,
    not on the event loop), and the position of the last one read (None: none)."""
    page = svc.log.page(where, after=after, limit=STREAM_PAGE)
    skipped = {found.position: found for found in page.undecodable}
    parts: list[bytes] = []
    for recorded in page.events:
        for at in sorted(p for p in skipped if p is not None and p < recorded.position):
            parts.append(skipped_event(skipped.pop(at)).encode())
        parts.append(
            ServerSentEvent(
                data=EventOut.of(recorded.position, recorded.event).model_dump_json(),
                id=str(recorded.position),
                event="event",
            ).encode()
        )
    parts += [skipped_event(found).encode() for found in skipped.values()]
    return b"".join(parts), page.last_position
