"""Event hashes: SHA-256 over a canonical JSON of every stored field of an event."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: one byte string per value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a `Z`, as every answer shows it."""
    # isoformat is several times faster than strftime and gives the same text here.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(text: str) -> datetime:
    """The moment `format_timestamp` wrote."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def hashable(value: Any) -> Any:
    """A stored field's value as the hash document spells it."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(name): hashable(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [hashable(item) for item in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"a stored field holds a {type(value).__name__}, which no event has")


UNSET_UNHASHED = frozenset({"expires", "renews"})
"""Fields added after events were first stored: unset (null or absent), they are left out
of the hash, so that every event stored before them keeps its hash."""


def event_hash(fields: dict[str, Any]) -> str:
    """The hex SHA-256 of an event: over a canonical JSON of every stored field (the
    library's `originator_id`, `originator_version` and `timestamp` included) but the
    hash itself, and the event's type. It links the event to the one before it in its
    stream through `prev_hash`, and is the event's leaf in the log's Merkle tree."""
    document = {
        name: hashable(value)
        for name, value in fields.items()
        if name != "hash" and not (name in UNSET_UNHASHED and value is None)
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


def answered_fields(event: dict[str, Any], stream_id: str) -> dict[str, Any]:
    """The hashed fields of an event as the API answers (or an export holds) it, so
    that anyone can recompute its hash: the library's own fields are the stream's id
    (`stream_id`), the version, and the recording time."""
    fields = {
        name: event[name]
        for name in (
            "type", "stream", "event_id", "recorded_at", "recorded_by",
            "legal_basis", "source", "note", "prev_hash",
        )
    }  # fmt: skip
    fields.update(
        originator_id=stream_id,
        originator_version=event["version"],
        timestamp=event["recorded_at"],
    )
    if event["type"] == "retracted":
        fields["retracts"] = event["retracts"]
    else:
        fields.update(effective_date=event["effective_date"], measures=event["measures"])
        fields.update({name: event.get(name) for name in UNSET_UNHASHED})
    return fields
