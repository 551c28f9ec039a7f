"""The HTTP face: the FastAPI app on an already built service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.app.bootstrap import build_service
from api.app.observability import RequestObserver, configure_logging
from api.app.service import Service
from api.app.settings import Settings
from api.http import contract, docs, problems
from api.http.deps import strict_query
from api.http.limits import WriteGuard
from api.http.retry import RetryReads
from api.http.routes import (
    admin,
    audit,
    events,
    health,
    log,
    page,
    status,
    streams,
    subscriptions,
)
from api.http.routes.shortcuts import AskShortcut, RecordShortcut
from api.http.security import SecurityHeaders


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: its endpoint function's name, not FastAPI's default of
    name, path and method (`record_event_v1_events_post`)."""
    return route.name


def create_app(svc: Service, *, shortcuts: bool = True) -> FastAPI:
    """The HTTP face of the service, on already built services. Without `shortcuts` every
    request goes through the framework's routing (the tests compare the two)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.notary.signer  # noqa: B018 -- read (or created) now: a bad key file fails the start
        if svc.settings.embedded_projector:
            svc.projector.start(svc.settings.projector_poll_seconds)
        yield
        svc.close()

    app = FastAPI(
        title="sanctions-timeline",
        version="0.1.0",
        summary="Sanctions policy as an append-only, verifiable event log",
        lifespan=lifespan,
        dependencies=[Depends(strict_query)],
        docs_url=None,  # served by api.http.docs from packaged assets, not a CDN
        redoc_url=None,
        # Each operation's operationId is its endpoint's name (`record_event`, `get_status`):
        # a generated client's functions are named after them.
        generate_unique_id_function=operation_id,
    )
    app.state.service = svc
    problems.install(app)
    contract.install(app)
    # audit first: its /v1/events/stream must win over /v1/events/{event_id}.
    for module in (audit, log, events, status, streams, admin, subscriptions, health, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=page.WEB / "static"), name="static")
    docs.install(app)
    if shortcuts:  # first added: innermost, inside the retry of a read and the log line
        app.add_middleware(AskShortcut, api=app)
    app.add_middleware(RetryReads)
    app.add_middleware(WriteGuard, shortcut=RecordShortcut(app) if shortcuts else None)
    app.add_middleware(RequestObserver, metrics=svc.metrics)
    app.add_middleware(SecurityHeaders)  # last added: outermost, so every answer has them
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of `sanctions serve --workers N`, on the service its
    settings (SANCTIONS_*) describe."""
    configure_logging()
    return create_app(build_service(Settings()))
