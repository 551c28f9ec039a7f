"""Several processes on one PostgreSQL keep every promise (SPEC §3).

Real `sanctions` processes, started as an operator would: API processes with no
projector of their own, and one `sanctions project`. Each test has its own schema.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, ROOT, drop_schema, free_port

# Several `sanctions` processes on one PostgreSQL, each test a minute or so.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

TOKENS = "wendy:writer:writer-token"
WRITER = {"Authorization": "Bearer writer-token"}
COUNTRIES = ["BY", "RU", "IR", "VE", "KP", "SY", "CU", "MM", "AF", "ZW", "NI", "ML"]
COMMODITIES = ["potash", "crude-oil", "coal", "gold", "diamonds", "timber", "steel-products"]


@pytest.fixture
def schema_url() -> Iterator[str]:
    schema = f"s_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


def sanctions(database_url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """A `sanctions` process; its output goes to a temporary file (a pipe nobody reads
    would fill up with request log lines and stall the server)."""
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- read by output_of, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        env={
            **os.environ,
            "SANCTIONS_DATABASE_URL": database_url,
            "SANCTIONS_API_TOKENS": TOKENS,
            **env,
        },
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    OUTPUTS[process.pid] = output
    return process


OUTPUTS: dict[int, IO[str]] = {}
"""Each process's output file, by pid (Popen keeps no handle on a file it was given)."""


def output_of(process: subprocess.Popen[str]) -> str:
    output = OUTPUTS[process.pid]
    output.seek(0)
    return output.read()


def wait_until_up(bases: list[str], started: list[subprocess.Popen[str]]) -> None:
    """Until every server answers /healthz (failing with its output if one died)."""
    deadline = time.monotonic() + 60
    for base in bases:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            dead = [p for p in started if p.poll() is not None]
            assert not dead, output_of(dead[0])
            assert time.monotonic() < deadline, "a process did not start"
            time.sleep(0.1)


@contextmanager
def processes(database_url: str, api: int = 2, projector: bool = True) -> Iterator[list[str]]:
    """`api` API processes (no projector of their own) and one projector, all started
    at once, their database connections named after the schema; yields the API URLs."""
    ports = [free_port() for _ in range(api)]
    name = database_url.split("schema=")[1]
    started = [
        sanctions(
            database_url, "serve", "--port", str(port),
            SANCTIONS_EMBEDDED_PROJECTOR="0", PGAPPNAME=name,
        )
        for port in ports
    ]  # fmt: skip
    if projector:  # it polls every 30 s: only a notification wakes it in time
        started.append(sanctions(database_url, "project", "--poll", "30", PGAPPNAME=name))
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        wait_until_up(bases, started)
        yield bases
    finally:
        stop(started)


def stop(started: list[subprocess.Popen[str]]) -> None:
    """Stop every process, killing any that has not stopped after 30 s."""
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def event(number: int, authority: str = "US") -> dict[str, Any]:
    country = COUNTRIES[number % len(COUNTRIES)]
    commodity = COMMODITIES[(number // len(COUNTRIES)) % len(COMMODITIES)]
    return {
        "type": "imposed",
        "authority": authority,
        "country": country,
        "commodity": commodity,
        "effective_date": "2021-08-09",
        "measures": ["import_ban"],
    }


def streams(count: int) -> list[dict[str, Any]]:
    authorities = ["US", "EU", "GB", "CA", "LT", "UN", "JP", "AU", "CH", "NO"]
    per = len(COUNTRIES) * len(COMMODITIES)
    return [event(n % per, authorities[n // per]) for n in range(count)]


def run_threads(target: Callable[[int], None], count: int) -> None:
    """Run `target(0…count-1)` in threads; re-raise the first failure of any of them."""
    failures: list[BaseException] = []

    def guarded(number: int) -> None:
        try:
            target(number)
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    if failures:
        raise failures[0]


def slow_commits(database_url: str) -> None:
    """Widen the moment between an event's recording time and its commit (30 ms, by a
    trigger): a reader that did not wait for writes under way would then be caught."""
    schema = database_url.split("schema=")[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f'CREATE FUNCTION "{schema}".slow_commit() RETURNS trigger LANGUAGE plpgsql'
            " AS $$ BEGIN PERFORM pg_sleep(0.03); RETURN NULL; END $$"
        )
        conn.execute(
            f'CREATE TRIGGER slow_commit AFTER INSERT ON "{schema}".sanctionstimeline_events'
            f' FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".slow_commit()'
        )


def test_processes_started_all_at_once_on_a_fresh_database_all_come_up() -> None:
    """Five processes set up one fresh schema at the same moment, ten rounds."""
    program = (
        "from api.app.bootstrap import build_service; from api.app.settings import Settings;"
        "build_service(Settings()).close()"
    )
    for _ in range(10):
        schema = f"up_{uuid.uuid4().hex[:12]}"
        url = f"{POSTGRES_URL}?schema={schema}"
        try:
            starting = [
                subprocess.Popen(
                    [sys.executable, "-c", program],
                    env={**os.environ, "SANCTIONS_DATABASE_URL": url},
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(5)
            ]
            for process in starting:
                output, _ = process.communicate(timeout=120)
                assert process.returncode == 0, output
        finally:
            drop_schema(schema)


def test_answers_for_a_known_at_never_change_and_recorded_at_rises_with_position(
    schema_url: str,
) -> None:
    with processes(schema_url, api=2) as (a, b):
        slow_commits(schema_url)
        bodies = streams(120)
        saved: list[tuple[dict[str, str], dict[str, Any]]] = []
        writing = threading.Event()
        writing.set()

        def write(worker: int) -> None:
            with httpx.Client(base_url=a, headers=WRITER, timeout=60) as client:
                for body in bodies[worker::6]:
                    answer = client.post("/v1/events", json=body)
                    assert answer.status_code == 201, answer.text

        def read(worker: int) -> None:  # on the other process, which writes nothing
            with httpx.Client(base_url=b, timeout=60) as client:
                while writing.is_set():
                    query = random.choice([{}, {"authority": "US"}, {"commodity": "potash"}])
                    answer = client.get("/v1/status", params=query).json()
                    saved.append((query, answer))

        readers = [threading.Thread(target=read, args=(n,)) for n in range(2)]
        for reader in readers:
            reader.start()
        run_threads(write, 6)
        writing.clear()
        for reader in readers:
            reader.join(60)
        assert len(saved) > 20
        with httpx.Client(timeout=60) as client:
            changed = [
                (query, answer)
                for query, answer in saved
                if client.get(
                    f"{random.choice((a, b))}/v1/status",
                    params={**query, "known_at": answer["known_at"]},
                ).json()
                != answer
            ]
            assert changed == []
            log = client.get(f"{a}/v1/events", params={"limit": 1000}).json()["events"]
    assert len(log) == len(bodies)
    recorded = [datetime.fromisoformat(e["recorded_at"].replace("Z", "+00:00")) for e in log]
    assert recorded == sorted(recorded) and len(set(recorded)) == len(recorded)


def test_a_write_is_read_back_at_once_on_the_server_that_wrote_it(schema_url: str) -> None:
    with processes(schema_url, api=2) as bases:
        bodies = streams(96)
        missed: list[str] = []

        def write(worker: int) -> None:
            base = bases[worker % 2]
            with httpx.Client(base_url=base, headers=WRITER, timeout=60) as client:
                for body in bodies[worker::6]:
                    written = client.post("/v1/events", json=body)
                    assert written.status_code == 201, written.text
                    assert "Projection-Pending" not in written.headers
                    query = {k: body[k] for k in ("authority", "country", "commodity")}
                    (row,) = client.get("/v1/status", params=query).json()["results"]
                    if written.json()["event_id"] not in row["event_ids"]:
                        missed.append(written.json()["stream"])

        run_threads(write, 6)
    assert missed == []


def terminate_backends(schema: str, stop: threading.Event, killed: list[int]) -> None:
    """Kill the busy database connections of the processes working on `schema` (they
    connect with PGAPPNAME set to it), every 0.3 s, until stopped."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        while not stop.wait(0.3):
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND application_name = %s"
                " AND state <> 'idle'",
                (schema,),
            ).fetchall()
            killed.append(len(rows))


def test_writes_while_connections_are_killed_answer_the_truth_and_record_once(
    schema_url: str,
) -> None:
    schema = schema_url.split("schema=")[1]
    with processes(schema_url, api=1) as (base,):
        bodies = streams(240)
        outcomes: dict[str, list[int]] = {}
        stop = threading.Event()
        killed: list[int] = []
        killer = threading.Thread(target=terminate_backends, args=(schema, stop, killed))
        killer.start()

        def write(worker: int) -> None:
            with httpx.Client(base_url=base, headers=WRITER, timeout=60) as client:
                for number, body in list(enumerate(bodies))[worker::3]:
                    key = f"write-{number}"
                    statuses = outcomes.setdefault(key, [])
                    for _ in range(20):  # retried with the same key until answered
                        answer = client.post(
                            "/v1/events", json=body, headers={"Idempotency-Key": key}
                        )
                        statuses.append(answer.status_code)
                        if answer.status_code in (200, 201):
                            break
                        assert answer.status_code == 503, answer.text
                        outcome = answer.json().get("outcome")
                        assert outcome in ("not_recorded", "unknown"), answer.text
                        if outcome == "not_recorded":
                            stored = client.get(
                                "/v1/events", params={"limit": 1000}
                            )  # may itself fail while connections die: checked below
                            if stored.status_code == 200:
                                streams_now = {e["stream"] for e in stored.json()["events"]}
                                name = "/".join(
                                    body[k] for k in ("authority", "country", "commodity")
                                )
                                assert name not in streams_now, "a 503 said not_recorded"
                        time.sleep(0.1)

        try:
            run_threads(write, 3)
        finally:
            stop.set()
            killer.join(10)
        assert all(s[-1] in (200, 201) for s in outcomes.values()), outcomes
        log = httpx.get(f"{base}/v1/events", params={"limit": 1000}, timeout=60).json()
    assert sorted(e["stream"] for e in log["events"]) == sorted(
        "/".join(b[k] for k in ("authority", "country", "commodity")) for b in bodies
    )
    assert sum(killed) > 0, "no connection was killed"


def test_with_the_projector_down_a_write_is_answered_recorded_and_pending(
    schema_url: str,
) -> None:
    with processes(schema_url, api=1, projector=False) as (base,):
        started = time.monotonic()
        written = httpx.post(f"{base}/v1/events", json=event(0), headers=WRITER, timeout=30)
        waited = time.monotonic() - started
        assert written.status_code == 201, written.text
        assert written.headers["Projection-Pending"] == "true"
        assert waited < 10, "a write waits a short, bounded time for the read models"
        stored = httpx.get(f"{base}/v1/events/{written.json()['event_id']}", timeout=30)
        assert stored.status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=30)
        # One event behind, within the bound (ready_max_lag_events): ready, saying so.
        assert ready.status_code == 200, ready.text
        assert ready.json()["projection_lag_events"] == 1, ready.text
    with processes(schema_url, api=1, projector=True) as (base,):
        deadline = time.monotonic() + 30
        while True:  # the projector started later catches up with what was recorded
            (row,) = httpx.get(
                f"{base}/v1/status",
                params={k: event(0)[k] for k in ("authority", "country", "commodity")},
                timeout=30,
            ).json()["results"]
            if row["status"] == "active":
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["projection_lag_events"] == 0, ready.text


def test_a_database_dropped_and_created_again_is_answered_fast_and_recovered(
    schema_url: str,
) -> None:
    schema = schema_url.split("schema=")[1]
    with processes(schema_url, api=1, projector=False) as (base,):
        assert httpx.post(f"{base}/v1/events", json=event(0), headers=WRITER).status_code == 201
        drop_schema(schema)  # the database answers, but the store is gone
        answers: list[tuple[int, float]] = []

        def read(_: int) -> None:
            started = time.monotonic()
            status = httpx.get(f"{base}/v1/status", params={"country": "BY"}, timeout=60)
            answers.append((status.status_code, time.monotonic() - started))

        readers = [threading.Thread(target=read, args=(n,)) for n in range(30)]
        for reader in readers:
            reader.start()
        started = time.monotonic()
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        assert time.monotonic() - started < 2, "/healthz waits for nothing"
        for reader in readers:
            reader.join(60)
        assert len(answers) == 30
        assert all(status in (200, 503) for status, _ in answers), answers
        assert max(seconds for _, seconds in answers) < 15, answers
        deadline = time.monotonic() + 30
        while True:  # recovered by itself, on an empty store
            status = httpx.get(f"{base}/v1/status", params={"country": "BY"}, timeout=30)
            if status.status_code == 200:
                break
            assert time.monotonic() < deadline, status.text
            time.sleep(0.2)
        assert status.json()["results"] == []
        again = httpx.post(f"{base}/v1/events", json=event(0), headers=WRITER, timeout=30)
        assert again.status_code == 201 and again.json()["version"] == 1, again.text
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200


def test_healthz_answers_while_every_worker_thread_waits_on_the_database(
    schema_url: str,
) -> None:
    schema = schema_url.split("schema=")[1]
    with processes(schema_url, api=1, projector=False) as (base,):
        with psycopg.connect(POSTGRES_URL) as holder:  # reads now wait on this lock
            holder.execute(f'LOCK TABLE "{schema}".status_intervals IN ACCESS EXCLUSIVE MODE')
            pending = [
                threading.Thread(
                    target=lambda: httpx.get(
                        f"{base}/v1/status", params={"country": "BY"}, timeout=60
                    )
                )
                for _ in range(60)
            ]
            for request in pending:
                request.start()
            time.sleep(1.0)
            started = time.monotonic()
            assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
            assert time.monotonic() - started < 2
            holder.rollback()
        for request in pending:
            request.join(60)


def test_the_live_stream_of_one_process_wakes_on_a_write_to_another(schema_url: str) -> None:
    # Polling would take 30 s here: only a notification can bring the event in time.
    ports = [free_port(), free_port()]
    started = [
        sanctions(schema_url, "serve", "--port", str(port), SANCTIONS_SSE_POLL_SECONDS="30")
        for port in ports
    ]
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        wait_until_up([a, b], started)
        with httpx.stream("GET", f"{b}/v1/events/stream", timeout=20) as stream:
            time.sleep(1.0)  # the stream has read the (empty) log and waits
            written = httpx.post(f"{a}/v1/events", json=event(0), headers=WRITER, timeout=30)
            assert written.status_code == 201
            sent = time.monotonic()
            for line in stream.iter_lines():
                if line.startswith("id:"):
                    assert int(line.split(":", 1)[1]) == written.json()["position"]
                    break
            assert time.monotonic() - sent < 2
    finally:
        for process in started:
            process.terminate()
            process.wait(30)


def test_recorded_at_rises_with_position_when_every_process_writes(schema_url: str) -> None:
    with processes(schema_url, api=2) as bases:
        bodies = streams(90)

        def write(worker: int) -> None:
            for body in bodies[worker::6]:  # a new connection each time, either process
                written = httpx.post(
                    f"{bases[(worker + len(body['country'])) % 2]}/v1/events",
                    json=body,
                    headers=WRITER,
                    timeout=60,
                )
                assert written.status_code == 201, written.text

        run_threads(write, 6)
        log = httpx.get(f"{bases[0]}/v1/events", params={"limit": 1000}, timeout=60).json()
    positions = [e["position"] for e in log["events"]]
    recorded = [e["recorded_at"] for e in log["events"]]  # one fixed-width format: sortable
    assert len(positions) == len(bodies) and positions == sorted(positions)
    assert recorded == sorted(recorded) and len(set(recorded)) == len(recorded)


def test_serve_with_workers_keeps_read_your_writes_on_every_connection(schema_url: str) -> None:
    port = free_port()
    started = [
        sanctions(
            schema_url, "serve", "--port", str(port), "--workers", "2",
            SANCTIONS_EMBEDDED_PROJECTOR="0",
        ),
        sanctions(schema_url, "project", "--poll", "30"),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up([base], started)
        missed = []
        for body in streams(30):  # each request on a connection of its own: any worker
            written = httpx.post(f"{base}/v1/events", json=body, headers=WRITER, timeout=30)
            assert written.status_code == 201 and "Projection-Pending" not in written.headers
            query = {k: body[k] for k in ("authority", "country", "commodity")}
            (row,) = httpx.get(f"{base}/v1/status", params=query, timeout=30).json()["results"]
            if written.json()["event_id"] not in row["event_ids"]:
                missed.append(query)
        assert missed == []
    finally:
        for process in started:
            process.terminate()
            process.wait(30)


class Proxy:
    """A TCP relay to PostgreSQL that can be cut (connections reset, new ones refused)
    and restored: the database going away and coming back, for one server only."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socket.socket | None = None
        self.links: list[socket.socket] = []

    def start(self, *, silent: bool = False) -> None:
        """Relay to the database; `silent`: accept connections and never answer (a
        database host that has gone quiet, where connecting hangs)."""
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server, silent), daemon=True).start()

    def _accept(self, server: socket.socket, silent: bool) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if silent:
                self.links.append(client)
                continue
            upstream = socket.create_connection(self.target)
            self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while (data := source.recv(65536)) and self.relays(data):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    end.close()

    def relays(self, data: bytes) -> bool:
        """Whether `data` is passed on (else its link is cut): always, here."""
        return True

    def cut(self) -> None:
        assert self.server is not None
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for link in self.links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                link.close()
        self.links.clear()


def test_the_database_going_away_is_a_fast_503_and_the_service_comes_back_by_itself(
    schema_url: str,
) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.start()
    via_proxy = schema_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert via_proxy != schema_url
    with processes(via_proxy, api=1, projector=False) as (base,):
        assert httpx.post(f"{base}/v1/events", json=event(0), headers=WRITER).status_code == 201
        proxy.cut()
        proxy.start(silent=True)  # connecting now hangs, as to a host gone quiet
        started = time.monotonic()
        gone = httpx.get(f"{base}/v1/status", params={"country": "BY"}, timeout=60)
        assert gone.status_code == 503, gone.text
        assert time.monotonic() - started < 10, "a request fails within seconds"
        written = httpx.post(f"{base}/v1/events", json=event(1), headers=WRITER, timeout=60)
        assert written.status_code == 503, written.text
        assert written.json()["outcome"] == "not_recorded"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        proxy.cut()
        proxy.start()  # the database is back
        deadline = time.monotonic() + 30
        while True:
            answer = httpx.get(f"{base}/v1/events", timeout=30)
            if answer.status_code == 200:
                break
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert [e["stream"] for e in answer.json()["events"]] == ["US/BY/potash"]
        again = httpx.post(f"{base}/v1/events", json=event(1), headers=WRITER, timeout=30)
        assert again.status_code == 201, again.text
