"""What the log answers about recorded events: positions, pages, write outcomes, keys."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain.hashing import canonical_json
from domain.stream import SanctionsStream


@dataclass(frozen=True)
class Undecodable:
    """A stored event whose bytes cannot be decoded: altered outside the service."""

    position: int | None
    stream: str | None
    stream_id: uuid.UUID
    version: int
    error: Exception

    def describe(self) -> str:
        where = self.stream or f"stream id {self.stream_id}"
        at = "" if self.position is None else f" at position {self.position}"
        return (
            f"event version {self.version} of {where}{at} cannot be decoded "
            f"({type(self.error).__name__}); `sanctions verify` reports what changed"
        )


OnUndecodable = Callable[[Undecodable], None]


@dataclass(frozen=True)
class RecordedEvent:
    """A stored domain event with its global position in the log."""

    position: int
    event: SanctionsStream.Event


@dataclass(frozen=True)
class Page:
    """Part of the log: the events read, those that could not be decoded, and where
    reading stopped (the position of the last stored event looked at)."""

    events: list[RecordedEvent]
    undecodable: list[Undecodable]
    last_position: int | None
    more: bool


@dataclass(frozen=True)
class WriteOutcome:
    """What a write recorded; `replayed` when an Idempotency-Key answered it."""

    events: list[RecordedEvent]
    replayed: bool


@dataclass(frozen=True)
class IdempotentRequest:
    """The caller's key and a digest of the request body it came with."""

    caller: str
    key: str
    request_hash: str
    received: float | None = field(default=None, compare=False)
    """When the request reached the server (`time.monotonic()`), where the API says:
    the attempt began then, not when it reached the log (see `group_commit.Fences`)."""

    @classmethod
    def of(
        cls, caller: str, key: str, body: Any, received: float | None = None
    ) -> IdempotentRequest:
        return cls(caller, key, hashlib.sha256(canonical_json(body)).hexdigest(), received)


@dataclass(frozen=True)
class IdempotencyRecord:
    """An Idempotency-Key, the request it came with, and the events it recorded; or a
    fence, which records nothing (see `domain.group_commit.Fences`)."""

    caller: str
    key: str
    request_hash: str
    event_ids: tuple[str, ...]
    fence: str | None = None
    """A fence's id: stored in the key's place when an attempt with the key was
    answered "not recorded", so that no attempt begun before can record it after."""
    replaces: str | None = None
    """Only when storing a record: the fence it must find in its place (and removes);
    None, nothing must be there."""

    @classmethod
    def fencing(cls, caller: str, key: str, request_hash: str) -> IdempotencyRecord:
        """A new fence for the key."""
        return cls(caller, key, request_hash, (), fence=uuid.uuid4().hex)
