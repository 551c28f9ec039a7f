"""One webhook attempt: the Standard Webhooks headers, signed with the `standardwebhooks`
package, POSTed to the address the allow-list checked (never resolved again), with a
bounded timeout and no redirects followed."""

from __future__ import annotations

import http.client
import math
import secrets
import socket
import ssl
import time
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

from api.app.webhooks.targets import Target

USER_AGENT = "sanctions-timeline-webhooks/1"
SECRET_BYTES = 32


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


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to an already checked address, whatever the Host header says."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an already checked address; the certificate is checked for the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self.address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(target: Target, headers: dict[str, str], body: str, timeout: float) -> Answer:
    """POST `body` (JSON) to the target; every failure is an Answer, never an exception."""
    started = time.monotonic()
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, timeout)
    data = body.encode("utf-8")
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
        response.read(65536)  # the answer's body is not needed; a little is drained
        return Answer(response.status, None, _since(started))
    except TimeoutError:
        return Answer(None, f"no answer within {timeout:g} s", _since(started))
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, f"{type(error).__name__}: {error}"[:300], _since(started))
    finally:
        connection.close()


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
