"""The per-stream hash chain: SHA-256 over a canonical JSON of each event."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

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


def event_hash(
    *,
    stream: str,
    version: int,
    type: str,
    effective_date: date | None,
    payload: dict[str, Any],
    recorded_at: datetime,
    recorded_by: str,
    prev_hash: str,
) -> str:
    """The hex SHA-256 that links an event to the one before it in its stream."""
    document = {
        "stream": stream,
        "version": version,
        "type": type,
        "effective_date": None if effective_date is None else effective_date.isoformat(),
        "payload": payload,
        "recorded_at": format_timestamp(recorded_at),
        "recorded_by": recorded_by,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()
