"""A PostgreSQL failover under load, for real: a primary and a synchronous standby built on
this machine (tests/pgcluster.py), a projector and two API processes given a multi-host
URL (`target_session_attrs=read-write`), four clients writing under Idempotency-Keys and
one asking saved `known_at` questions. A third API answers its reads from the standby:
every acknowledged write is read back through it at once, and its `known_at` answers are
saved too. The primary stalls (a commit reaches the standby, its answer never leaves),
then is killed as a crashed host dies and the standby promoted. Then every key sent is
retried and the log counted on its own: nothing acknowledged lost, nothing recorded
twice, no 503 said `not_recorded` of a key recorded by the time it answered, writes back
within 20 s of the promotion, every saved `known_at` answer the same when asked again,
no read back through the standby settled at or after a write's recorded_at without
showing it, and a checkpoint the standby-reading process signed before the failover
extended by the new primary's (one key file shared by every process)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import audit_check, free_port
from tests.failover_load import BACK_WITHIN, Load
from tests.pgcluster import Cluster, available, build_cluster
from tests.test_scaleout import processes, sanctions, wait_until_up

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    why = available()
    assert why is None, why  # not skipped: the failover must be tried wherever tests run
    built = build_cluster(synchronous=True)
    yield built
    built.close()


@contextmanager
def standby_reader(cluster: Cluster, url: str) -> Iterator[str]:
    """One more API, answering its reads from the standby (the promoted node after the
    failover: `prefer-standby` takes the primary when no standby is left)."""
    port = free_port()
    reads = cluster.url(target_session_attrs="prefer-standby", schema="failover")
    reads = reads.replace(
        f"127.0.0.1:{cluster.primary.port},127.0.0.1:{cluster.standby.port}",
        f"127.0.0.1:{cluster.standby.port},127.0.0.1:{cluster.primary.port}",
    )
    process = sanctions(
        url,
        "serve",
        "--port",
        str(port),
        SANCTIONS_EMBEDDED_PROJECTOR="0",
        SANCTIONS_READ_DATABASE_URL=reads,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up([base], [process])
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_failover_under_keyed_writes_loses_nothing_and_is_back_within_20_s(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = cluster.url(target_session_attrs="read-write", schema="failover")
    # The standby applies what it receives a moment late (it still confirms it at once):
    # a read through it that did not wait for the write before it would miss that write.
    cluster.standby.sql("ALTER SYSTEM SET recovery_min_apply_delay = '150ms'")
    cluster.standby.sql("SELECT pg_reload_conf()")
    with processes(url, api=2) as bases, standby_reader(cluster, url) as reader:
        load = Load(bases, prefix="failover", reader=reader)  # four writers, a questioner
        load.start()  # per API, and each acknowledged write read back through the standby
        try:
            load.wait_for_acknowledged(150)  # well under way, then the primary's host dies
            kept = tmp_path / "kept.checkpoint"  # signed by the standby-reading process
            kept.write_text(httpx.get(f"{reader}/v1/audit/checkpoint", timeout=30).text)
            # First it stalls: a commit under way reaches the standby, but not its answer.
            with cluster.primary.stalled():
                cluster.fail_over()
            promoted_at = time.time()
            back_at = load.wait_for_acknowledged_after(promoted_at, BACK_WITHIN + 10)
            time.sleep(2)  # a little load on the new primary
        finally:
            load.finish()
        assert back_at is not None, (
            f"no write succeeded within {BACK_WITHIN + 10:.0f} s of the promotion"
        )
        back = back_at - promoted_at
        assert back <= BACK_WITHIN, f"writes came back {back:.1f} s after the promotion"
        reckoning = load.settle()  # every key retried, the log read, saved questions asked
        # The checkpoint that process signed before the failover is extended by the one a
        # writing process signs on the new primary (the auditor's check, which keeps the
        # newer), and that one by the standby-reading process's now: one key file, one log.
        for base in (bases[0], reader):
            code, said = audit_check(url, kept, base)
            assert code == 0, said
    # Nothing acknowledged lost, one event per key, no untrue `not_recorded`, every saved
    # known_at answer unchanged (tests/failover_load.py).
    reckoning.check()
