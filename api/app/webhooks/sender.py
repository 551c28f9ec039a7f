"""One webhook attempt: the Standard Webhooks headers, signed with the `standardwebhooks`
package, POSTed to the address the allow-list checked (never resolved again), no redirects
followed. The timeout bounds the whole attempt (connect, send, read the answer): a socket
timeout alone would be reset by every byte a slow receiver trickles, so a timer cuts the
connection at the deadline, and a worker that is stopping cuts it at once."""

from __future__ import annotations

import contextlib
import http.client
import math
import secrets
import socket
import ssl
import threading
import time
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

from api.app.webhooks.targets import Target

USER_AGENT = "sanctions-timeline-webhooks/1"
SECRET_BYTES = 32
ANSWER_BYTES = 4096
"""The most of a receiver's answer body read (it is not needed; a little is drained)."""


def new_secret() -> str:
    """A fresh signing secret, as Standard Webhooks writes one: `whsec_` + base64."""
    return "whsec_" + b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(secret: str, message_id: str, body: str, at: float) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (whole seconds) and `webhook-signature` for `body`."""
    seconds = math.floor(at)
    signature = Webhook(secret).sign(message_id, datetime.fromtimestamp(seconds, UTC), body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": signature,
    }


@dataclass(frozen=True)
class Answer:
    """What an attempt got: a status code, or an error in words; and how long it took."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Cutoff:
    """Ends an attempt's connection at its deadline, or sooner when cut (a worker stopping):
    a blocked connect, send or read returns at once, and the receiver sees it closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._finished = False
        self.reason: str | None = None
        """Why the attempt was cut (`timeout` or `stopping`), None if it was not."""

    def attach(self, sock: socket.socket) -> None:
        """The connection to cut (cut at once if the attempt already was)."""
        with self._lock:
            self._socket = sock
            cut = self.reason is not None
        if cut:
            _shut(sock)

    def cut(self, reason: str) -> None:
        """End the attempt now, unless it has finished."""
        with self._lock:
            if self._finished or self.reason is not None:
                return
            self.reason = reason
            sock = self._socket
        if sock is not None:
            _shut(sock)

    def finish(self) -> bool:
        """Mark the attempt finished; whether it finished before being cut."""
        with self._lock:
            self._finished = True
            return self.reason is None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected (yet), or already closed
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv or send in another thread


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to an already checked address, whatever the Host header says."""

    def __init__(self, target: Target, timeout: float, cutoff: Cutoff) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address
        self.cutoff = cutoff

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.cutoff.attach(self.sock)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an already checked address; the certificate is checked for the host name."""

    def __init__(self, target: Target, timeout: float, cutoff: Cutoff) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self.address = target.address
        self.cutoff = cutoff

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.cutoff.attach(sock)  # the same descriptor as the TLS socket made from it
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    target: Target,
    headers: dict[str, str],
    body: str,
    timeout: float,
    cutoff: Cutoff | None = None,
) -> Answer:
    """POST `body` (JSON) to the target; every failure is an Answer, never an exception.
    An answer counts only when its status line, headers and (up to `ANSWER_BYTES` of) body
    came within `timeout` seconds of the start."""
    started = time.monotonic()
    cutoff = cutoff or Cutoff()
    timer = threading.Timer(timeout, cutoff.cut, ("timeout",))
    timer.daemon = True
    timer.start()
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, timeout, cutoff)
    data = body.encode("utf-8")
    error: str | None = None
    status: int | None = None
    try:
        connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        for name, value in {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            "User-Agent": USER_AGENT,
            **headers,
        }.items():
            connection.putheader(name, value)
        connection.endheaders(data)
        response = connection.getresponse()
        response.read(ANSWER_BYTES)
        status = response.status
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except (OSError, http.client.HTTPException) as failure:
        error = f"{type(failure).__name__}: {failure}"[:300]
    finally:
        timer.cancel()
        whole = cutoff.finish()
        connection.close()
    if not whole:
        if cutoff.reason == "stopping":
            return Answer(None, "abandoned: the service is stopping", _since(started))
        return Answer(None, f"no complete answer within {timeout:g} s", _since(started))
    return Answer(status, error, _since(started))


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
