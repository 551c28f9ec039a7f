"""The rewrite attack: an insider with write access to the database changes history,
recomputes every hash and rebuilds the read models. `verify` may find every chain intact,
but `sanctions audit check` against a checkpoint kept earlier exits 1; an honest log grown
after the checkpoint passes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app.bootstrap import build_service
from api.app.seed import bundled_events, seed
from api.app.service import Service
from api.app.settings import Settings
from api.schemas.answers import EventIn
from domain.errors import TreeMismatch
from projections.log import leaf_check
from tests.conftest import IRAN_GOLD, READER, TOKENS, WRITER, audit_check, drop_schema, run_cli
from tests.insider import rewrite
from tests.tamper import behind_the_back

pytestmark = pytest.mark.e2e  # the insider's rewrite, caught by the CLI and a served app

LIFT_STREAM = "US/BY/potash"
SEEDED = len(bundled_events())
"""How many events the bundled timeline seeds (the first checkpoint's size)."""
LIFT_POSITION = 1 + next(
    number
    for number, event in enumerate(bundled_events())
    if event.draft().key.name == LIFT_STREAM and event.type == "lifted"
)
"""The seeded US lift's log position (the import records the file in order); its leaf is
one less."""


def seeded_and_served(
    make_services: Callable[..., Service], serve: Callable[[Service], str], tmp_path: Path
) -> tuple[Service, str]:
    """The bundled timeline on the test's store, signed with a key of the test's own, and
    served."""
    svc = make_services(signing_key_file=tmp_path / "signing.key")
    seed(svc)
    return svc, serve(svc)


@pytest.mark.shared_store
def test_a_rewrite_with_every_hash_recomputed_is_caught_by_audit_check(
    make_services: Callable[..., Service],
    serve: Callable[[Service], str],
    database_url: str,
    tmp_path: Path,
) -> None:
    svc, url = seeded_and_served(make_services, serve, tmp_path)
    kept = tmp_path / "kept-checkpoint"

    code, said = audit_check(database_url, kept, url)
    assert code == 0, said
    assert "no checkpoint kept yet" in said
    first_note = kept.read_text()
    assert first_note.splitlines()[1] == str(SEEDED)

    # Honest growth after the checkpoint passes, and the newer checkpoint is kept.
    posted = httpx.post(f"{url}/v1/events", json=IRAN_GOLD, headers=WRITER, timeout=30)
    assert posted.status_code == 201, posted.text
    code, said = audit_check(database_url, kept, url)
    assert code == 0, said
    assert f"grew from {SEEDED} to {SEEDED + 1} events" in said, said
    assert kept.read_text().splitlines()[1] == str(SEEDED + 1)

    # The insider: the US lift moved from 2025-12 to 2024-01-01, every hash recomputed.
    rewrite(svc.log, LIFT_STREAM, "lifted", {"effective_date": date(2024, 1, 1)})
    rebuilt = run_cli(database_url, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    svc.projector.catch_up()

    status = httpx.get(
        f"{url}/v1/status",
        params={"country": "BY", "commodity": "potash", "authority": "US", "as_of": "2024-06-01"},
        timeout=30,
    ).json()
    assert status["results"][0]["status"] == "lifted"  # the rewrite took hold

    report = httpx.get(f"{url}/v1/audit/verify", headers=READER, timeout=120).json()
    assert report["chain_ok"] is True  # every hash was recomputed: the chains are intact
    assert report["log_ok"] is False  # but the kept checkpoints no longer match
    assert any(p["kind"] == "checkpoint_mismatch" for p in report["problems"])

    code, said = audit_check(database_url, kept, url)
    assert code == 1, said
    assert "history was rewritten" in said
    assert kept.read_text().splitlines()[1] == str(SEEDED + 1)  # the kept checkpoint is left alone

    # Covering the tracks (the service's own checkpoints deleted) does not help.
    with behind_the_back(svc) as execute:
        table = "log_checkpoints"
        if svc.log.store.dialect == "postgres":
            table = svc.projector.view.tables.qualified("log_checkpoints")
        execute(f"DELETE FROM {table}", ())
    report = httpx.get(f"{url}/v1/audit/verify", headers=READER, timeout=120).json()
    assert report["chain_ok"] is True and report["log_ok"] is True  # nothing left to compare
    code, said = audit_check(database_url, kept, url)
    assert code == 1, said


@pytest.mark.shared_store
def test_a_database_rebuilt_from_an_altered_export_is_caught(
    make_services: Callable[..., Service],
    serve: Callable[[Service], str],
    database_url: str,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "signing.key"
    svc = make_services(signing_key_file=key_file)
    seed(svc)
    kept = tmp_path / "kept-checkpoint"
    code, said = audit_check(database_url, kept, serve(svc))
    assert code == 0, said

    exported = tmp_path / "export.jsonl"
    done = run_cli(database_url, "export", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    for line in lines:
        if line["stream"] == LIFT_STREAM and line["type"] == "lifted":
            line["effective_date"] = "2024-01-01"
    exported.write_text("".join(json.dumps(line) + "\n" for line in lines))

    # A whole new database, built from the altered export, served with the same key.
    if database_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path}/replaced.db"
    else:
        other_url = database_url.replace("schema=", "schema=r")
    forged = build_service(
        Settings(database_url=other_url, api_tokens=TOKENS, signing_key_file=key_file)
    )
    try:
        done = run_cli(other_url, "import", str(exported))
        assert done.returncode == 0, done.stderr
        forged.projector.catch_up()
        code, said = audit_check(other_url, kept, serve(forged))
        assert code == 1, said
        assert "rewritten" in said
    finally:
        forged.close()
        if not other_url.startswith("sqlite"):
            drop_schema(other_url.split("schema=", 1)[1])


@pytest.mark.shared_store
def test_a_rebuild_by_another_process_is_seen_by_the_tree_kept_in_memory(
    make_services: Callable[..., Service], tmp_path: Path
) -> None:
    """The upper nodes of the tree (subtrees of 1,024 leaves and more) are kept in memory;
    a rebuild elsewhere (after a rewrite) must not leave a process signing or proving
    from the old ones."""
    key_file = tmp_path / "signing.key"
    serving = make_services(signing_key_file=key_file)
    countries = ["BY", "RU", "IR", "KP", "VE", "SY", "CU", "MM", "AF", "SD", "ZW"]
    authorities = ["US", "EU", "GB", "CA", "AU", "JP", "CH", "NO", "NZ", "UN"]
    commodities = ["potash", "coal", "gold", "diamonds", "crude-oil", "natural-gas",
                   "timber", "cotton", "iron-steel", "aluminium", "copper"]  # fmt: skip
    drafts = [
        EventIn.model_validate(
            {
                "type": "imposed",
                "authority": authority,
                "country": country,
                "commodity": commodity,
                "effective_date": "2020-01-01",
                "measures": ["import_ban"],
                "source": {"url": "https://example.org/"},
            }
        ).draft()
        for authority in authorities
        for country in countries
        for commodity in commodities
    ][:1100]
    for start in range(0, len(drafts), 500):
        serving.record(drafts[start : start + 500], recorded_by="test")
    before = serving.notary.checkpoint()
    assert before.size == 1100
    first = serving.log.page(limit=1).events[0].event
    assert serving.notary.inclusion(first.event_id, None).root == before.root

    rewrite(serving.log, first.stream, "imposed", {"note": "forged"})
    elsewhere = make_services(signing_key_file=key_file)  # another process, in effect
    elsewhere.rebuild()
    truth = elsewhere.projector.view.tree.tree_root(1100, stored_only=True).hex()
    assert truth != before.root

    after = serving.notary.checkpoint()  # the serving process, its upper nodes cached
    assert after.size == 1100 and after.root == truth
    assert serving.notary.inclusion(first.event_id, 1100).root == truth


TREE_TABLES = ("log_leaves", "log_nodes", "log_checkpoints", "log_tree_generation")


def tree_tables(svc: Service) -> list[str]:
    """The tree's four tables, as raw SQL on the service's database names them."""
    if svc.log.store.dialect == "postgres":
        return [svc.projector.view.tables.qualified(table) for table in TREE_TABLES]
    return list(TREE_TABLES)


def copy_tree(svc: Service) -> dict[str, list[Any]]:
    with behind_the_back(svc) as execute:
        return {table: execute(f"SELECT * FROM {table}", ()) for table in tree_tables(svc)}


def put_tree_back(svc: Service, saved: dict[str, list[Any]]) -> None:
    """The insider's last step: the tree's tables exactly as they were before the rewrite."""
    with behind_the_back(svc) as execute:
        for table, rows in saved.items():
            execute(f"DELETE FROM {table}", ())
            for row in rows:
                marks = ",".join(["%s"] * len(row))
                execute(f"INSERT INTO {table} VALUES ({marks})", tuple(row))


def rewrite_behind_the_old_tree(svc: Service, database_url: str) -> str:
    """The US lift moved to 2024-01-01 with every hash recomputed, the read models
    rebuilt, then the four tree tables put back as they were; the lift's event id."""
    saved = copy_tree(svc)
    rewrite(svc.log, LIFT_STREAM, "lifted", {"effective_date": date(2024, 1, 1)})
    rebuilt = run_cli(database_url, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    svc.projector.catch_up()
    put_tree_back(svc, saved)
    assert copy_tree(svc) == saved
    lift = [
        e.event
        for e in svc.log.page(limit=1000).events
        if e.event.stream == LIFT_STREAM and e.event.TYPE.value == "lifted"
    ]
    return str(lift[0].event_id)


@pytest.mark.shared_store
def test_a_rewrite_behind_a_tree_put_back_is_caught_by_audit_check(
    make_services: Callable[..., Service],
    serve: Callable[[Service], str],
    database_url: str,
    tmp_path: Path,
) -> None:
    """The insider rewrites an event (every hash recomputed), rebuilds, then puts the
    tree's tables back as they were: the tree still extends every checkpoint, and only
    the events the service serves betray the rewrite. The auditor fetches them, and
    names the first that the signed tree does not hold."""
    svc, url = seeded_and_served(make_services, serve, tmp_path)
    kept = tmp_path / "kept-checkpoint"
    key = httpx.get(f"{url}/v1/audit/key", timeout=30).text.strip()

    def check() -> tuple[int, str]:
        return audit_check(database_url, kept, url, "--key", key)

    code, said = check()
    assert code == 0 and "no checkpoint kept yet" in said, said
    posted = httpx.post(f"{url}/v1/events", json=IRAN_GOLD, headers=WRITER, timeout=30)
    assert posted.status_code == 201, posted.text
    signed = httpx.get(f"{url}/v1/audit/checkpoint", timeout=30)  # someone reads it: SEEDED + 1
    assert signed.status_code == 200 and signed.text.splitlines()[1] == str(SEEDED + 1)

    lift = rewrite_behind_the_old_tree(svc, database_url)
    status = httpx.get(
        f"{url}/v1/status",
        params={"country": "BY", "commodity": "potash", "authority": "US", "as_of": "2024-06-01"},
        timeout=30,
    ).json()
    assert status["results"][0]["status"] == "lifted"  # the rewrite took hold

    # The service serves the checkpoint of SEEDED + 1 events it signed before the rewrite:
    # the tree put back still extends the kept checkpoint of SEEDED. The events served do not.
    assert httpx.get(f"{url}/v1/audit/checkpoint", timeout=30).text == signed.text
    code, said = check()
    assert code == 1, said
    assert f"event {lift} ({LIFT_STREAM} v3, lifted, position {LIFT_POSITION}) as served" in said
    assert (
        f"is not leaf {LIFT_POSITION - 1} of the signed checkpoint of {SEEDED + 1} events" in said
    )
    assert kept.read_text().splitlines()[1] == str(SEEDED)  # the kept checkpoint is left alone


@pytest.mark.shared_store
def test_the_service_signs_no_checkpoint_over_leaves_its_events_do_not_match(
    make_services: Callable[..., Service],
    serve: Callable[[Service], str],
    database_url: str,
    tmp_path: Path,
) -> None:
    """Before signing, the notary checks the leaves against the stored events (only the
    new ones while the rows it checked are unchanged): over a tree put back after a
    rewrite it answers a 503 `tree-mismatch` problem naming the first leaf that does not
    match, signs nothing, and verify still reports the tree."""
    svc, url = seeded_and_served(make_services, serve, tmp_path)
    first = httpx.get(f"{url}/v1/audit/checkpoint", timeout=30)
    assert first.status_code == 200 and first.text.splitlines()[1] == str(SEEDED)

    lift = rewrite_behind_the_old_tree(svc, database_url)
    posted = httpx.post(f"{url}/v1/events", json=IRAN_GOLD, headers=WRITER, timeout=30)
    assert posted.status_code == 201, posted.text

    for path in ("/v1/audit/checkpoint", f"/v1/audit/proof/consistency?from={SEEDED}"):
        refused = httpx.get(f"{url}{path}", timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"].endswith("/tree-mismatch"), problem
        assert (
            f"leaf {LIFT_POSITION - 1} stands for event {lift} at position {LIFT_POSITION}"
            in (problem["detail"])
        ), problem
        assert f"({LIFT_STREAM} v3)" in problem["detail"], problem
    assert [c.size for c in svc.projector.view.tree.checkpoints()] == [SEEDED]  # nothing signed

    # Another process, which never checked this tree, refuses it as well.
    elsewhere = make_services(signing_key_file=tmp_path / "signing.key")
    with pytest.raises(TreeMismatch):
        elsewhere.notary.checkpoint()

    report = httpx.get(f"{url}/v1/audit/verify", headers=READER, timeout=120).json()
    assert report["chain_ok"] is True and report["log_ok"] is False
    assert any(p["kind"] == "tree_differs" for p in report["problems"])

    # A rebuild makes the tree match the events again (the rewrite is then plain for any
    # auditor: the new root does not extend the checkpoint signed before).
    svc.rebuild()
    assert svc.notary.checkpoint().size == SEEDED + 1


def test_the_leaf_check_reads_only_new_leaves_while_the_rows_are_unchanged(
    services: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing compares with their events only the leaves added since the last check."""
    seed(services)
    assert services.notary.checkpoint().size == SEEDED  # every leaf compared: the first check
    compared: list[tuple[int, int]] = []
    real = leaf_check.compare_leaves

    def counting(log: Any, tree: Any, start: int, end: int, stored: Any) -> None:
        compared.append((start, end))
        real(log, tree, start, end, stored)

    monkeypatch.setattr(leaf_check, "compare_leaves", counting)
    assert services.notary.checkpoint().size == SEEDED  # kept already: nothing to sign
    services.record(
        [EventIn.model_validate(IRAN_GOLD).draft()],
        recorded_by="test",
    )
    assert services.notary.checkpoint().size == SEEDED + 1
    assert compared == [
        (SEEDED, SEEDED + 1)
    ]  # the rows checked before are unchanged: the new leaf only
