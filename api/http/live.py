"""What the live event stream (`GET /v1/events/stream`) shares within one process: a cap
on open streams, a small pool of threads for their reads, one wake-up for all of them when
an event is recorded, and an answer that closes a stream whose client stopped reading.

An idle stream costs nothing while it waits: it sleeps until the store signals a new event
(LISTEN/NOTIFY on PostgreSQL, this process's own writes elsewhere). Events recorded by
another process on a store that cannot notify are noticed by one look at the log's last
position per poll interval, for all streams together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.types import Receive, Scope, Send

from api.app.service import Service
from api.http.limits import SOCKET_EXTENSION

T = TypeVar("T")
logger = logging.getLogger("sanctions.api")

SEND_BUFFER = 64 * 1024
"""The kernel's send buffer of a live stream's socket (Linux doubles it): without a bound
it grows to megabytes for a client that never reads."""
STREAM_READERS = 2
"""Threads the live streams of one process read the log with, all together: however many
streams catch up at once, the other requests keep the rest of the thread pool."""
IDLE_RECHECK_SECONDS = 60.0
"""An idle stream looks again this often even if nothing woke it (a safety net only)."""


class LiveFeed:
    """The live streams of one app."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.signals = svc.log.signals
        self.max_streams = svc.settings.max_streams
        self.open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._limiter: anyio.CapacityLimiter | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stop_callbacks: Callable[[], None] | None = None

    @classmethod
    def of(cls, request: Request) -> LiveFeed:
        state = request.app.state
        feed = getattr(state, "live_feed", None)
        if feed is None:
            feed = state.live_feed = cls(state.service)
        assert isinstance(feed, LiveFeed)
        return feed

    def admit(self) -> bool:
        """Take a place for one more stream (False: every place is taken)."""
        if self.open >= self.max_streams:
            return False
        self.open += 1
        self._start()
        return True

    def leave(self) -> None:
        self.open -= 1

    @staticmethod
    def bound_send_buffer(request: Request) -> None:
        """Where the server hands over the connection's socket (`sanctions serve` does)."""
        sock = request.scope.get("extensions", {}).get(SOCKET_EXTENSION)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._stop_callbacks is not None:
                self._stop_callbacks()
            self._loop = loop
            self._changed = asyncio.Event()
            self._limiter = anyio.CapacityLimiter(STREAM_READERS)
            self._stop_callbacks = self.signals.on_wake("events", self._wake_from_any_thread)
        if self._watcher is None or self._watcher.done():
            self._watcher = loop.create_task(self._watch())

    def _wake_from_any_thread(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def recorded_since(self, seen: int) -> None:
        """Until an event is recorded after the signal count `seen` (or, as a safety net,
        a minute passes)."""
        changed = self._changed  # taken before looking: a wake-up after it sets this one
        if self.signals.seen("events") != seen:
            return
        with anyio.move_on_after(IDLE_RECHECK_SECONDS):
            await changed.wait()

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in one of the streams' own few threads."""
        return await anyio.to_thread.run_sync(partial(function, *args), limiter=self._limiter)

    async def _watch(self) -> None:
        """While streams are open: where the store cannot tell this process of events
        other processes record, look at the log's last position once per poll interval
        (where it can, once in a while, in case a notification was lost)."""
        settings = self.svc.settings
        patience = 5.0 if self.signals.listening else settings.sse_poll_seconds
        recorder = self.svc.log.recorder
        last: int | None = None
        while self.open > 0:
            await asyncio.sleep(patience)
            try:
                now = await self.read(recorder.max_notification_id)
            except Exception:  # the database is away: the streams' own reads say so
                continue
            if last is not None and now != last:
                self.signals.wake("events")
            last = now


class LiveResponse(EventSourceResponse):
    """An SSE answer that gives its place back when it ends, and is closed when the client
    has not taken what was sent within the send timeout (it resumes with Last-Event-ID)."""

    def __init__(self, feed: LiveFeed, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning(
                "live stream closed: its client took nothing for %s s", self.send_timeout
            )
        finally:
            self.feed.leave()
