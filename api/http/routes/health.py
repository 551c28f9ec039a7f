"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.app.replica import replication
from api.app.service import Service
from api.http.deps import ServiceDep, in_worker_thread
from api.http.problem_types import problems
from api.http.problems import ProblemError
from api.schemas.answers import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    """Answered on the event loop, never waiting for the database or a worker thread."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,  # standby_replay_lag_bytes only with a standby
    responses=problems(503, _503="The database is unreachable or the read models are behind"),
    summary="The database answers and the read models are caught up within a bound",
)
@in_worker_thread
def readyz(svc: ServiceDep) -> Readiness:
    try:
        svc.log.store.ping()
        lag = svc.projector.lag()
    except Exception:
        raise ProblemError(503, "the database cannot be reached", kind="not-ready") from None
    bound = svc.settings.ready_max_lag_events
    if lag > bound:
        raise ProblemError(
            503, f"the read models are {lag} events behind (bound {bound})", kind="not-ready"
        )
    return Readiness(
        status="ready", projection_lag_events=lag, standby_replay_lag_bytes=standby_lag(svc)
    )


def standby_lag(svc: Service) -> int | None:
    """Bytes the standby reads come from has yet to replay (None: no standby, or it
    cannot say); kept in the metrics too."""
    if svc.replica is None:
        return None
    try:
        wal = replication(svc.log).replication_point()[1]
        behind = None if wal is None else svc.replica.behind(wal)
    except PersistenceError:
        behind = None
    if behind is not None:
        svc.metrics.standby_lag_bytes.set(behind)
    return behind


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **problems(503),
    },
)
@in_worker_thread
def metrics(svc: ServiceDep) -> Response:
    lag, oldest = svc.projector.lag_detail()
    svc.metrics.lag_events.set(lag)
    age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
    svc.metrics.lag_seconds.set(max(0.0, age))
    standby_lag(svc)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
