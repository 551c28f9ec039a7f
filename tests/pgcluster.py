"""A PostgreSQL primary and a synchronous hot standby of its own, built on this machine
for a test: Debian's PostgreSQL binaries, `initdb` and `pg_basebackup -R`, run as the
`postgres` user, on free ports. The primary can be killed as a crashed host dies
(SIGKILL to the postmaster and every child) and the standby promoted."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

BIN = Path(os.environ.get("SANCTIONS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
STANDBY_NAME = "standby1"


def available() -> str | None:
    """Why a cluster cannot be built here (None when it can)."""
    if not (BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {BIN} (set SANCTIONS_TEST_PG_BIN)"
    if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
        return "building a cluster needs root (to run as postgres) or the postgres user"
    return None


def as_postgres(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, *command], capture_output=True, text=True, check=check, timeout=120
    )


def signal_each(pids: list[int], how: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, how)


@dataclass
class Node:
    name: str
    port: int
    data: Path
    log: Path

    def start(self) -> None:
        as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False
        )

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """As a crashed host: SIGKILL to the postmaster and all its children at once."""
        pid = self.pid()
        if pid is None:
            return
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        for each in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def pids(self, query: str) -> list[int]:
        return [int(pid) for pid in self.sql(query).split()]

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """As a host that stalls before it dies: its WAL senders are held a moment
        (SIGSTOP), so that a commit waits for the standby; then the backends serving
        clients are stopped and the senders let go. The standby confirms that commit,
        and its client never hears of it: it must be told the truth (recorded after
        all) by the new primary. Everything stopped is resumed on the way out."""
        senders = self.pids("SELECT pid FROM pg_stat_replication")
        backends: list[int] = []
        signal_each(senders, signal.SIGSTOP)
        try:
            time.sleep(0.3)
            backends = self.pids(
                "SELECT pid FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            signal_each(backends, signal.SIGSTOP)
            signal_each(senders, signal.SIGCONT)
            time.sleep(0.3)
            yield
        finally:
            signal_each(senders + backends, signal.SIGCONT)

    def sql(self, statement: str) -> str:
        done = as_postgres(
            "psql",
            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            "-Atc", statement,
        )  # fmt: skip
        return done.stdout.strip()


@dataclass
class Cluster:
    root: Path
    primary: Node
    standby: Node
    nodes: list[Node] = field(default_factory=list)

    def url(self, database: str = "postgres", **query: str) -> str:
        """A multi-host URL naming both nodes, primary first."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        params = "&".join(f"{key}={value}" for key, value in query.items())
        return f"postgresql://postgres@{hosts}/{database}" + (f"?{params}" if params else "")

    def fail_over(self) -> float:
        """Kill the primary as a crashed host, promote the standby; the seconds it took."""
        began = time.monotonic()
        self.primary.kill()
        as_postgres(str(BIN / "pg_ctl"), "-D", str(self.standby.data), "-w", "promote")
        return time.monotonic() - began

    def close(self) -> None:
        for node in (self.standby, self.primary):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def build_cluster(synchronous: bool = True) -> Cluster:
    """A primary and a streaming hot standby (synchronous unless told otherwise), both
    started; the standby's name is `standby1`."""
    root = Path(tempfile.mkdtemp(prefix="sanctions-pg-"))
    shutil.chown(root, "postgres", "postgres") if os.geteuid() == 0 else None
    primary = Node("primary", free_port(), root / "primary", root / "primary.log")
    standby = Node("standby", free_port(), root / "standby", root / "standby.log")
    as_postgres(
        str(BIN / "initdb"), "-D", str(primary.data), "-U", "postgres", "--auth=trust",
        "--no-sync", "-E", "UTF8",
    )  # fmt: skip
    settings = {
        "port": str(primary.port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{root}'",
        "wal_level": "replica",
        "max_wal_senders": "5",
        "hot_standby": "on",
        "max_connections": "60",
        "shared_buffers": "32MB",
        "wal_keep_size": "64MB",
        "fsync": "off",  # the host never crashes here, only the server's processes
    }
    with (primary.data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    with (primary.data / "pg_hba.conf").open("a") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")
    primary.start()
    as_postgres(
        str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
        "postgres", "-D", str(standby.data), "-R", "-X", "stream", "--no-sync",
    )  # fmt: skip
    with (standby.data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {standby.port}\n")
        conf.write(
            f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
            f"application_name={STANDBY_NAME}'\n"
        )
    standby.start()
    if synchronous:  # on the primary only: the standby, once promoted, waits for nobody
        primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        primary.sql("SELECT pg_reload_conf()")
    cluster = Cluster(root, primary, standby)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = primary.sql(
            f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        )
        if state == ("sync" if synchronous else "async"):
            return cluster
        time.sleep(0.1)
    cluster.close()
    raise RuntimeError(f"the standby did not start streaming: see {standby.log}")
