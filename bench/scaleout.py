"""Scale-out on one PostgreSQL: write throughput and read latency with 1, 2 and 4 API
processes under concurrent writers and readers, against one process.

The processes are started as an operator would start them, with the ``sanctions``
command beside this interpreter, each in a process group of its own, all at once
(they may start in any order), on a fresh schema of ``--postgres-url`` per run:

- ``single`` (the baseline): one ``sanctions serve``, projector embedded (the default);
- ``ports:N``: N ``sanctions serve`` on N ports with ``SANCTIONS_EMBEDDED_PROJECTOR=false``,
  plus one ``sanctions project``; clients are spread round-robin over the ports;
- ``workers:N``: one ``sanctions serve --workers N`` (N uvicorn worker processes on one
  port) with ``SANCTIONS_EMBEDDED_PROJECTOR=false``, plus one ``sanctions project``.

A run waits until every port answers ``/healthz``, every uvicorn worker has logged
its start-up and the projector has logged its position, then starts 16 writer and 4
reader threads in this process, each with its own keep-alive ``httpx.Client``:

- a writer POSTs ``imposed`` events to ``/v1/events`` with a writer token, each on a
  stream of its own (authority x target country x commodity over every ISO 3166
  code, ``EU``, ``UN`` and the whole catalogue), so the rules never refuse one;
- a reader GETs ``/v1/status?country=XX`` for a random ISO 3166 country.

The first ``--warmup`` seconds are not counted; then, for ``--duration`` seconds,
every answer completed in the window counts: events/s (201 answers only), reads/s,
and p50/p99 (nearest rank) of read and write latency in milliseconds. Every other
answer or transport error is counted and shown. After each run the log must hold
exactly as many events as were answered 201, and ``recorded_at`` must increase with
``position`` across the answers of every process; a run that breaks either is
flagged. Also measured over the window: how busy the whole machine was (from
``/proc/stat``: the servers, PostgreSQL, this load generator, and anybody else), the
CPU of the service's processes, and that of this load generator.

Each repetition runs every layout once, in order, so slow drift on a shared machine
touches them all alike; the table gives the median of the repetitions and the ratio
of each layout's events/s to the ``single`` figure of the same invocation. At the
end (also on error or Ctrl-C) every process group started is stopped (SIGTERM, then
SIGKILL after 20 s) and every schema is dropped. The exit status is 1 when a run was
flagged.

The code measured is whatever ``sanctions`` imports (this checkout, through the
editable install); with ``PYTHONPATH`` set to another tree (say a ``git archive`` of
a commit), this script and every process it starts import that one instead. The
output names it.

Defaults: 8 s measured after 2 s of warm-up, 3 repetitions of the layouts
``single,ports:1,ports:2,workers:2,ports:4,workers:4``: about 5 minutes on a 2-core
machine. ``--quick``: 3 s after 1 s, one repetition (about a minute).

Usage::

    .venv/bin/python bench/scaleout.py [--quick] [--duration S] [--warmup S]
        [--repeat N] [--layouts single,ports:2,workers:4,...] [--writers N]
        [--readers N] [--postgres-url URL] [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pycountry
from psycopg.sql import SQL, Identifier

from domain.catalogue import CATALOGUE
from domain.keys import BLOCS

TOKEN = "scaleout-bench-token"
API_TOKENS = f"bench:writer:{TOKEN}"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_LAYOUTS = "single,ports:1,ports:2,workers:2,ports:4,workers:4"
EVENTS_TABLE = "sanctionstimeline_events"  # domain.store.config.POSTGRES_EVENTS_TABLE
START_TIMEOUT = 90.0  # seconds for every process of a layout to be up
STOP_TIMEOUT = 20.0  # seconds between SIGTERM and SIGKILL
REQUEST_TIMEOUT = 30.0

CODES = sorted(str(country.alpha_2) for country in pycountry.countries)
AUTHORITIES = sorted([*CODES, *BLOCS])
COMMODITIES = [commodity.slug for commodity in CATALOGUE]
KEY_SPACE = len(AUTHORITIES) * len(CODES) * len(COMMODITIES)
STRIDE = 1_000_003  # a prime: n -> n * STRIDE mod KEY_SPACE visits every key once
assert math.gcd(STRIDE, KEY_SPACE) == 1


class BenchError(RuntimeError):
    """The run cannot go on: a process that will not start, a database that will not answer."""


def say(message: str) -> None:
    """One line of progress on stderr, stamped with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def event_body(index: int) -> dict[str, Any]:
    """The `index`-th event of a run: an imposition on a stream no other event of the run has."""
    if index >= KEY_SPACE:
        raise BenchError(f"at most {KEY_SPACE:,} events per run")
    key = index * STRIDE % KEY_SPACE
    rest, commodity = divmod(key, len(COMMODITIES))
    authority, country = divmod(rest, len(CODES))
    return {
        "type": "imposed",
        "authority": AUTHORITIES[authority],
        "country": CODES[country],
        "commodity": COMMODITIES[commodity],
        "effective_date": "2021-01-01",
        "measures": ["import_ban"],
    }


# The layouts


@dataclass(frozen=True)
class Layout:
    """How the service is run: `single`, `ports` (N serve + project), `workers` (serve
    --workers N + project)."""

    kind: str
    processes: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        kind, _, count = text.strip().partition(":")
        if kind == "single" and not count:
            return cls("single", 1)
        if kind in ("ports", "workers") and count.isdigit() and int(count) >= 1:
            if kind == "workers" and int(count) < 2:
                raise ValueError("workers:N needs N >= 2 (workers:1 is ports:1)")
            return cls(kind, int(count))
        raise ValueError(f"unknown layout {text!r}: single, ports:N or workers:N")

    @property
    def name(self) -> str:
        return "single" if self.kind == "single" else f"{self.kind}:{self.processes}"

    @property
    def description(self) -> str:
        if self.kind == "single":
            return "`serve` (projector embedded)"
        if self.kind == "ports":
            serves = "`serve`" if self.processes == 1 else f"{self.processes} x `serve`"
            return f"{serves} + `project`"
        return f"`serve --workers {self.processes}` + `project`"


# The processes


@dataclass
class Process:
    """One command started in a process group of its own, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def logged(self, needle: str) -> int:
        return self.log.read_text(encoding="utf-8", errors="replace").count(needle)


@dataclass
class Cluster:
    """The processes of one run; `stop()` ends every one of them."""

    sanctions: str
    workdir: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str], **env: str) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [self.sanctions, *args],
                cwd=self.workdir,
                env={**self.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: uvicorn's workers go with it
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for process in self.processes:
            code = process.popen.poll()
            if code is not None:
                raise BenchError(
                    f"{process.name} exited with code {code}; its log ends:\n{process.tail()}"
                )

    def stop(self) -> list[str]:
        """SIGTERM every group, SIGKILL those still there after STOP_TIMEOUT; what went wrong."""
        trouble: list[str] = []
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                trouble.append(f"{process.name} ignored SIGTERM for {STOP_TIMEOUT:.0f} s: killed")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)  # also any worker left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)
        self.processes.clear()
        return trouble

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of every live process in the groups started here."""
        groups = {process.popen.pid for process in self.processes}
        return sum(cpu for group, cpu in process_cpu() if group in groups)


def process_cpu() -> Iterator[tuple[int, float]]:
    """(process group, CPU seconds) of every process on the machine, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # After the command: state ppid pgrp session tty tpgid flags minflt cminflt
        # majflt cmajflt utime stime ...
        yield int(fields[2]), (int(fields[11]) + int(fields[12])) / tick


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def free_ports(count: int) -> list[int]:
    """TCP ports on 127.0.0.1 that nobody listens on right now."""
    import socket

    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_layout(cluster: Cluster, layout: Layout) -> list[int]:
    """Start every process of `layout` at once; wait until all are up; the API ports."""
    ports = free_ports(layout.processes if layout.kind == "ports" else 1)
    serve = ["serve", "--host", "127.0.0.1"]
    projector = None
    if layout.kind == "single":
        cluster.start(
            "serve", [*serve, "--port", str(ports[0])], SANCTIONS_EMBEDDED_PROJECTOR="true"
        )
    else:
        projector = cluster.start("project", ["project"])
        if layout.kind == "ports":
            for index, port in enumerate(ports, 1):
                cluster.start(f"serve-{index}", [*serve, "--port", str(port)])
        else:
            workers = ["--port", str(ports[0]), "--workers", str(layout.processes)]
            cluster.start("serve", [*serve, *workers])
    deadline = time.monotonic() + START_TIMEOUT
    waiting = set(ports)
    while True:
        cluster.check_alive()
        for port in sorted(waiting):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    waiting.discard(port)
        started = [p.logged("Application startup complete.") for p in cluster.processes]
        workers_up = layout.kind != "workers" or max(started) >= layout.processes
        projector_up = projector is None or projector.logged("projecting from position") > 0
        if not waiting and workers_up and projector_up:
            return ports
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in cluster.processes)
            raise BenchError(f"{layout.name} not up within {START_TIMEOUT:.0f} s:\n{logs}")
        time.sleep(0.1)


# The load


@dataclass
class Tally:
    """What one client thread saw; merged after the run."""

    counted: int = 0  # answers expected (201 / 200) completed inside the window
    latencies_ms: list[float] = field(default_factory=list)  # of those
    created: int = 0  # 201 answers, warm-up included
    unexpected: Counter[str] = field(default_factory=Counter)  # status or exception name
    samples: list[str] = field(default_factory=list)  # the first unexpected answers
    pending: int = 0  # 201 answers with Projection-Pending: true
    stamps: list[tuple[int, str]] = field(default_factory=list)  # (position, recorded_at)

    def merge(self, other: Tally) -> None:
        self.counted += other.counted
        self.latencies_ms += other.latencies_ms
        self.created += other.created
        self.unexpected.update(other.unexpected)
        self.samples += other.samples[: max(0, 3 - len(self.samples))]
        self.pending += other.pending
        self.stamps += other.stamps


@dataclass(frozen=True)
class Window:
    start: float  # perf_counter: measuring begins
    end: float  # perf_counter: measuring and the load end

    def __contains__(self, moment: float) -> bool:
        return self.start <= moment <= self.end


def writer(
    client: httpx.Client,
    numbers: Iterator[int],
    window: Window,
    stop: threading.Event,
    tally: Tally,
) -> None:
    while not stop.is_set() and time.perf_counter() < window.end:
        body = event_body(next(numbers))
        began = time.perf_counter()
        try:
            response = client.post("/v1/events", json=body)
        except httpx.HTTPError as error:
            note_unexpected(tally, type(error).__name__, f"POST: {error!r}")
            time.sleep(0.05)
            continue
        done = time.perf_counter()
        if response.status_code != 201:
            note_unexpected(tally, str(response.status_code), f"POST: {response.text[:500]}")
            continue
        tally.created += 1
        answer = response.json()
        tally.stamps.append((int(answer["position"]), str(answer["recorded_at"])))
        if response.headers.get("Projection-Pending", "").lower() == "true":
            tally.pending += 1
        if done in window:
            tally.counted += 1
            tally.latencies_ms.append((done - began) * 1000)


def reader(
    client: httpx.Client, seed: int, window: Window, stop: threading.Event, tally: Tally
) -> None:
    countries = random.Random(seed)
    while not stop.is_set() and time.perf_counter() < window.end:
        country = countries.choice(CODES)
        began = time.perf_counter()
        try:
            response = client.get("/v1/status", params={"country": country})
        except httpx.HTTPError as error:
            note_unexpected(tally, type(error).__name__, f"GET: {error!r}")
            time.sleep(0.05)
            continue
        done = time.perf_counter()
        if response.status_code != 200:
            note_unexpected(tally, str(response.status_code), f"GET: {response.text[:500]}")
            continue
        if done in window:
            tally.counted += 1
            tally.latencies_ms.append((done - began) * 1000)


def join_all(threads: list[threading.Thread], timeout: float) -> bool:
    """Wait up to `timeout` seconds in all for the started threads; whether all ended."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        if thread.ident is not None:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


def note_unexpected(tally: Tally, what: str, sample: str) -> None:
    tally.unexpected[what] += 1
    if len(tally.samples) < 3:
        tally.samples.append(sample)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class RunFigures:
    events_per_s: float
    reads_per_s: float
    read_p50: float
    read_p99: float
    write_p50: float
    write_p99: float
    machine_busy: float  # fraction of all cores
    service_cores: float  # CPU seconds per second of the service's processes
    client_cores: float  # same, of this load generator
    unexpected: Counter[str]
    pending: int
    problems: list[str]


def load(ports: list[int], args: argparse.Namespace, cluster: Cluster) -> tuple[RunFigures, Tally]:
    """Writers and readers against `ports` for warm-up + duration seconds; the figures."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    threads: list[threading.Thread] = []
    writes = [Tally() for _ in range(args.writers)]
    reads = [Tally() for _ in range(args.readers)]
    numbers = itertools.count()  # next() is atomic under the GIL
    stop = threading.Event()  # set early when the run is cut short (error, Ctrl-C)
    clients = [
        httpx.Client(
            base_url=f"http://127.0.0.1:{ports[i % len(ports)]}",
            headers=auth,
            timeout=REQUEST_TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for i in range(args.writers + args.readers)
    ]
    begin = time.perf_counter()
    window = Window(begin + args.warmup, begin + args.warmup + args.duration)
    try:
        for i, tally in enumerate(writes):
            threads.append(
                threading.Thread(target=writer, args=(clients[i], numbers, window, stop, tally))
            )
        for i, tally in enumerate(reads):
            client = clients[args.writers + i]
            threads.append(threading.Thread(target=reader, args=(client, i, window, stop, tally)))
        for thread in threads:
            thread.daemon = True
            thread.start()
        time.sleep(max(0.0, window.start - time.perf_counter()))
        busy0, total0 = machine_ticks()
        service0, client0 = cluster.cpu_seconds(), time.process_time()
        time.sleep(max(0.0, window.end - time.perf_counter()))
        busy1, total1 = machine_ticks()
        service1, client1 = cluster.cpu_seconds(), time.process_time()
        if not join_all(threads, REQUEST_TIMEOUT + 5):
            raise BenchError(f"a client thread is still waiting {REQUEST_TIMEOUT:.0f} s on")
    finally:
        stop.set()  # cut short: let requests under way end before closing their clients
        join_all(threads, 10)
        for client in clients:
            client.close()
    write, read = Tally(), Tally()
    for tally in writes:
        write.merge(tally)
    for tally in reads:
        read.merge(tally)
    unexpected = Counter({f"write {k}": v for k, v in write.unexpected.items()})
    unexpected.update({f"read {k}": v for k, v in read.unexpected.items()})
    for sample in write.samples + read.samples:
        say(f"    unexpected answer: {sample}")
    figures = RunFigures(
        events_per_s=write.counted / args.duration,
        reads_per_s=read.counted / args.duration,
        read_p50=percentile(read.latencies_ms, 0.50),
        read_p99=percentile(read.latencies_ms, 0.99),
        write_p50=percentile(write.latencies_ms, 0.50),
        write_p99=percentile(write.latencies_ms, 0.99),
        machine_busy=(busy1 - busy0) / max(1, total1 - total0),
        service_cores=(service1 - service0) / args.duration,
        client_cores=(client1 - client0) / args.duration,
        unexpected=unexpected,
        pending=write.pending,
        problems=[],
    )
    return figures, write


def check_log(url: str, schema: str, write: Tally) -> list[str]:
    """What is wrong with the log after a run: a count that differs from the 201 answers,
    `recorded_at` that does not increase with `position`."""
    problems = []
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            SQL("SELECT count(*) FROM {}").format(Identifier(schema, EVENTS_TABLE))
        ).fetchone()
    stored = int(row[0]) if row else 0
    if stored != write.created:
        uncertain = sum(v for k, v in write.unexpected.items() if not k.isdigit())
        problems.append(
            f"the log holds {stored} events but {write.created} writes were answered 201"
            + (f" ({uncertain} writes ended in transport errors)" if uncertain else "")
        )
    stamps = sorted(write.stamps)
    backwards = sum(
        1
        for (_, before), (_, after) in itertools.pairwise(stamps)
        if datetime.fromisoformat(after) <= datetime.fromisoformat(before)
    )
    if backwards:
        problems.append(f"recorded_at does not increase with position {backwards} times")
    return problems


def one_run(layout: Layout, args: argparse.Namespace, workdir: Path) -> RunFigures:
    """Start `layout` on a fresh schema, load it, stop it, drop the schema."""
    schema = f"scaleout_{uuid.uuid4().hex[:10]}"
    url = f"{args.postgres_url}?{urlencode({'schema': schema})}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANCTIONS_")}
    env.update(
        SANCTIONS_DATABASE_URL=url,
        SANCTIONS_API_TOKENS=API_TOKENS,
        SANCTIONS_EMBEDDED_PROJECTOR="false",
        PYTHONUNBUFFERED="1",
    )
    rundir = workdir / f"{layout.name.replace(':', '-')}-{schema}"
    rundir.mkdir()
    cluster = Cluster(args.sanctions, rundir, env)
    trouble: list[str] = []
    try:
        started = time.perf_counter()
        ports = start_layout(cluster, layout)
        say(f"  {layout.name}: up in {time.perf_counter() - started:.1f} s on ports {ports}")
        figures, write = load(ports, args, cluster)
        cluster.check_alive()
        figures.problems = check_log(args.postgres_url, schema, write)
    finally:
        trouble = cluster.stop()
        drop_schema(args.postgres_url, schema)
        if args.keep_logs is not None:
            target = args.keep_logs / rundir.name
            shutil.copytree(rundir, target, dirs_exist_ok=True)
    figures.problems += trouble
    for problem in figures.problems:
        say(f"    PROBLEM: {problem}")
    return figures


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET lock_timeout = '30s'")
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


# The report


def median(runs: list[RunFigures], name: str) -> float:
    values = [getattr(run, name) for run in runs if not math.isnan(getattr(run, name))]
    return statistics.median(values) if values else math.nan


def table(layouts: list[Layout], results: dict[Layout, list[RunFigures]]) -> str:
    baseline = median(results[Layout("single", 1)], "events_per_s")
    lines = [
        "| layout | API processes | write ev/s | x single | reads/s | read p50 ms "
        "| read p99 ms | write p50 ms | write p99 ms | machine busy | service CPU "
        "| load-gen CPU | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for layout in layouts:
        runs = results[layout]
        unexpected: Counter[str] = Counter()
        for run in runs:
            unexpected.update(run.unexpected)
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(unexpected.items())) or "0"
        if any(run.problems for run in runs):
            errors += " (see problems)"
        rate = median(runs, "events_per_s")
        lines.append(
            f"| {layout.description} | {layout.processes} | {rate:,.0f} "
            f"| {rate / baseline:.2f} | {median(runs, 'reads_per_s'):,.0f} "
            f"| {median(runs, 'read_p50'):.1f} | {median(runs, 'read_p99'):.1f} "
            f"| {median(runs, 'write_p50'):.1f} | {median(runs, 'write_p99'):.1f} "
            f"| {median(runs, 'machine_busy'):.0%} | {median(runs, 'service_cores'):.2f} "
            f"| {median(runs, 'client_cores'):.2f} | {errors} |"
        )
    return "\n".join(lines)


def code_under_test() -> str:
    """Where the service's code is imported from (PYTHONPATH may point at another
    checkout), and its git commit when that is a git work tree."""
    import domain

    root = Path(domain.__file__).resolve().parents[1]
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(root)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return f"{root} (commit {commit}{', with uncommitted changes' if dirty else ''})"
    return str(root)


def nproc() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    return str(len(os.sched_getaffinity(0)))


def postgres_version(url: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s after 1 s warm-up, 1 repetition")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 8)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 2)")
    parser.add_argument("--repeat", type=int, help="repetitions, median reported (default 3)")
    parser.add_argument("--layouts", default=DEFAULT_LAYOUTS, help="single, ports:N, workers:N")
    parser.add_argument("--writers", type=int, default=16, help="writer threads")
    parser.add_argument("--readers", type=int, default=4, help="reader threads")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL database")
    parser.add_argument("--keep-logs", type=Path, help="copy every process's log here")
    parser.add_argument(
        "--sanctions",
        default=str(Path(sys.executable).with_name("sanctions")),
        help="the sanctions command (default: beside this interpreter)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration if args.duration is not None else (3.0 if quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.repeat = args.repeat if args.repeat is not None else (1 if quick else 3)
    if args.duration <= 0 or args.warmup < 0 or args.repeat < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --repeat >= 1")
    if args.writers < 1 or args.readers < 0:
        parser.error("--writers must be at least 1, --readers at least 0")
    try:
        layouts = [Layout.parse(text) for text in args.layouts.split(",") if text.strip()]
    except ValueError as error:
        parser.error(str(error))
    if Layout("single", 1) not in layouts:
        layouts.insert(0, Layout("single", 1))  # the baseline of the ratios
    args.layouts = list(dict.fromkeys(layouts))
    if not Path(args.sanctions).is_file():
        parser.error(f"no sanctions command at {args.sanctions}: give --sanctions PATH")
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: every `finally` stops processes and drops schemas.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/scaleout.py: terminated"))
    when = datetime.now(UTC)
    version = postgres_version(args.postgres_url)
    results: dict[Layout, list[RunFigures]] = {layout: [] for layout in args.layouts}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as workdir:
        for repetition in range(1, args.repeat + 1):
            say(f"repetition {repetition}/{args.repeat}")
            for layout in args.layouts:
                run = one_run(layout, args, Path(workdir))
                results[layout].append(run)
                say(
                    f"  {layout.name}: {run.events_per_s:,.0f} ev/s, {run.reads_per_s:,.0f} "
                    f"reads/s, read p50 {run.read_p50:.1f} ms p99 {run.read_p99:.1f} ms, "
                    f"machine {run.machine_busy:.0%} busy"
                )
    say(f"done in {time.perf_counter() - started:.0f} s")
    print(
        f"\nScale-out on one PostgreSQL ({version}), {when:%Y-%m-%d %H:%M} UTC; nproc: {nproc()}; "
        f"Python {platform.python_version()}\n{args.writers} writers + {args.readers} readers "
        f"(threads, keep-alive httpx), {args.duration:g} s measured after {args.warmup:g} s "
        f"warm-up, median of {args.repeat}\ncode: {code_under_test()}\n"
    )
    print(table(args.layouts, results))
    problems = [
        f"- {layout.name}, run {i}: {problem}"
        for layout, runs in results.items()
        for i, run in enumerate(runs, 1)
        for problem in run.problems
    ]
    pending = sum(run.pending for runs in results.values() for run in runs)
    if pending:
        print(f"\n{pending} writes were answered 201 with Projection-Pending: true")
    if problems:
        print("\nProblems:\n" + "\n".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"bench/scaleout.py: ABORTED: {error}")
