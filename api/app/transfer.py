"""Export the log as JSON Lines or CSV; import JSON Lines of events as the API takes them.

An export line is a stored event as the API answers it. Import takes such lines (or
plain posted bodies): the service's own fields are dropped (the importing store
records its own), and a retraction's `retracts` (a renewal's `renews`) is mapped from the
exported event id to the id the event got here. Each batch is recorded all or nothing under an
Idempotency-Key made from the batch's content, so re-running an import after a
failure (or twice) records each event exactly once. The read models are brought up
once, after the last batch, not batch by batch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from api.app.service import Service
from api.schemas.answers import EventIn, EventOut
from api.schemas.inputs import located
from domain.errors import InvalidInput
from domain.keys import EventFilter
from domain.recorded import IdempotentRequest, OnUndecodable

SERVICE_FIELDS = {
    "event_id",
    "stream",
    "version",
    "position",
    "recorded_at",
    "recorded_by",
    "prev_hash",
    "hash",
    "proof",
}
CSV_COLUMNS = [
    "position", "event_id", "stream", "version", "type", "authority", "country", "commodity",
    "effective_date", "measures", "retracts", "expires", "renews", "legal_basis", "source_url",
    "source_title", "source_published", "note", "recorded_at", "recorded_by", "prev_hash", "hash",
]  # fmt: skip
IMPORT_CALLER = "import"
Progress = Callable[[int], None]


def exported(
    svc: Service, where: EventFilter, on_undecodable: OnUndecodable | None = None
) -> Iterator[EventOut]:
    """The matching events as the API answers them, in position order, a page at a time
    (an event that cannot be decoded is passed over and given to `on_undecodable`)."""
    for recorded in svc.log.read(where, on_undecodable=on_undecodable):
        yield EventOut.of(recorded.position, recorded.event)


def write_jsonl(events: Iterator[EventOut], out: IO[str], progress: Progress) -> int:
    count = 0
    for event in events:
        out.write(event.model_dump_json() + "\n")
        count += 1
        progress(count)
    return count


def write_jsonl_with_proofs(
    svc: Service, events: Iterator[EventOut], out: IO[str], progress: Progress
) -> int:
    """JSON Lines headed by the latest signed checkpoint, each event with its inclusion
    proof in that checkpoint's tree (`sanctions audit verify-export` checks them offline).
    Events recorded after the checkpoint are left out: nothing proves them yet."""
    signed = svc.notary.checkpoint()
    heading = {"checkpoint": signed.note, "size": signed.size, "key": svc.notary.verifier_key}
    out.write(json.dumps(heading) + "\n")
    count = 0
    for event in events:
        leaf = svc.projector.view.tree.leaf_of(str(event.event_id))
        if leaf is None or leaf[0] >= signed.size:
            continue
        proof = svc.notary.inclusion(event.event_id, signed.size)
        line = event.model_dump(mode="json")
        line["proof"] = {"leaf_index": proof.leaf_index, "size": proof.size, "hashes": proof.hashes}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
        progress(count)
    return count


def write_csv(events: Iterator[EventOut], out: IO[str], progress: Progress) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for event in events:
        row = event.model_dump(mode="json")
        source = row.pop("source") or {}
        row["measures"] = ";".join(row["measures"])
        row.update(
            source_url=source.get("url"),
            source_title=source.get("title"),
            source_published=source.get("published"),
        )
        writer.writerow(row)
        count += 1
        progress(count)
    return count


@dataclass(frozen=True)
class ImportLine:
    number: int
    exported_id: str | None
    event: EventIn


def read_import_file(path: Path) -> Iterator[ImportLine]:
    """Every non-blank line, validated as the API validates a POST (InvalidInput if not)."""
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            where = f"line {number}"
            try:
                body = json.loads(text)
            except json.JSONDecodeError as error:
                raise InvalidInput(where, f"not JSON: {error.msg}") from None
            if not isinstance(body, dict):
                raise InvalidInput(where, "not a JSON object")
            if "checkpoint" in body and "type" not in body:
                continue  # the signed checkpoint heading an export written --with-proofs
            exported_id = body.get("event_id")
            posted = {k: v for k, v in body.items() if k not in SERVICE_FIELDS}
            # A stored event shows null for fields that do not apply; a POST omits them.
            posted = {k: v for k, v in posted.items() if v is not None and v != []}
            try:
                event = EventIn.model_validate(posted)
            except ValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first["loc"])
                raise InvalidInput(f"{where}.{field}", first["msg"]) from None
            located((where,), event.draft)
            yield ImportLine(number, str(exported_id) if exported_id else None, event)


@dataclass(frozen=True)
class ImportReport:
    recorded: int
    already_there: int
    batches: int
    recorded_in: float = 0.0
    """Seconds until every batch was recorded."""
    seconds: float = 0.0
    """Seconds until the read models (of this process) showed them too."""


def import_events(
    svc: Service,
    path: Path,
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
    caller: str = IMPORT_CALLER,
) -> ImportReport:
    """Record the file's events in order, a batch per transaction (see module doc), as
    `caller` (the events' `recorded_by`)."""
    started = time.perf_counter()
    for _ in read_import_file(path):  # validate everything before recording anything
        pass
    id_map: dict[str, str] = {}
    recorded = already = batches = 0
    batch: list[ImportLine] = []

    def flush() -> None:
        nonlocal recorded, already, batches
        drafts = []
        for line in batch:
            event = line.event
            if event.retracts is not None and str(event.retracts) in id_map:
                event = event.model_copy(update={"retracts": id_map[str(event.retracts)]})
            if event.renews is not None and str(event.renews) in id_map:
                event = event.model_copy(update={"renews": id_map[str(event.renews)]})
            drafts.append(located((f"line {line.number}",), event.draft))
        content = [line.event.request_body() for line in batch]
        key = "import:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        outcome = svc.record(
            drafts,
            recorded_by=caller,
            idempotency=IdempotentRequest.of(caller, key, content),
            shown=False,  # the read models are brought up once, at the end
        )
        for line, done in zip(batch, outcome.events, strict=True):
            if line.exported_id is not None:
                id_map[line.exported_id] = str(done.event.event_id)
        if outcome.replayed:
            already += len(batch)
        else:
            recorded += len(batch)
        batches += 1
        if progress is not None:
            progress(recorded + already)
        batch.clear()

    for line in read_import_file(path):
        named = line.event.retracts or line.event.renews
        target = None if named is None else str(named)
        if target is not None and any(target == earlier.exported_id for earlier in batch):
            flush()  # its target must have its new id first
        batch.append(line)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    recorded_in = time.perf_counter() - started
    if svc.settings.embedded_projector:  # else the projector process catches up
        svc.projector.catch_up()
    return ImportReport(recorded, already, batches, recorded_in, time.perf_counter() - started)


def count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as lines:
        return sum(1 for text in lines if text.strip())
