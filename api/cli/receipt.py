"""`sanctions audit receipt FILE`: a screening receipt checked offline, trusting nothing in it.

In order, each check naming what does not hold: the DSSE envelope's signature by the
service's key; the statement's form and its subject's digest of the question; the
checkpoint's signature; each event's hash recomputed from its fields (`domain.hashing`)
and its RFC 9162 inclusion proof against the checkpoint's root (`domain.merkle`); that
the events run in log order, each `position` (in no hash) fitting its leaf; each
stream's chain of versions and `prev_hash` from version 1; that every event belongs to the
answer's streams and was recorded by the question's `known_at`; and that the events fold,
with the project's own rules (`domain.rules` through `projections.model.valid_intervals`),
to every row of the answer. With a server's URL, the live log must also extend the
receipt's checkpoint (an RFC 9162 consistency proof, as `sanctions audit check` asks for):
a log rewritten since the receipt was issued fails there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from api.app.receipts import EnvelopeError, opened_envelope, question_digest, question_name
from api.cli.auditor import (
    AuditFailure,
    check_extends,
    check_link,
    fetch_text,
    recomputed_hash,
    usable,
)
from api.schemas.answers import EventOut, StatusResult
from api.schemas.receipts import ReceiptPredicate, Statement
from domain.catalogue import commodity_for_hs
from domain.checkpoints import Checkpoint, NoteError, Verifier
from domain.errors import InvalidInput
from domain.hashing import parse_timestamp
from domain.keys import StreamKey
from domain.merkle import leaf_hash, verify_inclusion
from domain.rules import EventType, TimelineEntry
from projections.model import valid_intervals


@dataclass(frozen=True)
class ReceiptReport:
    predicate: ReceiptPredicate
    checkpoint: Checkpoint
    signer: str
    """The signing key's name (its id varies with each key: the key given names it)."""
    live: Checkpoint | None


def check_receipt(document: Any, verifier: Verifier) -> tuple[ReceiptPredicate, Checkpoint]:
    """The receipt's predicate and checkpoint once every check holds (AuditFailure naming
    the first that does not)."""
    try:
        payload = opened_envelope(document, verifier)
    except EnvelopeError as error:
        raise AuditFailure(str(error)) from None
    try:
        raw = json.loads(payload)
        statement = Statement.model_validate(raw)
    except (ValueError, ValidationError) as error:
        raise AuditFailure(f"the signed statement is not a screening receipt: {error}") from None
    predicate = statement.predicate
    subject = statement.subject[0] if len(statement.subject) == 1 else None
    digest = question_digest(predicate.question)
    if subject is None or subject.digest.get("sha256") != digest:
        raise AuditFailure("the statement's subject is not the SHA-256 of the question")
    if subject.name != question_name(predicate.question):
        raise AuditFailure("the statement's subject does not name the question")
    try:
        checkpoint = Checkpoint.open(predicate.checkpoint, verifier)
    except NoteError as error:
        raise AuditFailure(f"the receipt's checkpoint does not verify: {error}") from None
    check_events(raw["predicate"]["events"], predicate, checkpoint)
    check_answer(predicate)
    return predicate, checkpoint


def check_events(events: list[Any], predicate: ReceiptPredicate, checkpoint: Checkpoint) -> None:
    """Each event's hash from its fields (as it was signed, not as parsed), its inclusion
    proof, its stream's chain, and its place in the question."""
    if len(predicate.proofs) != len(events):
        raise AuditFailure(
            f"the receipt has {len(events)} events but {len(predicate.proofs)} proofs"
        )
    known_at = parse_timestamp(predicate.question.known_at)
    streams = {row.stream for row in predicate.answer.results}
    last: dict[str, tuple[int, str]] = {}
    before = (-1, 0)  # the leaf index and position of the event before, in log order
    for event, parsed, proof in zip(events, predicate.events, predicate.proofs, strict=True):
        where = f"event {parsed.event_id} ({parsed.stream} v{parsed.version})"
        if recomputed_hash(event) != parsed.hash:
            raise AuditFailure(f"{where}: its fields do not match its hash: it was altered")
        if proof.event_id != str(parsed.event_id):
            raise AuditFailure(f"{where}: its proof is for event {proof.event_id}")
        try:
            path = [bytes.fromhex(item) for item in proof.hashes]
            leaf = leaf_hash(bytes.fromhex(parsed.hash))
        except ValueError:
            raise AuditFailure(f"{where}: its inclusion proof is not hex") from None
        if not verify_inclusion(proof.leaf_index, checkpoint.size, leaf, path, checkpoint.root):
            raise AuditFailure(
                f"{where}: its inclusion proof does not lead to the root of the checkpoint of "
                f"{checkpoint.size} events"
            )
        check_place(where, parsed.position, proof.leaf_index, before)
        before = (proof.leaf_index, parsed.position)
        for problem in check_link(event, last):
            raise AuditFailure(f"{where}: the stream's chain breaks: {problem}")
        if parsed.stream not in streams:
            raise AuditFailure(f"{where}: its stream is not one of the answer's")
        key = StreamKey.from_name(parsed.stream)
        if (parsed.authority, parsed.country, parsed.commodity) != (
            key.authority,
            key.country,
            key.commodity,
        ):
            raise AuditFailure(f"{where}: its authority, country or commodity is not its stream's")
        if parse_timestamp(parsed.recorded_at) > known_at:
            raise AuditFailure(f"{where}: it was recorded after the question's known_at")


def check_place(where: str, position: int, leaf: int, before: tuple[int, int]) -> None:
    """That the events run in log order, and that each one's `position` fits its proven leaf.
    A position is not in the event's hash, so only this much of it can be checked: leaf *i*
    is the (i+1)-th event of the log, whose positions start at 1 and only grow (they may
    skip numbers)."""
    if leaf <= before[0]:
        raise AuditFailure(f"{where}: its leaf {leaf} does not follow the event before's "
                           f"{before[0]}: the events are not in log order")  # fmt: skip
    if position <= before[1] or position <= leaf:
        raise AuditFailure(
            f"{where}: its position {position} does not fit its leaf {leaf} (the event before "
            f"is at position {before[1]}, leaf {before[0]}): it was altered"
        )


def entries(events: list[EventOut]) -> list[TimelineEntry]:
    """The events that take effect, less those retracted (every event of a receipt was
    recorded by its `known_at`, so every retraction in it counts)."""
    retracted = {str(event.retracts) for event in events if event.type is EventType.RETRACTED}
    return [
        TimelineEntry(
            str(event.event_id),
            event.version,
            event.type,
            event.effective_date,
            frozenset(event.measures),
            event.expires,
            None if event.renews is None else str(event.renews),
        )
        for event in events
        if event.type is not EventType.RETRACTED
        and event.effective_date is not None
        and str(event.event_id) not in retracted
    ]


def folded(stream: str, events: list[EventOut], day: Any) -> StatusResult:
    """The stream's status row on `day`, folded from its events with the project's rules."""
    for interval in valid_intervals(stream, entries(events)):
        if interval.valid_from <= day and (interval.valid_to is None or day < interval.valid_to):
            return StatusResult.model_validate(
                {
                    **StatusResult.nothing_in_force(stream).model_dump(),
                    **interval._asdict(),
                    "since": interval.since,
                }
            )
    return StatusResult.nothing_in_force(stream)


def check_answer(predicate: ReceiptPredicate) -> None:
    """That the answer is to the question asked, with one row per stream in stream order as
    `GET /v1/screen` gives them, and that each row is the fold of its stream's events on
    the question's date."""
    question, answer = predicate.question, predicate.answer
    try:
        commodity = commodity_for_hs(question.hs).slug
    except InvalidInput as error:
        raise AuditFailure(f"the question's HS code is not screenable: {error}") from None
    asked = (question.hs, commodity, question.origin, question.date)
    if (answer.hs, answer.commodity, answer.origin, answer.date) != asked:
        raise AuditFailure("the answer is not to the question: its HS code, commodity, "
                           "origin or date differs")  # fmt: skip
    streams = [row.stream for row in answer.results]
    if streams != sorted(set(streams)):
        raise AuditFailure("the answer's rows are not one per stream in stream order, as "
                           f"GET /v1/screen gives them: {', '.join(streams)}")  # fmt: skip
    for row in answer.results:
        if (row.country, row.commodity) != (question.origin, commodity) or (
            question.authority is not None and row.authority != question.authority
        ):
            raise AuditFailure(f"the answer's row {row.stream} is not about the question")
        events = [event for event in predicate.events if event.stream == row.stream]
        expected = folded(row.stream, events, question.date)
        if expected != row:
            raise AuditFailure(
                f"the events do not fold to the answer for {row.stream}: the answer says "
                f"{summary(row)}, its {len(events)} events give {summary(expected)}"
            )


def summary(row: StatusResult) -> str:
    measures = ", ".join(row.measures)
    return (
        f"{row.status}{f' ({measures})' if measures else ''} since {row.since}, in force since "
        f"{row.in_force_since}, expires {row.expires}, built by {len(row.event_ids)} event(s)"
    )


def live_checkpoint(url: str, verifier: Verifier, old: Checkpoint) -> Checkpoint:
    """The server's current checkpoint, once it verifies and its log extends `old`."""
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
        note = fetch_text(client, "/v1/audit/checkpoint")
        try:
            new = Checkpoint.open(note, verifier)
        except NoteError as error:
            raise AuditFailure(f"the service's checkpoint does not verify: {error}") from None
        check_extends(client, old, new)
    return new


def verify_receipt(file: Path, key: str | None, url: str | None) -> ReceiptReport:
    """Check the receipt in `file` with the key given, else the one the server serves."""
    if key is None:
        if url is None:
            raise AuditFailure(
                "no key to check it with: give the verifier key with --key (`curl URL/v1/audit/"
                "key`), or the server with --url"
            )
        with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
            key = fetch_text(client, "/v1/audit/key").strip()
    verifier = usable(key)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise AuditFailure(f"cannot read the receipt {file}: {error}") from None
    predicate, checkpoint = check_receipt(document, verifier)
    live = None if url is None else live_checkpoint(url, verifier, checkpoint)
    return ReceiptReport(predicate, checkpoint, verifier.name, live)


def said(report: ReceiptReport) -> str:
    """The short summary of a receipt that holds."""
    question, answer = report.predicate.question, report.predicate.answer
    statuses = ", ".join(f"{row.authority} {row.status}" for row in answer.results) or "none"
    lines = [
        f"ok: the receipt holds, signed by {report.signer}",
        f"  question: HS {question.hs} ({answer.commodity}) from {question.origin} on "
        f"{question.date}",
        f"  known at {question.known_at}, issued {report.predicate.issued_at}",
        f"  answer: {statuses}",
        f"  {len(report.predicate.events)} events, each proven in the signed checkpoint of "
        f"{report.checkpoint.size} events",
        "  their chains hold, and they fold to the answer",
    ]
    if report.live is not None:
        lines.append(f"  the live log ({report.live.size} events) extends the receipt's checkpoint")
    return "\n".join(lines)
