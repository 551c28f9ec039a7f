"""A server killed with SIGKILL mid-delivery delivers after its restart: nothing lost,
nothing out of order (at least once: the event in flight may come twice)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pycountry
import pytest

from tests.conftest import ADMIN, TOKENS, WRITER, free_port
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a server SIGKILLed mid-delivery, restarted

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 40


@pytest.fixture
def server(database_url: str) -> Iterator[Callable[[], tuple[str, subprocess.Popen[str]]]]:
    """Starts `sanctions serve` on the test's store, as a user would, once per call."""
    started: list[subprocess.Popen[str]] = []

    def start() -> tuple[str, subprocess.Popen[str]]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            env={
                **os.environ,
                "SANCTIONS_DATABASE_URL": database_url,
                "SANCTIONS_API_TOKENS": TOKENS,
                "SANCTIONS_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
                "SANCTIONS_WEBHOOK_TIMEOUT_SECONDS": "0.5",
                "SANCTIONS_WEBHOOK_LEASE_SECONDS": "1",
                "SANCTIONS_WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
                "SANCTIONS_WEBHOOK_BACKOFF_CAP_SECONDS": "0.2",
            },
            cwd=ROOT,
            stdout=tempfile.TemporaryFile("w+"),  # noqa: SIM115 -- closed with the process
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return base, process
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server died"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.shared_store
def test_a_server_killed_mid_delivery_delivers_everything_in_order_after_restart(
    server: Callable[[], tuple[str, subprocess.Popen[str]]],
) -> None:
    receiver = Receiver(delay=0.1)  # slow enough to be killed in the middle of a request
    try:
        base, process = server()
        created = httpx.post(
            f"{base}/v1/subscriptions", json={"url": receiver.url}, headers=ADMIN
        ).json()
        countries = sorted(c.alpha_2 for c in pycountry.countries)[:EVENTS]
        batch = [
            {
                "type": "imposed",
                "authority": "US",
                "country": country,
                "commodity": "potash",
                "effective_date": "2021-08-09",
                "measures": ["import_ban"],
            }
            for country in countries
        ]
        answer = httpx.post(
            f"{base}/v1/events:batch", json={"events": batch}, headers=WRITER, timeout=30
        )
        assert answer.status_code == 201, answer.text
        recorded = [event["event_id"] for event in answer.json()["events"]]
        unacknowledged: list[tuple[str, int]] = []
        for target in (8, 20):
            receiver.wait_for(
                lambda t=target: len(receiver.delivered()) >= t and receiver.in_flight()  # type: ignore[misc]
            )
            os.kill(process.pid, signal.SIGKILL)  # while the receiver holds a request
            process.wait()
            receiver.wait_for(lambda: not receiver.in_flight())  # answered, to no one
            unacknowledged.append(
                (receiver.received[-1].headers["webhook-id"], len(receiver.received))
            )
            base, process = server()
        kills = len(unacknowledged)
        receiver.wait_for(
            lambda: {r.headers["webhook-id"] for r in receiver.delivered()} >= set(recorded),
            timeout=60,
        )
        got = [r.headers["webhook-id"] for r in receiver.delivered()]
        first_seen = list(dict.fromkeys(got))
        assert first_seen == recorded  # nothing lost, nothing overtaken
        for earlier, later in itertools.pairwise(got):
            # Only an event that was in flight at a kill comes again, right after itself.
            assert recorded.index(later) >= recorded.index(earlier) - 1
        assert len(got) - len(recorded) <= 2 * kills
        for event_id, answered in unacknowledged:
            # Its 200 never reached the killed server: it is sent again after the restart.
            assert event_id in [r.headers["webhook-id"] for r in receiver.received[answered:]]
        for request in receiver.received:
            assert request.verified(created["secret"])["subscription_id"] == created["id"]
        deliveries = httpx.get(
            f"{base}/v1/subscriptions/{created['id']}/deliveries", headers=ADMIN
        ).json()
        assert deliveries["delivered_position"] == answer.json()["events"][-1]["position"]
    finally:
        receiver.close()
