"""FastAPI glue: hands each request the service, and checks the caller's token and role."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from api.app.identity import Caller, Role
from api.app.service import Service
from api.http.problem_types import problems
from api.http.problems import ProblemError
from api.schemas.inputs import check_query_names
from api.schemas.queries import Question

_QUERY_NAMES: dict[int, frozenset[str]] = {}
P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def asked(
    router: APIRouter, question: type[Question], summary: str, *refusals: int, **meanings: str
) -> Callable[[F], F]:
    """The GET route answering `question`: at its path, with its answer's model, refused
    with 422 (a bad parameter), 503 (the database unreachable) and any other `refusals`
    (a meaning given as `_503="…"` replaces the general one, as `problems` says)."""
    return router.get(
        question.PATH.removeprefix(router.prefix),
        response_model=question.ANSWER,
        responses=problems(*sorted({*refusals, 422, 503}), **meanings),
        summary=summary,
    )


def in_worker_thread(endpoint: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A blocking endpoint, run whole in one worker thread. FastAPI hands a plain `def`
    endpoint to the thread pool and then, once more, the validation of its answer; as a
    coroutine the answer is validated and written as JSON on the event loop (microseconds
    on pydantic's core), and the request costs one hand-off, not two."""

    @functools.wraps(endpoint)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return run


def query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter a route (through any of its dependencies) declares; a question
    taken whole (`Annotated[StatusQuery, Query()]`) declares its fields."""
    names: set[str] = set()
    for param in dependant.query_params:
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names |= {field.alias or name for name, field in model.model_fields.items()}
        else:
            names.add(param.alias)
    for dependency in dependant.dependencies:
        names |= query_names(dependency)
    return frozenset(names)


async def strict_query(request: Request, response: Response) -> None:
    """Refuse (422) any query parameter the route does not declare: an ignored `?asof=`
    would answer for today with no warning. The page checks its own, to show it. A
    `known_at` given as a bare date gets a `Known-At-Hint` header saying what it means."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = _QUERY_NAMES[id(route)] = query_names(route.dependant)
    check_query_names(request.query_params.keys(), names)
    hints = known_at_hints(request.query_params.multi_items())
    if hints:
        response.headers["Known-At-Hint"] = " ".join(hints)


BARE_DATE = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*")


def known_at_hints(params: Iterable[tuple[str, str]]) -> list[str]:
    """A hint for each `known_at` (or `…_known_at`) among `params` given as a bare date."""
    return [
        known_at_hint(name, value)
        for name, value in params
        if (name == "known_at" or name.endswith("_known_at")) and BARE_DATE.fullmatch(value)
    ]


def known_at_hint(name: str, value: str) -> str:
    """What a bare date given as `known_at` means: the moment that day began (UTC)."""
    day = value.strip()
    return (
        f"{name}={day} is read as {day}T00:00:00Z, the start of that day (UTC): only what "
        f"was recorded by then counts. {name} is a moment of the record (transaction time), "
        f"e.g. {day}T23:59:59Z for the end of that day; the date a law is read on is as_of."
    )


async def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


async def read_service(request: Request) -> Service:
    """The service a read is answered by: with a standby configured, the standby's copy
    once it holds every write acknowledged before the read (`Service.for_reads`)."""
    svc: Service = request.app.state.service
    if svc.replica is None:
        return svc
    return await run_in_threadpool(svc.for_reads)


bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")
ServiceDep = Annotated[Service, Depends(service)]
ReadDep = Annotated[Service, Depends(read_service)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def identify(svc: Service, credentials: HTTPAuthorizationCredentials) -> Caller:
    """The caller holding the token, read from the table; else a 401 saying why. Blocks:
    run in a worker thread."""
    caller = svc.tokens.authenticate(credentials.credentials)
    if caller is not None:
        return caller
    revoked = svc.tokens.is_revoked(credentials.credentials)
    raise ProblemError(
        401,
        "token revoked" if revoked else "unknown token",
        kind="unauthenticated",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require(
    role: Role,
    svc: Service,
    credentials: HTTPAuthorizationCredentials | None,
    request: Request | None = None,
) -> Caller:
    """The caller, allowed `role`; else a 401 or 403. Answered on the event loop from the
    tokens in memory; only a token they do not show (new, revoked, unknown, or the copy
    just forgotten) costs a worker thread and a read of the table."""
    if credentials is None:
        raise ProblemError(
            401,
            "a bearer token is required",
            kind="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = svc.tokens.cached_caller(credentials.credentials)
    if caller is None:
        caller = await run_in_threadpool(identify, svc, credentials)
    if request is not None:
        request.state.caller = caller.name  # for the request log: the name, never the token
    if not caller.may(role):
        raise ProblemError(
            403,
            f"{caller.name} has role {caller.role.label}; this needs {role.label}",
            kind="forbidden",
        )
    return caller


async def writer(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller:
    return await require(Role.WRITER, svc, credentials, request)


async def admin(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller:
    return await require(Role.ADMIN, svc, credentials, request)


async def reader(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller | None:
    """Reads are open unless SANCTIONS_READS_REQUIRE_TOKEN is set."""
    if svc.settings.reads_require_token:
        return await require(Role.READER, svc, credentials, request)
    return None


async def auditor(request: Request, svc: ServiceDep, credentials: Credentials) -> Caller:
    """Verification always needs a reader token: it costs seconds on a large log."""
    return await require(Role.READER, svc, credentials, request)


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
