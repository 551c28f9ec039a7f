"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 that keeps every
request it gets and answers as told (fail the first N, hang, or take its time)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    path: str

    def verified(self, secret: str) -> Any:
        """The body, parsed, once `standardwebhooks` has checked its signature (else raises)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    """Answers 200 unless `failures` remain (then 500), or after `delay` seconds."""

    def __init__(self, *, failures: int = 0, delay: float = 0.0) -> None:
        self.failures = failures
        self.delay = delay
        self.arrived: list[Received] = []
        """Every request as it comes, before it is answered."""
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = receiver.answer(
                    Received({k: v for k, v in self.headers.items()}, body, self.path)
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request: Received) -> int:
        with self.lock:
            self.arrived.append(request)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.received.append(request)
            status = 500 if self.failures > 0 else 200
            self.failures -= 1
            self.statuses.append(status)
        return status

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in the order they came."""
        with self.lock:
            return [r for r, s in zip(self.received, self.statuses, strict=True) if s == 200]

    def in_flight(self) -> bool:
        """Whether a request has come and is not answered yet."""
        with self.lock:
            return len(self.arrived) > len(self.received)

    def wait_for(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out; received {len(self.received)}"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
