"""Administration: rebuilding the read models from the log."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, ServiceDep
from api.schemas import RebuildOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/projections/rebuild",
    response_model=RebuildOut,
    summary="Drop and rebuild every read model from the log",
)
def rebuild_projections(svc: ServiceDep, _: Admin) -> RebuildOut:
    return svc.rebuild()
