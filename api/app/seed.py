"""The bundled real timeline (`api/data/timeline.jsonl`, installed with the package),
recorded as an import of that file.

The bundled file is corrected from time to time (dates, legal bases, new cases). A
database seeded from an earlier file is brought up to date the event-sourced way:
nothing is rewritten; each stream whose bundled history changed has its earlier seeded
events retracted (latest effective first, each with a note saying why) and the
corrected ones recorded, all in one transaction. Streams whose bundled events are
unchanged are left as they are, so seeding again records nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from api.app.service import Service
from api.app.transfer import import_events, read_import_file
from api.schemas.answers import EventIn
from domain.recorded import IdempotentRequest
from domain.rules import EventType
from domain.stream import EventDraft, SanctionsStream

TIMELINE_FILE = Path(__file__).resolve().parent / "data" / "timeline.jsonl"
SEED_CALLER = "seed"
SUPERSEDED = (
    "superseded by the corrected bundled timeline: `sanctions seed` retracted the earlier "
    "bundled events of this stream and recorded the corrected ones"
)


@dataclass(frozen=True)
class SeedReport:
    recorded: int
    already_there: int
    retracted: int = 0


def bundled_events(path: Path = TIMELINE_FILE) -> list[EventIn]:
    """The bundled events, validated exactly as the API validates a POST."""
    return [line.event for line in read_import_file(path)]


def seed(svc: Service, path: Path = TIMELINE_FILE) -> SeedReport:
    """Record every bundled event not yet recorded; running it again records nothing. On a
    database seeded from an earlier bundled file, replace each stream that changed."""
    bundled = bundled_events(path)
    by_stream: dict[str, list[EventIn]] = defaultdict(list)
    for event in bundled:
        by_stream[event.draft().key.name].append(event)
    seeded = {
        stream: live_seeded(events) for stream, events in svc.events_of(list(by_stream)).items()
    }
    if not any(seeded.values()):
        report = import_events(svc, path, caller=SEED_CALLER)
        return SeedReport(report.recorded, report.already_there)
    drafts: list[EventDraft] = []
    retracted = already = 0
    for stream, events in by_stream.items():
        earlier = seeded[stream]
        if Counter(map(fingerprint_of_draft, (e.draft() for e in events))) == Counter(
            map(fingerprint_of_event, earlier)
        ):
            already += len(events)
            continue
        latest_first = sorted(
            earlier, key=lambda e: (e.effective or date.min, e.originator_version), reverse=True
        )
        drafts += [
            EventDraft(EventType.RETRACTED, old.key, retracts=old.event_id, note=SUPERSEDED)
            for old in latest_first
        ]
        retracted += len(earlier)
        drafts += [event.draft() for event in events]
    if drafts:
        content = [fingerprint_of_draft(draft) for draft in drafts]
        key = "seed:" + hashlib.sha256(json.dumps(content).encode()).hexdigest()
        svc.record(
            drafts,
            recorded_by=SEED_CALLER,
            idempotency=IdempotentRequest.of(SEED_CALLER, key, content),
        )
    return SeedReport(len(drafts) - retracted, already, retracted)


def live_seeded(events: list[SanctionsStream.Event]) -> list[SanctionsStream.Event]:
    """Of a stream's events, those the seed recorded and nothing has retracted."""
    retracted = {event.retracted_id for event in events if event.retracted_id is not None}
    return [
        event
        for event in events
        if event.recorded_by == SEED_CALLER
        and event.retracted_id is None
        and event.event_id not in retracted
    ]


def fingerprint_of_draft(draft: EventDraft) -> str:
    """What makes a bundled event the one recorded before: every posted field alike."""
    return fingerprint(
        draft.type.value,
        draft.key.name,
        draft.effective_date,
        draft.measures,
        draft.legal_basis,
        draft.source,
        draft.note,
        draft.retracts,
    )


def fingerprint_of_event(event: SanctionsStream.Event) -> str:
    return fingerprint(
        event.TYPE.value,
        event.stream,
        event.effective,
        event.measure_list or (),
        event.legal_basis,
        event.source,
        event.note,
        event.retracted_id,
    )


def fingerprint(
    type: str,
    stream: str,
    effective: date | None,
    measures: Iterable[str],
    legal_basis: str | None,
    source: dict[str, Any] | None,
    note: str | None,
    retracts: UUID | None,
) -> str:
    return json.dumps(
        [
            type,
            stream,
            None if effective is None else effective.isoformat(),
            sorted(measures),
            legal_basis,
            source,
            note,
            None if retracts is None else str(retracts),
        ],
        sort_keys=True,
    )
