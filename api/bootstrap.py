"""Wiring in one place: settings → event store → token store → FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.deps import Services
from api.identity import TokenStore
from api.limits import BodySizeLimit
from api.routes import events, health, streams
from api.settings import Settings
from domain.application import SanctionsLog


def build_services(settings: Settings) -> Services:
    """Open the store (creating its tables) and the token store beside it."""
    log = SanctionsLog(settings.database_url)
    return Services(settings=settings, log=log, tokens=TokenStore(log.store, settings.api_tokens))


def create_app(svc: Services) -> FastAPI:
    """The HTTP face of the service, on already built services."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        svc.log.close()

    app = FastAPI(
        title="sanctions-timeline",
        version="0.1.0",
        summary="Sanctions policy as an append-only, verifiable event log",
        lifespan=lifespan,
    )
    app.state.services = svc
    problems.install(app)
    for module in (events, streams, health):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit)
    return app
