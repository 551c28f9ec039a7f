"""The log's signing key: a server refuses to start on a log whose checkpoints another key
signed (a mistyped `SANCTIONS_SIGNING_KEY_FILE` creates no new key there), and a rotation
is an explicit command that keeps the old checkpoints verifiable."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app.seed import bundled_events, seed
from api.app.service import Service
from api.http.app import create_app
from domain.checkpoints import Checkpoint, NoteError, Signer, Verifier
from domain.store.keyfile import SigningKeyError, load_or_create
from tests.conftest import IRAN_GOLD, audit_check, run_cli

# Restarts and several services on one store: not on the in-memory store.
pytestmark = [pytest.mark.integration, pytest.mark.shared_store]

Make = Callable[..., Service]


def start(svc: Service) -> None:
    """Start the app and stop it, answering nothing."""
    with TestClient(create_app(svc)):
        pass


def short(verifier: Verifier) -> str:
    return f"{verifier.name}+{verifier.key_id.hex()}"


def signed_log(make_services: Make, key_file: Path) -> Service:
    """A log with the bundled timeline and a checkpoint signed with the key in `key_file`."""
    svc = make_services(signing_key_file=key_file)
    seed(svc)
    svc.notary.checkpoint()
    return svc


def test_a_mistyped_key_file_is_refused_and_not_created(
    make_services: Make, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "signing.key"
    expected = short(signed_log(make_services, real).notary.signer.verifier)
    typo = tmp_path / "signing.kye"
    with pytest.raises(SigningKeyError) as refused:
        start(make_services(signing_key_file=typo))
    assert expected in str(refused.value) and str(typo) in str(refused.value), refused.value
    assert not typo.exists()

    monkeypatch.setenv("SANCTIONS_SIGNING_KEY_FILE", str(typo))
    served = run_cli(database_url, "serve", "--port", "1")  # refused before it listens
    assert served.returncode != 0
    assert expected in served.stderr and str(typo) in served.stderr, served.stderr
    checked = run_cli(database_url, "verify")
    assert checked.returncode != 0 and expected in checked.stderr, checked.stderr
    assert not typo.exists()

    start(make_services(signing_key_file=real))  # the right key still starts


def test_another_existing_key_is_refused(make_services: Make, tmp_path: Path) -> None:
    expected = short(signed_log(make_services, tmp_path / "signing.key").notary.signer.verifier)
    other = tmp_path / "other.key"
    theirs = short(load_or_create(other).verifier)
    with pytest.raises(SigningKeyError) as refused:
        start(make_services(signing_key_file=other))
    message = str(refused.value)
    assert expected in message and theirs in message and str(other) in message, message


def test_two_servers_with_different_keys_on_one_store(make_services: Make, tmp_path: Path) -> None:
    first = make_services(signing_key_file=tmp_path / "a" / "signing.key")
    with TestClient(create_app(first)) as http:  # the first server runs and signs
        assert http.get("/v1/audit/checkpoint").status_code == 200
        second = make_services(signing_key_file=tmp_path / "b" / "signing.key")
        with pytest.raises(SigningKeyError, match=re.escape(short(first.notary.signer.verifier))):
            start(second)
        assert http.get("/v1/audit/checkpoint").status_code == 200


def test_a_log_signed_before_it_listed_its_keys(
    make_services: Make, tmp_path: Path, database_url: str
) -> None:
    """A log whose checkpoints predate the list of keys: the key that signed its latest
    checkpoint is the expected one."""
    key_file = tmp_path / "signing.key"
    svc = signed_log(make_services, key_file)
    expected = short(svc.notary.signer.verifier)
    with svc.projector.view.tables.transaction(commit=True) as cursor:
        cursor.execute(f"DELETE FROM {svc.projector.view.tables.qualified('log_signing_keys')}")
    with pytest.raises(SigningKeyError, match=re.escape(expected)):
        start(make_services(signing_key_file=tmp_path / "other.key"))
    start(make_services(signing_key_file=key_file))
    with pytest.raises(SigningKeyError, match=re.escape(expected)):  # now listed
        start(make_services(signing_key_file=tmp_path / "other.key"))


def test_a_rotation_keeps_the_old_checkpoints_verifiable(
    make_services: Make, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_file, new_file = tmp_path / "old.key", tmp_path / "new.key"
    svc = signed_log(make_services, old_file)
    old = svc.notary.signer.verifier
    first = svc.notary.checkpoint()

    monkeypatch.setenv("SANCTIONS_SIGNING_KEY_FILE", str(old_file))
    rotated = run_cli(database_url, "audit", "rotate-key", str(new_file))
    assert rotated.returncode == 0, rotated.stderr
    new = Signer.parse(new_file.read_text()).verifier
    assert new.text() in rotated.stdout and old.text() in rotated.stdout, rotated.stdout

    # The old key no longer starts a server.
    with pytest.raises(SigningKeyError, match=re.escape(short(new))):
        start(make_services(signing_key_file=old_file))
    after = make_services(signing_key_file=new_file)
    with TestClient(create_app(after)) as http:
        assert http.get("/v1/audit/key").text.strip() == new.text()
        # The checkpoint signed before the rotation now carries both signatures.
        bridge = http.get("/v1/audit/checkpoint").text
        assert Checkpoint.open(bridge, old) == Checkpoint.open(bridge, new)
        assert Checkpoint.open(bridge, new).size == first.size
        response = http.post(
            "/v1/events",
            headers={"Authorization": "Bearer writer-token"},
            json=IRAN_GOLD,
        )
        assert response.status_code == 201, response.text
        latest = http.get("/v1/audit/checkpoint").text
        report = after.verify()
    assert Checkpoint.open(latest, new).size == first.size + 1
    with pytest.raises(NoteError):
        Checkpoint.open(latest, old)  # signed by the new key alone
    assert report.log_ok and report.chain_ok, report
    monkeypatch.setenv("SANCTIONS_SIGNING_KEY_FILE", str(new_file))
    checked = run_cli(database_url, "verify")
    assert checked.returncode == 0 and "log ok" in checked.stdout, checked.stdout

    again = run_cli(database_url, "audit", "rotate-key", str(old_file))  # a used key
    assert again.returncode != 0 and "signed with before" in again.stderr, again.stderr


def test_a_new_log_still_creates_its_key(make_services: Make, tmp_path: Path) -> None:
    key_file = tmp_path / "fresh" / "signing.key"
    make_services(signing_key_file=key_file).notary.checkpoint()
    assert key_file.is_file()
    start(make_services(signing_key_file=key_file))


def test_audit_check_follows_a_rotation_given_both_keys(
    make_services: Make,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    serve: Callable[[Service], str],
) -> None:
    """An auditor kept a checkpoint signed by the old key; after the rotation, pinning the
    new key and giving the old one with --kept-key, the consistency proof joins the two."""
    old_file, new_file = tmp_path / "old.key", tmp_path / "new.key"
    svc = signed_log(make_services, old_file)
    old = svc.notary.signer.verifier
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(svc.notary.checkpoint().note)  # what the auditor kept: the seeded events
    seeded = len(bundled_events())

    monkeypatch.setenv("SANCTIONS_SIGNING_KEY_FILE", str(old_file))
    assert run_cli(database_url, "audit", "rotate-key", str(new_file)).returncode == 0
    new = Signer.parse(new_file.read_text()).verifier
    after = make_services(signing_key_file=new_file)
    url = serve(after)
    # The log grows under the new key.
    grown = httpx.post(
        f"{url}/v1/events",
        timeout=30,
        headers={"Authorization": "Bearer writer-token"},
        json=IRAN_GOLD,
    )
    assert grown.status_code == 201, grown.text

    def check(*options: str) -> tuple[int, str]:
        return audit_check(database_url, kept, url, *options)

    code, said = check("--key", new.text())
    assert code == 1 and "--kept-key" in said, said
    code, said = check("--key", new.text(), "--kept-key", new.text())  # the wrong old key
    assert code == 1 and "does not verify" in said, said
    code, said = check("--key", new.text(), "--kept-key", old.text())
    assert code == 0 and f"grew from {seeded} to {seeded + 1} events" in said, said
    assert Checkpoint.open(kept.read_text(), new).size == seeded + 1  # the new key's, kept now
    code, said = check("--key", new.text())  # from now on the new key alone
    assert code == 0 and f"still has {seeded + 1} events" in said, said
