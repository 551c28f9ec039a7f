"""Administration: rebuilding the read models from the log."""

from __future__ import annotations

from fastapi import APIRouter

from api.http.deps import Admin, ServiceDep, in_worker_thread
from api.http.problem_types import problems
from api.schemas.answers import RebuildOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/projections/rebuild",
    response_model=RebuildOut,
    responses=problems(
        409,
        413,
        422,
        503,
        _409="A rebuild of the read models is already running",
        _413="A request body over 64 KiB (the route takes none)",
    ),
    summary="Drop and rebuild every read model from the log",
)
@in_worker_thread
def rebuild_projections(svc: ServiceDep, _: Admin) -> RebuildOut:
    return svc.rebuild()
