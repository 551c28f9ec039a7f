"""What both benchmarks share: the real app served by uvicorn in a thread, and a client."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from api.bootstrap import create_app
from api.service import Service


class BenchError(RuntimeError):
    """The run cannot go on: a wrong answer, a failed child, a server that will not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(svc: Service, headers: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """The app on `svc`, served by uvicorn in a thread; a keep-alive client bound to it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60.0
        ) as client:
            wait_until_healthy(client, thread)
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        svc.close()  # the app's lifespan closes it too; closing twice is harmless
        if thread.is_alive():
            raise BenchError("uvicorn did not stop within 30 s")


def wait_until_healthy(client: httpx.Client, thread: threading.Thread) -> None:
    """Return once `/healthz` answers 200 (this also opens the keep-alive connection)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise BenchError("uvicorn stopped before answering /healthz")
        with contextlib.suppress(httpx.TransportError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.05)
    raise BenchError("/healthz did not answer within 30 s")
