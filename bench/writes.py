"""Write benchmarks of the sanctions service, each against the raw library in the same run.

On SQLite (a fresh file) and PostgreSQL (a fresh schema of ``--postgres-url``), a new
database every time, the service started with the ``sanctions`` command in process groups
of its own (``serving.Server``), the clients in this process (``--only`` picks measures):

- ``concurrency``: 1, 4, 16, 64 threads, each with one keep-alive ``httpx.Client``, POST
  ``imposed`` events on streams of their own to ``sanctions serve`` (SQLite, PostgreSQL)
  and ``serve --workers 2`` + ``project`` (PostgreSQL), a fresh server per level; the
  answers completed in ``--duration`` s after ``--warmup`` s give ev/s, p50 and p99. All
  must be 201, and the log must then hold exactly the events answered 201. Baseline: a
  plain ``eventsourcing`` Application, one new aggregate per ``save``.
- ``latency``: one client posts 400 events in a row to ONE stream (``imposed``, then
  ``expanded``/``eased`` in turn, a day apart): p50 of versions 351-400 over 1-50.
- ``import``: ``sanctions import FILE --batch 500`` of 100,000 posted bodies (62,001
  impositions, then expansions of the same streams), start to exit, against the raw
  library saving 500 new aggregates per ``save``.

Medians of ``--repeat`` runs (3), each run going through every measure. Every process
is stopped, every schema and file removed, also on failure or Ctrl-C; exit status 1
when a check failed. About 13 minutes on a quiet 2-core machine; ``--quick`` (1 run,
2 s windows, 10,000 imported events) about 2. ``PYTHONPATH=<another tree>`` measures
that tree's code (as ``bench/scaleout.py``).

Usage::

    .venv/bin/python bench/writes.py [--only concurrency,latency,import] [--quick]
        [--stores sqlite,postgres] [--repeat N] [--duration S] [--warmup S]
        [--clients 1,4,16,64] [--import-events N] [--no-workers] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from append import event_body as import_body
from append import raw_app, raw_batch, raw_single  # bench/append.py
from scaleout import BenchError, Layout, code_under_test, machine_ticks, percentile, say
from scaleout import event_body as distinct_body
from serving import Databases, Server, refusal, service_env  # bench/serving.py

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MEASURES = ("concurrency", "latency", "import")
STORES = ("sqlite", "postgres")
IMPORT_BATCH = 500  # `sanctions import`'s default --batch, passed explicitly
STREAM_EVENTS = 400
RAW_SINGLE_EVENTS = 2_000


# Concurrency


@dataclass
class Level:
    events_per_s: float
    p50_ms: float
    p99_ms: float
    client_cores: float  # CPU seconds per second of this process (the clients)
    machine_busy: float  # fraction of both cores, everybody included
    problems: list[str]


def concurrency(server: Server, clients: int, args: argparse.Namespace) -> Level:
    """`clients` threads posting to distinct streams; the figures of the measured window."""
    numbers = itertools.count()  # next() is atomic under the GIL
    latencies: list[float] = []  # list.append is atomic too
    created, refused = [0] * clients, list[str]()
    ready = threading.Barrier(clients + 1)  # the clock starts once every thread runs
    start = end = 0.0

    def post(slot: int, client: httpx.Client) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait()
        while (began := time.perf_counter()) < end:
            try:
                response = client.post("/v1/events", json=distinct_body(next(numbers)))
            except httpx.HTTPError as error:
                refused.append(f"POST: {error!r}")
                return
            done = time.perf_counter()
            if response.status_code != 201:
                refused.append(refusal(response))
                return
            created[slot] += 1
            if start <= done <= end:
                latencies.append((done - began) * 1000)

    pool = [server.client() for _ in range(clients)]
    threads = [threading.Thread(target=post, args=(i, c), daemon=True) for i, c in enumerate(pool)]
    try:
        for thread in threads:
            thread.start()
        start = time.perf_counter() + args.warmup
        end = start + args.duration
        ready.wait()
        time.sleep(max(0.0, start - time.perf_counter()))
        busy0, total0 = machine_ticks()
        cpu0 = time.process_time()
        time.sleep(max(0.0, end - time.perf_counter()))
        busy1, total1 = machine_ticks()
        cpu1 = time.process_time()
        for thread in threads:
            thread.join(timeout=70)
    finally:
        ready.abort()  # frees the threads if the clock never started
        for client in pool:
            client.close()
    if any(thread.is_alive() for thread in threads):
        raise BenchError("a client thread still waits for its answer after 70 s")
    server.check_log(sum(created))
    problems = [f"{len(refused)} answers not 201, first {refused[0]}"] if refused else []
    if not latencies:
        problems.append("no answer came within the measured window")
    return Level(
        events_per_s=len(latencies) / args.duration,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        client_cores=(cpu1 - cpu0) / args.duration,
        machine_busy=(busy1 - busy0) / max(1, total1 - total0),
        problems=problems,
    )


# Latency by stream length


def stream_body(version: int) -> dict[str, Any]:
    """The `version`-th event of the one stream: imposed, then expanded and eased in turn."""
    day = date(2001, 1, 1) + timedelta(days=version)
    body: dict[str, Any] = {
        "authority": "EU",
        "country": "BY",
        "commodity": "potash",
        "effective_date": day.isoformat(),
    }
    if version == 1:
        return {"type": "imposed", **body, "measures": ["import_ban"]}
    kind = "expanded" if version % 2 == 0 else "eased"
    return {"type": kind, **body, "measures": ["export_ban"]}


def stream_latency(server: Server) -> tuple[float, float, list[str]]:
    """(median ms of versions 1-50, of versions 351-400, problems) posting one stream."""
    latencies: list[float] = []
    with server.client() as client:
        for version in range(1, STREAM_EVENTS + 1):
            began = time.perf_counter()
            response = client.post("/v1/events", json=stream_body(version))
            latencies.append((time.perf_counter() - began) * 1000)
            if response.status_code != 201 or response.json().get("version") != version:
                raise BenchError(f"version {version} answered {refusal(response)}")
    server.check_log(STREAM_EVENTS)
    first, last = latencies[:50], latencies[-50:]
    return statistics.median(first), statistics.median(last), server.problems


# Import


def write_import_file(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            out.write(json.dumps(import_body(index)) + "\n")


def service_import(
    args: argparse.Namespace, dbs: Databases, kind: str, path: Path, *, projected: bool
) -> float:
    """Events per second of `sanctions import` on a fresh database, start to exit: with
    the read models brought up at its end (`projected`), or recording only (as with a
    projector process of its own, `SANCTIONS_EMBEDDED_PROJECTOR=false`)."""
    url = dbs.fresh(kind)
    command = [args.sanctions, "import", str(path), "--batch", str(IMPORT_BATCH), "--create"]
    env = service_env(url, SANCTIONS_EMBEDDED_PROJECTOR="true" if projected else "false")
    try:
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchError(f"sanctions import exited {done.returncode}: {done.stderr[-2000:]}")
        stored = dbs.count(url)
        if stored != args.import_events:
            raise BenchError(f"import left {stored} events of {args.import_events}")
    finally:
        dbs.drop(url)
    return float(args.import_events / elapsed)


def raw_rate(dbs: Databases, kind: str, measure: Any, *arguments: int) -> float:
    url = dbs.fresh(kind)
    app = raw_app(url)
    try:
        return float(measure(app, *arguments))
    finally:
        app.close()
        dbs.drop(url)


# The run


@dataclass
class Results:
    levels: dict[tuple[str, int], list[Level]] = field(default_factory=dict)
    rates: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (what, store)
    stream: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def rate(self, what: str, kind: str) -> float:
        return statistics.median(self.rates[(what, kind)])

    def add_rate(self, what: str, kind: str, rate: float) -> None:
        self.rates.setdefault((what, kind), []).append(rate)
        say(f"  {what} {kind}: {rate:,.0f} ev/s")


def targets(args: argparse.Namespace) -> list[tuple[str, str, Layout]]:
    """(label, store, layout) of every server the concurrency measure drives."""
    found = [(LABELS[kind], kind, Layout("single", 1)) for kind in args.kinds]
    if "postgres" in args.kinds and not args.no_workers:
        found.append(("PostgreSQL, `serve --workers 2`", "postgres", Layout("workers", 2)))
    return found


LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def one_run(args: argparse.Namespace, dbs: Databases, results: Results, import_file: Path) -> None:
    if "concurrency" in args.only:
        for kind in args.kinds:
            raw = raw_rate(dbs, kind, raw_single, 0, RAW_SINGLE_EVENTS)
            results.add_rate("raw single", kind, raw)
        for label, kind, layout in targets(args):
            for clients in args.clients:
                with Server(args.sanctions, dbs, kind, layout) as server:
                    level = concurrency(server, clients, args)
                level.problems += server.problems  # the checks', and stopping it
                results.levels.setdefault((label, clients), []).append(level)
                results.problems += [f"{label}, {clients} clients: {p}" for p in level.problems]
                say(
                    f"  {label}, {clients} clients: {level.events_per_s:,.0f} ev/s, p50 "
                    f"{level.p50_ms:.1f} ms, p99 {level.p99_ms:.1f} ms, machine "
                    f"{level.machine_busy:.0%} busy, clients {level.client_cores:.2f} core"
                    + "".join(f"; {p}" for p in level.problems)
                )
    if "latency" in args.only:
        for kind in args.kinds:
            with Server(args.sanctions, dbs, kind, Layout("single", 1)) as server:
                first, last, problems = stream_latency(server)
            results.stream.setdefault(kind, []).append((first, last))
            results.problems += [f"latency, {kind}: {p}" for p in problems]
            say(f"  latency {kind}: v1-50 {first:.1f} ms, v351-400 {last:.1f} ms")
    if "import" in args.only:
        for kind in args.kinds:
            raw = raw_rate(dbs, kind, raw_batch, 0, args.import_events, IMPORT_BATCH)
            results.add_rate("raw batched", kind, raw)
            recorded = service_import(args, dbs, kind, import_file, projected=False)
            results.add_rate("import", kind, recorded)
            projected = service_import(args, dbs, kind, import_file, projected=True)
            results.add_rate("import projected", kind, projected)


def median_of(levels: list[Level], name: str) -> float:
    return float(statistics.median(getattr(level, name) for level in levels))


Goal = tuple[str, str, float, float, str, str]  # what, store, service, baseline, unit, goal


def goals(args: argparse.Namespace, results: Results) -> list[Goal]:
    """Each measure's figure against its baseline, and the goal for their ratio."""
    found: list[Goal] = []
    if "concurrency" in args.only:
        for label, kind, _ in targets(args):
            at = {n: median_of(results.levels[(label, n)], "events_per_s") for n in args.clients}
            raw = results.rate("raw single", kind)
            if 16 in at:
                found.append(
                    ("16 clients / raw, 1 event per save", label, at[16], raw, "ev/s", "≥ 0.5")
                )
            if 16 in at and 64 in at:
                found.append(("64 clients / 16 clients", label, at[64], at[16], "ev/s", "≥ 1.0"))
    if "latency" in args.only:
        for kind in args.kinds:
            first, last = (
                statistics.median(run[i] for run in results.stream[kind]) for i in (0, 1)
            )
            found.append(
                ("p50 write, versions 351-400 / 1-50", LABELS[kind], last, first, "ms", "≤ 1.2")
            )
    if "import" in args.only:
        what = f"import {args.import_events:,} / raw, {IMPORT_BATCH} per save"
        for kind in args.kinds:
            rate, raw = results.rate("import", kind), results.rate("raw batched", kind)
            found.append((what, LABELS[kind], rate, raw, "ev/s", "≥ 0.5"))
            projected = results.rate("import projected", kind)
            found.append((what + ", read models too", LABELS[kind], projected, raw, "ev/s", "—"))
    return found


def report(args: argparse.Namespace, results: Results) -> str:
    out = []
    if "concurrency" in args.only:
        out += ["| server | clients | ev/s | p50 ms | p99 ms | machine busy | clients' CPU |",
                "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for label, _, _ in targets(args):
            for n in args.clients:
                runs = results.levels[(label, n)]
                names = ("events_per_s", "p50_ms", "p99_ms", "client_cores", "machine_busy")
                rate, p50, p99, cpu, busy = (median_of(runs, name) for name in names)
                out.append(f"| {label} | {n} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {busy:.0%} "
                           f"| {cpu:.2f} |")  # fmt: skip
        out.append("")
    out += [
        "| measure | store | service / baseline | ratio | goal | |",
        "|---|---|---:|---:|---|---|",
    ]
    for what, store, figure, baseline, unit, goal in goals(args, results):
        ratio = figure / baseline
        if goal[:1] in "≥≤":
            bound = float(goal[2:])
            met = ratio >= bound if goal.startswith("≥") else ratio <= bound
            verdict = "met" if met else "**missed**"
        else:
            verdict = ""  # shown for comparison, no goal of its own
        shown = (
            f"{figure:,.0f} / {baseline:,.0f}"
            if unit == "ev/s"
            else f"{figure:.1f} / {baseline:.1f}"
        )
        out.append(f"| {what} | {store} | {shown} {unit} | {ratio:.2f} | {goal} | {verdict} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(MEASURES), help="comma-separated measures")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="1 run, 2 s windows, 10k imported")
    parser.add_argument("--repeat", type=int, help="runs, medians reported (default 3)")
    parser.add_argument("--duration", type=float, help="measured seconds per level (default 5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 1)")
    parser.add_argument("--clients", default="1,4,16,64", help="concurrency levels")
    parser.add_argument("--import-events", type=int, help="events imported (default 100,000)")
    parser.add_argument("--no-workers", action="store_true", help="skip `serve --workers 2`")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL")
    parser.add_argument("--sanctions", default=str(Path(sys.executable).with_name("sanctions")))
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.duration = args.duration or (2.0 if quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 1.0)
    args.import_events = args.import_events or (10_000 if quick else 100_000)
    split = [[p.strip() for p in text.split(",") if p.strip()] for text in (args.only, args.stores)]
    args.only, args.kinds = split
    if not args.only or set(args.only) - set(MEASURES):
        parser.error(f"--only takes a comma-separated subset of {','.join(MEASURES)}")
    if not args.kinds or set(args.kinds) - set(STORES):
        parser.error(f"--stores takes a comma-separated subset of {','.join(STORES)}")
    args.clients = [int(n) for n in args.clients.split(",")]
    if min(args.repeat, *args.clients) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--repeat and --clients must be >= 1, --duration > 0, --warmup >= 0")
    import_body(args.import_events - 1)  # fails early if too many
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/writes.py: terminated"))
    results = Results()
    load_before, started = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as workdir:
        dbs = Databases(args.postgres_url, Path(workdir))
        import_file = Path(workdir) / "import.jsonl"
        try:
            if "import" in args.only:
                write_import_file(import_file, args.import_events)
            for run in range(1, args.repeat + 1):
                say(f"run {run}/{args.repeat}, load average {os.getloadavg()[0]:.2f}")
                one_run(args, dbs, results, import_file)
        finally:
            dbs.drop_all()
    load_after = os.getloadavg()
    say(f"done in {time.perf_counter() - started:.0f} s")
    print(
        f"\nWrites, median of {args.repeat} run(s); load average (1 min) {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after; nproc {os.cpu_count()}; code: {code_under_test()}\n"
    )
    print(report(args, results))
    if results.problems:
        print("\nProblems:\n" + "\n".join(f"- {p}" for p in results.problems))
    return 1 if results.problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"bench/writes.py: ABORTED: {error}")
