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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port

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
        stdout=tempfile.TemporaryFile("w+"),
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
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):
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
        floods = [
            threading.Thread(target=flood_header, args=(port, 16 * MIB)) for _ in range(4)
        ]
        for flood in floods:
            flood.start()
        for flood in floods:
            flood.join(30)
        grown = rss(pid) - before
        # Four 16 MiB headers: held whole, they would take 64 MiB and more.
        assert grown < 24 * MIB, f"the server grew by {grown // MIB} MiB"
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
