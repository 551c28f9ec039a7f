"""The guards in front of the app: a request's header size (431, in the HTTP protocol
itself, before headers are buffered), and in front of every write its body size (413),
media type (415), and a body that is not well-formed JSON (422, saying where), before the
app parses anything."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.http.problems import PROBLEM_TYPE_BASE, TITLES

KIB = 1024
EVENT_BODY_LIMIT = 64 * KIB
BATCH_BODY_LIMIT = 8 * KIB * KIB
HEADER_LIMIT = 64 * KIB
"""A request's line and headers together, in bytes."""
SOCKET_EXTENSION = "sanctions.socket"
"""The ASGI scope extension under which `BoundedHeadersProtocol` hands the app the
connection's socket."""
JSON_WRITES = ("/v1/events", "/v1/events:batch", "/v1/subscriptions")
RECEIVED = "sanctions.received"
"""The ASGI scope key under which `WriteGuard` notes when a write arrived
(`time.monotonic()`): an Idempotency-Key's attempt began then."""
Shortcut = Callable[[Scope, bytes, Receive, Send], Awaitable[bool]]
"""Answers a write whose body was read whole, when it can (True), before the app is asked."""


def limit_for(path: str) -> int:
    return BATCH_BODY_LIMIT if path.endswith("/events:batch") else EVENT_BODY_LIMIT


def is_json(content_type: bytes | None) -> bool:
    """`application/json`, or any `application/…+json`, with or without parameters."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def json_problem(body: bytes) -> str | None:
    """What is wrong with `body` as a JSON document, in words (None: nothing)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"the body is not valid UTF-8 (byte {error.start})"
    try:
        json.loads(text)
    except RecursionError:
        return "the JSON nests too deeply"
    except json.JSONDecodeError as error:
        return (
            f"the body is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        )
    except ValueError:  # an integer with more digits than Python converts (4,300)
        return "the body holds a number too long to be read"
    return None


class WriteGuard:
    """Reads a write's whole body (at most its route's limit) before the app sees it, and
    hands it to `shortcut` (if any) first."""

    def __init__(self, app: ASGIApp, shortcut: Shortcut | None = None) -> None:
        self.app = app
        self.shortcut = shortcut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        scope[RECEIVED] = time.monotonic()
        path = scope["path"]
        limit = limit_for(path)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        too_large = partial(
            self.refuse,
            send,
            413,
            f"the request body is over the {limit // KIB} KiB this route takes",
            "body-too-large",
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large()
            return
        json_route = path.rstrip("/") in JSON_WRITES
        content_type = headers.get(b"content-type")
        bodiless = content_type is None and declared in (None, b"0")
        if json_route and not bodiless and not is_json(content_type):
            await self.unsupported(send, content_type)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large()
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if json_route and bodiless and body:
            await self.unsupported(send, content_type)
            return
        if json_route and self.shortcut and await self.shortcut(scope, body, receive, send):
            return
        if json_route and body:
            wrong = json_problem(body)
            if wrong is not None:
                await self.refuse(
                    send,
                    422,
                    wrong,
                    "invalid-input",
                    errors=[{"field": "body", "message": wrong, "type": "json_invalid"}],
                )
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def unsupported(self, send: Send, content_type: bytes | None) -> None:
        given = (content_type or b"none").decode("latin-1")
        await self.refuse(
            send, 415, f"this route takes application/json, not {given}", "unsupported-media-type"
        )

    @staticmethod
    async def refuse(send: Send, status: int, detail: str, kind: str, **extra: Any) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_BASE + kind,
                "title": TITLES[status],
                "status": status,
                "detail": detail,
                **extra,
            },
            separators=(",", ":"),
        ).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 413:
            headers.append((b"connection", b"close"))  # the rest of the body is not read
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def problem_bytes(status: int, detail: str, *, kind: str) -> bytes:
    """A whole HTTP/1.1 answer carrying a problem document, closing the connection."""
    body = json.dumps(
        {"type": PROBLEM_TYPE_BASE + kind, "title": TITLES[status], "status": status,
         "detail": detail},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {TITLES[status]}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


HEADERS_TOO_LARGE = problem_bytes(
    431,
    f"the request line and headers are over the {HEADER_LIMIT // KIB} KiB this server takes",
    kind="headers-too-large",
)


class HeadersTooLarge(Exception):
    """Raised inside the parser to stop it reading more of a request's headers."""


class BoundedHeadersProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request whose line and headers pass
    `HEADER_LIMIT` bytes with a 431 problem and closing the connection. httptools (llhttp)
    has no such limit and gathers each header whole in memory, so the bytes read while a
    request's headers are incomplete are counted as they arrive: at most one read past the
    limit is ever held."""

    header_limit = HEADER_LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_headers = True  # between requests, the next bytes are a request's head
        self.head_bytes = 0  # bytes read since this request's head began
        self.head_size = 0  # its line and headers as parsed so far
        self.refused = False

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.in_headers:
            self.head_bytes += len(data)
        super().data_received(data)  # on_headers_complete resets the count
        if not self.refused and self.in_headers and self.head_bytes > self.header_limit:
            self.refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_headers = True
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self.count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self.count(len(name) + len(value) + 4)

    def count(self, size: int) -> None:
        """Headers that arrived in one read are only seen here, as they are parsed."""
        self.head_size += size
        if self.head_size > self.header_limit:
            self.head_bytes = self.head_size
            raise HeadersTooLarge  # the parser stops; send_400_response answers 431

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.head_bytes = 0
        # The connection's socket, for an answer that bounds its kernel send buffer.
        socket = self.transport.get_extra_info("socket")
        self.scope.setdefault("extensions", {})[SOCKET_EXTENSION] = socket
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_headers = True
        self.head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        """A parser error: ours (the headers are too large) is answered 431."""
        if self.in_headers and self.head_bytes > self.header_limit:
            self.refuse()
            return
        super().send_400_response(msg)

    def refuse(self) -> None:
        if self.refused:
            return
        self.refused = True
        self.logger.warning("Request headers over %d bytes refused (431).", self.header_limit)
        self.transport.write(HEADERS_TOO_LARGE)
        self.transport.close()
