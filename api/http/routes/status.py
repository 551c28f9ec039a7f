"""What was in force on a date, as known at a moment: answered from the read models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.http.deps import ReadDep, Reader, ServiceDep, asked, in_worker_thread
from api.schemas.answers import StatusOut, TimelineOut
from api.schemas.changes import DiffOut, ExpiringOut, ScreenOut
from api.schemas.queries import (
    DiffQuery,
    ExpiringQuery,
    ReceiptQuery,
    ScreenQuery,
    StatusQuery,
    TimelineQuery,
)
from api.schemas.receipts import EnvelopeOut

router = APIRouter(prefix="/v1", tags=["status"])


@asked(router, StatusQuery, "Status per stream on a date")
@in_worker_thread
def get_status(svc: ReadDep, _: Reader, query: Annotated[StatusQuery, Query()]) -> StatusOut:
    """One row per matching stream with anything effective by `as_of` (valid time, default
    today), as recorded by `known_at` (transaction time, default now)."""
    return svc.status(query)


@asked(router, TimelineQuery, "Validity intervals per stream")
@in_worker_thread
def get_timeline(svc: ReadDep, _: Reader, query: Annotated[TimelineQuery, Query()]) -> TimelineOut:
    """Consecutive validity intervals of each matching stream, as recorded by `known_at`."""
    return svc.timeline(query)


@asked(router, DiffQuery, "What changed between two bitemporal points")
@in_worker_thread
def get_status_diff(svc: ReadDep, _: Reader, query: Annotated[DiffQuery, Query()]) -> DiffOut:
    """Every matching stream whose status or measures differ between the point
    (`from_as_of`, `from_known_at`) and the point (`to_as_of`, `to_known_at`), with the events
    and retractions that account for the difference. `to_as_of` defaults to today and
    `from_as_of` to `to_as_of`; both `known_at` to now. Two dates at one knowledge time: what
    changed in force between them. One date at two knowledge times: what corrections and
    late reports changed in what was known."""
    return svc.diff(query)


@asked(router, ScreenQuery, "Screen a shipment by HS code and origin")
@in_worker_thread
def screen(svc: ReadDep, _: Reader, query: Annotated[ScreenQuery, Query()]) -> ScreenOut:
    """The catalogue commodity whose HS prefix is the longest match of `hs`, and, for each
    authority with any event for that origin and commodity, its status on `date` (default
    today): one row per authority, `none` where nothing had taken effect yet."""
    return svc.screen(query)


@asked(router, ExpiringQuery, "Terms that run out in a window of dates")
@in_worker_thread
def get_expiring(svc: ReadDep, _: Reader, query: Annotated[ExpiringQuery, Query()]) -> ExpiringOut:
    """Every term of the matching streams that runs out in `[from, to)` (default: today and
    the 90 days after), as recorded by `known_at` (default now), by date and then stream:
    the stream, the date (the first without it), the event whose term it is, and what
    happens then — `run` (an imposition's term: the stream becomes `expired`), `measures`
    (an expansion's: the measures it added end) or `easing` (a licence's: the eased measures
    return). A term renewed before its end is listed at its renewed date; one cut off by a
    lift is not listed. `from` after `to` is refused (422)."""
    return svc.expiring(query)


@asked(
    router,
    ReceiptQuery,
    "A signed receipt of a shipment's screening",
    409,
    _503="The database is unreachable or the server is shutting down; or no signed checkpoint "
    "covers an event of the answer yet (`receipt-not-ready`): ask again after `Retry-After` "
    "seconds",
)
@in_worker_thread
def screen_receipt(
    svc: ServiceDep, _: Reader, query: Annotated[ReceiptQuery, Query()]
) -> EnvelopeOut:
    """What `GET /v1/screen` answers for this shipment, as recorded by `known_at` (default
    now), in a DSSE envelope signed with the log's checkpoint key: its payload (base64) is an
    in-toto Statement v1 whose predicate holds the settled `question`, the `answer`, a signed
    `checkpoint`, every `event` of the answer's streams recorded by `known_at` (retractions
    included) and each one's RFC 9162 inclusion proof in that checkpoint's tree, and
    `issued_at`. Check it offline with `sanctions audit receipt FILE`. 503 with Retry-After
    while no checkpoint covers an event recorded a moment ago; 409 when a stream's stored
    events cannot be read back."""
    return svc.receipt(query)
