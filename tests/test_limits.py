"""Resource limits of a real `sanctions serve` process: request headers are bounded (431),
slow live-stream readers hold bounded memory and cannot starve other requests, the number
of live streams is capped (503), an idle stream costs no CPU time."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, ROOT, drop_schema, free_port

pytestmark = pytest.mark.e2e  # real server processes, spoken to over sockets

TOKENS = "wendy:writer:writer-token"
WRITER = {"Authorization": "Bearer writer-token"}
KIB = 1024
MIB = KIB * KIB


@contextmanager
def served(database_url: str, **env: str) -> Iterator[tuple[str, int]]:
    """`sanctions serve` on a free port, as an operator starts it; yields its base URL
    and process id."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env={
            **os.environ,
            "SANCTIONS_DATABASE_URL": database_url,
            "SANCTIONS_API_TOKENS": TOKENS,
            **env,
        },
        cwd=ROOT,
        stdout=tempfile.TemporaryFile("w+"),  # noqa: SIM115 -- read by output_of, closed with it
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, output_of(process)
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def output_of(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    process.stdout.seek(0)
    return process.stdout.read()


def rss(pid: int) -> int:
    """The process's resident memory, in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KIB
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, read the answer until the server closes (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close before taking it all
            sock.sendall(request)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def problem_in(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def flood_header(port: int, size: int) -> None:
    """One request whose single header is `size` bytes long, sent as fast as the server
    takes it (until it hangs up)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        contextlib.suppress(OSError),
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
        block = b"a" * MIB
        for _ in range(size // MIB):
            sock.sendall(block)


def test_request_headers_over_64_kib_are_refused_431_without_being_held(
    tmp_path: Any,
) -> None:
    with served(f"sqlite:///{tmp_path}/sanctions.db") as (base, pid):
        port = port_of(base)
        one_big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 * KIB) + b"\r\n\r\n"
        many = b"".join(b"X-Header-%d: %s\r\n" % (n, b"b" * 100) for n in range(1000))
        many_small = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
        for request in (one_big, many_small):
            status, problem = problem_in(exchange(port, request))
            assert status == 431
            assert problem["type"].endswith("/headers-too-large")
            assert problem["status"] == 431
        just_under = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (60 * KIB)
        answer = exchange(port, just_under + b"\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]

        before = rss(pid)
        floods = [threading.Thread(target=flood_header, args=(port, 16 * MIB)) for _ in range(4)]
        for flood in floods:
            flood.start()
        for flood in floods:
            flood.join(30)
        grown = rss(pid) - before
        # Four 16 MiB headers: held whole, they would take 64 MiB and more.
        assert grown < 24 * MIB, f"the server grew by {grown // MIB} MiB"
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


COUNTRIES = ["BY", "RU", "IR", "VE", "KP", "SY", "CU", "MM", "AF", "ZW", "NI", "ML"]
COUNTRIES += ["SD", "SS", "LY", "YE", "SO", "CF", "CD", "IQ", "LB", "ER", "GN", "HT"]
AUTHORITIES = ["US", "EU", "GB", "CA", "UN", "JP", "AU", "CH"]


def record_events(base: str, count: int) -> int:
    """Record `count` events, one per stream, in batches; answers the last position."""
    commodities = [c["slug"] for c in httpx.get(f"{base}/v1/commodities").json()["commodities"]]
    keys = [
        (authority, country, commodity)
        for authority in AUTHORITIES
        for country in COUNTRIES
        for commodity in commodities
    ][:count]
    assert len(keys) == count
    last = 0
    for start in range(0, count, 1000):
        batch = [
            {"type": "imposed", "authority": a, "country": c, "commodity": m,
             "effective_date": "2021-08-09", "measures": ["import_ban"]}
            for a, c, m in keys[start : start + 1000]
        ]  # fmt: skip
        answer = httpx.post(
            f"{base}/v1/events:batch", json={"events": batch}, headers=WRITER, timeout=120
        )
        assert answer.status_code == 201, answer.text
        last = max(e["position"] for e in answer.json()["events"])
    return last


def open_stream(port: int, after: int = 0, rcvbuf: int = 4096) -> socket.socket:
    """A live stream asked for over a raw socket with a small receive buffer (HTTP/1.0:
    the answer is the bare event stream, ended by the server closing)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /v1/events/stream?after=%d HTTP/1.0\r\nHost: x\r\n\r\n" % after)
    return sock


def read_until(sock: socket.socket, done: Callable[[bytes], bool]) -> bytes:
    """What the socket gives until `done(everything so far)` or the server closes."""
    received = b""
    while not done(received):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def ids_in(received: bytes) -> list[int]:
    return [int(line[3:]) for line in received.split(b"\r\n") if line.startswith(b"id:")]


@pytest.mark.shared_store  # a served process's own store: SQLite or PostgreSQL
@pytest.mark.slow  # a few thousand events recorded and 40 streams opened: ~15 s per store
def test_slow_stream_readers_are_bounded_capped_and_closed_and_idle_streams_cost_nothing(
    database_url: str,
) -> None:
    cap = 40
    env = {"SANCTIONS_MAX_STREAMS": str(cap), "SANCTIONS_SSE_SEND_TIMEOUT_SECONDS": "2"}
    with served(database_url, **env) as (base, pid):
        port = port_of(base)
        last = record_events(base, 3000)
        for _ in range(5):  # the read path warmed up before memory is measured
            assert httpx.get(f"{base}/v1/status", params={"country": "RU"}).status_code == 200
        before = rss(pid)

        # Streams from the start of the log whose clients never read.
        slow = [open_stream(port) for _ in range(cap)]
        over = httpx.get(f"{base}/v1/events/stream", timeout=10)
        assert over.status_code == 503, over.text
        assert over.json()["type"].endswith("/too-many-streams")
        assert int(over.headers["retry-after"]) > 0
        for _ in range(20):  # other reads are answered beside them
            answer = httpx.get(f"{base}/v1/status", params={"country": "RU"}, timeout=30)
            assert answer.status_code == 200, answer.text
        grown = rss(pid) - before  # ~10 MiB here; 51 MiB when each held what it read
        assert grown < 32 * MIB, f"{cap} slow readers made the server grow {grown // MIB} MiB"

        # A reader that took nothing for the send timeout has had its stream closed; it
        # resumes after the last event it got, and misses nothing.
        time.sleep(3)
        slow[0].settimeout(10)  # less than a keep-alive's interval: a stream left open fails
        got = ids_in(read_until(slow[0], lambda _: False))
        assert got and got[-1] < last, "a reader that never read was sent the whole log"
        for sock in slow:
            sock.close()
        with httpx.stream(
            "GET", f"{base}/v1/events/stream",
            headers={"Last-Event-ID": str(got[-1])}, timeout=30,
        ) as resumed:  # fmt: skip
            assert resumed.status_code == 200
            for line in resumed.iter_lines():
                if line.startswith("id:"):
                    got.append(int(line[3:]))
                    if got[-1] == last:
                        break
        assert len(got) == len(set(got)) == 3000 and got == sorted(got)

        # Idle streams (caught up) wait without spending CPU time, and wake on a write.
        deadline = time.monotonic() + 30
        idle: list[socket.socket] = []
        while len(idle) < cap:  # the closed slow streams give their places back
            sock = open_stream(port, after=last, rcvbuf=65536)
            head = read_until(sock, lambda r: b"\r\n\r\n" in r)
            if head.startswith(b"HTTP/1.1 200"):
                idle.append(sock)
            else:
                sock.close()
                assert time.monotonic() < deadline, head
                time.sleep(0.2)
        spent = cpu_seconds(pid)
        time.sleep(3)
        spent = cpu_seconds(pid) - spent
        assert spent < 0.3, f"{cap} idle streams cost {spent:.2f} s of CPU time in 3 s"
        event = {"type": "imposed", "authority": "NO", "country": "RU", "commodity": "potash",
                 "effective_date": "2022-01-01", "measures": ["import_ban"]}  # fmt: skip
        written = httpx.post(f"{base}/v1/events", json=event, headers=WRITER, timeout=30)
        assert written.status_code == 201, written.text
        position = written.json()["position"]
        for sock in idle[:3]:
            assert position in ids_in(read_until(sock, lambda r: b"id: %d" % position in r))
        for sock in idle:
            sock.close()


def terminate_connections(schema: str, stop: threading.Event, killed: list[int]) -> None:
    """Connection churn: every 0.2 s, end every database connection of the server working
    on `schema` (it connects with PGAPPNAME set to it), busy or idle, until stopped."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        while not stop.wait(0.2):
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND application_name = %s",
                (schema,),
            ).fetchall()
            killed.append(len(rows))


@pytest.mark.postgres
@pytest.mark.slow  # twelve seconds of connection churn under load
def test_under_connection_churn_every_request_is_answered_at_once_and_writes_recover(
    tmp_path: Any,
) -> None:
    schema = f"l_{uuid.uuid4().hex[:12]}"
    url = f"{POSTGRES_URL}?schema={schema}"
    commodities = ["potash", "coal", "gold", "timber", "cotton", "wheat", "arms", "uranium"]
    keys = iter(
        [(a, c, m) for m in commodities for c in COUNTRIES for a in AUTHORITIES]
    )  # a fresh stream for every write
    lock = threading.Lock()
    answers: list[tuple[str, int, dict[str, Any]]] = []
    try:
        with served(url, PGAPPNAME=schema) as (base, _):
            stop = threading.Event()
            killed: list[int] = []

            def load(worker: int) -> None:
                # A client timeout well past "at once": before, requests hung until the
                # churn stopped (the library retried a pool timeout ten times).
                with httpx.Client(base_url=base, headers=WRITER, timeout=10) as client:
                    while not stop.is_set():
                        with lock:
                            authority, country, commodity = next(keys)
                        body = {"type": "imposed", "authority": authority, "country": country,
                                "commodity": commodity, "effective_date": "2021-08-09",
                                "measures": ["import_ban"]}  # fmt: skip
                        key = f"{authority}-{country}-{commodity}"
                        write = client.post(
                            "/v1/events", json=body, headers={"Idempotency-Key": key}
                        )
                        read = client.get("/v1/status", params={"country": country})
                        for kind, answer in (("write", write), ("read", read)):
                            problem = answer.json() if answer.status_code >= 400 else {}
                            answers.append((kind, answer.status_code, problem))

            workers = [threading.Thread(target=load, args=(n,)) for n in range(4)]
            killer = threading.Thread(target=terminate_connections, args=(schema, stop, killed))
            failures: list[BaseException] = []

            def guarded(thread: threading.Thread) -> None:
                try:
                    thread.run()
                except BaseException as failure:
                    failures.append(failure)

            runners = [threading.Thread(target=guarded, args=(t,)) for t in [*workers, killer]]
            for runner in runners:
                runner.start()
            time.sleep(12)
            stop.set()
            for runner in runners:
                runner.join(30)
            assert not failures, failures[0]  # a ReadTimeout: a request hung
            assert sum(killed) > 20, killed
            wrong = [
                (kind, status, problem)
                for kind, status, problem in answers
                if status not in (200, 201)
                and not (
                    status == 503
                    and problem["type"].endswith("/unavailable")
                    and (kind == "read" or problem.get("outcome") in ("not_recorded", "unknown"))
                )
            ]
            assert not wrong, wrong[:5]
            assert any(kind == "write" and status == 201 for kind, status, _ in answers)

            # The churn over, writes are recorded again.
            deadline = time.monotonic() + 20
            recorded = 0
            while recorded < 10:
                authority, country, commodity = next(keys)
                body = {"type": "imposed", "authority": authority, "country": country,
                        "commodity": commodity, "effective_date": "2021-08-09",
                        "measures": ["import_ban"]}  # fmt: skip
                answer = httpx.post(f"{base}/v1/events", json=body, headers=WRITER, timeout=10)
                if answer.status_code == 201:
                    recorded += 1
                else:
                    assert recorded == 0, answer.text  # once back, it stays back
                    assert time.monotonic() < deadline, answer.text
                    time.sleep(0.2)
    finally:
        drop_schema(schema)
