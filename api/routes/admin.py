"""Administration: rebuilding the read models from the log."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, ServicesDep
from api.schemas import RebuildOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/projections/rebuild",
    response_model=RebuildOut,
    summary="Drop and rebuild every read model from the log",
)
def rebuild_projections(svc: ServicesDep, _: Admin) -> RebuildOut:
    report = svc.projector.rebuild()
    return RebuildOut(
        events=report.events, seconds=round(report.seconds, 3), read_models=report.rows
    )
