"""The verifiable log, checked against an independent RFC 9162 and C2SP reading.

Every expected hash here comes from `Reference`, a plain recursive transcription of
RFC 9162 §2.1 (MTH, PATH, PROOF) written in this file, and every signature is checked
with `cryptography`'s Ed25519 directly; `domain.merkle` and `domain.checkpoints` are only
the things under test (their verifiers must accept the served proofs and notes and
refuse any one-byte change). On SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import random
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pycountry
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from api.app.service import Service
from api.http.app import create_app
from domain import merkle
from domain.catalogue import CATALOGUE
from domain.checkpoints import NoteError, Verifier
from domain.store.keyfile import SigningKeyError
from tests.conftest import READER, WRITER

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store

EM_DASH = "\u2014"
KEY_NAME = "sanctions-timeline"


@pytest.fixture
def services(database_url: str, make_services: Callable[..., Service], tmp_path: Path) -> Service:
    """conftest's `client` on a service whose key file is under the test's tmp_path: the
    SQLite default (beside the db) or, for PostgreSQL, an explicit file (the PostgreSQL
    default, data/signing.key, would land in the working tree)."""
    if database_url.startswith("sqlite"):
        return make_services()
    return make_services(signing_key_file=tmp_path / "signing.key")


# An independent RFC 9162 §2.1, written from the text


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    """k with k < n ≤ 2k (n ≥ 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and PROOF of RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1, recursively, over
    `leaves` (memoised on leaf ranges so that 5,000 leaves stay quick)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.memo: dict[tuple[int, int], bytes] = {}

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end])."""
        if (start, end) in self.memo:
            return self.memo[(start, end)]
        n = end - start
        if n == 0:
            value = sha256(b"")
        elif n == 1:
            value = sha256(b"\x00" + self.leaves[start])
        else:
            k = largest_power_of_two_below(n)
            value = sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))
        self.memo[(start, end)] = value
        return value

    def root(self, n: int) -> bytes:
        return self.mth(0, n)

    def leaf(self, m: int) -> bytes:
        return sha256(b"\x00" + self.leaves[m])

    def path(self, m: int, n: int, start: int = 0) -> list[bytes]:
        """PATH(m, D[start:start+n])."""
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return [*self.path(m, k, start), self.mth(start + k, start + n)]
        return [*self.path(m - k, n - k, start + k), self.mth(start, start + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
        return self.subproof(m, n, 0, True)

    def subproof(self, m: int, n: int, start: int, whole: bool) -> list[bytes]:
        """SUBPROOF(m, D[start:start+n], whole)."""
        if m == n:
            return [] if whole else [self.mth(start, start + n)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return [*self.subproof(m, k, start, whole), self.mth(start + k, start + n)]
        return [*self.subproof(m - k, n - k, start + k, False), self.mth(start, start + k)]


def test_the_reference_matches_rfc_9162_by_hand() -> None:
    """The reference itself, against trees small enough to write out."""
    d = [bytes([i]) * 32 for i in range(7)]
    ref = Reference(d)
    leaf = [sha256(b"\x00" + x) for x in d]

    def node(a: bytes, b: bytes) -> bytes:
        return sha256(b"\x01" + a + b)

    ab, cd, ef = node(leaf[0], leaf[1]), node(leaf[2], leaf[3]), node(leaf[4], leaf[5])
    abcd, efg = node(ab, cd), node(ef, leaf[6])
    assert ref.root(0) == sha256(b"")
    assert ref.root(1) == leaf[0]
    assert ref.root(3) == node(ab, leaf[2])
    assert ref.root(7) == node(abcd, efg)
    # RFC 9162 §2.1.5's examples: tree of 7 leaves a…g (d0…d6).
    assert ref.path(0, 7) == [leaf[1], cd, efg]  # the audit path for a
    assert ref.path(3, 7) == [leaf[2], ab, efg]  # for d
    assert ref.path(4, 7) == [leaf[5], leaf[6], abcd]  # for e
    assert ref.path(6, 7) == [ef, abcd]  # for g
    assert ref.proof(3, 7) == [leaf[2], leaf[3], ab, efg]  # c, d, g, l
    assert ref.proof(4, 7) == [efg]  # l
    assert ref.proof(6, 7) == [ef, leaf[6], abcd]  # i, j, k
    assert ref.proof(7, 7) == []


# Recording and reading the log

COUNTRIES = sorted(country.alpha_2 for country in pycountry.countries)
COMMODITIES = [commodity.slug for commodity in CATALOGUE]
MEASURES = ["import_ban", "export_ban", "asset_freeze", "financing_ban", "services_ban"]


def imposed(number: int) -> dict[str, Any]:
    """The `number`-th of thousands of distinct streams, each opened by one `imposed`."""
    country = COUNTRIES[number % len(COUNTRIES)]
    commodity = COMMODITIES[number // len(COUNTRIES)]
    return {
        "type": "imposed",
        "authority": "EU",
        "country": country,
        "commodity": commodity,
        "effective_date": f"20{10 + number % 15}-0{1 + number % 9}-1{number % 10}",
        "measures": [MEASURES[number % len(MEASURES)]],
    }


def record(client: TestClient, first: int, count: int) -> None:
    """Record events `first` … `first + count - 1` in batches of up to 1,000."""
    for start in range(first, first + count, 1000):
        batch = [imposed(n) for n in range(start, min(start + 1000, first + count))]
        response = client.post("/v1/events:batch", json={"events": batch}, headers=WRITER)
        assert response.status_code == 201, response.text
        assert len(response.json()["events"]) == len(batch)


def read_log(client: TestClient) -> list[dict[str, Any]]:
    """Every event in `position` order, page by page."""
    events: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        response = client.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        after = page["next_after"]
        if after is None or not page["events"]:
            break
    positions = [event["position"] for event in events]
    assert positions == sorted(set(positions))
    return events


def reference_of(events: list[dict[str, Any]]) -> Reference:
    return Reference([bytes.fromhex(event["hash"]) for event in events])


def get_json(client: TestClient, route: str, **params: Any) -> dict[str, Any]:
    response = client.get(route, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def inclusion(client: TestClient, event_id: str, size: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"event_id": event_id}
    if size is not None:
        params["size"] = size
    return get_json(client, "/v1/audit/proof/inclusion", **params)


def consistency(client: TestClient, old: int, new: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"from": old}
    if new is not None:
        params["to"] = new
    return get_json(client, "/v1/audit/proof/consistency", **params)


def hexes(hashes: list[bytes]) -> list[str]:
    return [value.hex() for value in hashes]


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


def check_inclusion(client: TestClient, ref: Reference, events: list[dict[str, Any]],
                    m: int, n: int, explicit: bool = True) -> list[bytes]:  # fmt: skip
    """The served proof of leaf m in D[n] is PATH(m, D[n]) under MTH(D[n]); the proof."""
    event_id = events[m]["event_id"]
    served = inclusion(client, event_id, n if explicit else None)
    want = ref.path(m, n)
    assert served == {
        "event_id": event_id,
        "leaf_index": m,
        "size": n,
        "root": ref.root(n).hex(),
        "hashes": hexes(want),
    }, (m, n)
    assert merkle.verify_inclusion(m, n, ref.leaf(m), unhex(served["hashes"]), ref.root(n))
    return want


def check_consistency(client: TestClient, ref: Reference, m: int, n: int,
                      explicit: bool = True) -> list[bytes]:  # fmt: skip
    """The served proof from m to n is PROOF(m, D[n]) between MTH(D[m]) and MTH(D[n])."""
    served = consistency(client, m, n if explicit else None)
    want = ref.proof(m, n)
    assert served == {
        "from": m,
        "to": n,
        "from_root": ref.root(m).hex(),
        "to_root": ref.root(n).hex(),
        "hashes": hexes(want),
    }, (m, n)
    assert merkle.verify_consistency(m, n, ref.root(m), ref.root(n), unhex(served["hashes"]))
    return want


# Tampering: one changed byte anywhere must be refused


def changed(value: bytes, at: int, rng: random.Random) -> bytes:
    return value[:at] + bytes([value[at] ^ rng.randrange(1, 256)]) + value[at + 1 :]


def byte_positions(every_byte: bool, rng: random.Random) -> list[int]:
    return list(range(32)) if every_byte else [rng.randrange(32)]


def refuse_tampered_inclusion(ref: Reference, m: int, n: int, proof: list[bytes],
                              rng: random.Random, every_byte: bool = False) -> None:  # fmt: skip
    """verify_inclusion takes the proof, and refuses it once any one byte of a proof hash,
    the leaf or the root is changed, or the proof is cut short or lengthened."""
    verify, leaf, root = merkle.verify_inclusion, ref.leaf(m), ref.root(n)
    assert verify(m, n, leaf, proof, root)
    for i in range(len(proof)):
        for at in byte_positions(every_byte, rng):
            bad = [*proof[:i], changed(proof[i], at, rng), *proof[i + 1 :]]
            assert not verify(m, n, leaf, bad, root), ("proof", m, n, i, at)
    for at in byte_positions(every_byte, rng):
        assert not verify(m, n, changed(leaf, at, rng), proof, root), ("leaf", m, n, at)
        assert not verify(m, n, leaf, proof, changed(root, at, rng)), ("root", m, n, at)
    assert not verify(m, n, leaf, [*proof, root], root)
    if proof:  # cut short: refused even against the subtree root it does fold to
        k = largest_power_of_two_below(n)
        subtree = ref.mth(0, k) if m < k else ref.mth(k, n)
        assert not verify(m, n, leaf, proof[:-1], root)
        assert not verify(m, n, leaf, proof[:-1], subtree), ("cut short", m, n)


def refuse_tampered_consistency(ref: Reference, m: int, n: int, proof: list[bytes],
                                rng: random.Random, every_byte: bool = False) -> None:  # fmt: skip
    """verify_consistency takes the proof, and refuses it once any one byte of a proof
    hash or of either root is changed, or the proof is cut short or lengthened."""
    verify, old, new = merkle.verify_consistency, ref.root(m), ref.root(n)
    assert verify(m, n, old, new, proof)
    for i in range(len(proof)):
        for at in byte_positions(every_byte, rng):
            bad = [*proof[:i], changed(proof[i], at, rng), *proof[i + 1 :]]
            assert not verify(m, n, old, new, bad), ("proof", m, n, i, at)
    for at in byte_positions(every_byte, rng):
        assert not verify(m, n, changed(old, at, rng), new, proof), ("old root", m, n, at)
        assert not verify(m, n, old, changed(new, at, rng), proof), ("new root", m, n, at)
    assert not verify(m, n, old, new, [*proof, new])
    if proof:
        assert not verify(m, n, old, new, proof[:-1])
        k = largest_power_of_two_below(n)
        if m <= k:  # cut short: refused even against the left subtree it does fold to
            assert not verify(m, n, old, ref.mth(0, k), proof[:-1]), ("cut short", m, n)


# 2. Every proof of every tree of 1 … 70 leaves

SMALL = 70
GROWTH = [1, 1, 2, 3, 5, 8, 13, 17, 20]  # batch sizes: 70 leaves, frontiers of many shapes
FULLY_TAMPERED = {(0, 1), (0, 2), (5, 8), (8, 9), (12, 13), (31, 33), (40, 64), (64, 65),
                  (3, 70), (69, 70), (33, 70)}  # fmt: skip


@pytest.mark.slow  # about 2,500 proofs, each asked over HTTP
def test_every_proof_of_every_tree_up_to_70_leaves(client: TestClient) -> None:
    recorded = 0
    for count in GROWTH:  # the tree grows batch by batch; the latest size is the default
        record(client, recorded, count)
        recorded += count
        events = read_log(client)
        ref = reference_of(events)
        assert len(events) == recorded
        for m in {0, recorded // 2, recorded - 1}:
            check_inclusion(client, ref, events, m, recorded, explicit=False)
            check_consistency(client, ref, m + 1, recorded, explicit=False)
    assert recorded == SMALL

    rng = random.Random(9162)
    for n in range(1, SMALL + 1):
        for m in range(n):
            proof = check_inclusion(client, ref, events, m, n)
            refuse_tampered_inclusion(ref, m, n, proof, rng,
                                      every_byte=(m, n) in FULLY_TAMPERED)  # fmt: skip
        for m in range(1, n + 1):
            proof = check_consistency(client, ref, m, n)
            refuse_tampered_consistency(ref, m, n, proof, rng,
                                        every_byte=(m, n) in FULLY_TAMPERED)  # fmt: skip
        # From the empty tree: no hashes, and the empty tree's root.
        served = consistency(client, 0, n)
        assert served["from_root"] == sha256(b"").hex() and served["hashes"] == []
        assert served["to_root"] == ref.root(n).hex()
        assert merkle.verify_consistency(0, n, sha256(b""), ref.root(n), [])


# 3. A sample of 5,000 events

LARGE = 5000


@pytest.mark.slow  # 5,000 events recorded first
def test_proofs_in_a_log_of_5000_events(client: TestClient) -> None:
    record(client, 0, LARGE)
    events = read_log(client)
    assert len(events) == LARGE
    ref = reference_of(events)

    rng = random.Random(5000)
    sizes = {LARGE, LARGE - 1, 1, 2, 3}
    for power in (2**p for p in range(1, 13)):  # 2 … 4096
        sizes |= {power - 1, power, power + 1}
    inclusions: set[tuple[int, int]] = set()
    consistencies: set[tuple[int, int]] = set()
    for n in sorted(sizes):
        inclusions |= {(0, n), (n - 1, n), (rng.randrange(n), n)}
        power = largest_power_of_two_below(n + 1)  # the largest power of two ≤ n
        consistencies |= {(1, n), (n, n), (max(n - 1, 1), n), (power, n),
                          (rng.randrange(1, n + 1), n)}  # fmt: skip
    for _ in range(40):
        n = rng.randrange(1, LARGE + 1)
        inclusions.add((rng.randrange(n), n))
        consistencies.add((rng.randrange(1, n + 1), n))

    fully_tampered = {(0, LARGE), (LARGE - 1, LARGE), (2048, 4097), (4095, 4096), (1, LARGE),
                      (4096, LARGE), (4097, LARGE), (LARGE - 1, LARGE), (3000, 4097)}  # fmt: skip
    inclusions |= {(m, n) for m, n in fully_tampered if m < n}
    consistencies |= {(m, n) for m, n in fully_tampered if m > 0}
    for m, n in sorted(inclusions):
        proof = check_inclusion(client, ref, events, m, n)
        if (m, n) in fully_tampered:
            refuse_tampered_inclusion(ref, m, n, proof, rng, True)
    for m, n in sorted(consistencies):
        proof = check_consistency(client, ref, m, n)
        if (m, n) in fully_tampered:
            refuse_tampered_consistency(ref, m, n, proof, rng, True)
    assert len(inclusions) >= 80 and len(consistencies) >= 150

    note = client.get("/v1/audit/checkpoint").text
    assert note.split("\n")[1:3] == [str(LARGE), base64.b64encode(ref.root(LARGE)).decode()]


# 4. Signed checkpoints, checked with Ed25519 directly


def parse_verifier_key(text: str) -> tuple[str, bytes, bytes]:
    """`<name>+<hex key id>+<base64(0x01 ‖ public key)>` → name, key id, public key."""
    name, hex_id, encoded = text.split("+", 2)  # base64 may hold '+'
    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) == 33 and raw[0] == 0x01, text
    return name, bytes.fromhex(hex_id), raw[1:]


def directly_verified(note: str, key: str) -> bool:
    """Whether `note` is a C2SP signed note with a valid Ed25519 signature by `key`."""
    name, wanted_id, public = parse_verifier_key(key)
    body, blank, signatures = note.partition("\n\n")
    if not blank or not note.endswith("\n"):
        return False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            return False
        signer, _, encoded = line[2:].partition(" ")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return False
        if signer != name or len(signature) != 68 or signature[:4] != wanted_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(
                signature[4:], (body + "\n").encode("utf-8")
            )
        except InvalidSignature:
            return False
        return True
    return False


def opened(note: str, key: str) -> bool:
    """Whether `domain.checkpoints.Verifier` opens the note (NoteError when not)."""
    try:
        Verifier.parse(key).open(note)
    except NoteError:
        return False
    return True


def checkpoint_and_key(client: TestClient) -> tuple[str, str]:
    response = client.get("/v1/audit/checkpoint")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["checkpoint-signed-at"]
    key = client.get("/v1/audit/key")
    assert key.status_code == 200 and key.headers["content-type"].startswith("text/plain")
    return response.text, key.text.strip()


def parse_checkpoint(note: str) -> tuple[str, int, bytes, str, str, bytes]:
    """origin, size, root, body text, signature key name, key id ‖ signature."""
    body, blank, signatures = note.partition("\n\n")
    assert blank and note.endswith("\n"), note
    origin, size, encoded = body.split("\n")  # exactly three lines
    assert size.isdigit() and (size == "0" or not size.startswith("0"))
    root = base64.b64decode(encoded, validate=True)
    assert len(root) == 32
    lines = signatures[:-1].split("\n")
    assert len(lines) == 1 and lines[0].startswith(EM_DASH + " "), lines
    name, encoded_signature = lines[0][2:].split(" ")
    signature = base64.b64decode(encoded_signature, validate=True)
    assert len(signature) == 4 + 64
    return origin, int(size), root, body + "\n", name, signature


def test_the_checkpoint_is_a_signed_note_of_the_whole_log(client: TestClient) -> None:
    empty, key = checkpoint_and_key(client)
    origin, size, root, *_ = parse_checkpoint(empty)
    assert (size, root) == (0, sha256(b"")) and directly_verified(empty, key)

    record(client, 0, 37)
    note, key = checkpoint_and_key(client)
    origin, size, root, text, signer, signature = parse_checkpoint(note)
    name, wanted_id, public = parse_verifier_key(key)
    assert origin == name == signer == KEY_NAME
    assert wanted_id == sha256(name.encode() + b"\n" + b"\x01" + public)[:4]
    assert signature[:4] == wanted_id
    Ed25519PublicKey.from_public_bytes(public).verify(signature[4:], text.encode("utf-8"))
    events = read_log(client)
    assert size == len(events) == 37 and root == reference_of(events).root(37)
    assert directly_verified(note, key) and opened(note, key)
    assert Verifier.parse(key).public == public and Verifier.parse(key).name == name

    body, signature_line = note.split("\n\n")
    lines = body.split("\n")
    edits = {
        "origin": "\n".join([lines[0] + "x", *lines[1:]]),
        "size": "\n".join([lines[0], str(size + 1), lines[2]]),
        "size with a leading zero": "\n".join([lines[0], "0" + lines[1], lines[2]]),
        "added line": body + "\nextension line",
        "dropped line": "\n".join(lines[:2]),
    }
    for at, char in enumerate(lines[2]):
        other = "A" if char != "A" else "B"
        edits[f"root char {at}"] = "\n".join(
            [*lines[:2], lines[2][:at] + other + lines[2][at + 1 :]]
        )
    for what, edited in edits.items():
        tampered = edited + "\n\n" + signature_line
        assert not directly_verified(tampered, key), what
        assert not opened(tampered, key), what

    prefix, encoded = signature_line.rsplit(" ", 1)
    for at, char in enumerate(encoded.rstrip("\n")):
        if char == "=":
            continue
        for other in "ABab01+/":  # one that changes the decoded bytes (not padding bits)
            edited = encoded[:at] + other + encoded[at + 1 :]
            if base64.b64decode(edited) != base64.b64decode(encoded):
                break
        tampered = f"{body}\n\n{prefix} {edited}"
        assert not directly_verified(tampered, key), at
        assert not opened(tampered, key), at
    other_name = f"{body}\n\n{EM_DASH} someone-else {encoded}"
    assert not directly_verified(other_name, key) and not opened(other_name, key)


# 5. The key file


def start(svc: Service) -> None:
    """Start the app and stop it, answering nothing."""
    with TestClient(create_app(svc)):
        pass


def key_of(svc: Service) -> str:
    with TestClient(create_app(svc)) as http:
        response = http.get("/v1/audit/key")
        assert response.status_code == 200
        return response.text.strip()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_signing_key_file(
    database_url: str, make_services: Callable[..., Service], tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):  # the default: beside the SQLite file
        beside = tmp_path / "sanctions.signing.key"
        assert not beside.exists()
        first = key_of(make_services())
        assert beside.is_file() and mode_of(beside) == 0o600
        assert key_of(make_services()) == first  # a restart on the same store: the same key
        assert [p.name for p in tmp_path.iterdir() if "key" in p.name] == [beside.name]
    else:
        first = None

    chosen = tmp_path / "secrets" / "checkpoints.key"
    mine = key_of(make_services(signing_key_file=chosen))
    assert chosen.is_file() and mode_of(chosen) == 0o600
    assert mine != first
    name, key_id, _ = parse_verifier_key(mine)
    assert chosen.read_text().startswith(f"PRIVATE+KEY+{name}+{key_id.hex()}+")
    assert key_of(make_services(signing_key_file=chosen)) == mine

    for mode in (0o620, 0o602, 0o660, 0o666, 0o622):  # writable by group or others
        os.chmod(chosen, mode)
        with pytest.raises(SigningKeyError, match="written by others"):  # refused at start
            start(make_services(signing_key_file=chosen))
    os.chmod(chosen, 0o400)  # a read-only secret is fine
    assert key_of(make_services(signing_key_file=chosen)) == mine


# 6. Bad input: named problems, never a 500


NOT_IN_TREE = 404
"""A well-formed size the tree does not have (larger than the log, or too small to hold
the event) is "no such tree", 404 (commit eaa6b9d; schemathesis holds schema-valid input
must not be 422). The brief this file was first written to said 422."""


def assert_problem(response: Any, status: int | tuple[int, ...]) -> None:
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code


def test_bad_proof_requests_are_named_problems(client: TestClient) -> None:
    empty_consistency = consistency(client, 0, 0)
    assert empty_consistency["from_root"] == empty_consistency["to_root"] == sha256(b"").hex()
    assert_problem(client.get("/v1/audit/proof/inclusion",
                              params={"event_id": str(uuid.uuid4())}), 404)  # fmt: skip

    record(client, 0, 3)
    events = read_log(client)
    last = events[2]["event_id"]
    inclusion_route, consistency_route = "/v1/audit/proof/inclusion", "/v1/audit/proof/consistency"
    cases: list[tuple[str, dict[str, Any], int | tuple[int, ...]]] = [
        (inclusion_route, {"event_id": str(uuid.uuid4())}, 404),
        (inclusion_route, {"event_id": str(uuid.uuid4()), "size": 3}, 404),
        (inclusion_route, {"event_id": last, "size": 4}, NOT_IN_TREE),  # larger than the log
        (inclusion_route, {"event_id": last, "size": 10**6}, NOT_IN_TREE),
        (inclusion_route, {"event_id": last, "size": 2}, NOT_IN_TREE),  # smaller than leaf 2 + 1
        (inclusion_route, {"event_id": last, "size": 0}, NOT_IN_TREE),
        (inclusion_route, {"event_id": last, "size": -1}, 422),
        (inclusion_route, {"event_id": last, "size": "three"}, 422),
        (inclusion_route, {"event_id": last, "size": "2.5"}, 422),
        (inclusion_route, {"event_id": last, "size": ""}, 422),
        (inclusion_route, {"event_id": last, "size": "9" * 40}, 422),
        (inclusion_route, {"event_id": "not-a-uuid"}, 422),
        (inclusion_route, {}, 422),
        (inclusion_route, {"event_id": last, "sise": 3}, 422),  # unknown parameter
        (consistency_route, {"from": 3, "to": 2}, 422),
        (consistency_route, {"from": 4}, 422),  # larger than the latest checkpoint
        (consistency_route, {"from": 1, "to": 4}, NOT_IN_TREE),
        (consistency_route, {"from": -1, "to": 2}, 422),
        (consistency_route, {"from": 1, "to": -2}, 422),
        (consistency_route, {"from": "one", "to": 2}, 422),
        (consistency_route, {"from": 1, "to": "two"}, 422),
        (consistency_route, {"from": "9" * 40}, 422),
        (consistency_route, {"to": 2}, 422),
        (consistency_route, {"from": 1, "to": 2, "too": 3}, 422),
        ("/v1/audit/checkpoint", {"size": 2}, 422),
        ("/v1/audit/key", {"format": "pem"}, 422),
    ]
    for route, params, status in cases:
        assert_problem(client.get(route, params=params), status)
    assert_problem(client.get(f"{inclusion_route}?event_id={last}&size"), 422)
    # Nothing above changed the log or its proofs.
    ref = reference_of(events)
    check_inclusion(client, ref, events, 2, 3)
    check_consistency(client, ref, 1, 3)


# 7. The checkpoint grows, and the old one is a prefix of the new


def test_a_later_checkpoint_extends_an_earlier_one(client: TestClient) -> None:
    record(client, 0, 10)
    first, key = checkpoint_and_key(client)
    again, _ = checkpoint_and_key(client)
    assert again == first  # nothing new recorded: the same signed checkpoint
    record(client, 10, 25)
    second, same_key = checkpoint_and_key(client)
    assert same_key == key
    assert directly_verified(first, key) and directly_verified(second, key)
    _, old, old_root, *_ = parse_checkpoint(first)
    _, new, new_root, *_ = parse_checkpoint(second)
    assert (old, new) == (10, 35)

    served = consistency(client, old)  # `to` defaults to the latest checkpoint
    assert served["to"] == new
    assert served == consistency(client, old, new)
    assert (served["from_root"], served["to_root"]) == (old_root.hex(), new_root.hex())
    proof = unhex(served["hashes"])
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)
    ref = reference_of(read_log(client))
    assert proof == ref.proof(old, new) and new_root == ref.root(new)
    refuse_tampered_consistency(ref, old, new, proof, random.Random(7), True)

    with_reader = client.get("/v1/audit/checkpoint", headers=READER)
    assert with_reader.status_code == 200 and with_reader.text == second
