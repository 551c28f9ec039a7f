"""Screening receipts from the `sanctions` command, and against an insider's rewrite of history.

`sanctions screen … --receipt FILE` saves a receipt (from the database, or from a server with
`--url`); `sanctions audit receipt FILE --url URL` checks it and asks the live log for a
consistency proof from the receipt's checkpoint. After an insider rewrites an event with every
hash recomputed and the read models rebuilt (tests/insider.py), the receipt still holds on its
own — it proves what the log said when it was issued — but `--url` fails: the live log no
longer extends the receipt's checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pytest

from api.app.seed import bundled_events, seed
from api.app.service import Service
from tests.conftest import IRAN_GOLD, WRITER, run_cli
from tests.insider import rewrite

SEEDED = len(bundled_events())

pytestmark = pytest.mark.e2e  # the sanctions command and a served app


def said(done: object) -> str:
    return " ".join((getattr(done, "stdout", "") + getattr(done, "stderr", "")).split())


@pytest.mark.shared_store
def test_a_receipt_outlives_a_rewrite_but_the_live_log_no_longer_extends_it(
    make_services: Callable[..., Service],
    serve: Callable[[Service], str],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "signing.key"
    monkeypatch.setenv("SANCTIONS_SIGNING_KEY_FILE", str(key_file))
    svc = make_services(signing_key_file=key_file)
    seed(svc)
    url = serve(svc)
    key = svc.notary.verifier_key

    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    done = run_cli(
        database_url, "screen", "3104.20", "BY", "--date", "2026-01-15", "--receipt", str(local)
    )
    assert done.returncode == 0, done.stderr
    assert (
        "│ US        │ lifted │" in done.stdout
        and f"a signed receipt of this answer is in {local}" in said(done)
    )
    done = run_cli(database_url, "--url", url, "screen", "3104", "BY", "--receipt", str(remote))
    assert done.returncode == 0, done.stderr
    assert json.loads(remote.read_text())["payloadType"] == "application/vnd.in-toto+json"

    for file in (local, remote):
        done = run_cli(database_url, "audit", "receipt", str(file), "--url", url)
        assert done.returncode == 0, said(done)
        assert f"the live log ({SEEDED} events) extends the receipt's checkpoint" in said(done)

    posted = httpx.post(f"{url}/v1/events", json=IRAN_GOLD, headers=WRITER, timeout=30)
    assert posted.status_code == 201, posted.text
    done = run_cli(database_url, "audit", "receipt", str(local), "--url", url)
    assert done.returncode == 0, said(done)
    assert f"the live log ({SEEDED + 1} events) extends the receipt's checkpoint" in said(done)

    # The insider: the US lift moved to 2024-01-01, every hash recomputed, models rebuilt.
    rewrite(svc.log, "US/BY/potash", "lifted", {"effective_date": date(2024, 1, 1)})
    rebuilt = run_cli(database_url, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    svc.projector.catch_up()

    done = run_cli(database_url, "audit", "receipt", str(local), "--key", key)
    assert done.returncode == 0, said(done)  # what the log said then, still proven
    assert "US lifted" in said(done)
    done = run_cli(database_url, "audit", "receipt", str(local), "--url", url)
    assert done.returncode == 1, said(done)
    assert (
        f"audit receipt FAILED: the log of {SEEDED + 1} events does not extend the kept"
        f" checkpoint of {SEEDED}" in said(done)
    )
    assert "history was rewritten" in said(done)


def test_the_cli_names_the_key_a_receipt_is_checked_with_and_never_echoes_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = f"sqlite:///{tmp_path}/log.db"
    key_file = tmp_path / "signing.key"
    monkeypatch.setenv("SANCTIONS_SIGNING_KEY_FILE", str(key_file))
    assert run_cli(database_url, "seed", "--create").returncode == 0
    receipt = tmp_path / "receipt.json"
    done = run_cli(database_url, "screen", "3104.20", "BY", "--receipt", str(receipt))
    assert done.returncode == 0, done.stderr
    # The hint is a command that works as printed: the verifier key itself.
    hint = said(done).split("(`", 1)[1].split("` checks it)", 1)[0].split()
    assert hint[:3] == ["sanctions", "audit", "receipt"] and hint[4] == "--key", hint
    checked = run_cli(database_url, *hint[1:])
    assert checked.returncode == 0 and "ok: the receipt holds" in checked.stdout, said(checked)
    # No key at all: a usage error (2), not a failed receipt.
    bare = run_cli(database_url, "audit", "receipt", str(receipt))
    assert bare.returncode == 2 and "FAILED" not in said(bare), said(bare)
    # The signing key's file given by mistake: refused, and its secret never printed.
    secret = key_file.read_text(encoding="utf-8").strip()
    wrong = run_cli(database_url, "audit", "receipt", str(receipt), "--key", str(key_file))
    assert wrong.returncode == 1 and "signing key" in said(wrong)
    assert secret.split("+")[-1] not in wrong.stdout + wrong.stderr
