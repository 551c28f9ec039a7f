"""Request dependencies: the wired services and the caller's identity."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.identity import Caller, Role, TokenStore
from api.observability import Metrics
from api.problems import ProblemError
from api.settings import Settings
from domain.application import IdempotentRequest, SanctionsLog, WriteOutcome
from domain.stream import EventDraft
from projections.projector import Projector


@dataclass
class Services:
    """Everything a request may need, built once by `api.bootstrap`."""

    settings: Settings
    log: SanctionsLog
    tokens: TokenStore
    projector: Projector
    metrics: Metrics = field(default_factory=Metrics)

    writing: list[datetime] = field(default_factory=list)
    """When each write now in progress began: its events are not visible yet."""
    writing_lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        drafts: Sequence[EventDraft],
        *,
        recorded_by: str,
        idempotency: IdempotentRequest | None = None,
    ) -> WriteOutcome:
        """Record the drafts; return once every read on this server reflects them."""
        began = datetime.now(UTC)  # every recorded_at this write assigns is later
        with self.writing_lock:
            self.writing.append(began)
        try:
            outcome = self.log.record(drafts, recorded_by=recorded_by, idempotency=idempotency)
            self.show_writes(outcome)
            return outcome
        finally:
            with self.writing_lock:
                self.writing.remove(began)

    def settled(self, known_at: datetime) -> datetime:
        """The latest moment, no later than `known_at`, whose record can no longer change.

        An event is recorded (given its `recorded_at`) a moment before it is committed
        and projected. Answering "as known at T" while such an event with a
        `recorded_at` before T is on its way would give an answer that changes once it
        lands, so T is moved to just before the earliest such event: the answer says
        which moment it is for, and stays true for ever.
        """
        just_before = timedelta(microseconds=1)
        with self.writing_lock:
            if self.writing:
                known_at = min(known_at, min(self.writing) - just_before)
        oldest = self.projector.oldest_unprojected()
        if oldest is not None:
            known_at = min(known_at, oldest - just_before)
        return known_at

    def show_writes(self, outcome: WriteOutcome) -> None:
        """Return only once every read on this server reflects the written events."""
        if not outcome.replayed:
            for recorded in outcome.events:
                self.metrics.recorded.labels(recorded.event.TYPE.value).inc()
        position = max(recorded.position for recorded in outcome.events)
        if self.settings.embedded_projector:
            self.projector.catch_up()
        if not self.projector.wait_for(position, self.settings.read_your_writes_timeout):
            raise ProblemError(
                503,
                f"the event at position {position} is recorded, but the read models have "
                "not caught up with it yet; retry reads shortly",
                kind="projection-lag",
            )

    def close(self) -> None:
        self.projector.stop()
        self.log.close()


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")
ServicesDep = Annotated[Services, Depends(services)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def identify(svc: Services, credentials: HTTPAuthorizationCredentials | None) -> Caller | None:
    if credentials is None:
        return None
    return svc.tokens.authenticate(credentials.credentials)


def require(
    role: Role,
    svc: Services,
    credentials: HTTPAuthorizationCredentials | None,
    request: Request | None = None,
) -> Caller:
    caller = identify(svc, credentials)
    if caller is not None and request is not None:
        request.state.caller = caller.name  # for the request log: the name, never the token
    if caller is None:
        detail = "a bearer token is required" if credentials is None else "unknown token"
        raise ProblemError(
            401, detail, kind="unauthenticated", headers={"WWW-Authenticate": "Bearer"}
        )
    if not caller.may(role):
        raise ProblemError(
            403,
            f"{caller.name} has role {caller.role.label}; this needs {role.label}",
            kind="forbidden",
        )
    return caller


def writer(request: Request, svc: ServicesDep, credentials: Credentials) -> Caller:
    return require(Role.WRITER, svc, credentials, request)


def admin(request: Request, svc: ServicesDep, credentials: Credentials) -> Caller:
    return require(Role.ADMIN, svc, credentials, request)


def reader(request: Request, svc: ServicesDep, credentials: Credentials) -> Caller | None:
    """Reads are open unless SANCTIONS_READS_REQUIRE_TOKEN is set."""
    if svc.settings.reads_require_token:
        return require(Role.READER, svc, credentials, request)
    return None


Writer = Annotated[Caller, Depends(writer)]
Admin = Annotated[Caller, Depends(admin)]
Reader = Annotated[Caller | None, Depends(reader)]
