"""Wake-ups between the processes sharing a store: an event was recorded, the read models
moved, a token was made or revoked. PostgreSQL says so through LISTEN/NOTIFY
(`domain.store.postgres`); elsewhere a process is woken only by its own threads, and
waiters fall back to polling."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

Channel = Literal["events", "projected", "tokens"]
CHANNELS: tuple[Channel, ...] = ("events", "projected", "tokens")


class Signals:
    """Per channel, a counter of signals seen and a condition to wait on."""

    listening = False
    """Whether other processes' signals arrive here (else waiters must poll)."""

    def __init__(self) -> None:
        self._conditions = {channel: threading.Condition() for channel in CHANNELS}
        self._seen = dict.fromkeys(CHANNELS, 0)
        self._callbacks: dict[Channel, list[Callable[[], None]]] = {c: [] for c in CHANNELS}

    def wake(self, channel: Channel) -> None:
        """Signal `channel` to every waiter in this process."""
        condition = self._conditions[channel]
        with condition:
            self._seen[channel] += 1
            condition.notify_all()
        for callback in list(self._callbacks[channel]):
            callback()

    def on_wake(self, channel: Channel, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (in the waking thread; it must not block) on each signal of
        `channel`: how an event loop waits without a thread of its own. Answers a function
        that stops the calls."""
        self._callbacks[channel].append(callback)
        return lambda: self._callbacks[channel].remove(callback)

    def seen(self, channel: Channel) -> int:
        """How many signals `channel` has had: a waiter compares it with an earlier count."""
        return self._seen[channel]

    def wait(self, channel: Channel, timeout: float, since: int | None = None) -> bool:
        """Block until `channel` is signalled after the count `since` (default: now), or
        `timeout` seconds pass; whether it was signalled."""
        condition = self._conditions[channel]
        with condition:
            start = self._seen[channel] if since is None else since
            return condition.wait_for(lambda: self._seen[channel] != start, timeout)

    def close(self) -> None:
        """Stop listening (nothing to stop here)."""
