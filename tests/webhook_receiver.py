"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 that keeps every
request it gets and answers as told (fail the first N, hang, take its time, or trickle its
answer a byte a second)."""

from __future__ import annotations

import socket
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
    """Answers 200 unless `failures` remain (then 500), or after `delay` seconds; with
    `trickle`, sends its answer one byte a second, for as long as the sender listens (a
    line of headers that never ends)."""

    def __init__(
        self,
        *,
        failures: int = 0,
        delay: float = 0.0,
        trickle: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.failures = failures
        self.delay = delay
        self.trickle = trickle
        self.cut_off: list[int] = []
        """For each trickled answer the sender closed, how many bytes it had been sent."""
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
                request = Received({k: v for k, v in self.headers.items()}, body, self.path)
                if receiver.trickle:
                    receiver.trickled(request, self.wfile)
                    return
                status = receiver.answer(request)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"[{host}]" if ":" in host else host
        self.url = f"http://{self.host}:{self.port}/hook"
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

    def trickled(self, request: Received, out: Any) -> None:
        with self.lock:
            self.arrived.append(request)
        answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 600
        for sent, byte in enumerate(answer):
            try:
                out.write(bytes([byte]))
                out.flush()
            except OSError:  # the sender closed the connection
                with self.lock:
                    self.cut_off.append(sent)
                return
            time.sleep(1.0)

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
