"""Request dependencies: the wired services and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.identity import Caller, Role, TokenStore
from api.observability import Metrics
from api.problems import ProblemError
from api.settings import Settings
from domain.application import SanctionsLog, WriteOutcome
from projections.projector import Projector


@dataclass
class Services:
    """Everything a request may need, built once by `api.bootstrap`."""

    settings: Settings
    log: SanctionsLog
    tokens: TokenStore
    projector: Projector
    metrics: Metrics = field(default_factory=Metrics)

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
