"""What was in force on a date, as known at a moment: answered from the read models."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.answers import key_filter, status_answer, timeline_answer
from api.deps import Reader, ServicesDep
from api.inputs import parse_as_of, parse_known_at
from api.schemas import StatusOut, TimelineOut

router = APIRouter(prefix="/v1", tags=["status"])


@router.get("/status", response_model=StatusOut, summary="Status per stream on a date")
def get_status(
    svc: ServicesDep,
    _: Reader,
    country: str | None = None,
    commodity: str | None = None,
    authority: str | None = None,
    as_of: str | None = None,
    known_at: str | None = None,
) -> StatusOut:
    """One row per matching stream with anything effective by `as_of` (valid time, default
    today), as recorded by `known_at` (transaction time, default now)."""
    now = datetime.now(UTC)
    where = key_filter(authority, country, commodity)
    day = parse_as_of(as_of, now.date())
    return status_answer(svc.projector.view, where, day, svc.settled(parse_known_at(known_at, now)))


@router.get("/timeline", response_model=TimelineOut, summary="Validity intervals per stream")
def get_timeline(
    svc: ServicesDep,
    _: Reader,
    country: str | None = None,
    commodity: str | None = None,
    authority: str | None = None,
    known_at: str | None = None,
) -> TimelineOut:
    """Consecutive validity intervals of each matching stream, as recorded by `known_at`."""
    now = datetime.now(UTC)
    where = key_filter(authority, country, commodity)
    return timeline_answer(svc.projector.view, where, svc.settled(parse_known_at(known_at, now)))
