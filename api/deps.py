"""FastAPI glue: hands each request the service, and checks the caller's token and role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.identity import Caller, Role
from api.inputs import check_query_names
from api.problems import ProblemError
from api.service import Service

_QUERY_NAMES: dict[int, frozenset[str]] = {}


def query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter a route (through any of its dependencies) declares."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= query_names(dependency)
    return frozenset(names)


async def strict_query(request: Request) -> None:
    """Refuse (422) any query parameter the route does not declare: an ignored `?asof=`
    would answer for today with no warning. The page checks its own, to show it."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = _QUERY_NAMES[id(route)] = query_names(route.dependant)
    check_query_names(request.query_params.keys(), names)


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")
ServiceDep = Annotated[Service, Depends(service)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def identify(svc: Service, credentials: HTTPAuthorizationCredentials | None) -> Caller | None:
    if credentials is None:
        return None
    return svc.tokens.authenticate(credentials.credentials)


def require(
    role: Role,
    svc: Service,
    credentials: HTTPAuthorizationCredentials | None,
    request: Request | None = None,
) -> Caller:
    caller = identify(svc, credentials)
    if caller is not None and request is not None:
        request.state.caller = caller.name  # for the request log: the name, never the token
    if caller is None:
        if credentials is None:
            detail = "a bearer token is required"
        elif svc.tokens.is_revoked(credentials.credentials):
            detail = "token revoked"
        else:
            detail = "unknown token"
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


def writer(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller:
    return require(Role.WRITER, svc, credentials, request)


def admin(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller:
    return require(Role.ADMIN, svc, credentials, request)


def reader(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller | None:
    """Reads are open unless SANCTIONS_READS_REQUIRE_TOKEN is set."""
    if svc.settings.reads_require_token:
        return require(Role.READER, svc, credentials, request)
    return None


def auditor(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller:
    """Verification always needs a reader token: it costs seconds on a large log."""
    return require(Role.READER, svc, credentials, request)


ACCESS: dict[Callable[..., object], tuple[Role, bool]] = {
    reader: (Role.READER, False),
    auditor: (Role.READER, True),
    writer: (Role.WRITER, True),
    admin: (Role.ADMIN, True),
}
"""Each caller check: the role it asks for, and whether always (reads: only when configured)."""


def access(dependant: Dependant) -> tuple[Role, bool] | None:
    """The role a route needs, and whether always; None for a route open to anyone."""
    for dependency in dependant.dependencies:
        found = ACCESS.get(dependency.call) if dependency.call is not None else None
        if found is None:
            found = access(dependency)
        if found is not None:
            return found
    return None


Writer = Annotated[Caller, Depends(writer)]
Auditor = Annotated[Caller, Depends(auditor)]
Admin = Annotated[Caller, Depends(admin)]
Reader = Annotated[Caller | None, Depends(reader)]
