"""What was in force on a date, as known at a moment: answered from the read models."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Reader, ServiceDep
from api.params import AsOf, AuthorityFilter, CommodityFilter, CountryFilter, KnownAt
from api.schemas import StatusOut, TimelineOut
from api.schemas_problems import problems

router = APIRouter(prefix="/v1", tags=["status"])


@router.get(
    "/status",
    response_model=StatusOut,
    responses=problems(422, 503),
    summary="Status per stream on a date",
)
def get_status(
    svc: ServiceDep,
    _: Reader,
    country: CountryFilter = None,
    commodity: CommodityFilter = None,
    authority: AuthorityFilter = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> StatusOut:
    """One row per matching stream with anything effective by `as_of` (valid time, default
    today), as recorded by `known_at` (transaction time, default now)."""
    return svc.status(authority, country, commodity, as_of, known_at)


@router.get(
    "/timeline",
    response_model=TimelineOut,
    responses=problems(422, 503),
    summary="Validity intervals per stream",
)
def get_timeline(
    svc: ServiceDep,
    _: Reader,
    country: CountryFilter = None,
    commodity: CommodityFilter = None,
    authority: AuthorityFilter = None,
    known_at: KnownAt = None,
) -> TimelineOut:
    """Consecutive validity intervals of each matching stream, as recorded by `known_at`."""
    return svc.timeline(authority, country, commodity, known_at)
