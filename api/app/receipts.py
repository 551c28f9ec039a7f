"""Screening receipts: a shipment's screening, signed with everything needed to check it later.

A receipt is a DSSE envelope (`api.schemas.receipts`) signed with the log's checkpoint key.
Its in-toto statement holds the question as the service settled it, the answer
`GET /v1/screen` gives for it, a signed checkpoint, every event of the answer's streams
recorded by the question's `known_at`, and each event's RFC 9162 inclusion proof in that
checkpoint's tree: so anyone holding the verifier key can check, offline and years later,
that those events were in the log and that they fold to the answer
(`api.cli.receipt`). A receipt is issued only once a checkpoint covers all its events: the
notary signs one on demand, so the service waits a little for the tree to take in events
recorded a moment ago, and else answers `ReceiptNotReady` (503, Retry-After).
"""

from __future__ import annotations

import copy
import hashlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from api.app.notary import Notary
from api.app.signing import short
from api.schemas.answers import EventOut
from api.schemas.changes import ScreenOut
from api.schemas.inputs import optional
from api.schemas.queries import ReceiptQuery, ScreenQuery
from api.schemas.receipts import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    EnvelopeOut,
    InclusionProof,
    ReceiptPredicate,
    ScreenedQuestion,
    Statement,
    Subject,
)
from domain.application import SanctionsLog
from domain.checkpoints import Signer, Verifier
from domain.errors import StreamDamaged, TreeMismatch
from domain.hashing import canonical_json, format_timestamp, parse_timestamp
from domain.keys import parse_authority
from projections.log.tree import leaf_data
from projections.projector import Projector

COVERAGE_WAIT_SECONDS = 3.0
"""How long a receipt waits for a checkpoint that covers its events before answering 503."""
RETRY_AFTER_SECONDS = 2


class ReceiptNotReady(Exception):
    """No checkpoint covers the receipt's events yet (HTTP 503 with Retry-After)."""

    def __init__(self, event_id: str) -> None:
        message = (
            f"no signed checkpoint covers event {event_id} yet (recorded a moment ago); "
            f"ask again in {RETRY_AFTER_SECONDS} seconds"
        )
        super().__init__(message)
        self.message = message


class EnvelopeError(ValueError):
    """An envelope that is malformed or whose signature does not verify."""


def dsse_key(verifier: Verifier) -> SSlibKey:
    """The verifier as securesystemslib's key, its keyid `<name>+<hex key id>`."""
    return SSlibKey(short(verifier), "ed25519", "ed25519", {"public": verifier.public.hex()})


def signed_envelope(payload: bytes, signer: Signer) -> EnvelopeOut:
    """`payload` in a DSSE envelope signed by `signer` (Ed25519 over DSSE's PAE)."""
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(signer.private, dsse_key(signer.verifier)))
    return EnvelopeOut.model_validate(envelope.to_dict())


def opened_envelope(document: Any, verifier: Verifier) -> bytes:
    """The payload of a DSSE envelope once its type is the receipt's and a signature by
    `verifier` verifies (EnvelopeError saying why not)."""
    if not isinstance(document, dict):
        raise EnvelopeError("the receipt is not a DSSE envelope (a JSON object)")
    if document.get("payloadType") != PAYLOAD_TYPE:
        raise EnvelopeError(f"the envelope's payloadType is not {PAYLOAD_TYPE}")
    try:
        envelope = Envelope.from_dict(copy.deepcopy(document))
    except Exception as error:  # securesystemslib raises several kinds for a bad envelope
        raise EnvelopeError(f"the envelope is malformed: {error}") from None
    try:
        envelope.verify([dsse_key(verifier)], 1)
    except Exception:
        raise EnvelopeError(
            f"the envelope's signature does not verify with the key {verifier.text()}"
        ) from None
    return bytes(envelope.payload)


def question_digest(question: ScreenedQuestion) -> str:
    """The SHA-256 of the question's canonical JSON: the statement's subject digest."""
    return hashlib.sha256(canonical_json(question.model_dump(mode="json"))).hexdigest()


def question_name(question: ScreenedQuestion) -> str:
    """The subject's name: the receipt's path asking this very question again."""
    asked = {k: v for k, v in question.model_dump(mode="json").items() if v is not None}
    return f"{ReceiptQuery.PATH}?{urlencode(asked)}"


class Receipts:
    """`Service.receipt`, on the service's log, read models and notary."""

    log: SanctionsLog
    projector: Projector
    notary: Notary

    def screened(self, query: ScreenQuery, known_at: str | None = None) -> tuple[ScreenOut, str]:
        raise NotImplementedError  # ChangeQuestions'

    def receipt(self, query: ReceiptQuery) -> EnvelopeOut:
        """The answer `GET /v1/screen` gives to `query` as recorded by its `known_at`, signed
        with the events it follows from, their proofs and a checkpoint covering them."""
        answer, known_at = self.screened(query, query.known_at)
        question = ScreenedQuestion(
            hs=answer.hs,
            origin=answer.origin,
            date=answer.date,
            authority=optional(parse_authority, query.authority, "authority"),
            known_at=known_at,
        )
        events = self.recorded_by([row.stream for row in answer.results], known_at)
        checkpoint, proofs = self.covering(events)
        predicate = ReceiptPredicate(
            question=question,
            answer=answer,
            checkpoint=checkpoint,
            events=events,
            proofs=proofs,
            issued_at=format_timestamp(datetime.now(UTC)),
        )
        subject = Subject(
            name=question_name(question), digest={"sha256": question_digest(question)}
        )
        statement = Statement.model_validate(
            {
                "_type": STATEMENT_TYPE,
                "subject": [subject],
                "predicateType": PREDICATE_TYPE,
                "predicate": predicate,
            }
        )
        payload = canonical_json(statement.model_dump(mode="json", by_alias=True))
        return signed_envelope(payload, self.notary.signer)

    def recorded_by(self, streams: list[str], known_at: str) -> list[EventOut]:
        """Every stored event of these streams recorded at or before `known_at`, in log
        order; StreamDamaged when one cannot be read (the receipt could not be checked)."""
        if not streams:
            return []
        moment = parse_timestamp(known_at)
        page = self.log.page(streams=streams)
        if page.undecodable:
            damaged = page.undecodable[0]
            raise StreamDamaged(damaged.stream or "a stream", damaged.describe())
        return [
            EventOut.of(recorded.position, recorded.event)
            for recorded in page.events
            if recorded.event.recorded_at <= moment
        ]

    def covering(self, events: list[EventOut]) -> tuple[str, list[InclusionProof]]:
        """A signed checkpoint whose tree holds every event, and their inclusion proofs in
        it: waiting a little for the tree to take in events recorded a moment ago, then
        ReceiptNotReady."""
        deadline = time.monotonic() + COVERAGE_WAIT_SECONDS
        while True:
            checkpoint = self.notary.checkpoint()
            missing = self.first_uncovered(events, checkpoint.size)
            if missing is None:
                break
            if time.monotonic() >= deadline:
                raise ReceiptNotReady(missing)
            time.sleep(0.2)
        proofs = []
        for event in events:
            proof = self.notary.inclusion(event.event_id, checkpoint.size)
            proofs.append(
                InclusionProof(
                    event_id=str(event.event_id), leaf_index=proof.leaf_index, hashes=proof.hashes
                )
            )
        return checkpoint.note, proofs

    def first_uncovered(self, events: list[EventOut], size: int) -> str | None:
        """The first event the tree of `size` leaves does not hold (None: it holds all).
        A leaf that is not the event's hash is TreeMismatch: no receipt over it."""
        tree = self.projector.view.tree
        for event in events:
            leaf = tree.leaf_of(str(event.event_id))
            if leaf is None or leaf[0] >= size:
                return str(event.event_id)
            if leaf[1] != leaf_data(event.hash):
                raise TreeMismatch(f"leaf {leaf[0]} is not the hash of event {event.event_id}")
        return None
