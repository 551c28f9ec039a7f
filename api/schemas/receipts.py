"""Screening receipts (`GET /v1/screen/receipt`): a DSSE envelope whose payload is an in-toto
Statement v1 about one screening question, its answer, and the events it follows from.

The envelope is what DSSE (github.com/secure-systems-lab/dsse) defines: `payload` (base64),
`payloadType`, and `signatures` of `{keyid, sig}`, each signature over DSSE's
pre-authentication encoding of the type and the payload. The payload is the canonical JSON
(sorted keys, no spaces, UTF-8) of an in-toto Statement v1 (github.com/in-toto/attestation):
its `subject` names the question with the SHA-256 of the question's canonical JSON, and its
`predicate` is a `ReceiptPredicate`.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.answers import EventOut
from api.schemas.changes import ScreenOut

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://sanctions-timeline.dev/screening-receipt/v1"


class SignatureOut(BaseModel):
    """One DSSE signature: `sig` is the base64 Ed25519 signature over DSSE's
    PAE(payloadType, payload); `keyid` names the checkpoint key as `<name>+<hex key id>`
    (GET /v1/audit/key gives the whole verifier key)."""

    keyid: str
    sig: str


class EnvelopeOut(BaseModel):
    """A DSSE envelope holding a screening receipt."""

    model_config = ConfigDict(populate_by_name=True)

    payload: str = Field(
        description="Base64 of the canonical JSON of an in-toto Statement v1 whose predicate "
        f"({PREDICATE_TYPE}) holds `question`, `answer` (what GET /v1/screen answers), "
        "`checkpoint` (a signed note), `events`, `proofs` and `issued_at`"
    )
    payload_type: Literal["application/vnd.in-toto+json"] = Field(
        alias="payloadType", serialization_alias="payloadType"
    )
    signatures: list[SignatureOut]

    def statement(self) -> Statement:
        """The statement in the payload, read without checking the signature (that is
        `sanctions audit receipt`'s work)."""
        return Statement.model_validate_json(base64.b64decode(self.payload))


class ScreenedQuestion(BaseModel):
    """The question as the service settled it (the receipt's subject)."""

    hs: str = Field(description="The HS code as given (spaces around it dropped)")
    origin: str = Field(description="The country of origin, ISO 3166-1 alpha-2")
    date: dt.date = Field(description="The shipment's date (valid time)")
    authority: str | None = Field(description="Only this authority, or null for every one")
    known_at: str = Field(description="The settled moment of the record (transaction time)")


class InclusionProof(BaseModel):
    event_id: str
    leaf_index: int = Field(ge=0)
    hashes: list[str] = Field(description="RFC 9162 inclusion path, hex, leaf first")


class ReceiptPredicate(BaseModel):
    question: ScreenedQuestion
    answer: ScreenOut
    checkpoint: str = Field(description="A C2SP signed checkpoint whose tree holds every event")
    events: list[EventOut] = Field(
        description="Every stored event (retractions included) of each stream in the answer "
        "recorded at or before `known_at`, in log order"
    )
    proofs: list[InclusionProof]
    issued_at: str


class Subject(BaseModel):
    name: str
    digest: dict[str, str]


class Statement(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(
        alias="_type", serialization_alias="_type"
    )
    subject: list[Subject]
    predicate_type: Literal["https://sanctions-timeline.dev/screening-receipt/v1"] = Field(
        alias="predicateType", serialization_alias="predicateType"
    )
    predicate: ReceiptPredicate
