"""A PostgreSQL cluster as production runs one, built on this machine for a test: an etcd
and two or more PostgreSQL nodes under Patroni (Debian's `etcd-server` and `patroni`
packages, Debian's PostgreSQL binaries), each on free ports, its data in a temporary
directory, PostgreSQL run as the `postgres` user. Patroni bootstraps the first node with
`initdb`, clones the others with `pg_basebackup` and keeps one of them a synchronous
standby (`synchronous_mode`); when the leader dies it promotes that standby itself.

The timings are shortened from Patroni's defaults (ttl 30 s, loop_wait 10 s) so that a
failover takes seconds: the leader key lives `TTL` seconds after its holder stops
renewing it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, free_port
from tests.pgcluster import BIN, Node
from tests.pgcluster import available as postgres_available

ETCD = Path(os.environ.get("SANCTIONS_TEST_ETCD", "/usr/bin/etcd"))
PATRONI = Path(os.environ.get("SANCTIONS_TEST_PATRONI", "/usr/bin/patroni"))
SCOPE = "sanctions-test"
POST_INIT = ROOT / "deploy" / "patroni" / "post-init.sh"
"""The production cluster's post_init (docker-compose.ha.yml): the service's role and
database, `sanctions`, created once by the node that bootstraps."""
TTL, LOOP_WAIT, RETRY_TIMEOUT = 6, 1, 2
"""Patroni's timings: a dead leader's key expires within TTL seconds; Patroni demands
loop_wait + 2 * retry_timeout <= ttl."""


def available() -> str | None:
    """Why a Patroni cluster cannot be built here (None when it can)."""
    for program, package in ((ETCD, "etcd-server"), (PATRONI, "patroni")):
        if not program.exists():
            return f"no {program} (Debian's {package}; .ci/ensure-packages installs it)"
    return postgres_available()


def as_postgres(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`command` as the `postgres` user, in a process group of its own, output to `log`."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with log.open("ab") as out:
        return subprocess.Popen(
            [*prefix, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def stop(process: subprocess.Popen[bytes] | None, how: int = signal.SIGTERM) -> None:
    """Signal a process group started by `as_postgres` (or here) and reap it."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, how)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Member:
    """One PostgreSQL node and the Patroni that runs it."""

    name: str
    root: Path
    port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    patroni: subprocess.Popen[bytes] | None = None

    @property
    def postgres(self) -> Node:
        return Node(self.name, self.port, self.root / self.name, self.root / f"{self.name}.pg.log")

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.patroni.log"

    def configure(self, etcd: str) -> Path:
        """This member's Patroni configuration (JSON is YAML): the DCS settings under
        `bootstrap.dcs` take effect when the cluster is first initialised."""
        config = {
            "scope": SCOPE,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{self.api_port}",
                "connect_address": f"127.0.0.1:{self.api_port}",
            },
            "etcd3": {"hosts": etcd},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    # Only a synchronous standby may be promoted, and a commit is
                    # acknowledged once it holds it: nothing acknowledged is lost.
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": False,
                        "parameters": {
                            "synchronous_commit": "on",
                            "max_connections": 60,
                            "shared_buffers": "32MB",
                            "wal_keep_size": "64MB",
                            "hot_standby": "on",
                            # The host never crashes here, only the server's processes.
                            "fsync": "off",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}, "no-sync"],
                "post_init": str(POST_INIT),
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.port}",
                "connect_address": f"127.0.0.1:{self.port}",
                "data_dir": str(self.postgres.data),
                "bin_dir": str(BIN),
                "pgpass": str(self.root / f"{self.name}.pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres"},
                    "replication": {"username": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(self.root)},
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
                "basebackup": [{"checkpoint": "fast"}],
            },
            "watchdog": {"mode": "off"},
            "tags": {"nofailover": False, "noloadbalance": False},
        }
        path = self.root / f"{self.name}.yml"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, etcd: str) -> None:
        config = self.configure(etcd)
        password = {"SANCTIONS_DB_PASSWORD": "sanctions"}  # trust auth here: not checked
        self.patroni = as_postgres([str(PATRONI), str(config)], self.log, password)

    def kill(self) -> float:
        """As a crashed host: SIGKILL to Patroni, the postmaster and every child of it, all
        at once (Patroni first, so that it cannot start PostgreSQL again); the moment the
        last signal went, as `time.time()`."""
        postmaster = self.postgres.pid()
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        if self.patroni is not None and self.patroni.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.patroni.pid, signal.SIGKILL)
        for pid in [postmaster, *map(int, children)] if postmaster else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        if self.patroni is not None:
            self.patroni.wait(timeout=10)
        self.postgres.kill()  # waits for the postmaster to be gone
        return killed_at

    @contextlib.contextmanager
    def sending_nothing(self) -> Iterator[None]:
        """Inside the block this primary's WAL senders are stopped (SIGSTOP), as behind a
        network that has gone quiet: its standbys hear nothing of what it commits (a
        standby's own socket would still hand over what was sent before its receiver
        stopped, so the senders are the ones held). Resumed on the way out."""
        senders = self.postgres.sql("SELECT pid FROM pg_stat_replication").split()
        for pid in map(int, senders):
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in map(int, senders):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        stop(self.patroni)  # Patroni stops its PostgreSQL on the way out
        self.postgres.stop()  # in case it did not (or was killed)


def rest(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
        return json.load(answer)


@dataclass
class PatroniCluster:
    root: Path
    members: list[Member]
    etcd: subprocess.Popen[bytes] | None = None

    def url(self, **query: str) -> str:
        """A multi-host URL naming every member, in the order they were started, for the
        service's role and database (made by `POST_INIT`), as production has them."""
        hosts = ",".join(f"127.0.0.1:{member.port}" for member in self.members)
        params = "&".join(f"{key}={value}" for key, value in query.items())
        return f"postgresql://sanctions:sanctions@{hosts}/sanctions" + (
            f"?{params}" if params else ""
        )

    def member(self, name: str) -> Member:
        return next(member for member in self.members if member.name == name)

    def view(self) -> dict[str, dict[str, Any]]:
        """Patroni's view of the cluster (its REST API's /cluster), asked of the first
        member that answers: each member's role and state by name."""
        for member in self.members:
            if member.patroni is None or member.patroni.poll() is not None:
                continue
            with contextlib.suppress(OSError, ValueError):
                found = rest(member.api_port, "/cluster")
                return {each["name"]: each for each in found.get("members", [])}
        return {}

    def leader(self) -> Member | None:
        """The member Patroni names leader, once its PostgreSQL runs as a primary."""
        for name, state in self.view().items():
            if state.get("role") == "leader" and state.get("state") == "running":
                return self.member(name)
        return None

    def sync_standby(self, leader: Member) -> Member | None:
        """The member the leader's PostgreSQL streams to synchronously (its own word)."""
        for name, state in self.view().items():
            if state.get("role") == "sync_standby" and name != leader.name:
                standby = self.member(name)
                replicating = leader.postgres.sql(
                    "SELECT sync_state FROM pg_stat_replication "
                    f"WHERE application_name = '{name}' AND state = 'streaming'"
                )
                if replicating == "sync":
                    return standby
        return None

    def wait_until_ready(self, timeout: float = 60) -> tuple[Member, Member]:
        """Until there is a leader and a synchronous standby streaming from it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            leader = self.leader()
            standby = self.sync_standby(leader) if leader else None
            if leader and standby:
                return leader, standby
            time.sleep(0.2)
        raise RuntimeError(f"no leader and synchronous standby in {timeout:.0f} s: {self.logs()}")

    def wait_for_new_leader(self, old: Member, timeout: float = 60) -> Member:
        """Until Patroni reports a leader other than `old`, running as a primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader is not old:
                return leader
            time.sleep(0.05)
        raise RuntimeError(f"Patroni elected no new leader in {timeout:.0f} s: {self.logs()}")

    def check_alive(self) -> None:
        dead = [m.name for m in self.members if m.patroni is None or m.patroni.poll() is not None]
        if self.etcd is None or self.etcd.poll() is not None:
            dead.append("etcd")
        if dead:
            raise RuntimeError(f"{', '.join(dead)} stopped: {self.logs()}")

    def logs(self) -> str:
        """The tail of every log, for a failure's message."""
        tails = []
        for log in sorted(self.root.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(tails)

    def close(self) -> None:
        for member in self.members:
            member.close()
        stop(self.etcd)
        shutil.rmtree(self.root, ignore_errors=True)


def start_etcd(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A one-member etcd on free ports, its data under `root`; its client address."""
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    with (root / "etcd.log").open("ab") as out:
        process = subprocess.Popen(
            [
                str(ETCD), "--name", "etcd0", "--data-dir", str(root / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new",
                "--initial-cluster-token", root.name,
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{client}/health", timeout=1) as answer,
        ):
            if json.load(answer).get("health") == "true":
                return process, client.removeprefix("http://")
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop(process)
    raise RuntimeError("etcd did not start: " + (root / "etcd.log").read_text(errors="replace"))


@contextlib.contextmanager
def patroni_cluster(nodes: int = 2) -> Iterator[PatroniCluster]:
    """etcd and `nodes` members under Patroni, up with a leader and a synchronous
    standby; everything stopped and removed on the way out, whatever happened."""
    root = Path(tempfile.mkdtemp(prefix="sanctions-patroni-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PatroniCluster(root, [Member(f"pg{n}", root) for n in range(1, nodes + 1)])
    try:
        cluster.etcd, etcd = start_etcd(root)
        for member in cluster.members:
            member.start(etcd)
        cluster.wait_until_ready()
        yield cluster
    finally:
        cluster.close()
