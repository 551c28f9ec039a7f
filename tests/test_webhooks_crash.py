"""A server killed with SIGKILL mid-delivery delivers after its restart: nothing lost,
nothing out of order (at least once: the event in flight may come twice), and at once,
without waiting out the dead process's lease. A server stopped with SIGTERM mid-attempt
stops at once, abandoning the attempt."""

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

from tests.conftest import ADMIN, TOKENS, US_POTASH_IMPOSED, WRITER, free_port
from tests.webhook_receiver import Receiver

# Servers started as processes, SIGKILLed or SIGTERMed mid-delivery, restarted.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 40
LEASE = 120
"""Far longer than the tests wait: a restarted server that waited out its predecessor's
lease would fail them."""
Start = Callable[..., tuple[str, subprocess.Popen[str]]]


@pytest.fixture
def server(database_url: str) -> Iterator[Start]:
    """Starts `sanctions serve` on the test's store, as a user would, once per call, allowed
    to send webhooks to the given receiver."""
    started: list[subprocess.Popen[str]] = []

    def start(receiver: Receiver, **env: str) -> tuple[str, subprocess.Popen[str]]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            env={
                **os.environ,
                "SANCTIONS_DATABASE_URL": database_url,
                "SANCTIONS_API_TOKENS": TOKENS,
                "SANCTIONS_WEBHOOK_ALLOW_HOSTS": f"127.0.0.1:{receiver.port}",
                "SANCTIONS_WEBHOOK_TIMEOUT_SECONDS": "0.5",
                "SANCTIONS_WEBHOOK_LEASE_SECONDS": str(LEASE),
                "SANCTIONS_WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
                "SANCTIONS_WEBHOOK_BACKOFF_CAP_SECONDS": "0.2",
                **env,
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
    server: Start,
) -> None:
    """The killed process's lease (120 s) is not waited out: the restarted one knows its
    holder is gone and takes the subscription over at once."""
    receiver = Receiver(delay=0.1)  # slow enough to be killed in the middle of a request
    try:
        base, process = server(receiver)
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
            base, process = server(receiver)
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


@pytest.mark.shared_store
def test_sigterm_during_an_attempt_stops_the_server_at_once(server: Start) -> None:
    """A receiver trickling its answer a byte a second, a timeout of 30 s and a lease of
    120 s: SIGTERM cuts the attempt under way, which is recorded as abandoned, and the
    server exits without waiting for either."""
    receiver = Receiver(trickle=True)
    try:
        base, process = server(receiver, SANCTIONS_WEBHOOK_TIMEOUT_SECONDS="30")
        created = httpx.post(
            f"{base}/v1/subscriptions", json={"url": receiver.url}, headers=ADMIN
        ).json()
        event = US_POTASH_IMPOSED
        imposed = httpx.post(f"{base}/v1/events", json=event, headers=WRITER).json()
        receiver.wait_for(lambda: len(receiver.arrived) == 1)
        process.send_signal(signal.SIGTERM)
        # Stopped (uvicorn ends by raising the signal again) well before the timeout
        # (30 s), let alone the lease: a TimeoutExpired otherwise.
        assert process.wait(timeout=25) in (0, -signal.SIGTERM)
        receiver.wait_for(lambda: bool(receiver.cut_off))
        base, process = server(receiver, SANCTIONS_WEBHOOK_TIMEOUT_SECONDS="30")
        attempts = httpx.get(
            f"{base}/v1/subscriptions/{created['id']}/deliveries", headers=ADMIN
        ).json()["attempts"]
        assert [(a["event_id"], a["outcome"], a["error"]) for a in attempts[-1:]] == [
            (imposed["event_id"], "failed", "abandoned: the service is stopping")
        ]
    finally:
        receiver.close()
