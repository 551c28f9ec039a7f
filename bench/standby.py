"""Reads from a PostgreSQL standby: one API reading from the standby against one reading
from the primary alone, and how far the standby falls behind under write load.

A primary and a streaming hot standby are built on this machine for the invocation
(tests/pgcluster.py: Debian's PostgreSQL 15 binaries, `initdb`, `pg_basebackup -R`, run
as the `postgres` user, on free ports; fsync off on both, as in the tests; it needs root
or the postgres user). Each run takes a fresh schema and starts, with the `sanctions`
command beside this interpreter and `SANCTIONS_EMBEDDED_PROJECTOR=0`:

- one `sanctions project`;
- `primary`: one `sanctions serve` on the primary alone (the baseline);
- `standby`: one `sanctions serve` with `SANCTIONS_READ_DATABASE_URL` naming the standby
  (`target_session_attrs=standby`); its writes still go to the primary.

Both are given the same multi-host `SANCTIONS_DATABASE_URL`
(`target_session_attrs=read-write`). The log is filled with `--events` events through
`POST /v1/events:batch` (an `imposed` event on a stream of its own each), and the read
models and the standby are waited for. Then:

1. Reads alone: `--clients` threads, each with its own keep-alive `httpx.Client`, take
   turns over `GET /v1/status?country=XX`, `GET /v1/timeline?country=XX` (a random
   ISO 3166 country) and `GET /v1/events?limit=100&after=N` (a random page of the log)
   for `--seconds` seconds (after `--warmup` seconds not counted) against `primary`
   and against `standby` with the standby synchronous (`synchronous_standby_names`
   naming it, `synchronous_commit` on) and asynchronous (naming nobody); the three
   take turns at going first from run to run. Reads/s, p50/p99 latency (nearest
   rank), the ratio standby/primary (the median of each run's ratio, and their
   range), and how busy the whole machine was (/proc/stat).
2. Under write load, with the standby synchronous and asynchronous (which goes first
   alternates from run to run): `--writers` threads POST `/v1/events` to `primary`
   for `--seconds` seconds while `--clients` readers run the same read mix against
   `standby`, and every 100 ms a sampler reads `standby_replay_lag_bytes` from
   `standby`'s `/readyz` and, on the primary, `pg_stat_replication.replay_lag` (NULL,
   once caught up a while, counted as 0) and the bytes between `pg_current_wal_lsn()`
   and the standby's `replay_lsn` as last reported to the primary: median and max.
   Write events/s and p50 on the primary's API, reads/s and p50/p99 on the standby's.
   The share of reads placed on the standby, or left to the primary, is the
   difference of `sanctions_reads_placed_total{place}` in `standby`'s `/metrics`
   before and after.

Every answer other than the one expected (200, or 201 for a write) and every transport
error is counted (the errors column). Prints one line per run and, at the end, the medians of the
runs. Every process is stopped at the end (also on error or Ctrl-C) and the cluster is
removed. Defaults: 3 runs of 5 s each part, 2-3 minutes on a 2-core machine.

    .venv/bin/python bench/standby.py --runs 3
    .venv/bin/python bench/standby.py --runs 1 --seconds 3 --clients 8 --writers 8
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pycountry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.pgcluster builds the cluster

from domain.catalogue import CATALOGUE  # noqa: E402
from domain.keys import BLOCS  # noqa: E402

with warnings.catch_warnings():  # tests.conftest imports starlette's test client
    warnings.simplefilter("ignore")
    from tests.pgcluster import STANDBY_NAME, Cluster, available, build_cluster

TOKEN = "standby-bench-token"
WRITER = {"Authorization": f"Bearer {TOKEN}"}
CODES = sorted(str(country.alpha_2) for country in pycountry.countries)
AUTHORITIES = sorted([*CODES, *BLOCS])
COMMODITIES = [commodity.slug for commodity in CATALOGUE]
KEY_SPACE = len(AUTHORITIES) * len(CODES) * len(COMMODITIES)
STRIDE = 1_000_003  # a prime: n -> n * STRIDE mod KEY_SPACE visits every key once
PLACES = ("standby", "standby_behind", "standby_away", "primary_away")
START_TIMEOUT = 90.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def event_body(index: int) -> dict[str, Any]:
    """The `index`-th event of a run: an imposition on a stream no other event of the run has."""
    rest, commodity = divmod(index * STRIDE % KEY_SPACE, len(COMMODITIES))
    authority, country = divmod(rest, len(CODES))
    return {
        "type": "imposed",
        "authority": AUTHORITIES[authority],
        "country": CODES[country],
        "commodity": COMMODITIES[commodity],
        "effective_date": "2021-01-01",
        "measures": ["import_ban"],
    }


# The processes


@dataclass
class Processes:
    """The `sanctions` processes of one run, each in a process group of its own."""

    sanctions: str
    workdir: Path
    env: dict[str, str]
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, *args: str, **env: str) -> Path:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [self.sanctions, *args],
                cwd=self.workdir,
                env={**self.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, popen, log))
        return log

    def check_alive(self) -> None:
        for name, popen, log in self.started:
            if popen.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise SystemExit(f"{name} exited with code {popen.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, popen, _ in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        for _, popen, _ in self.started:
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=5)
        self.started.clear()


def wait_up(processes: Processes, bases: list[str], projector_log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = set(bases)
    while waiting or "projecting from position" not in projector_log.read_text(errors="replace"):
        processes.check_alive()
        for base in sorted(waiting):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    waiting.discard(base)
        if time.monotonic() > deadline:
            raise SystemExit(f"not up within {START_TIMEOUT:.0f} s: see {processes.workdir}")
        time.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The database


def set_synchronous(primary: psycopg.Connection[Any], synchronous: bool) -> None:
    """Name the standby in `synchronous_standby_names` (or nobody); wait until it is so."""
    names = STANDBY_NAME if synchronous else ""
    primary.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
    primary.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = primary.execute(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
            (STANDBY_NAME,),
        ).fetchone()
        if row and row[0] == ("sync" if synchronous else "async"):
            return
        time.sleep(0.1)
    raise SystemExit("the standby's sync_state did not change")


def replication_lag(primary: psycopg.Connection[Any]) -> tuple[float, int]:
    """(replay_lag in ms, NULL as 0; bytes the standby has yet to replay) from the primary."""
    row = primary.execute(
        "SELECT coalesce(extract(epoch FROM replay_lag) * 1000, 0),"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)"
        " FROM pg_stat_replication WHERE application_name = %s",
        (STANDBY_NAME,),
    ).fetchone()
    return (math.nan, -1) if row is None else (float(row[0]), int(row[1]))


# The load


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    unexpected: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Tally) -> None:
        self.latencies_ms += other.latencies_ms
        self.unexpected.update(other.unexpected)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def drive(
    base: str, threads: int, start: float, end: float, ask: Callable[[httpx.Client], int]
) -> Tally:
    """`threads` clients each calling `ask` until `end`; answers completed after `start`
    count. `ask` returns the status expected of its request, or the status it got."""
    tallies = [Tally() for _ in range(threads)]

    def client(tally: Tally) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.perf_counter() < end:
                began = time.perf_counter()
                try:
                    outcome = ask(http)
                except httpx.HTTPError as error:
                    tally.unexpected[type(error).__name__] += 1
                    time.sleep(0.05)
                    continue
                done = time.perf_counter()
                if outcome != 0:
                    tally.unexpected[str(outcome)] += 1
                elif start <= began and done <= end:
                    tally.latencies_ms.append((done - began) * 1000)

    workers = [threading.Thread(target=client, args=(t,)) for t in tallies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total


def reader(log_size: int) -> Callable[[httpx.Client], int]:
    turn = iter(range(10**12))

    def ask(http: httpx.Client) -> int:
        kind = next(turn) % 3
        country = random.choice(CODES)
        if kind == 0:
            answer = http.get("/v1/status", params={"country": country})
        elif kind == 1:
            answer = http.get("/v1/timeline", params={"country": country})
        else:
            after = random.randrange(max(1, log_size - 100))
            answer = http.get("/v1/events", params={"limit": 100, "after": after})
        return 0 if answer.status_code == 200 else answer.status_code

    return ask


def writer(first: int) -> Callable[[httpx.Client], int]:
    numbers = iter(range(first, KEY_SPACE))
    lock = threading.Lock()

    def ask(http: httpx.Client) -> int:
        with lock:
            number = next(numbers)
        answer = http.post("/v1/events", json=event_body(number), headers=WRITER)
        return 0 if answer.status_code == 201 else answer.status_code

    return ask


def machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def placed(base: str) -> Counter[str]:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    found = re.findall(r'sanctions_reads_placed_total\{place="(\w+)"\} ([\d.e+]+)', text)
    return Counter({place: int(float(count)) for place, count in found})


def reads(base: str, args: argparse.Namespace, log_size: int) -> dict[str, float]:
    """The read mix alone against `base`."""
    before, ticks = placed(base), machine_ticks()
    start = time.perf_counter() + args.warmup
    end = start + args.seconds
    tally = drive(base, args.clients, start, end, reader(log_size))
    busy, total = (now - then for now, then in zip(machine_ticks(), ticks, strict=True))
    moved = placed(base) - before
    return {
        "reads_per_s": len(tally.latencies_ms) / args.seconds,
        "p50": percentile(tally.latencies_ms, 0.50),
        "p99": percentile(tally.latencies_ms, 0.99),
        "busy": busy / total if total else math.nan,
        "on_standby": share(moved, "standby"),
        "errors": sum(tally.unexpected.values()),
    }


def share(counts: Counter[str], place: str) -> float:
    total = sum(counts[p] for p in PLACES)
    return counts[place] / total if total else math.nan


def under_writes(
    primary_base: str, standby_base: str, db: psycopg.Connection[Any], args: argparse.Namespace,
    first: int, log_size: int,
) -> dict[str, float]:  # fmt: skip
    """Writers on the primary's API, readers on the standby's, the lag sampled every 100 ms."""
    before = placed(standby_base)
    start = time.perf_counter() + args.warmup
    end = start + args.seconds
    samples: list[tuple[float, float, float]] = []  # readyz bytes, replay_lag ms, lsn bytes

    def sample() -> None:
        with httpx.Client(base_url=standby_base, timeout=10) as http:
            while time.perf_counter() < end:
                tick = time.perf_counter()
                if tick >= start:
                    ready = http.get("/readyz")
                    lag = ready.json().get("standby_replay_lag_bytes") if ready.is_success else None
                    lag_ms, lsn = replication_lag(db)
                    samples.append((math.nan if lag is None else lag, lag_ms, lsn))
                time.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))

    tallies: dict[str, Tally] = {}
    jobs = {
        "writes": lambda: drive(primary_base, args.writers, start, end, writer(first)),
        "reads": lambda: drive(standby_base, args.clients, start, end, reader(log_size)),
    }
    threads = [threading.Thread(target=sample)]
    threads += [
        threading.Thread(target=lambda n=name, j=job: tallies.__setitem__(n, j()))
        for name, job in jobs.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    moved = placed(standby_base) - before
    ready_bytes = [s[0] for s in samples if not math.isnan(s[0])]
    lag_ms = [s[1] for s in samples if not math.isnan(s[1])]
    lsn = [s[2] for s in samples if s[2] >= 0]
    write, read = tallies["writes"], tallies["reads"]
    return {
        "events_per_s": len(write.latencies_ms) / args.seconds,
        "write_p50": percentile(write.latencies_ms, 0.50),
        "reads_per_s": len(read.latencies_ms) / args.seconds,
        "p50": percentile(read.latencies_ms, 0.50),
        "p99": percentile(read.latencies_ms, 0.99),
        "lag_bytes_p50": statistics.median(ready_bytes) if ready_bytes else math.nan,
        "lag_bytes_max": max(ready_bytes, default=math.nan),
        "replay_lag_ms_p50": statistics.median(lag_ms) if lag_ms else math.nan,
        "replay_lag_ms_max": max(lag_ms, default=math.nan),
        "lsn_bytes_p50": statistics.median(lsn) if lsn else math.nan,
        "lsn_bytes_max": max(lsn, default=math.nan),
        "samples": len(samples),
        **{f"placed_{place}": share(moved, place) for place in PLACES},
        "errors": sum(write.unexpected.values()) + sum(read.unexpected.values()),
        "written": len(write.latencies_ms),
    }


# One run


def fill(base: str, count: int) -> None:
    for begin in range(0, count, 500):
        batch = [event_body(n) for n in range(begin, min(count, begin + 500))]
        answer = httpx.post(
            f"{base}/v1/events:batch", json={"events": batch}, headers=WRITER, timeout=300
        )
        answer.raise_for_status()


def caught_up(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{base}/readyz", timeout=10)
            body = ready.json()
            lag = body.get("standby_replay_lag_bytes")
            if ready.is_success and body["projection_lag_events"] == 0 and lag in (0, None):
                return
        time.sleep(0.2)
    raise SystemExit("the read models or the standby did not catch up in 120 s")


def one_run(
    number: int, cluster: Cluster, db: psycopg.Connection[Any], args: argparse.Namespace,
    workdir: Path,
) -> dict[str, dict[str, float]]:  # fmt: skip
    schema = f"standby_bench_{uuid.uuid4().hex[:8]}"
    rundir = workdir / schema
    rundir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANCTIONS_")}
    env.update(
        SANCTIONS_DATABASE_URL=cluster.url(target_session_attrs="read-write", schema=schema),
        SANCTIONS_API_TOKENS=f"bench:writer:{TOKEN}",
        SANCTIONS_EMBEDDED_PROJECTOR="0",
        PYTHONUNBUFFERED="1",
    )
    processes = Processes(args.sanctions, rundir, env)
    primary_base = f"http://127.0.0.1:{free_port()}"
    standby_base = f"http://127.0.0.1:{free_port()}"
    set_synchronous(db, True)
    try:
        projector = processes.start("project", "project")
        serve = ["serve", "--host", "127.0.0.1", "--port"]
        processes.start("primary", *serve, primary_base.rsplit(":", 1)[1])
        read_url = cluster.url(target_session_attrs="standby", schema=schema)
        processes.start(
            "standby", *serve, standby_base.rsplit(":", 1)[1], SANCTIONS_READ_DATABASE_URL=read_url
        )
        wait_up(processes, [primary_base, standby_base], projector)
        fill(primary_base, args.events)
        caught_up(standby_base)
        result: dict[str, dict[str, float]] = {}
        setups = [
            ("primary", primary_base, True),
            ("standby, sync", standby_base, True),
            ("standby, async", standby_base, False),
        ]
        shift = (number - 1) % len(setups)  # each setup takes each place in turn
        for name, base, synchronous in setups[shift:] + setups[:shift]:
            set_synchronous(db, synchronous)
            result[name] = reads(base, args, args.events)
        first = args.events
        for synchronous in (True, False) if number % 2 else (False, True):
            set_synchronous(db, synchronous)
            name = f"writes, {'sync' if synchronous else 'async'}"
            result[name] = under_writes(primary_base, standby_base, db, args, first, args.events)
            first += int(result[name]["written"]) + 10_000
            processes.check_alive()
            caught_up(standby_base)
        return result
    finally:
        processes.stop()
        set_synchronous(db, True)
        with contextlib.suppress(psycopg.Error):
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# The report


def medians(runs: list[dict[str, dict[str, float]]], part: str) -> dict[str, float]:
    keys = runs[0][part].keys()
    out = {}
    for key in keys:
        values = [run[part][key] for run in runs if not math.isnan(run[part][key])]
        out[key] = statistics.median(values) if values else math.nan
    return out


def report(runs: list[dict[str, dict[str, float]]], args: argparse.Namespace) -> str:
    lines = [
        "| serve reads from | reads/s | x primary | read p50 ms | read p99 ms | on standby "
        "| machine busy | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for part in ("primary", "standby, sync", "standby, async"):
        m = medians(runs, part)
        ratios = [run[part]["reads_per_s"] / run["primary"]["reads_per_s"] for run in runs]
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if part != "primary" else ""
        lines.append(
            f"| {part} | {m['reads_per_s']:,.0f} | {statistics.median(ratios):.2f}{spread} "
            f"| {m['p50']:.1f} | {m['p99']:.1f} | {fmt_share(m['on_standby'])} "
            f"| {m['busy']:.0%} | {sum(int(r[part]['errors']) for r in runs)} |"
        )
    lines += [
        "",
        "| standby | write ev/s | write p50 ms | reads/s (standby API) | read p50 ms "
        "| read p99 ms | readyz lag bytes p50 / max | replay_lsn bytes p50 / max "
        "| replay_lag ms p50 / max "
        "| placed standby / standby_behind / standby_away / primary_away | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for part in ("writes, sync", "writes, async"):
        m = medians(runs, part)
        placed_shares = " / ".join(fmt_share(m[f"placed_{p}"]) for p in PLACES)
        lines.append(
            f"| {part.split(', ')[1]} | {m['events_per_s']:,.0f} | {m['write_p50']:.1f} "
            f"| {m['reads_per_s']:,.0f} | {m['p50']:.1f} | {m['p99']:.1f} "
            f"| {m['lag_bytes_p50']:,.0f} / {m['lag_bytes_max']:,.0f} "
            f"| {m['lsn_bytes_p50']:,.0f} / {m['lsn_bytes_max']:,.0f} "
            f"| {m['replay_lag_ms_p50']:.1f} / {m['replay_lag_ms_max']:.1f} "
            f"| {placed_shares} | {sum(int(r[part]['errors']) for r in runs)} |"
        )
    return "\n".join(lines)


def fmt_share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def run_line(number: int, run: dict[str, dict[str, float]]) -> str:
    parts = [
        f"{name} {run[name]['reads_per_s']:,.0f} reads/s p50 {run[name]['p50']:.1f} "
        f"p99 {run[name]['p99']:.1f} ms"
        for name in ("primary", "standby, sync", "standby, async")
    ]
    for name in ("writes, sync", "writes, async"):
        w = run[name]
        parts.append(
            f"{name}: {w['events_per_s']:,.0f} ev/s, lag {w['lag_bytes_p50']:,.0f}/"
            f"{w['lag_bytes_max']:,.0f} B, replay_lag {w['replay_lag_ms_p50']:.1f}/"
            f"{w['replay_lag_ms_max']:.1f} ms, on standby {fmt_share(w['placed_standby'])}"
        )
    return f"run {number}: " + "; ".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs; medians reported")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per part")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted first")
    parser.add_argument("--clients", type=int, default=8, help="reader threads")
    parser.add_argument("--writers", type=int, default=8, help="writer threads (part 2)")
    parser.add_argument("--events", type=int, default=3000, help="events in the log first")
    parser.add_argument(
        "--sanctions",
        default=str(Path(sys.executable).with_name("sanctions")),
        help="the sanctions command (default: beside this interpreter)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.seconds <= 0 or args.warmup < 0 or args.events < 200:
        parser.error("--runs >= 1, --seconds > 0, --warmup >= 0, --events >= 200")
    if args.clients < 1 or args.writers < 1:
        parser.error("--clients and --writers must be at least 1")
    if not Path(args.sanctions).is_file():
        parser.error(f"no sanctions command at {args.sanctions}: give --sanctions PATH")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = available()
    if why is not None:
        raise SystemExit(f"bench/standby.py: {why}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/standby.py: terminated"))
    began = time.perf_counter()
    say("building a primary and a streaming standby")
    cluster = build_cluster(synchronous=True)
    runs: list[dict[str, dict[str, float]]] = []
    try:
        url = f"postgresql://postgres@127.0.0.1:{cluster.primary.port}/postgres"
        with (
            psycopg.connect(url, autocommit=True) as db,
            tempfile.TemporaryDirectory(prefix="bench-standby-") as workdir,
        ):
            version = db.execute("SHOW server_version").fetchone()
            for number in range(1, args.runs + 1):
                runs.append(one_run(number, cluster, db, args, Path(workdir)))
                print(run_line(number, runs[-1]), flush=True)
    finally:
        cluster.close()
    say(f"done in {time.perf_counter() - began:.0f} s")
    print(
        f"\nReads from a standby: PostgreSQL {version[0] if version else '?'} primary + "
        f"streaming standby on this host, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}; {args.events:,} events, {args.clients} readers, "
        f"{args.writers} writers, {args.seconds:g} s measured after {args.warmup:g} s, "
        f"median of {args.runs}\n"
    )
    print(report(runs, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
