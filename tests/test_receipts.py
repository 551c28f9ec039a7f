"""Screening receipts (`GET /v1/screen/receipt`, `sanctions audit receipt`), on every store.

A receipt is checked here by other hands than the service's: securesystemslib's DSSE
envelope and Ed25519 key, the pre-authentication encoding and the statement's digest
written out in the test, the Merkle tree recomputed recursively (tests/test_log_proofs.py's
`Reference`), and the events folded by tests/reference.py's sweep, not by the projection.
Each check of `audit receipt` is then broken on purpose: a receipt changed in its answer,
an event, a proof or its checkpoint, re-signed with the service's own key so that only the
deeper check can catch it, makes the command exit 1 naming what broke.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from typer.testing import CliRunner

from api.app.seed import seed
from api.app.service import Service
from api.cli.main import app as cli
from api.http.app import create_app
from domain.checkpoints import Signer
from domain.rules import EventType, TimelineEntry
from domain.store.keyfile import read as read_key_file
from tests.conftest import WRITER
from tests.reference import reference_fold
from tests.tamper import behind_the_back
from tests.test_log_proofs import Reference

pytestmark = pytest.mark.integration  # the app in process on a real store; the CLI in process

PAYLOAD_TYPE = "application/vnd.in-toto+json"
POTASH = {"hs": "3104.20", "origin": "BY"}
JP = {"authority": "JP", "country": "BY", "commodity": "potash"}


@pytest.fixture
def signed(make_services: Callable[..., Service], tmp_path: Path) -> tuple[Service, Path]:
    """The bundled timeline, signed with a key of the test's own (its file)."""
    key_file = tmp_path / "signing.key"
    svc = make_services(signing_key_file=key_file)
    seed(svc)
    return svc, key_file


@pytest.fixture
def client(signed: tuple[Service, Path]) -> TestClient:
    return TestClient(create_app(signed[0]))


def receipt(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/v1/screen/receipt", params={**POTASH, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    envelope: dict[str, Any] = response.json()
    return envelope


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pae(payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding, as its specification writes it."""
    kind = PAYLOAD_TYPE.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def verifier_text(client: TestClient) -> str:
    return client.get("/v1/audit/key").text.strip()


def sslib_key(verifier: str) -> SSlibKey:
    """securesystemslib's Ed25519 key for a signed-note verifier key `name+id+base64`."""
    name, key_id, encoded = verifier.split("+", 2)
    raw = base64.b64decode(encoded)
    assert raw[:1] == b"\x01" and len(raw) == 33
    return SSlibKey(f"{name}+{key_id}", "ed25519", "ed25519", {"public": raw[1:].hex()})


def audit(file: Path, *options: str) -> tuple[int, str]:
    """`sanctions audit receipt FILE OPTIONS…`: exit code and output."""
    done = CliRunner().invoke(cli, ["audit", "receipt", str(file), *options])
    return done.exit_code, done.output


def resigned(statement: dict[str, Any], key_file: Path) -> dict[str, Any]:
    """The statement in an envelope signed with the service's key, as a service that signs a
    wrong receipt would: only the deeper checks can then catch what was changed."""
    signer: Signer = read_key_file(key_file)
    payload = canonical(statement)
    keyid = f"{signer.name}+{signer.verifier.key_id.hex()}"
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [
            {"keyid": keyid, "sig": base64.b64encode(signer.private.sign(pae(payload))).decode()}
        ],
    }


def test_a_receipt_verifies_with_securesystemslib_and_with_audit_receipt(
    client: TestClient, tmp_path: Path
) -> None:
    envelope = receipt(client, date="2026-01-15")
    key = verifier_text(client)
    assert envelope["payloadType"] == PAYLOAD_TYPE
    # securesystemslib's DSSE verifier (its from_dict consumes the dict: give it a copy)
    accepted = Envelope.from_dict(copy.deepcopy(envelope)).verify([sslib_key(key)], 1)
    assert list(accepted) == [envelope["signatures"][0]["keyid"]]
    # and the signature over the PAE written out here, with the raw Ed25519 key
    raw = base64.b64decode(key.split("+", 2)[2])[1:]
    payload = base64.b64decode(envelope["payload"])
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    Ed25519PublicKey.from_public_bytes(raw).verify(sig, pae(payload))

    statement = json.loads(payload)
    assert payload == canonical(statement)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://sanctions-timeline.dev/screening-receipt/v1"
    predicate = statement["predicate"]
    question = predicate["question"]
    assert {k: question[k] for k in ("hs", "origin", "date", "authority")} == {
        "hs": "3104.20", "origin": "BY", "date": "2026-01-15", "authority": None,
    }  # fmt: skip
    [subject] = statement["subject"]
    assert subject["digest"] == {"sha256": hashlib.sha256(canonical(question)).hexdigest()}
    screened = client.get("/v1/screen", params={**POTASH, "date": "2026-01-15"}).json()
    assert predicate["answer"] == screened
    assert {row["authority"] for row in screened["results"]} == {"CA", "EU", "GB", "LT", "US"}

    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(envelope))
    code, said = audit(file, "--key", key)
    assert code == 0, said
    assert said.startswith("ok: the receipt holds"), said
    assert "question: HS 3104.20 (potash) from BY on 2026-01-15" in said
    assert "US lifted" in said and "EU active" in said


def test_the_events_and_proofs_are_the_logs_and_fold_to_the_answer_independently(
    client: TestClient,
) -> None:
    """Terms, a renewal, an easing and a retraction on one stream; a receipt as known before
    the retraction and one after. Each holds exactly the streams' events recorded by its
    `known_at` (read back from the log), each proof is the recursive tree's path, and each
    row of the answer is the reference fold of those events."""

    def post(**body: Any) -> dict[str, Any]:
        response = client.post("/v1/events", json={**JP, **body}, headers=WRITER)
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    imposed = post(
        type="imposed", effective_date="2022-03-01", measures=["import_ban"], expires="2024-03-01"
    )
    post(type="expanded", effective_date="2023-01-01", measures=["export_ban"])
    post(type="eased", effective_date="2023-06-01", measures=["export_ban"], expires="2025-01-01")
    post(
        type="renewed",
        effective_date="2024-01-01",
        expires="2027-01-01",
        renews=imposed["event_id"],
    )
    mistaken = post(type="expanded", effective_date="2024-06-01", measures=["transit_ban"])
    before = receipt(client, date="2024-07-01")
    post(type="retracted", retracts=mistaken["event_id"], note="recorded by mistake")
    after = receipt(client, date="2024-07-01")
    earlier = receipt(client, date="2024-07-01", known_at=imposed["recorded_at"])

    log = client.get("/v1/events", params={"limit": 1000}).json()["events"]
    for envelope in (before, after, earlier):
        predicate = statement_of(envelope)["predicate"]
        known_at = predicate["question"]["known_at"]
        rows = predicate["answer"]["results"]
        streams = {row["stream"] for row in rows}
        expected = [e for e in log if e["stream"] in streams and e["recorded_at"] <= known_at]
        assert predicate["events"] == expected
        check_proofs(predicate, log)
        for row in rows:
            events = [e for e in expected if e["stream"] == row["stream"]]
            folded = reference_fold(entries(events), date(2024, 7, 1))
            assert folded == (
                row["status"],
                row["measures"],
                None if row["since"] is None else date.fromisoformat(row["since"]),
                row["event_ids"],
                None if row["expires"] is None else date.fromisoformat(row["expires"]),
            ), row["stream"]
    jp = {
        "before": first_row(statement_of(before), "JP"),
        "after": first_row(statement_of(after), "JP"),
    }
    assert jp["before"]["measures"] == ["import_ban", "transit_ban"]
    assert jp["after"]["measures"] == ["import_ban"]
    assert jp["after"]["expires"] == "2025-01-01"  # the easing's term
    earlier_rows = statement_of(earlier)["predicate"]["answer"]["results"]
    assert [r["event_ids"] for r in earlier_rows if r["authority"] == "JP"] == [
        [imposed["event_id"]]
    ]


def entries(events: list[dict[str, Any]]) -> list[TimelineEntry]:
    """The events that take effect, less the retracted ones, as the reference fold takes them."""
    retracted = {e["retracts"] for e in events if e["type"] == "retracted"}
    return [
        TimelineEntry(
            e["event_id"],
            e["version"],
            EventType(e["type"]),
            date.fromisoformat(e["effective_date"]),
            frozenset(e["measures"]),
            None if e["expires"] is None else date.fromisoformat(e["expires"]),
            e["renews"],
        )
        for e in events
        if e["type"] != "retracted" and e["event_id"] not in retracted
    ]


def check_proofs(predicate: dict[str, Any], log: list[dict[str, Any]]) -> None:
    """The checkpoint's root is the recursive tree's over the log's first `size` events,
    and each proof is its inclusion path of the event's leaf."""
    _, size, root = predicate["checkpoint"].split("\n")[:3]
    tree = Reference([bytes.fromhex(e["hash"]) for e in log])
    assert tree.root(int(size)) == base64.b64decode(root)
    index = {e["event_id"]: i for i, e in enumerate(log)}
    assert [p["event_id"] for p in predicate["proofs"]] == [
        e["event_id"] for e in predicate["events"]
    ]
    for proof in predicate["proofs"]:
        assert proof["leaf_index"] == index[proof["event_id"]]
        assert proof["hashes"] == [h.hex() for h in tree.path(proof["leaf_index"], int(size))]


def first_row(statement: dict[str, Any], authority: str) -> dict[str, Any]:
    row: dict[str, Any] = next(
        r for r in statement["predicate"]["answer"]["results"] if r["authority"] == authority
    )
    return row


def first_event(statement: dict[str, Any], stream: str) -> dict[str, Any]:
    event: dict[str, Any] = next(
        e for e in statement["predicate"]["events"] if e["stream"] == stream
    )
    return event


def flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


def status_changed(s: dict[str, Any]) -> None:
    first_row(s, "US")["status"] = "active"


def measure_dropped(s: dict[str, Any]) -> None:
    first_row(s, "EU")["measures"].pop()


def row_dropped(s: dict[str, Any]) -> None:
    s["predicate"]["answer"]["results"].pop()


def row_repeated(s: dict[str, Any]) -> None:
    """A row twice: each copy still the fold of its stream, but not what GET /v1/screen says."""
    rows = s["predicate"]["answer"]["results"]
    rows.append(copy.deepcopy(rows[0]))


def rows_reversed(s: dict[str, Any]) -> None:
    s["predicate"]["answer"]["results"].reverse()


def event_date_moved(s: dict[str, Any]) -> None:
    first_event(s, "US/BY/potash")["effective_date"] = "2021-08-10"


def event_rehashed(s: dict[str, Any]) -> None:
    """An event changed and its hash recomputed: the chain and tree no longer hold it."""
    from api.cli.auditor import recomputed_hash

    event = first_event(s, "CA/BY/potash")
    event["note"] = "changed"
    event["hash"] = recomputed_hash(event)


def event_dropped(s: dict[str, Any]) -> None:
    """The last US event (the lift) left out, with its proof: the answer no longer follows."""
    predicate = s["predicate"]
    last = max(
        (i for i, e in enumerate(predicate["events"]) if e["stream"] == "US/BY/potash"),
    )
    del predicate["events"][last], predicate["proofs"][last]


def event_position_moved(s: dict[str, Any]) -> None:
    """A position is not in the event's hash: the second event said to be where the first is."""
    events = s["predicate"]["events"]
    events[1]["position"] = events[0]["position"]


def events_swapped(s: dict[str, Any]) -> None:
    """Two neighbouring events of different streams swapped, with their proofs: each stream's
    chain still holds, but the events leave log order."""
    events, proofs = s["predicate"]["events"], s["predicate"]["proofs"]
    i = next(i for i in range(len(events) - 1) if events[i]["stream"] != events[i + 1]["stream"])
    events[i], events[i + 1] = events[i + 1], events[i]
    proofs[i], proofs[i + 1] = proofs[i + 1], proofs[i]


def proof_hash_flipped(s: dict[str, Any]) -> None:
    proof = s["predicate"]["proofs"][0]
    proof["hashes"][0] = flip_hex(proof["hashes"][0])


def proof_index_moved(s: dict[str, Any]) -> None:
    s["predicate"]["proofs"][0]["leaf_index"] += 1


def checkpoint_root_changed(s: dict[str, Any]) -> None:
    lines = s["predicate"]["checkpoint"].split("\n")
    root = bytearray(base64.b64decode(lines[2]))
    root[0] ^= 1
    lines[2] = base64.b64encode(bytes(root)).decode()
    s["predicate"]["checkpoint"] = "\n".join(lines)


def question_date_changed(s: dict[str, Any]) -> None:
    s["predicate"]["question"]["date"] = "2025-01-15"


def question_date_changed_with_subject(s: dict[str, Any]) -> None:
    """The question and its subject both changed: the answer is then not to the question."""
    question = s["predicate"]["question"]
    question["date"] = "2025-01-15"
    s["subject"][0]["digest"]["sha256"] = hashlib.sha256(canonical(question)).hexdigest()
    s["subject"][0]["name"] = s["subject"][0]["name"].replace("2026-01-15", "2025-01-15")


def middle_event_dropped(s: dict[str, Any]) -> None:
    """The first EU event (version 1) left out, with its proof: the chain no longer holds."""
    predicate = s["predicate"]
    first = next(i for i, e in enumerate(predicate["events"]) if e["stream"] == "EU/BY/potash")
    del predicate["events"][first], predicate["proofs"][first]


def known_at_moved_back(s: dict[str, Any]) -> None:
    """The question said to be as known before the events were recorded."""
    question = s["predicate"]["question"]
    question["known_at"] = "2020-01-01T00:00:00.000000Z"
    s["subject"][0]["digest"]["sha256"] = hashlib.sha256(canonical(question)).hexdigest()
    name = s["subject"][0]["name"]
    s["subject"][0]["name"] = (
        name[: name.index("known_at=")] + "known_at=2020-01-01T00%3A00%3A00.000000Z"
    )


BROKEN = {
    "an answer's status": (status_changed, "the events do not fold to the answer for US/BY/potash"),
    "an answer's measures": (
        measure_dropped,
        "the events do not fold to the answer for EU/BY/potash",
    ),
    "an event's date": (event_date_moved, "its fields do not match its hash"),
    "an event rehashed": (event_rehashed, "its inclusion proof does not lead to the root"),
    "an event left out": (event_dropped, "the events do not fold to the answer for US/BY/potash"),
    "a first version left out": (
        middle_event_dropped,
        "the stream's chain breaks: EU/BY/potash v2 follows v0",
    ),
    "an event's position": (event_position_moved, "does not fit its leaf"),
    "the events' order": (events_swapped, "the events are not in log order"),
    "a row repeated": (row_repeated, "the answer's rows are not one per stream in stream order"),
    "the rows' order": (rows_reversed, "the answer's rows are not one per stream in stream order"),
    "a row left out": (row_dropped, "its stream is not one of the answer's"),
    "the known_at": (known_at_moved_back, "it was recorded after the question's known_at"),
    "a proof's hash": (proof_hash_flipped, "its inclusion proof does not lead to the root"),
    "a proof's leaf index": (proof_index_moved, "its inclusion proof does not lead to the root"),
    "the checkpoint's root": (checkpoint_root_changed, "the receipt's checkpoint does not verify"),
    "the question": (
        question_date_changed,
        "the statement's subject is not the SHA-256 of the question",
    ),
    "the question and subject": (
        question_date_changed_with_subject,
        "the answer is not to the question",
    ),
}


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_a_receipt_changed_and_signed_again_fails_the_check_that_catches_it(
    client: TestClient, signed: tuple[Service, Path], tmp_path: Path, broken: str
) -> None:
    change, message = BROKEN[broken]
    statement = statement_of(receipt(client, date="2026-01-15"))
    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(resigned(statement, signed[1])))
    code, said = audit(file, "--key", verifier_text(client))
    assert code == 0, said  # signed again unchanged, it holds: the change is what fails
    change(statement)
    file.write_text(json.dumps(resigned(statement, signed[1])))
    code, said = audit(file, "--key", verifier_text(client))
    assert code == 1, said
    assert said.startswith("audit receipt FAILED: "), said
    assert message in " ".join(said.split()), said


def test_any_changed_byte_breaks_the_envelopes_signature(
    client: TestClient, tmp_path: Path
) -> None:
    envelope = receipt(client, date="2026-01-15")
    payload = bytearray(base64.b64decode(envelope["payload"]))
    key = verifier_text(client)
    file = tmp_path / "receipt.json"
    for at in (0, len(payload) // 3, len(payload) // 2, len(payload) - 2):
        changed = bytearray(payload)
        changed[at] ^= 1
        file.write_text(json.dumps({**envelope, "payload": base64.b64encode(changed).decode()}))
        code, said = audit(file, "--key", key)
        assert code == 1, said
        assert "the envelope's signature does not verify" in " ".join(said.split()), said


def test_another_key_or_a_file_that_is_no_receipt_is_refused(
    client: TestClient, tmp_path: Path
) -> None:
    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(receipt(client)))
    other = Signer.generate("sanctions-timeline").verifier.text()
    code, said = audit(file, "--key", other)
    assert code == 1 and "signature does not verify" in " ".join(said.split()), said
    for text in ("not json", "[]", json.dumps({"payload": "!!", "payloadType": PAYLOAD_TYPE})):
        file.write_text(text)
        code, said = audit(file, "--key", verifier_text(client))
        assert code == 1 and said.startswith("audit receipt FAILED: "), said
    code, said = audit(file)  # no key at all: a usage error
    assert code == 2 and "give the key to check the receipt with: --key" in said, said


def test_bad_questions_are_refused_with_every_field_named_and_nothing_else(
    client: TestClient,
) -> None:
    response = client.get(
        "/v1/screen/receipt",
        params={"hs": "9999", "origin": "XX", "date": "2025-02-30", "known_at": "yesterday"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"query.hs", "query.origin", "query.date", "query.known_at"}
    response = client.get("/v1/screen/receipt", params={**POTASH, "knownat": "2026-01-01"})
    assert response.status_code == 422 and "known_at" in response.json()["detail"]
    assert client.get("/v1/screen/receipt", params={"origin": "BY"}).status_code == 422


@pytest.mark.shared_store  # the tree's table changed behind the service's back
def test_an_event_no_checkpoint_covers_yet_is_answered_503_never_a_receipt(
    client: TestClient,
    signed: tuple[Service, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The read models hold an event the log's tree does not (yet): no checkpoint can cover
    it, so the receipt is refused with Retry-After rather than issued unverifiable; once the
    tree holds it again, the receipt is issued and checks."""
    from api.app import receipts

    monkeypatch.setattr(receipts, "COVERAGE_WAIT_SECONDS", 0.0)  # one look, no waiting
    posted = client.post(
        "/v1/events",
        json={**JP, "type": "imposed", "effective_date": "2024-01-01", "measures": ["import_ban"]},
        headers=WRITER,
    )
    assert posted.status_code == 201, posted.text
    event_id = posted.json()["event_id"]
    asked = {**POTASH, "authority": "JP"}
    with behind_the_back(signed[0]) as execute:
        [leaf] = execute("SELECT * FROM log_leaves WHERE event_id = %s", (event_id,))
        execute("DELETE FROM log_leaves WHERE event_id = %s", (event_id,))
    refused = client.get("/v1/screen/receipt", params=asked)
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["type"].endswith("/receipt-not-ready")
    assert event_id in refused.json()["detail"]
    assert client.get("/v1/screen", params=asked).json()["results"][0]["status"] == "active"

    with behind_the_back(signed[0]) as execute:
        execute("INSERT INTO log_leaves VALUES (%s, %s, %s, %s)", tuple(leaf))
    envelope = receipt(client, authority="JP")
    assert [e["event_id"] for e in statement_of(envelope)["predicate"]["events"]] == [event_id]
    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(envelope))
    code, said = audit(file, "--key", verifier_text(client))
    assert code == 0, said
