"""The busiest routes in their common case, answered beside the framework's routing.

FastAPI's routing, dependencies and answer validation cost a small request several times
what the service does for it (a write's CPU fell by a third without them; a status read's
by more). A shortcut takes a request only when it can tell, before anything is done, that
the route would take it as it is: a known token of the right role (or reads open), no
parameter the route would refuse, refine or remark on, a body or question that validates.
Anything else goes the framework's way, so every refusal of input, token or role is the
route's own. From there on the answer is the route's too: the same service call (in a
worker thread, or for a read on an embedded store on the event loop), the same status and
headers, the body as FastAPI writes the route's answer model, and an error answered by the
app's own handler of its type.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any, cast

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app.identity import Caller, Role
from api.app.service import Service
from api.http.deps import known_at_hints, query_names
from api.http.routes import events, status
from api.schemas.answers import EventIn
from api.schemas.queries import (
    DiffQuery,
    ExpiringQuery,
    Question,
    ScreenQuery,
    StatusQuery,
    TimelineQuery,
)

ASKED: dict[type[Question], Callable[[Service, Any], BaseModel]] = {
    StatusQuery: Service.status,
    TimelineQuery: Service.timeline,
    DiffQuery: Service.diff,
    ScreenQuery: Service.screen,
    ExpiringQuery: Service.expiring,
}
"""The questions answered by a shortcut, each with what answers it."""


def route_of(router_routes: list[Any], endpoint: Callable[..., Any]) -> APIRoute:
    return next(r for r in router_routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


def known_caller(svc: Service, scope: Scope, role: Role) -> Caller | None:
    """The caller of the request's bearer token, if the service knows it without a read and
    it is allowed `role`. The first Authorization header counts, as for the route."""
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if authorization is None:
        return None
    scheme, token = get_authorization_scheme_param(authorization.decode("latin-1"))
    if scheme.lower() != "bearer" or not token:
        return None
    caller = svc.tokens.cached_caller(token)
    return caller if caller is not None and caller.may(role) else None


async def answer_error(app: FastAPI, request: Request, error: Exception) -> Response:
    """`error` answered as the app answers it: by its handler, found as Starlette finds it
    (the nearest class of `error` that has one)."""
    handler: Callable[..., Any] | None = next(
        (
            app.exception_handlers[kind]
            for kind in type(error).__mro__
            if kind in app.exception_handlers
        ),
        None,
    )
    if handler is None:
        raise error
    if inspect.iscoroutinefunction(handler):
        answered = await handler(request, error)
    else:
        answered = await run_in_threadpool(handler, request, error)
    return cast(Response, answered)


async def answer(
    app: FastAPI,
    request: Request,
    send: Send,
    work: Callable[..., Response],
    *args: Any,
    inline: bool = False,
) -> None:
    """Send what `work(*args)` answers, or its error's answer: run in a worker thread, or
    `inline` on the event loop."""
    try:
        response = work(*args) if inline else await run_in_threadpool(work, *args)
    except Exception as error:
        response = await answer_error(app, request, error)
    await response(request.scope, request.receive, send)


class RecordShortcut:
    """`POST /v1/events` with no query string, a writer's token the service already holds
    (`TokenTable.cached_caller`), at most one `Idempotency-Key` of 1 to 255 characters, and
    a body that is a valid `EventIn`; called by `WriteGuard` with the body read whole."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.route = route_of(events.router.routes, events.record_event)

    async def __call__(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> bool:
        """Answer the write of `scope` and `body` if it is the common case: True when done."""
        if scope["method"] != "POST" or scope["path"] != "/v1/events" or scope["query_string"]:
            return False
        svc: Service = self.app.state.service
        caller = known_caller(svc, scope, Role.WRITER)
        keys = [value for name, value in scope["headers"] if name == b"idempotency-key"]
        if caller is None or len(keys) > 1 or (keys and not 1 <= len(keys[0]) <= 255):
            return False  # the route judges several keys, or one of a length it refuses
        key = keys[0].decode("latin-1") if keys else None
        try:
            event_in = EventIn.model_validate(json.loads(body.decode("utf-8")))
        except (ValueError, ValidationError, RecursionError):
            return False  # the route names what is wrong, where
        scope["route"] = self.route  # the request's log line and metrics name the route
        scope.setdefault("state", {})["caller"] = caller.name
        request = Request(scope, receive)
        await answer(self.app, request, send, recorded, svc, caller, event_in, key, request)
        return True


def recorded(
    svc: Service, caller: Caller, body: EventIn, key: str | None, request: Request
) -> Response:
    """What `record_event` answers, as FastAPI writes it."""
    headers = Response()  # the route's own `response`, holding its status and headers
    del headers.headers["content-length"]
    event = events.record_one(svc, caller, body, key, request, headers)
    written = Response(
        event.model_dump_json(by_alias=True),
        status_code=headers.status_code,
        media_type="application/json",
    )
    written.headers.raw.extend(headers.headers.raw)
    return written


class AskShortcut:
    """`GET` of a question of `ASKED` when reads are open (or the token is a reader's the
    service holds), no standby is configured, every parameter is one the question declares,
    given once and not blank, no `known_at` is a bare date (the route adds a hint), and the
    question validates. Pure ASGI, innermost: a read whose connection is lost is asked again
    by `RetryReads` as any other."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app, self.api = app, api
        # An embedded store (SQLite, memory) answers a question in a fraction of a
        # millisecond from this process's own files, never waiting on a network or a lock
        # a writer holds (WAL readers do not wait): asked on the event loop itself. Handed
        # to a worker thread instead, the hand-off and the threads' contention for the
        # interpreter's lock cost three times the answer (measured: 1.07 ms of CPU a status
        # read through a worker thread, 0.30 inline). PostgreSQL waits on its server, so
        # there a worker thread waits, not the loop.
        url = api.state.service.settings.database_url
        self.inline = url.split(":", 1)[0] in ("sqlite", "memory")
        self.questions = {
            question.PATH: (question, ask, self.route_for(question))
            for question, ask in ASKED.items()
        }
        # What `strict_query` takes from each route: the names it declares.
        self.names = {
            path: query_names(route.dependant) for path, (_, _, route) in self.questions.items()
        }

    @staticmethod
    def route_for(question: type[Question]) -> APIRoute:
        return next(
            r for r in status.router.routes if isinstance(r, APIRoute) and r.path == question.PATH
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = self.questions.get(scope.get("path", "")) if scope["type"] == "http" else None
        if asked is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        question_type, ask, route = asked
        svc: Service = self.api.state.service
        question = self.question(scope, svc, question_type)
        if question is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive)
        await answer(self.api, request, send, answered, svc, ask, question, inline=self.inline)

    def question(
        self, scope: Scope, svc: Service, question_type: type[Question]
    ) -> Question | None:
        """The question asked, if the shortcut may answer it."""
        if svc.replica is not None:
            return None
        if svc.settings.reads_require_token:
            caller = known_caller(svc, scope, Role.READER)
            if caller is None:
                return None
            scope.setdefault("state", {})["caller"] = caller.name
        params = QueryParams(scope["query_string"])
        items = params.multi_items()
        values = dict(items)
        names = self.names[question_type.PATH]
        if len(values) != len(items) or not values.keys() <= names:
            return None
        if not all(value for _, value in items) or known_at_hints(items):
            return None  # blank: the route's default; a bare date: the route adds a hint
        try:
            return question_type.model_validate(values)
        except ValidationError:
            return None


def answered(
    svc: Service, ask: Callable[[Service, Any], BaseModel], question: Question
) -> Response:
    """What the question's route answers, as FastAPI writes it."""
    found = ask(svc, question)
    if not isinstance(found, type(question).ANSWER):
        raise TypeError(f"{type(question).__name__} answered {type(found).__name__}")
    return Response(found.model_dump_json(by_alias=True), media_type="application/json")
