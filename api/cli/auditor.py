"""The auditor's side: checks a service, or an export of it, trusting nothing it serves.

`check_service` keeps one signed checkpoint in a file and, each time it runs, fetches
the service's current checkpoint and key over the REST API, verifies the signature and
an RFC 9162 consistency proof from the kept checkpoint (§2.1.4.2, in `domain.merkle`),
then, like a Certificate Transparency monitor, fetches every event the new checkpoint
covers, recomputes each one's hash from its fields and the tree's root from them, and
compares it with the signed root (a mismatch is located, leaf by leaf, with O(log n)
consistency proofs); then it keeps the new checkpoint. `verify_export` checks an
export written with `--with-proofs` offline, with the verifier key alone: every
event's hash recomputed from its fields, its inclusion proof (§2.1.3.2) against the
signed checkpoint's root, and the hash chain between consecutive versions of a stream.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from domain.checkpoints import Checkpoint, NoteError, Verifier
from domain.hashing import GENESIS_HASH, answered_fields, event_hash
from domain.keys import STREAM_NAMESPACE
from domain.merkle import CompactRange, leaf_hash, verify_consistency, verify_inclusion

EVENTS_PAGE = 1000


class AuditFailure(Exception):
    """The service or the file does not prove what it should: say what, plainly."""


@dataclass(frozen=True)
class CheckOutcome:
    old: Checkpoint | None
    new: Checkpoint
    key: str


def fetch_text(client: httpx.Client, path: str, **params: int) -> str:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as error:
        raise AuditFailure(f"cannot reach {client.base_url}{path}: {error}") from None
    if response.status_code != 200:
        raise AuditFailure(f"{path} answered {response.status_code}: {response.text[:300]}")
    return response.text


def check_service(
    kept_file: Path,
    url: str,
    *,
    pinned_key: str | None = None,
    kept_key: str | None = None,
    token: str | None = None,
) -> CheckOutcome:
    """Verify the service's current checkpoint against the one kept in `kept_file`, then
    keep the new one there (AuditFailure on any mismatch, and the file is left as it was).
    After a key rotation, `kept_key` is the old key, which signed the kept checkpoint: the
    consistency proof then joins a checkpoint of each key."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        served_key = fetch_text(client, "/v1/audit/key").strip()
        verifier = usable(pinned_key or served_key)
        if pinned_key and served_key != verifier.text():
            raise AuditFailure(
                f"the service now serves the key {served_key}, not the pinned {verifier.text()}"
            )
        note = fetch_text(client, "/v1/audit/checkpoint")
        try:
            new = Checkpoint.open(note, verifier)
        except NoteError as error:
            raise AuditFailure(f"the service's checkpoint does not verify: {error}") from None
        old = None
        if kept_file.exists():
            old = kept_checkpoint(kept_file, usable(kept_key) if kept_key else verifier)
            check_extends(client, old, new)
        check_served(client, new)
    keep(kept_file, note)
    return CheckOutcome(old, new, verifier.text())


def usable(key: str) -> Verifier:
    """The verifier key given; never echoed back in an error (it might be a secret given by
    mistake: the signing key's file holds the private key)."""
    if key.startswith("PRIVATE+KEY"):
        raise AuditFailure(
            "that is the signing key, which must stay secret, not the verifier key: give the "
            "verifier key (`curl URL/v1/audit/key`, or the line `sanctions audit keygen` printed)"
        )
    try:
        return Verifier.parse(key)
    except NoteError as error:
        raise AuditFailure(f"the verifier key given is not usable: {error}") from None


def kept_checkpoint(kept_file: Path, verifier: Verifier) -> Checkpoint:
    try:
        return Checkpoint.open(kept_file.read_text(encoding="utf-8"), verifier)
    except (OSError, UnicodeDecodeError) as error:
        raise AuditFailure(f"cannot read the kept checkpoint {kept_file}: {error}") from None
    except NoteError as error:
        raise AuditFailure(
            f"the kept checkpoint {kept_file} does not verify with the key "
            f"{verifier.text()}: {error}. Was the key replaced? After a rotation, give the "
            "old key, which signed the kept checkpoint, with --kept-key"
        ) from None


def check_extends(client: httpx.Client, old: Checkpoint, new: Checkpoint) -> None:
    """That the log of `new` extends the log of `old` unchanged (RFC 9162 §2.1.4.2)."""
    if new.origin != old.origin:
        raise AuditFailure(f"the service's log is now {new.origin!r}, not {old.origin!r}")
    if new.size < old.size:
        raise AuditFailure(
            f"the log shrank: it had {old.size} events at the kept checkpoint, now {new.size}"
        )
    if new.size == old.size:
        if new.root != old.root:
            raise AuditFailure(
                f"the log still has {new.size} events but another root: history was rewritten"
            )
        return
    text = fetch_text(client, "/v1/audit/proof/consistency", **{"from": old.size, "to": new.size})
    try:
        proof = json.loads(text)
        hashes = [bytes.fromhex(item) for item in proof["hashes"]]
    except (ValueError, KeyError, TypeError) as error:
        raise AuditFailure(f"the consistency proof is malformed: {error}") from None
    if not verify_consistency(old.size, new.size, old.root, new.root, hashes):
        raise AuditFailure(
            f"the log of {new.size} events does not extend the kept checkpoint of {old.size}: "
            "history was rewritten (the consistency proof fails)"
        )


def describe(event: dict[str, Any]) -> str:
    return (
        f"event {event.get('event_id')} ({event.get('stream')} v{event.get('version')}, "
        f"{event.get('type')}, position {event.get('position')})"
    )


def check_served(client: httpx.Client, checkpoint: Checkpoint) -> None:
    """That the events the service serves are the ones its checkpoint signs: every event
    the checkpoint covers fetched (`GET /v1/events`, in position order), its hash
    recomputed from its fields, and the tree's root recomputed from those hashes and
    compared with the signed root. The tree the service keeps is never trusted: a
    rewritten event behind a tree put back as it was is caught here, named."""
    tree, data, names = CompactRange(), list[bytes](), list[str]()
    after: int | None = None
    while tree.size < checkpoint.size:
        params = {"limit": EVENTS_PAGE} if after is None else {"limit": EVENTS_PAGE, "after": after}
        try:
            page = json.loads(fetch_text(client, "/v1/events", **params))
            events, skipped = list(page["events"]), list(page.get("problems") or [])
        except (ValueError, KeyError, TypeError) as error:
            raise AuditFailure(f"/v1/events answered a malformed page: {error}") from None
        if skipped:
            raise AuditFailure(
                f"the service passes over a stored event it cannot read ({skipped[0]}): "
                "the log's events were altered"
            )
        for event in events[: checkpoint.size - tree.size]:
            try:
                digest = recomputed_hash(event)
            except (KeyError, TypeError, ValueError) as error:
                raise AuditFailure(f"{describe(event)} cannot be hashed: {error!r}") from None
            if digest != event.get("hash"):
                raise AuditFailure(
                    f"{describe(event)} as served does not match its own hash: it was altered"
                )
            tree.append(bytes.fromhex(digest))
            data.append(bytes.fromhex(digest))
            names.append(describe(event))
        after = page.get("next_after")
        if after is None:
            break
    if tree.size < checkpoint.size:
        raise AuditFailure(
            f"the signed checkpoint covers {checkpoint.size} events, but the service serves "
            f"only {tree.size}: events were removed"
        )
    if tree.root() != checkpoint.root:
        index = first_unsigned_leaf(client, data, checkpoint)
        raise AuditFailure(
            f"{names[index]} as served is not leaf {index} of the signed checkpoint of "
            f"{checkpoint.size} events: history was rewritten (the first event that does "
            "not match)"
        )


def prefix_root(data: list[bytes], size: int) -> bytes:
    prefix = CompactRange()
    for item in data[:size]:
        prefix.append(item)
    return prefix.root()


def first_unsigned_leaf(client: httpx.Client, data: list[bytes], checkpoint: Checkpoint) -> int:
    """The first leaf whose served event differs from the signed tree's: binary search for
    the longest prefix of the served hashes that the signed tree extends (an RFC 9162
    consistency proof from that prefix to the checkpoint verifies), O(log n) proofs."""
    matching, differing = 0, checkpoint.size  # prefix sizes: the empty one matches
    while differing - matching > 1:
        middle = (matching + differing) // 2
        text = fetch_text(
            client, "/v1/audit/proof/consistency", **{"from": middle, "to": checkpoint.size}
        )
        try:
            hashes = [bytes.fromhex(item) for item in json.loads(text)["hashes"]]
        except (ValueError, KeyError, TypeError) as error:
            raise AuditFailure(f"the consistency proof is malformed: {error}") from None
        root = prefix_root(data, middle)
        if verify_consistency(middle, checkpoint.size, root, checkpoint.root, hashes):
            matching = middle
        else:
            differing = middle
    return matching


def keep(kept_file: Path, note: str) -> None:
    """Write the note in place of the kept one, atomically."""
    kept_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor, aside = tempfile.mkstemp(dir=kept_file.parent, prefix=".checkpoint-")
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(note)
    os.replace(aside, kept_file)


# Exports with proofs


@dataclass(frozen=True)
class ExportReport:
    checkpoint: Checkpoint
    events: int
    problems: list[str]


def export_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                try:
                    yield number, json.loads(text)
                except json.JSONDecodeError as error:
                    raise AuditFailure(f"line {number} is not JSON: {error.msg}") from None


def recomputed_hash(event: dict[str, Any]) -> str:
    """An exported event's hash, recomputed from its fields as the service hashes them."""
    stream_id = str(uuid.uuid5(STREAM_NAMESPACE, event["stream"]))
    return event_hash(answered_fields(event, stream_id))


def verify_export(path: Path, key: str) -> ExportReport:
    """Check an export written with `--with-proofs` offline (AuditFailure if it cannot be
    checked at all; otherwise every problem found, one per line)."""
    verifier = usable(key)
    lines = export_lines(path)
    first = next(lines, None)
    if first is None or "checkpoint" not in first[1]:
        raise AuditFailure("the file does not start with a checkpoint: export it --with-proofs")
    try:
        checkpoint = Checkpoint.open(first[1]["checkpoint"], verifier)
    except NoteError as error:
        raise AuditFailure(f"the file's checkpoint does not verify: {error}") from None
    problems: list[str] = []
    last: dict[str, tuple[int, str]] = {}  # per stream: the version and hash seen last
    last_leaf = -1
    count = 0
    for number, event in lines:
        count += 1
        problems.extend(f"line {number}: {p}" for p in check_exported(event, checkpoint))
        leaf = (event.get("proof") or {}).get("leaf_index")
        if isinstance(leaf, int):
            if leaf <= last_leaf:
                problems.append(f"line {number}: events are not in position order")
            last_leaf = leaf
        problems.extend(f"line {number}: {p}" for p in check_link(event, last))
    return ExportReport(checkpoint, count, problems)


def check_link(event: dict[str, Any], last: dict[str, tuple[int, str]]) -> list[str]:
    """That the event follows the previous version of its stream in the file (an
    export holds whole streams, each from version 1)."""
    stream, version = event.get("stream"), event.get("version")
    if not isinstance(stream, str) or not isinstance(version, int):
        return []
    before = last.get(stream)
    last[stream] = (version, str(event.get("hash")))
    seen = 0 if before is None else before[0]
    if version != seen + 1:
        return [f"{stream} v{version} follows v{seen}: versions in between are missing"]
    expected = GENESIS_HASH if before is None else before[1]
    if event.get("prev_hash") != expected:
        return [f"{stream} v{version} does not link to the previous version's hash"]
    return []


def check_exported(event: dict[str, Any], checkpoint: Checkpoint) -> list[str]:
    where = f"event {event.get('event_id')}"
    try:
        digest = recomputed_hash(event)
    except (KeyError, TypeError, ValueError) as error:
        return [f"{where}: not an exported event ({error!r})"]
    if digest != event.get("hash"):
        return [f"{where}: its fields do not match its hash: it was altered"]
    proof: Any = event.get("proof")
    try:
        index = int(proof["leaf_index"])
        size = int(proof["size"])
        hashes = [bytes.fromhex(item) for item in proof["hashes"]]
    except (KeyError, TypeError, ValueError):
        return [f"{where}: no usable inclusion proof"]
    if size != checkpoint.size:
        return [
            f"{where}: its proof is for a tree of {size}, the checkpoint's has {checkpoint.size}"
        ]
    leaf = leaf_hash(bytes.fromhex(digest))
    if not verify_inclusion(index, size, leaf, hashes, checkpoint.root):
        return [f"{where}: its inclusion proof does not lead to the checkpoint's root"]
    return []
