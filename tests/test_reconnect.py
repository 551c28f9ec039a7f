"""Connections the database killed are replaced by themselves (issue 25).

Every backend of a test's schema is terminated (`pg_terminate_backend`) — under load,
or while the service is idle — or the link to the database is cut under a read, or the
database refuses connections for a while: once it answers again, the first request is
answered, by every process and every part of one that holds a connection.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app.bootstrap import build_service
from api.app.service import Service
from api.app.settings import Settings
from api.http.app import create_app
from tests.conftest import ADMIN, POSTGRES_URL, TOKENS, drop_schema, free_port
from tests.test_scaleout import (
    WRITER,
    Proxy,
    event,
    output_of,
    run_threads,
    sanctions,
    stop,
    streams,
    wait_until_up,
)
from tests.webhook_receiver import Receiver

# Processes on PostgreSQL whose connections are killed; the other tests stay in process.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

READS = [
    ("/v1/events", {"country": "BY"}),
    ("/v1/status", {"country": "BY"}),
    ("/v1/timeline", {"country": "BY"}),
    ("/v1/screen", {"hs": "3104", "origin": "BY"}),
]


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(name)


def terminate(schema: str, admin: psycopg.Connection[Any] | None = None) -> int:
    """Terminate every backend whose application_name is `schema` (the processes of this
    test connect with PGAPPNAME set to it; nobody else's backend is touched)."""
    with contextlib.ExitStack() as stack:
        if admin is None:
            admin = stack.enter_context(psycopg.connect(POSTGRES_URL, autocommit=True))
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND application_name = %s",
            (schema,),
        ).fetchall()
    return len(rows)


def killing(schema: str, halt: threading.Event, killed: list[int]) -> None:
    """Every 2 s, half a second of killing every backend as soon as it shows: the
    connections in use, those idle in the pools, and those being opened to replace them."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        while not halt.wait(2.0):
            burst = time.monotonic() + 0.5
            while time.monotonic() < burst:
                killed.append(terminate(schema, admin))
                time.sleep(0.01)


def load(base: str, bodies: Iterator[dict[str, Any]], until: float, worker: int) -> None:
    """Writes and reads until `until`; a 503 is allowed here (the kills are under way)."""
    with httpx.Client(base_url=base, headers=WRITER, timeout=30) as client:
        for number in itertools.count():
            if time.monotonic() > until:
                return
            body = next(bodies)
            key = f"load-{worker}-{number}"
            answer = client.post("/v1/events", json=body, headers={"Idempotency-Key": key})
            # 409: the cycle came round to a stream already imposed
            assert answer.status_code in (200, 201, 409, 503), answer.text
            path, params = READS[number % len(READS)]
            answer = client.get(path, params=params)
            assert answer.status_code in (200, 503), answer.text


@pytest.mark.slow  # three processes, nine seconds of kills under load
def test_after_the_kills_stop_every_process_answers_every_request(schema: str) -> None:
    url = f"{POSTGRES_URL}?schema={schema}"
    ports = [free_port(), free_port()]
    env = {"SANCTIONS_EMBEDDED_PROJECTOR": "0", "PGAPPNAME": schema}
    started: list[subprocess.Popen[str]] = []
    try:
        started.append(sanctions(url, "serve", "--port", str(ports[0]), "--workers", "2", **env))
        started.append(sanctions(url, "serve", "--port", str(ports[1]), **env))
        started.append(sanctions(url, "project", "--poll", "30", PGAPPNAME=schema))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        wait_until_up(bases, started)
        bodies = itertools.cycle(streams(840))
        lock = threading.Lock()

        def next_body() -> Iterator[dict[str, Any]]:
            while True:
                with lock:
                    body = next(bodies)
                yield body

        halt, killed = threading.Event(), []
        killer = threading.Thread(target=killing, args=(schema, halt, killed))
        killer.start()
        until = time.monotonic() + 9
        try:
            run_threads(lambda n: load(bases[n % 2], next_body(), until, n), 4)
        finally:
            halt.set()
            killer.join(10)
        assert sum(killed) > 0, "no connection was killed"
        killed.append(terminate(schema))  # the last kill: every connection now dead, idle
        answers = []
        for base, worker in itertools.product(bases, range(4)):  # both workers of one
            with httpx.Client(base_url=base, headers=WRITER, timeout=30) as client:
                for path, params in READS:
                    answers.append((base, path, client.get(path, params=params)))
                body = event(len(answers), "FR")  # a stream of its own
                key = f"after-{base}-{worker}"
                answers.append(
                    (
                        base,
                        "POST",
                        client.post("/v1/events", json=body, headers={"Idempotency-Key": key}),
                    )
                )
        failed = [(b, p, a.status_code, a.text) for b, p, a in answers if a.status_code >= 500]
        assert failed == [], (failed, [output_of(process)[-3000:] for process in started])
        for process in started:
            assert process.poll() is None
    finally:
        stop(started)


def service_on(url: str, **settings: Any) -> Service:
    return build_service(Settings(database_url=url, api_tokens=TOKENS, **settings))


def test_every_connection_holder_of_an_idle_service_works_after_its_backends_die(
    schema: str,
) -> None:
    """Kills while nothing runs, then each part that holds a connection used once: the
    reads, a write (the projector), a webhook delivery, the listener."""
    receiver = Receiver()
    url = f"{POSTGRES_URL}?schema={schema}&application_name={schema}"
    svc = service_on(
        url,
        webhook_allow_hosts=f"{receiver.host}:{receiver.port}",
        webhook_timeout_seconds=0.5,
        webhook_backoff_base_seconds=0.05,
        webhook_backoff_cap_seconds=0.2,
    )
    try:
        with TestClient(create_app(svc)) as client:
            created = client.post(
                "/v1/subscriptions", json={"url": receiver.url, "filter": {}}, headers=ADMIN
            )
            assert created.status_code == 201, created.text
            for number, (path, params) in enumerate(READS):
                assert (
                    client.post("/v1/events", json=event(number), headers=WRITER).status_code == 201
                )
                assert terminate(schema) > 0
                answer = client.get(path, params=params)
                assert answer.status_code == 200, (path, answer.text)
            receiver.wait_for(lambda: len(receiver.received) == len(READS), timeout=30)
            assert terminate(schema) > 0  # the write, its projection and its delivery
            written = client.post("/v1/events", json=event(7), headers=WRITER)
            assert written.status_code == 201, written.text
            assert "Projection-Pending" not in written.headers
            receiver.wait_for(lambda: len(receiver.received) == len(READS) + 1, timeout=30)
            signals = svc.log.signals  # the listener: another session's NOTIFY still wakes it
            assert terminate(schema) > 0
            seen = signals.seen("tokens")
            assert signals.wait("tokens", 30, since=seen)  # listening again (and looking)
            seen = signals.seen("tokens")
            with psycopg.connect(POSTGRES_URL, autocommit=True) as other:
                other.execute(f'NOTIFY "{schema}_tokens"')
            assert signals.wait("tokens", 30, since=seen)
    finally:
        receiver.close()


class Tripwire(Proxy):
    """A relay to PostgreSQL that, once armed with some text, cuts the connection whose
    client next sends a statement holding it: a connection that dies under a read."""

    armed: bytes | None = None

    def relays(self, data: bytes) -> bool:
        if self.armed is not None and self.armed in data:
            self.armed = None
            return False
        return True


@pytest.fixture
def wire() -> Iterator[Tripwire]:
    relay = Tripwire(("127.0.0.1", 5432))
    relay.start()
    yield relay
    relay.cut()


def through(wire: Tripwire, schema: str, **settings: Any) -> Service:
    """A service whose every connection to the test's schema (and the URL's other
    parameters after it) goes through `wire`."""
    return service_on(
        f"postgresql://postgres@127.0.0.1:{wire.port}/test?schema={schema}", **settings
    )


def test_a_read_whose_connection_dies_under_it_is_asked_again_and_answered(
    schema: str, wire: Tripwire
) -> None:
    # No projector here: nothing but the request sends a statement while the wire is armed.
    svc = through(wire, schema, embedded_projector=False, read_your_writes_timeout=0.1)
    with TestClient(create_app(svc)) as client:
        assert client.post("/v1/events", json=event(0), headers=WRITER).status_code == 201
        svc.projector.catch_up()
        for path, params in READS:
            wire.armed = b"SELECT"  # the read's first statement after the ping
            answer = client.get(path, params=params)
            assert wire.armed is None, path
            assert answer.status_code == 200, (path, answer.text)
            assert answer.json() != {"events": [], "next_after": None, "problems": []}
        wire.armed = b"INSERT"  # a write is not asked again: it says what it knows
        written = client.post("/v1/events", json=event(1), headers=WRITER)
        assert written.status_code in (201, 503), written.text
        if written.status_code == 503:
            assert written.json()["outcome"] in ("not_recorded", "unknown")


def test_after_the_database_refused_connections_the_first_read_is_answered(
    schema: str, wire: Tripwire
) -> None:
    """The pool does not wait out a reconnection backoff once the database is back."""
    svc = through(wire, f"{schema}&connect_timeout=1")
    with TestClient(create_app(svc)) as client:
        assert client.post("/v1/events", json=event(0), headers=WRITER).status_code == 201
        wire.cut()  # connections reset, new ones refused
        gone = time.monotonic()
        assert client.get("/v1/status").status_code == 503
        # the pool's own backoff would try again about 1, 3 and 7 s after the first
        time.sleep(max(0.0, gone + 4.0 - time.monotonic()))
        wire.start()
        answer = client.get("/v1/status", params={"country": "BY"})
        assert answer.status_code == 200, answer.text


def test_a_projector_whose_connection_dies_under_it_tries_again_by_itself(
    schema: str, wire: Tripwire
) -> None:
    """It does not wait for the next event (here there is none) to try again."""
    wired = through(wire, schema, embedded_projector=False)
    writer = service_on(f"{POSTGRES_URL}?schema={schema}", embedded_projector=False)
    try:
        wired.projector.start(poll_interval=3600)  # woken by notifications only
        with TestClient(create_app(writer)) as client:
            # The listener wakes the projector once as it starts (to look for what it
            # missed): the wire is armed once that look is over.
            assert wired.log.signals.wait("events", 10, since=0)
            time.sleep(0.5)
            wire.armed = b"status_tracking"  # where the view stands, and its tracking record
            written = client.post("/v1/events", json=event(0), headers=WRITER)
            assert written.status_code == 201, written.text
        deadline = time.monotonic() + 30
        while wire.armed is not None:  # the projector, woken, lost its connection
            assert time.monotonic() < deadline, "the projector sent nothing"
            time.sleep(0.05)
        assert wired.projector.wait_for(1, timeout=30)
    finally:
        wired.close()
        writer.close()
