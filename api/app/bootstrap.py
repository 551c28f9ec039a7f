"""Wiring in one place: settings → event store → read models → service (the HTTP face wraps
it in `api.http.app`)."""

from __future__ import annotations

from api.app.identity import TokenStore
from api.app.notary import Notary
from api.app.replica import Replica
from api.app.service import Service
from api.app.settings import Settings
from api.app.webhooks.registry import Webhooks
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
        tokens = TokenTable(log.store.database(), log.signals)
    key_file = settings.signing_key_file or default_key_file(settings.database_url)
    projector = Projector(log, view)
    with setup_lock(settings.database_url):
        webhooks = Webhooks(settings, log, projector)
    replica = None
    if settings.read_database_url:
        replica = Replica.open(settings.database_url, settings.read_database_url)
    notary = Notary(key_file, settings.signing_key_name, projector, settings.embedded_projector)
    if replica is not None:
        replica.attach(notary)
    return Service(
        replica=replica,
        settings=settings,
        log=log,
        tokens=TokenStore(tokens, settings.api_tokens),
        projector=projector,
        notary=notary,
        webhooks=webhooks,
    )
