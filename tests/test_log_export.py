"""Exports written --with-proofs are checked offline with the verifier key alone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app.seed import bundled_events, seed
from api.app.service import Service
from domain.checkpoints import Signer
from tests.conftest import POSTGRES_URL, drop_schema, run_cli

pytestmark = pytest.mark.e2e  # `sanctions export` and `sanctions audit verify-export`


def export_with_proofs(database_url: str, path: Path) -> list[dict[str, Any]]:
    done = run_cli(database_url, "export", "--with-proofs", "-o", str(path))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def verify_export(database_url: str, path: Path, key: str) -> tuple[int, str]:
    done = run_cli(database_url, "audit", "verify-export", str(path), "--key", key)
    return done.returncode, done.stdout + done.stderr


def write(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


@pytest.mark.shared_store
def test_an_export_with_proofs_verifies_offline_and_any_edit_is_caught(
    make_services: Callable[..., Service], database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "signing.key"
    svc = make_services(signing_key_file=key_file)
    seed(svc)
    svc.projector.catch_up()
    key = svc.notary.verifier_key
    path = tmp_path / "export.jsonl"
    import os

    os.environ["SANCTIONS_SIGNING_KEY_FILE"] = str(key_file)
    try:
        lines = export_with_proofs(database_url, path)
    finally:
        del os.environ["SANCTIONS_SIGNING_KEY_FILE"]
    heading, events = lines[0], lines[1:]
    seeded = len(bundled_events())
    assert heading["checkpoint"].splitlines()[1] == str(seeded) and len(events) == seeded
    assert heading["key"] == key
    assert [e["proof"]["leaf_index"] for e in events] == list(range(seeded))

    code, said = verify_export(database_url, path, key)
    assert code == 0, said
    assert f"{seeded} events verified" in said

    # The key may be given as a file too.
    key_path = tmp_path / "verifier.key"
    key_path.write_text(key + "\n")
    assert verify_export(database_url, path, str(key_path))[0] == 0

    def altered(change: Callable[[list[dict[str, Any]]], None]) -> tuple[int, str]:
        copy = json.loads(json.dumps(lines))
        change(copy)
        target = tmp_path / "altered.jsonl"
        write(target, copy)
        return verify_export(database_url, target, key)

    def move_the_lift(copy: list[dict[str, Any]]) -> None:
        lift = next(e for e in copy[1:] if e["stream"] == "US/BY/potash" and e["type"] == "lifted")
        lift["effective_date"] = "2024-01-01"

    code, said = altered(move_the_lift)
    assert code == 1 and "altered" in said, said

    def rehash_the_lift(copy: list[dict[str, Any]]) -> None:
        # The insider recomputes the hash too: the inclusion proof then fails.
        from api.cli.auditor import recomputed_hash

        move_the_lift(copy)
        lift = next(e for e in copy[1:] if e["stream"] == "US/BY/potash" and e["type"] == "lifted")
        lift["hash"] = recomputed_hash(lift)

    code, said = altered(rehash_the_lift)
    assert code == 1 and "inclusion proof" in said, said

    def flip_a_proof_byte(copy: list[dict[str, Any]]) -> None:
        hashes = copy[5]["proof"]["hashes"]
        hashes[0] = ("0" if hashes[0][0] != "0" else "1") + hashes[0][1:]

    code, said = altered(flip_a_proof_byte)
    assert code == 1 and "inclusion proof" in said, said

    def edit_the_checkpoint(copy: list[dict[str, Any]]) -> None:
        size = len(bundled_events())
        copy[0]["checkpoint"] = copy[0]["checkpoint"].replace(f"\n{size}\n", f"\n{size - 1}\n", 1)

    code, said = altered(edit_the_checkpoint)
    assert code == 1 and "does not verify" in said, said

    def drop_a_middle_version(copy: list[dict[str, Any]]) -> None:
        stream = next(e for e in copy[1:] if e["version"] == 3)["stream"]
        copy.remove(next(e for e in copy[1:] if e["stream"] == stream and e["version"] == 2))

    code, said = altered(drop_a_middle_version)
    assert code == 1 and "versions in between are missing" in said, said

    other = Signer.generate("sanctions-timeline").verifier.text()  # a key that signed nothing
    code, said = verify_export(database_url, path, other)
    assert code == 1 and "does not verify" in said, said


@pytest.fixture
def empty_store(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another store of the same kind as the test's, empty."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/copy.db"
        return
    schema = f"copy_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


STAMPED = {"event_id", "position", "recorded_at", "recorded_by", "prev_hash", "hash", "proof"}
"""What the service stamps on an event; an import stamps its own (`retracts` names an id)."""


def as_written(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event as its writer gave it, in order (its stream and version kept)."""
    return [
        {k: v for k, v in e.items() if k not in STAMPED | {"retracts", "renews"}} for e in events
    ]


def renewed_positions(events: list[dict[str, Any]]) -> list[int | None]:
    """For each event, the index of the event its `renews` names (ids are the store's own)."""
    index = {e["event_id"]: number for number, e in enumerate(events)}
    return [index.get(e["renews"]) if e.get("renews") else None for e in events]


@pytest.mark.shared_store
def test_an_export_with_proofs_imports_like_any_export(
    make_services: Callable[..., Service], database_url: str, empty_store: str, tmp_path: Path
) -> None:
    svc = make_services(signing_key_file=tmp_path / "signing.key")
    seed(svc)
    path = tmp_path / "export.jsonl"
    events = export_with_proofs(database_url, path)[1:]
    done = run_cli(empty_store, "import", str(path), "--create")
    assert done.returncode == 0, done.stderr
    seeded = len(bundled_events())
    assert f"{seeded} events recorded, 0 already there" in done.stdout, done.stdout
    # The copy holds the same events in the same order: the heading and proofs left out.
    copied = tmp_path / "copy.jsonl"
    assert run_cli(empty_store, "export", "-o", str(copied)).returncode == 0
    copy = [json.loads(line) for line in copied.read_text().splitlines()]
    assert len(copy) == seeded and not any("proof" in e for e in copy)
    assert as_written(copy) == as_written(events)
    assert renewed_positions(copy) == renewed_positions(events)  # a renewal names its own
    assert any(position is not None for position in renewed_positions(copy))
