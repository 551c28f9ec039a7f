"""The bundled real timeline (`api/data/timeline.jsonl`, installed with the package),
recorded as an import of that file.

The bundled file is corrected from time to time (dates, legal bases, new cases). A
database seeded from an earlier file is brought up to date the event-sourced way:
nothing is rewritten; each stream whose bundled history changed has its earlier seeded
events retracted (latest effective first, each with a note saying why) and the
corrected ones recorded, in one transaction (or one per renewal that names an event of
the same correction: its target is recorded first, to be named by the id it got). Streams
whose bundled events are unchanged are left as they are, so seeding again records nothing.

A bundled `renewed` event names the event it renews by that event's `event_id` in the file
(as an exported file does); the import maps it to the id the event gets when recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from api.app.service import Service
from api.app.transfer import ImportLine, import_events, read_import_file
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


Named = tuple[str, date | None] | None
"""What a renewal renews, as a fingerprint tells it: the renewed event's type and date."""


def seed(svc: Service, path: Path = TIMELINE_FILE) -> SeedReport:
    """Record every bundled event not yet recorded; running it again records nothing. On a
    database seeded from an earlier bundled file, replace each stream that changed."""
    by_stream: dict[str, list[ImportLine]] = defaultdict(list)
    for line in read_import_file(path):
        by_stream[line.event.draft().key.name].append(line)
    seeded = {
        stream: live_seeded(events) for stream, events in svc.events_of(list(by_stream)).items()
    }
    if not any(seeded.values()):
        report = import_events(svc, path, caller=SEED_CALLER)
        return SeedReport(report.recorded, report.already_there)
    steps: list[tuple[EventDraft, str | None]] = []
    retracted = already = 0
    for stream, lines in by_stream.items():
        earlier = seeded[stream]
        if Counter(bundled_fingerprints(lines)) == Counter(seeded_fingerprints(earlier)):
            already += len(lines)
            continue
        latest_first = sorted(
            earlier, key=lambda e: (e.effective or date.min, e.originator_version), reverse=True
        )
        steps += [
            (EventDraft(EventType.RETRACTED, old.key, retracts=old.event_id, note=SUPERSEDED), None)
            for old in latest_first
        ]
        retracted += len(earlier)
        steps += [(line.event.draft(), line.exported_id) for line in lines]
    record_in_order(svc, steps)
    return SeedReport(len(steps) - retracted, already, retracted)


def record_in_order(svc: Service, steps: list[tuple[EventDraft, str | None]]) -> None:
    """Record the drafts in order, in as few transactions as the renewals allow: a renewal
    whose target (named by its id in the file) is in the same batch waits for the next one,
    and names the target by the id it got."""
    ids: dict[str, UUID] = {}
    batch: list[tuple[EventDraft, str | None]] = []

    def flush() -> None:
        if not batch:
            return
        drafts = [mapped(draft, ids) for draft, _ in batch]
        content = [fingerprint_of_draft(draft) for draft in drafts]
        key = "seed:" + hashlib.sha256(json.dumps(content).encode()).hexdigest()
        outcome = svc.record(
            drafts,
            recorded_by=SEED_CALLER,
            idempotency=IdempotentRequest.of(SEED_CALLER, key, content),
        )
        for (_, exported_id), done in zip(batch, outcome.events, strict=True):
            if exported_id is not None:
                ids[exported_id] = done.event.event_id
        batch.clear()

    for draft, exported_id in steps:
        if draft.renews is not None and any(str(draft.renews) == named for _, named in batch):
            flush()
        batch.append((draft, exported_id))
    flush()


def mapped(draft: EventDraft, ids: dict[str, UUID]) -> EventDraft:
    if draft.renews is None or str(draft.renews) not in ids:
        return draft
    return replace(draft, renews=ids[str(draft.renews)])


def bundled_fingerprints(lines: list[ImportLine]) -> list[str]:
    """A stream's bundled events as fingerprints, a renewal's target told by what it is."""
    by_id = {line.exported_id: line.event for line in lines if line.exported_id}
    prints = []
    for line in lines:
        draft = line.event.draft()
        target = None if draft.renews is None else by_id.get(str(draft.renews))
        named: Named = None
        if draft.renews is not None:
            named = ("?", None) if target is None else (target.type, target.effective_date)
        prints.append(fingerprint_of_draft(draft, named))
    return prints


def seeded_fingerprints(events: list[SanctionsStream.Event]) -> list[str]:
    by_id = {str(event.event_id): event for event in events}
    prints = []
    for event in events:
        renews = getattr(event, "renews", None)
        target = None if renews is None else by_id.get(str(renews))
        named: Named = None
        if renews is not None:
            named = ("?", None) if target is None else (target.TYPE.value, target.effective)
        prints.append(fingerprint_of_event(event, named))
    return prints


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


def fingerprint_of_draft(draft: EventDraft, named: Named | str = None) -> str:
    """What makes a bundled event the one recorded before: every posted field alike (what a
    renewal renews told by `named`, its target's type and date; by default its id)."""
    if named is None and draft.renews is not None:
        named = str(draft.renews)
    return fingerprint(
        draft.type.value,
        draft.key.name,
        draft.effective_date,
        draft.measures,
        draft.legal_basis,
        draft.source,
        draft.note,
        draft.retracts,
        draft.expires,
        named,
    )


def fingerprint_of_event(event: SanctionsStream.Event, named: Named = None) -> str:
    return fingerprint(
        event.TYPE.value,
        event.stream,
        event.effective,
        event.measure_list or (),
        event.legal_basis,
        event.source,
        event.note,
        event.retracted_id,
        getattr(event, "expires", None),
        named,
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
    expires: date | None = None,
    named: Named | str = None,
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
            None if expires is None else expires.isoformat(),
            named if isinstance(named, str | None) else [named[0], str(named[1])],
        ],
        sort_keys=True,
    )
