"""The bundled real timeline (`data/timeline.jsonl`), recorded idempotently."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from api.inputs import located
from api.schemas import EventIn
from domain.application import IdempotentRequest, SanctionsLog

TIMELINE_FILE = Path(__file__).resolve().parents[1] / "data" / "timeline.jsonl"
SEED_CALLER = "seed"


@dataclass(frozen=True)
class SeedReport:
    recorded: int
    already_there: int


def bundled_events(path: Path = TIMELINE_FILE) -> list[EventIn]:
    """The bundled events, validated exactly as the API validates a POST."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [EventIn.model_validate(json.loads(line)) for line in lines]


def seed(log: SanctionsLog, path: Path = TIMELINE_FILE) -> SeedReport:
    """Record every bundled event not yet recorded; running it again records nothing."""
    recorded = already = 0
    for number, event in enumerate(bundled_events(path), start=1):
        body = event.request_body()
        # The key is the event's content, so an edited line is a new event, not a clash.
        key = "seed:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        draft = located((f"{path.name}:{number}",), event.draft)
        outcome = log.record(
            [draft],
            recorded_by=SEED_CALLER,
            idempotency=IdempotentRequest.of(SEED_CALLER, key, body),
        )
        if outcome.replayed:
            already += 1
        else:
            recorded += 1
    return SeedReport(recorded, already)
