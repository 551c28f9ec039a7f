"""A failover as production has it, for real: etcd and three PostgreSQL nodes under Patroni
(Debian's packages, tests/patroni.py) in `synchronous_mode`, a projector and two API
processes given a multi-host URL naming every node (`target_session_attrs=read-write`),
clients writing under Idempotency-Keys (tests/failover_load.py). The standbys stop
receiving for a moment, then the leader's host dies — its Patroni and its PostgreSQL
killed at once — and Patroni, not the test, promotes the synchronous standby. Then:
nothing acknowledged lost, nothing recorded twice, no untrue `not_recorded`, writes back
within 20 s of Patroni naming the new leader, and every saved `known_at` answer the same
when asked again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.failover_load import BACK_WITHIN, Load
from tests.patroni import PatroniCluster, available, patroni_cluster
from tests.test_scaleout import processes

# Several processes and a three-node cluster, and a failover that takes Patroni's ttl:
# about a minute.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[PatroniCluster]:
    why = available()
    assert why is None, why  # not skipped: `make test` installs Patroni and etcd
    with patroni_cluster(nodes=3) as built:
        yield built


def test_patroni_promotes_the_synchronous_standby_and_nothing_acknowledged_is_lost(
    cluster: PatroniCluster,
) -> None:
    leader, standby = cluster.wait_until_ready()
    url = cluster.url(target_session_attrs="read-write", schema="patroni")
    with processes(url, api=2) as bases:
        load = Load(bases, prefix="patroni")
        load.start()
        try:
            load.wait_for_acknowledged(150)  # well under way
            # The standbys hear nothing for a moment, then the leader's host dies: with a
            # synchronous standby no write is acknowledged meanwhile; with asynchronous
            # ones, writes acknowledged in that moment would die with the leader.
            with leader.sending_nothing():
                time.sleep(1.5)
                killed_at = leader.kill()
            elected = cluster.wait_for_new_leader(leader)
            elected_at = time.time()
            back_at = load.wait_for_acknowledged_after(elected_at, BACK_WITHIN + 10)
            time.sleep(2)  # a little load on the new primary
        finally:
            load.finish()
        assert elected is standby, "Patroni promoted a node that was not the synchronous standby"
        assert back_at is not None, f"no write succeeded within {BACK_WITHIN + 10:.0f} s"
        back = back_at - elected_at
        print(
            f"Patroni named {elected.name} leader {elected_at - killed_at:.1f} s after the kill;"
            f" writes back {back:.1f} s after that ({back_at - killed_at:.1f} s after the kill)"
        )
        assert back <= BACK_WITHIN, f"writes came back {back:.1f} s after the election"
        reckoning = load.settle()
    reckoning.check()
