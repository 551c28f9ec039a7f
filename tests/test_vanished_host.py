"""A database host that vanishes — powered off, or cut off by the network — sends no reset:
a connection to it is not closed, and what is sent on it is never acknowledged. Killing a
server's processes (tests/test_failover.py) closes its sockets; this is the other way a
host dies. The pooled connections must find it dead by themselves (libpq's keepalives and
`tcp_user_timeout`, `domain.store.config.VANISHED_HOST`), not wait out the kernel's
retransmissions (a quarter of an hour), or a failover to a standby could never be
followed in time.

The server runs in a network namespace of the test's own (`unshare -n`, so nothing else
on the machine is touched), on an address of that namespace's loopback; to make the host
vanish the address is removed and routed into a black hole."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.pgcluster import BIN, as_postgres, available

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ADDRESS = "10.77.0.1"
HANG = 180
"""Seconds after which the child is taken to hang on the vanished host (the kernel's own
give-up is about 15 minutes; found by the service's settings, well under a minute)."""


def test_a_read_on_a_vanished_host_fails_instead_of_hanging() -> None:
    why = available()
    assert why is None, why  # root, or the postgres user: as for the failover tests
    assert shutil.which("unshare") and shutil.which("ip"), "util-linux and iproute2"
    root = Path(tempfile.mkdtemp(prefix="sanctions-vanish-"))
    shutil.chown(root, "postgres", "postgres") if os.geteuid() == 0 else None
    child = [sys.executable, "-m", "tests.test_vanished_host", str(root)]
    try:
        done = subprocess.run(
            ["unshare", "-n", *child], capture_output=True, text=True, timeout=HANG
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the read waited on the vanished host for {HANG} s: {hung.stderr!r}")
    finally:  # the server too, whatever became of the child
        stop = [str(BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"]
        as_postgres(*stop, check=False)
        shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # The read ended in a storage error (the service answers it 503 at once), not in an
    # answer from nowhere.
    assert found["error"] is not None and found["storage_error"], found


def vanish_and_read(root: Path) -> dict[str, object]:
    """In the namespace: a server on ADDRESS, a log reading from it, the host gone, a read."""
    from eventsourcing.persistence import PersistenceError

    from domain.application import SanctionsLog

    subprocess.run(f"ip link set lo up && ip addr add {ADDRESS}/32 dev lo", shell=True, check=True)
    data = root / "data"
    as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses = '{ADDRESS}'\nunix_socket_directories = '{root}'\n")
        conf.write("fsync = off\n")
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {ADDRESS}/32 trust\n")
    as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start")
    log = SanctionsLog(f"postgresql://postgres@{ADDRESS}:5432/postgres?schema=vanish")
    log.store.horizon()  # the pool's connections open, and answer
    subprocess.run(
        f"ip addr del {ADDRESS}/32 dev lo && ip route add blackhole {ADDRESS}/32",
        shell=True,
        check=True,
    )
    began = time.monotonic()
    try:
        log.store.horizon()
    except Exception as error:  # what the service would see
        return {
            "error": type(error).__name__,
            "storage_error": isinstance(error, PersistenceError),
            "seconds": round(time.monotonic() - began, 1),
        }
    return {"error": None, "storage_error": False}


if __name__ == "__main__":
    print(json.dumps(vanish_and_read(Path(sys.argv[1]))))
