"""Reads from a PostgreSQL standby (`SANCTIONS_READ_DATABASE_URL`), on a primary and a
synchronous standby built here (tests/pgcluster.py): every read after a write reflects
it, answers for a `known_at` never change, a standby held behind leaves reads to the
primary, a primary that is gone leaves them to the standby (settled at what it has
replayed), and /readyz and /metrics say how far behind the standby is."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from api.app.bootstrap import build_service
from api.app.service import Service
from api.app.settings import Settings
from tests.conftest import TOKENS, WRITER, audit_check
from tests.pgcluster import Cluster, available, build_cluster
from tests.test_log_proofs import read_log, reference_of
from tests.test_scaleout import streams

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    why = available()
    assert why is None, why  # not skipped: wherever tests run, a standby can be built
    built = build_cluster(synchronous=True)
    yield built
    built.close()


@pytest.fixture
def standby_server(
    cluster: Cluster, serve: Callable[[Service], str], request: pytest.FixtureRequest
) -> Iterator[tuple[str, Service]]:
    """A server writing to the primary and reading from the standby, in a schema of its own."""
    schema = re.sub(r"\W", "_", request.node.name)[:40].lower()
    primary = cluster.url(target_session_attrs="read-write", schema=schema)
    standby = cluster.url(target_session_attrs="standby", schema=schema)
    svc = build_service(
        Settings(database_url=primary, read_database_url=standby, api_tokens=TOKENS)
    )
    yield serve(svc), svc
    svc.close()


def placed(base: str) -> dict[str, float]:
    """Reads counted by where they were answered (from /metrics)."""
    text = httpx.get(f"{base}/metrics").text
    found = re.findall(r'sanctions_reads_placed_total\{place="(\w+)"\} ([\d.e+]+)', text)
    return {place: float(count) for place, count in found}


def test_every_read_after_a_write_reflects_it_and_comes_from_the_standby(
    standby_server: tuple[str, Service],
) -> None:
    base, _ = standby_server
    bodies = streams(120)
    misses = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for body in bodies:
            written = client.post("/v1/events", json=body, headers=WRITER)
            assert written.status_code == 201, written.text
            event = written.json()
            where = {"country": body["country"], "commodity": body["commodity"]}
            status = client.get("/v1/status", params={**where, "authority": body["authority"]})
            events = client.get("/v1/events", params=where)
            one = client.get(f"/v1/events/{event['event_id']}")
            rows = status.json()["results"]
            if (
                [row["status"] for row in rows] != ["active"]
                or event["event_id"] not in {e["event_id"] for e in events.json()["events"]}
                or one.status_code != 200
            ):
                misses.append(body)
    assert misses == [], f"{len(misses)} reads did not reflect the write before them"
    counts = placed(base)
    assert counts.get("standby", 0) >= 3 * len(bodies), counts  # status, events, event
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["standby_replay_lag_bytes"] == 0, ready


def test_known_at_answers_from_the_standby_never_change_and_match_the_primary(
    cluster: Cluster, standby_server: tuple[str, Service]
) -> None:
    base, svc = standby_server
    saved = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for number, body in enumerate(streams(60)):
            assert client.post("/v1/events", json=body, headers=WRITER).status_code == 201
            if number % 6 == 0:
                answer = client.get("/v1/status", params={"country": body["country"]}).json()
                saved.append(({"country": body["country"], "known_at": answer["known_at"]}, answer))
        again = [client.get("/v1/status", params=query).json() for query, _ in saved]
    assert [a["results"] for a in again] == [answer["results"] for _, answer in saved]
    # The same questions asked of the primary alone give the same answers.
    primary_only = build_service(Settings(database_url=svc.settings.database_url))
    try:
        from api.schemas.queries import StatusQuery

        for query, answer in saved:
            direct = primary_only.status(StatusQuery(**query))
            assert direct.model_dump(mode="json")["results"] == answer["results"]
    finally:
        primary_only.close()


@contextmanager
def applying_late(cluster: Cluster, delay: str) -> Iterator[None]:
    """The standby applies what it receives `delay` late (it still confirms it at once)."""
    cluster.standby.sql(f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
    cluster.standby.sql("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        cluster.standby.sql("ALTER SYSTEM RESET recovery_min_apply_delay")
        cluster.standby.sql("SELECT pg_reload_conf()")


def write_then_read(base: str, count: int) -> tuple[dict[str, float], dict[str, float]]:
    """`count` writes, each followed at once by a read of its stream, which must show it;
    the reads counted by where they were answered, before and after."""
    before = placed(base)
    with httpx.Client(base_url=base, timeout=30) as client:
        for body in streams(count):
            assert client.post("/v1/events", json=body, headers=WRITER).status_code == 201
            where = {k: body[k] for k in ("authority", "country", "commodity")}
            rows = client.get("/v1/status", params=where).json()["results"]
            assert [row["status"] for row in rows] == ["active"], body
    return before, placed(base)


def test_a_standby_held_behind_leaves_reads_to_the_primary(
    cluster: Cluster, standby_server: tuple[str, Service]
) -> None:
    base, _ = standby_server
    with applying_late(cluster, "4s"):
        before, after = write_then_read(base, 5)  # each read answered by the primary
        lag = httpx.get(f"{base}/readyz").json()["standby_replay_lag_bytes"]
    assert after.get("standby_behind", 0) - before.get("standby_behind", 0) == 5
    assert lag is not None and lag > 0
    deadline = time.monotonic() + 20
    while httpx.get(f"{base}/readyz").json()["standby_replay_lag_bytes"] != 0:
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.1)


def test_a_standby_a_moment_behind_is_waited_for(
    cluster: Cluster, standby_server: tuple[str, Service]
) -> None:
    base, _ = standby_server
    with applying_late(cluster, "300ms"):
        before, after = write_then_read(base, 8)
    assert after.get("standby", 0) - before.get("standby", 0) == 8, (before, after)


def test_with_the_primary_gone_the_standby_answers_what_it_has_replayed(
    serve: Callable[[Service], str],
) -> None:
    cluster = build_cluster(synchronous=True)
    try:
        svc = build_service(
            Settings(
                database_url=cluster.url(target_session_attrs="read-write", schema="gone"),
                read_database_url=cluster.url(target_session_attrs="standby", schema="gone"),
                api_tokens=TOKENS,
            )
        )
        base = serve(svc)
        with httpx.Client(base_url=base, timeout=30) as client:
            written = [
                client.post("/v1/events", json=body, headers=WRITER).json() for body in streams(10)
            ]
            last = max(event["recorded_at"] for event in written)
            cluster.primary.kill()
            answer = client.get("/v1/status")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            # Settled at the last event the standby replayed: never beyond it.
            assert body["known_at"] == last, (body["known_at"], last)
            assert len(body["results"]) == 10
            refused = client.post("/v1/events", json=streams(11)[10], headers=WRITER)
            assert refused.status_code == 503
        # (/metrics itself needs the primary: the count is read in the process)
        away = svc.metrics.registry.get_sample_value(
            "sanctions_reads_placed_total", {"place": "primary_away"}
        )
        assert away is not None and away >= 1
        svc.close()
    finally:
        cluster.close()


def test_checkpoints_and_proofs_from_the_standby_agree_with_the_primarys_log(
    standby_server: tuple[str, Service], tmp_path: Path
) -> None:
    base, svc = standby_server
    with httpx.Client(base_url=base, timeout=30) as client:
        for body in streams(20):
            assert client.post("/v1/events", json=body, headers=WRITER).status_code == 201
        kept = tmp_path / "kept.checkpoint"
        kept.write_text(client.get("/v1/audit/checkpoint").text)
        for body in streams(40)[20:]:
            assert client.post("/v1/events", json=body, headers=WRITER).status_code == 201
        before = placed(base)
        note = client.get("/v1/audit/checkpoint").text
        size = int(note.splitlines()[1])
        events = read_log(client)  # type: ignore[arg-type]
        reference = reference_of(events[:size])
        assert base64.b64decode(note.splitlines()[2]) == reference.root(size)
        for leaf in (0, size // 2, size - 1):
            proof = client.get(
                "/v1/audit/proof/inclusion",
                params={"event_id": events[leaf]["event_id"], "size": size},
            ).json()
            assert [bytes.fromhex(h) for h in proof["hashes"]] == reference.path(leaf, size)
        old = int(kept.read_text().splitlines()[1])
        proof = client.get("/v1/audit/proof/consistency", params={"from": old, "to": size}).json()
        assert [bytes.fromhex(h) for h in proof["hashes"]] == reference.proof(old, size)
        after = placed(base)
    assert after.get("standby", 0) - before.get("standby", 0) >= 5
    # The auditor's check, against the standby-reading server, from the kept checkpoint.
    code, said = audit_check(svc.settings.database_url, kept, base)
    assert code == 0, said
