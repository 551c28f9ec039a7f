"""For auditors: replay, verification, and the live stream of recorded events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from api.deps import Reader, ServiceDep
from api.schemas import EventOut, ReplayOut, VerifyOut
from api.service import event_filter
from domain.errors import InvalidInput
from domain.rules import EventType

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get(
    "/audit/replay",
    response_model=ReplayOut,
    summary="Every matching event, in position order, with its stream's status after it",
)
def audit_replay(
    svc: ServiceDep,
    _: Reader,
    country: str | None = None,
    commodity: str | None = None,
    authority: str | None = None,
    known_at: str | None = None,
) -> StreamingResponse:
    """Streamed as it is read, so any size of log is answered in bounded memory."""
    steps = svc.replay(authority, country, commodity, known_at)

    def body() -> Iterator[bytes]:
        yield b'{"steps":['
        for index, step in enumerate(steps):
            yield (b"," if index else b"") + step.model_dump_json().encode()
        yield b"]}"

    return StreamingResponse(body(), media_type="application/json")


@router.get(
    "/audit/verify",
    response_model=VerifyOut,
    summary="Recompute every hash chain; compare every read model with a fresh replay",
)
def audit_verify(svc: ServiceDep, _: Reader) -> VerifyOut:
    return svc.verify()


@router.get(
    "/events/stream",
    summary="Server-Sent Events, one per recorded event (id = position), resumable",
    response_class=EventSourceResponse,
)
async def event_stream(
    request: Request,
    svc: ServiceDep,
    _: Reader,
    country: str | None = None,
    commodity: str | None = None,
    authority: str | None = None,
    type: EventType | None = None,
    after: Annotated[int | None, Query(ge=0, description="Start after this position")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """From the start of the log, or after `Last-Event-ID` (a reconnecting client) or
    `after`; then each event as it is recorded. Keep-alive comments are sent while idle."""
    where = event_filter(authority, country, commodity, type)
    position = after or 0
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise InvalidInput("header.Last-Event-ID", "must be a position (a whole number)")
        position = int(last_event_id.strip())
    settings = svc.settings

    async def events() -> AsyncIterator[ServerSentEvent]:
        nonlocal position
        while not await request.is_disconnected():
            page = await run_in_threadpool(svc.log.select_events, where, after=position, limit=200)
            for recorded in page:
                yield ServerSentEvent(
                    data=EventOut.of(recorded.position, recorded.event).model_dump_json(),
                    id=str(recorded.position),
                    event="event",
                )
                position = recorded.position
            if not page:
                await asyncio.sleep(settings.sse_poll_seconds)

    return EventSourceResponse(events(), ping=settings.sse_ping_seconds)
