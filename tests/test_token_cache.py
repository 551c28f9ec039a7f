"""The HTTP path of a request: stored tokens are checked from memory, yet a revoked token is
refused on the very next request by every process on the database; a request hands work
to a worker thread once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from api.app.identity import Role
from api.app.service import Service
from api.http.app import create_app
from domain.store.tokens import TokenTable
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e  # tokens made and revoked by the CLI, refused by a served app

IMPOSED = {
    "type": "imposed",
    "authority": "US",
    "country": "BY",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["asset_freeze"],
    "legal_basis": "Executive Order 14038",
    "source": {"url": "https://ofac.treasury.gov/a", "title": "t", "published": "2021-08-09"},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusal(response: Any) -> str:
    assert response.status_code == 401, response.text
    return str(response.json()["detail"])


@contextmanager
def counting(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, seen: Counter[str]
) -> Iterator[None]:
    """Count calls of `owner.name` (by the called function's name, for thread hand-offs)."""
    original = getattr(owner, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        called = getattr(args[0], "func", args[0]) if args else None
        seen[getattr(called, "__name__", name)] += 1
        return original(*args, **kwargs)

    async def acall(*args: Any, **kwargs: Any) -> Any:
        called = getattr(args[0], "func", args[0]) if args else None
        seen[getattr(called, "__name__", name)] += 1
        return await original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, acall if name == "run_sync" else call)
        yield


@pytest.mark.shared_store
def test_a_token_revoked_by_one_process_is_refused_by_every_other_at_once(
    make_services: Callable[..., Service],
) -> None:
    """On SQLite the very next request anywhere refuses it; on PostgreSQL, the next one
    after the process has heard the change (NOTIFY arrives a few milliseconds after the
    commit: a request slipping in between is the price of asking no database per request)."""
    here = make_services(reads_require_token=True)
    there = make_services(reads_require_token=True)  # another process on the same database
    token = here.tokens.create("carol", Role.READER)
    with TestClient(create_app(here)) as a, TestClient(create_app(there)) as b:
        for _ in range(3):  # both processes now hold the token in memory
            assert a.get("/v1/commodities", headers=bearer(token)).status_code == 200
            assert b.get("/v1/commodities", headers=bearer(token)).status_code == 200
        seen = here.log.signals.seen("tokens")
        there.tokens.revoke("carol")
        assert refusal(b.get("/v1/commodities", headers=bearer(token))) == "token revoked"
        if here.log.signals.listening:
            assert here.log.signals.wait("tokens", 5.0, since=seen), "the revocation went unheard"
        assert refusal(a.get("/v1/commodities", headers=bearer(token))) == "token revoked"


@pytest.mark.shared_store
def test_a_token_made_by_another_process_works_at_once(
    make_services: Callable[..., Service],
) -> None:
    here = make_services(reads_require_token=True)
    there = make_services(reads_require_token=True)
    with TestClient(create_app(here)) as a:
        assert a.get("/v1/commodities", headers=bearer("reader-token")).status_code == 200
        token = there.tokens.create("carol", Role.READER)
        assert a.get("/v1/commodities", headers=bearer(token)).status_code == 200


@pytest.mark.shared_store
def test_a_token_revoked_on_the_command_line_is_refused_by_the_server(
    make_services: Callable[..., Service], database_url: str
) -> None:
    served = make_services()
    token = served.tokens.create("carol", Role.WRITER)
    with TestClient(create_app(served)) as client:
        assert client.post("/v1/events", json=IMPOSED, headers=bearer(token)).status_code == 201
        revoked = run_cli(database_url, "token", "revoke", "carol")
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        answer = client.post(
            "/v1/events", json={**IMPOSED, "authority": "EU"}, headers=bearer(token)
        )
        assert refusal(answer) == "token revoked"


@pytest.mark.shared_store
def test_requests_with_a_stored_token_read_no_tokens_and_hand_off_once(
    services: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = services.tokens.create("carol", Role.ADMIN)
    reads: Counter[str] = Counter()
    hops: Counter[str] = Counter()
    with TestClient(create_app(services)) as client:
        assert client.get("/v1/subscriptions", headers=bearer(token)).status_code == 200
        with (
            counting(monkeypatch, TokenTable, "rows", reads),
            counting(monkeypatch, anyio.to_thread, "run_sync", hops),
        ):
            posted = client.post("/v1/events", json=IMPOSED, headers=bearer(token))
            assert posted.status_code == 201
            # The write's common case is answered by the route's shortcut: one hand-off.
            assert (hops, reads) == (Counter(recorded=1), Counter())
            hops.clear()
            assert client.get("/v1/status", headers=bearer(token)).status_code == 200
            assert client.get(f"/v1/events/{posted.json()['event_id']}").status_code == 200
            # A status read is answered by its shortcut: on the event loop itself on an
            # embedded store, in a worker thread on PostgreSQL.
            on_loop = services.settings.database_url.startswith(("sqlite", "memory"))
            status_hops = Counter() if on_loop else Counter(answered=1)
            assert (hops, reads) == (status_hops + Counter(get_event=1), Counter())
