"""A PostgreSQL failover under load, for real: a primary and a synchronous standby built on
this machine (tests/pgcluster.py), a projector and two API processes given a multi-host
URL (`target_session_attrs=read-write`), four clients writing under Idempotency-Keys and
one asking saved `known_at` questions. The primary is killed as a crashed host dies and
the standby promoted. Then every key sent is retried and the log counted on its own:
nothing acknowledged lost, nothing recorded twice, no 503 said `not_recorded` of a key
that was recorded, writes back within 20 s of the promotion, and every saved `known_at`
answer the same when asked again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.failover_load import BACK_WITHIN, Load
from tests.pgcluster import Cluster, available, build_cluster
from tests.test_scaleout import processes

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    why = available()
    assert why is None, why  # not skipped: the failover must be tried wherever tests run
    built = build_cluster(synchronous=True)
    yield built
    built.close()


def test_a_failover_under_keyed_writes_loses_nothing_and_is_back_within_20_s(
    cluster: Cluster,
) -> None:
    url = cluster.url(target_session_attrs="read-write", schema="failover")
    with processes(url, api=2) as bases:
        load = Load(bases, prefix="failover")  # four writers, a questioner per API
        load.start()
        try:
            load.wait_for_acknowledged(150)  # well under way, then the primary's host dies
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
    # Nothing acknowledged lost, one event per key, no untrue `not_recorded`, every saved
    # known_at answer unchanged (tests/failover_load.py).
    reckoning.check()
