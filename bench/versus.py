"""The service against the app a user would write instead, and reads against the framework's
floor, every figure with `wrk` as the load generator and a baseline from the same run.

- ``writes``: ``wrk`` POSTs ``imposed`` events, each on a stream of its own, at 16 and 64
  connections (two wrk threads), ``--duration`` s after a 1 s warm-up, to a fresh
  ``sanctions serve`` (SQLite, PostgreSQL) and ``serve --workers 2`` + ``project``
  (PostgreSQL), and to the peer app of ``bench/peer.py`` on a fresh database of the same
  kind with as many worker processes. Every answer must be a 201, and each log must then
  hold every event answered 201 (and at most the requests wrk left under way besides).
  The figure: the service's events/s over the peer's, per store, layout and connections.
- ``reads``: ``wrk`` GETs ``/v1/status``, ``/v1/screen`` and ``/v1/timeline`` (the bundled
  timeline's Belarusian potash, among ``--log``'s events) and the service's own
  ``/healthz`` at 16 and 64 connections, from a ``sanctions serve`` on a copy of the SQLite
  log ``--log`` (made by ``bench/read.py --keep DIR``: 1,000,000 events). The figure:
  requests/s over ``/healthz``'s, and p99.
- ``rebuild``: on another copy of ``--log``, the floor (the library reading and decoding
  every stored event, in this process), then ``sanctions rebuild`` in a process of its
  own: its events/s over the floor's.

Medians of ``--repeat`` runs (3). Every process is stopped, every schema and file removed,
also on failure; exit status 1 when a check failed.

Usage::

    .venv/bin/python bench/versus.py [--only writes,reads,rebuild] [--stores sqlite,postgres]
        [--repeat N] [--duration S] [--clients 16,64] [--log FILE] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from peer import open_events  # bench/peer.py
from read import raw_read_decode, rebuild_in_child  # bench/read.py
from scaleout import BenchError, Cluster, Layout, free_ports, machine_ticks, say
from scaleout import event_body as distinct_body
from serving import WRITER_TOKEN, Databases, Server

from api.app.bootstrap import build_service
from api.app.settings import Settings

HERE = Path(__file__).resolve().parent
LOAD = HERE / "wrk" / "load.lua"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
WRK_THREADS = 2
BODIES = 200_000
READS = {
    "healthz": "/healthz",
    "status": "/v1/status?country=BY&commodity=potash&as_of=2026-01-15",
    "screen": "/v1/screen?hs=3104.20&origin=BY&date=2026-01-15",
    "timeline": "/v1/timeline?country=BY&commodity=potash",
}


@dataclass
class Load:
    """What one wrk run saw."""

    statuses: dict[str, int]
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk(url: str, clients: int, seconds: float, *script_args: str) -> Load:
    """One run of wrk against `url` with bench/wrk/load.lua; its summary line."""
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "30s"]
    command += ["-s", str(LOAD), url, "--", *script_args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("WRK "):
            figures = json.loads(line.removeprefix("WRK "))
            return Load(**figures)
    raise BenchError(f"wrk said no summary: {done.stdout[-500:]} {done.stderr[-500:]}")


class Poster:
    """POSTs of distinct bodies: each run starts past every body an earlier one may have sent
    (thread i of n sends lines skip+i, skip+i+n, …)."""

    def __init__(self, bodies: Path, token: str):
        self.bodies, self.token, self.skip, self.created = bodies, token, 0, 0

    def run(self, base: str, clients: int, seconds: float) -> Load:
        args = ("POST", str(self.bodies), self.token, str(WRK_THREADS), str(self.skip))
        load = wrk(f"{base}/v1/events", clients, seconds, *args)
        self.skip += WRK_THREADS * (load.requests + clients)
        if self.skip >= BODIES:
            raise BenchError("more posts than bodies written: raise BODIES")
        self.created += load.statuses.get("201", 0)
        return load


def problems_of(load: Load, expected: str) -> list[str]:
    other = {status: n for status, n in load.statuses.items() if status != expected}
    trouble = [f"answers other than {expected}: {other}"] if other else []
    return trouble + ([f"{load.errors} socket errors or timeouts"] if load.errors else [])


# The peer


class Peer:
    """bench/peer.py under uvicorn with `workers` processes, on a fresh database of `kind`:
    started and stopped as the service's processes are (`scaleout.Cluster`)."""

    def __init__(self, dbs: Databases, kind: str, workers: int):
        self.dbs, self.kind, self.workers = dbs, kind, workers
        self.url = dbs.fresh(kind)
        env = {**os.environ, "PEER_DATABASE_URL": self.url, "PEER_TOKENS": WRITER_TOKEN}
        rundir = Path(tempfile.mkdtemp(prefix="peer-", dir=dbs.workdir))
        self.cluster = Cluster(sys.executable, rundir, env)

    def __enter__(self) -> Peer:
        try:
            open_events(self.url).close()  # its table made once, not raced by its workers
            port = free_ports(1)[0]
            self.base = f"http://127.0.0.1:{port}"
            uvicorn = ["-m", "uvicorn", "--app-dir", str(HERE), "peer:app", "--port", str(port)]
            workers = ["--workers", str(self.workers), "--log-level", "warning"]
            self.process = self.cluster.start("peer", [*uvicorn, *workers])
            self._wait_until_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            self.cluster.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    time.sleep(1.0 if self.workers > 1 else 0.0)  # every worker up
                    return
            if time.monotonic() > deadline:
                raise BenchError("the peer did not start within 60 s")
            time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        try:
            self.cluster.stop()
        finally:
            self.dbs.drop(self.url)

    def count(self) -> int:
        return self.dbs.count(self.url, table="events")

    def cpu(self) -> float:
        return self.cluster.cpu_seconds()

    def tail(self) -> str:
        return f"; the peer's log ends:\n{self.process.tail()}"


# The measures


Figures = dict[str, list[float]]  # "measure" -> one figure per run


def writes_run(args: argparse.Namespace, dbs: Databases, bodies: Path, figures: Figures) -> None:
    for kind in args.stores:
        layouts = [Layout("single", 1)] + ([Layout("workers", 2)] if kind == "postgres" else [])
        for layout in layouts:
            for clients in args.clients:
                name = f"{kind} {layout.name} {clients}"
                rates: dict[str, Posted] = {}
                with Peer(dbs, kind, layout.processes) as peer:
                    rates["peer"] = posted(peer.base, clients, args, bodies, peer, f"{name} peer")
                with Server(args.sanctions, dbs, kind, layout) as server:
                    rates["service"] = posted(
                        server.base, clients, args, bodies, server, f"{name} service"
                    )
                    if server.problems:
                        raise BenchError(f"{name}: {server.problems}")
                for who, rate in rates.items():
                    figures[f"writes {name} {who}"].append(rate.rate)
                    figures[f"cpu {name} {who}"].append(rate.own_ms)
                    figures[f"machine {name} {who}"].append(rate.machine_ms)
                say(f"{name}: service {rates['service']}; peer {rates['peer']}")


@dataclass
class Posted:
    """A write run's figures: events/s, and CPU milliseconds an event of the server's own
    processes and of the whole machine (the database server and wrk included)."""

    rate: float
    own_ms: float
    machine_ms: float

    def __str__(self) -> str:
        return f"{self.rate:,.0f} ev/s, CPU {self.own_ms:.2f} ms/ev own, {self.machine_ms:.2f} all"


def posted(
    base: str,
    clients: int,
    args: argparse.Namespace,
    bodies: Path,
    server: Server | Peer,
    name: str,
) -> Posted:
    """A `--duration` s wrk run after a 1 s warm-up; every answer must be a 201 and every
    event answered must be in the log."""
    poster = Poster(bodies, WRITER_TOKEN)
    poster.run(base, clients, 1.0)  # warm-up
    own, (busy, total) = server.cpu(), machine_ticks()
    load = poster.run(base, clients, args.duration)
    own, (busy, total) = server.cpu() - own, (machine_ticks()[0] - busy, machine_ticks()[1] - total)
    cores = os.cpu_count() or 1
    machine = busy / max(1, total) * cores * load.seconds
    trouble = problems_of(load, "201")
    # wrk stops counting at the end of a run with up to `clients` requests under way, which
    # the server may still record: the log holds every event answered 201, and at most
    # those more.
    stored, created = server.count(), poster.created
    if not created <= stored <= created + 2 * clients:
        trouble.append(f"the log holds {stored} events, {created} were answered 201")
    if trouble:
        raise BenchError(f"{name}: {'; '.join(trouble)}{server.tail()}")
    created_in_run = max(1, load.statuses.get("201", 0))
    return Posted(load.rate, own / created_in_run * 1000, machine / created_in_run * 1000)


@contextlib.contextmanager
def copied(log: Path, dbs: Databases) -> Iterator[str]:
    """The URL of a copy of the SQLite log `log`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="versus-", dir=dbs.workdir) as workdir:
        copy = Path(workdir) / "log.db"
        shutil.copyfile(log, copy)
        yield f"sqlite:///{copy}"


def reads_run(args: argparse.Namespace, dbs: Databases, figures: Figures) -> None:
    with copied(args.log, dbs) as url:
        dbs.made.append(url)  # the server drops it with itself
        with Server(args.sanctions, dbs, "sqlite", Layout("single", 1), url=url) as server:
            for clients in args.clients:
                for read, path in READS.items():
                    wrk(f"{server.base}{path}", clients, 1.0, "GET")  # warm-up
                    load = wrk(f"{server.base}{path}", clients, args.duration, "GET")
                    if trouble := problems_of(load, "200"):
                        raise BenchError(f"{read}: {'; '.join(trouble)}")
                    figures[f"reads {read} {clients}"].append(load.rate)
                    figures[f"reads {read} {clients} p99"].append(load.p99_ms)
                    say(f"{read} at {clients}: {load.rate:.0f} req/s, p99 {load.p99_ms:.1f} ms")


def rebuild_run(args: argparse.Namespace, dbs: Databases, figures: Figures) -> None:
    """The floor (the library reading and decoding every stored event, in this process),
    then `sanctions rebuild` in a process of its own, on a copy of the log."""
    with copied(args.log, dbs) as url:
        svc = build_service(Settings(database_url=url, embedded_projector=False))
        try:
            floor = raw_read_decode(svc.log)
        finally:
            svc.log.close()
        rebuilt, _, _ = rebuild_in_child(url)
    figures["rebuild floor"].append(floor.rate)
    figures["rebuild service"].append(rebuilt.rate)
    say(f"rebuild: {rebuilt.rate:,.0f} ev/s, floor {floor.rate:,.0f} ev/s ({floor.events:,})")


# The report


def median(figures: Figures, name: str) -> float:
    return statistics.median(figures[name])


def shown(figures: Figures, name: str) -> str:
    """The median, and the range of the runs when there are several."""
    values = figures[name]
    low_high = f" ({min(values):,.0f} to {max(values):,.0f})" if len(values) > 1 else ""
    return f"{statistics.median(values):,.0f}{low_high}"


def ratio(figures: Figures, name: str, baseline: str) -> float:
    """The median of the runs' ratios (each run's figure over its own baseline's)."""
    pairs = zip(figures[name], figures[baseline], strict=True)
    return statistics.median(value / base for value, base in pairs)


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def report(figures: Figures) -> str:
    lines = []
    writes = sorted({n.rsplit(" ", 1)[0] for n in figures if n.startswith("writes ")})
    if writes:
        lines += ["| store | layout | connections | service ev/s | peer ev/s | ratio | ≥ 1.0 |"]
        lines += ["|---|---|---:|---:|---:|---:|---|"]
        for name in writes:
            _, kind, layout, clients = name.split(" ")
            service, peer = f"{name} service", f"{name} peer"
            times = ratio(figures, service, peer)
            lines.append(
                f"| {kind} | {layout} | {clients} | {shown(figures, service)}"
                f" | {shown(figures, peer)} | {times:.2f} | {verdict(times >= 1.0)} |"
            )
    if writes:
        lines += ["", "| store | layout | connections | CPU ms/ev: service | peer |"]
        lines[-1] += " machine ms/ev: service | peer |"
        lines += ["|---|---|---:|---:|---:|---:|---:|"]
        for name in writes:
            _, kind, layout, clients = name.split(" ")
            cpu = [
                median(figures, f"{measure} {name.removeprefix('writes ')} {who}")
                for measure in ("cpu", "machine")
                for who in ("service", "peer")
            ]
            lines.append(
                f"| {kind} | {layout} | {clients} | " + " | ".join(f"{c:.2f}" for c in cpu) + " |"
            )
    reads = [n for n in figures if n.startswith("reads ") and not n.endswith(" p99")]
    if reads:
        lines += ["", "| read | connections | req/s | / healthz | p99 ms | ≥ 0.8, p99 < 20 ms |"]
        lines += ["|---|---:|---:|---:|---:|---|"]
        for name in reads:
            _, read, clients = name.split(" ")
            times = ratio(figures, name, f"reads healthz {clients}")
            p99 = median(figures, f"{name} p99")
            met = "" if read == "healthz" else verdict(times >= 0.8 and p99 < 20)
            lines.append(
                f"| {read} | {clients} | {shown(figures, name)} | {times:.2f} | {p99:.1f} | {met} |"
            )
    if "rebuild service" in figures:
        times = ratio(figures, "rebuild service", "rebuild floor")
        lines += ["", "| rebuild ev/s | floor: read + decode ev/s | ratio | ≥ 0.25 |"]
        lines += ["|---:|---:|---:|---|"]
        lines.append(
            f"| {shown(figures, 'rebuild service')} | {shown(figures, 'rebuild floor')}"
            f" | {times:.2f} | {verdict(times >= 0.25)} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="writes,reads,rebuild", help="which measures")
    parser.add_argument("--stores", default="sqlite,postgres", help="for the writes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--clients", default="16,64", help="wrk connections")
    parser.add_argument("--log", type=Path, help="a SQLite log (bench/read.py --keep DIR)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    args.only = [m for m in args.only.split(",") if m]
    args.stores = [s for s in args.stores.split(",") if s]
    args.clients = [int(c) for c in args.clients.split(",") if c]
    if {"reads", "rebuild"} & set(args.only) and (args.log is None or not args.log.is_file()):
        parser.error("reads and rebuild need --log FILE: a SQLite log (bench/read.py --keep DIR)")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")
    args.sanctions = str(Path(sys.executable).with_name("sanctions"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures: Figures = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="bench-versus-") as workdir:
        dbs = Databases(args.postgres_url, Path(workdir))
        bodies = Path(workdir) / "bodies.jsonl"
        with bodies.open("w") as out:
            for index in range(BODIES):
                out.write(json.dumps(distinct_body(index), separators=(",", ":")) + "\n")
        try:
            for run in range(1, args.repeat + 1):
                say(f"run {run} of {args.repeat}")
                if "writes" in args.only:
                    writes_run(args, dbs, bodies, figures)
                if "reads" in args.only:
                    reads_run(args, dbs, figures)
                if "rebuild" in args.only:
                    rebuild_run(args, dbs, figures)
        finally:
            dbs.drop_all()
    print(report(figures))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"bench/versus.py: ABORTED: {error}")
