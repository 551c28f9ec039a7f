"""A read whose database connection died under it is asked once more before any error is
answered.

The store hands out only connections that answer (`domain.store.postgres`), but one can
still die while a read runs on it: its backend terminated, the server restarted, the
network cut. A read changes nothing, so it is run again, whole, on a fresh connection;
only if that fails too is the 503 answered. Writes are never run again here: what they
answer after a failure is the log's to say (`outcome`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

READS = ("GET", "HEAD")
LOST = "sanctions.connection_lost"
"""Set in the request's scope by the storage error handler: this answer may be replaced."""
RETRIED = "sanctions.read_retried"


def may_retry(scope: Scope) -> bool:
    """Whether the request of `scope` is a read not yet asked again."""
    return scope.get("method") in READS and not scope.get(RETRIED)


def mark_lost(scope: Scope) -> None:
    """Ask for the read of `scope` to be run again (its error answer is then dropped)."""
    scope[LOST] = True


class RetryReads:
    """Runs a read once more when the storage error handler marked its connection lost,
    dropping the error answer of the first run (pure ASGI: nothing of it was sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not may_retry(scope):
            await self.app(scope, receive, send)
            return
        received = dict(scope)  # routing rewrites the scope in place
        dropped = False

        async def hold(message: Message) -> None:
            nonlocal dropped
            if message["type"] == "http.response.start" and scope.get(LOST):
                dropped = True
            if not dropped:
                await send(message)

        await self.app(scope, receive, hold)
        if not dropped:
            return
        scope.clear()
        scope.update(received)
        scope[RETRIED] = True
        await self.app(scope, again(receive), send)


def again(receive: Receive) -> Receive:
    """The request's messages for a second run: its (empty) body once more, then the
    client's own (a disconnect)."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return receive_again
