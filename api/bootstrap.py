"""Wiring in one place: settings → event store → read models → service → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from api import docs, problems
from api.deps import strict_query
from api.identity import TokenStore
from api.limits import WriteGuard
from api.notary import Notary
from api.observability import RequestObserver, configure_logging
from api.routes import (
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
from api.security import SecurityHeaders
from api.service import Service
from api.settings import Settings
from api.webhooks import Webhooks
from domain.application import SanctionsLog
from domain.store.config import setup_lock
from domain.store.keyfile import default_key_file
from domain.store.tokens import TokenTable
from projections.projector import Projector, open_view


def build_service(settings: Settings) -> Service:
    """Open the store and the read models beside it (creating their tables)."""
    with setup_lock(settings.database_url):  # processes starting at once take turns
        log = SanctionsLog(settings.database_url)
        view = open_view(log)
        tokens = TokenTable(log.store, log.signals)
    key_file = settings.signing_key_file or default_key_file(settings.database_url)
    projector = Projector(log, view)
    with setup_lock(settings.database_url):
        webhooks = Webhooks(settings, log, projector)
    return Service(
        settings=settings,
        log=log,
        tokens=TokenStore(tokens, settings.api_tokens),
        projector=projector,
        notary=Notary(key_file, settings.signing_key_name, projector, settings.embedded_projector),
        webhooks=webhooks,
    )


def create_app(svc: Service) -> FastAPI:
    """The HTTP face of the service, on already built services."""

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
        docs_url=None,  # served by api.docs from packaged assets, not a CDN
        redoc_url=None,
    )
    app.state.service = svc
    problems.install(app)
    # audit first: its /v1/events/stream must win over /v1/events/{event_id}.
    for module in (audit, log, events, status, streams, admin, subscriptions, health, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=page.WEB / "static"), name="static")
    docs.install(app)
    app.add_middleware(WriteGuard)
    app.add_middleware(RequestObserver, metrics=svc.metrics)
    app.add_middleware(SecurityHeaders)  # last added: outermost, so every answer has them
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of `sanctions serve --workers N`, on the service its
    settings (SANCTIONS_*) describe."""
    configure_logging()
    return create_app(build_service(Settings()))
