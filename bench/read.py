"""Read latency and rebuild cost of the sanctions service as its log grows.

One store is grown in steps (by default to 1,000, then 100,000, then 1,000,000
events). The data that is read stays the same at every size: the bundled real
timeline (``api/app/data/timeline.jsonl``, 60 events, among them every ``BY`` stream) is
recorded first, then each step fills the log up to its size with synthetic but
valid events on *other* streams (no stream of the bundled timeline, no target
country ``BY``): authority x country x commodity keys spread evenly over every
ISO 3166 code, ``EU`` and ``UN`` and the whole commodity catalogue, eight events
per stream (imposed, expanded, a late expansion effective earlier, eased, lifted,
re-imposed, expanded, then lifted or expanded again). The filler records 1,000
drafts per ``SanctionsLog.record`` call (one transaction), then the projector
catches up (``catch_up(batch_size=5000)``) so every read is of caught-up
read models.

At each size:

- point read: ``Service.status(StatusQuery(...))``;
- country-wide read: the same with only the country ``"BY"``;

each in-process (the function the REST route calls) and over HTTP
(``GET /v1/status?...`` to the app served by uvicorn in a thread of this
process, one keep-alive ``httpx.Client``), cycling over 4 ``as_of`` dates x 3
``known_at`` moments (all fixed once the bundled timeline is recorded). Every
answer is checked against the one given at the first size, and HTTP against
in-process: the answers must not change as the log grows. After 30 warm-up
reads, ``--reps`` timed reads give p50 and p95 (nearest rank) in milliseconds.

At the largest size:

- raw library read + decode of the whole log (``select_notifications`` pages of
  1,000, ``mapper.to_domain_event`` each, nothing projected): events/s;
- ``projector.rebuild(batch_size=5000)`` in this process: events/s, and its
  ratio to the raw rate, each rebuild right after a raw read of its own,
  ``--rebuild-runs`` times (default 3; the pair with the median ratio is kept);
- the same rebuild in a fresh subprocess (the CLI's ``rebuild`` command), whose
  peak RSS is the ``VmHWM`` it reads from ``/proc/self/status`` as it exits (not
  ``getrusage``/``wait4``'s ``ru_maxrss``: on Linux that keeps the high-water mark
  of the image a process replaced at ``execve``, i.e. this loader's RSS at fork),
  next to the peak RSS of a subprocess that only imports the CLI and opens the
  store.

Targets (from the issue): p50 at the largest size <= 1.2 x p50 at the smallest,
for both reads, in-process and over HTTP; rebuild >= 50 % of raw read + decode;
rebuild peak RSS < 300 MB. Phase timings go to stderr as the run goes; the
Markdown tables go to stdout at the end. The default run (SQLite) takes about
13 minutes on a 2-core machine: about 5 loading and projecting 1M events, 7 for
the raw read and the two rebuilds.

Usage::

    .venv/bin/python bench/read.py [--sizes 1000,100000,1000000]
        [--store sqlite|postgres] [--reps N] [--keep DIR] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pycountry
from psycopg.sql import SQL, Identifier
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from serving import BenchError, serving  # bench/serving.py

from api.app.bootstrap import build_service
from api.app.seed import bundled_events, seed
from api.app.service import Service
from api.app.settings import Settings
from api.schemas.queries import DiffQuery, StatusQuery
from domain.application import SanctionsLog
from domain.catalogue import CATALOGUE
from domain.keys import BLOCS, EventFilter, StreamKey
from domain.rules import EventType
from domain.stream import EventDraft

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (1_000, 100_000, 1_000_000)
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ("sqlite", "postgres")
RECORD_BATCH = 1_000  # drafts per `record()` call: one transaction
PROJECT_BATCH = 5_000  # events per projector transaction (catch-up and rebuild)
RAW_PAGE = 1_000  # notifications per page of the raw read + decode
WARMUP = 30
RECORDED_BY = "bench"

TARGET_COUNTRY = "BY"
POINT = EventFilter("US", TARGET_COUNTRY, "potash")
COUNTRY = EventFilter(None, TARGET_COUNTRY, None)
READS = {"point": POINT, "country": COUNTRY, "diff": COUNTRY}
DIFF_TO = date(2025, 12, 16)
"""A diff is asked from each (as_of, known_at) moment to this date as known at the last one."""
AS_OF = (date(2021, 8, 10), date(2022, 6, 1), date(2025, 12, 12), date(2025, 12, 14))

P50_GROWTH_TARGET = 1.2
P50_GROWTH_TARGETS = {"point": P50_GROWTH_TARGET, "country": P50_GROWTH_TARGET, "diff": 1.5}
REBUILD_RATIO_TARGET = 0.5
RSS_TARGET_MB = 300.0

CODES = sorted(str(country.alpha_2) for country in pycountry.countries)
AUTHORITIES = sorted([*CODES, *BLOCS])
COUNTRIES = [code for code in CODES if code != TARGET_COUNTRY]
COMMODITIES = [commodity.slug for commodity in CATALOGUE]
STREAM_SPACE = len(AUTHORITIES) * len(COUNTRIES) * len(COMMODITIES)
STRIDE = 1_000_003  # a prime: n -> n * STRIDE mod STREAM_SPACE visits every key once

# Eight events per synthetic stream, recorded in this order. The third is a late
# event (recorded after the second, effective before it); the last one alternates.
RECIPE: tuple[tuple[EventType, date, tuple[str, ...]], ...] = (
    (EventType.IMPOSED, date(2015, 1, 1), ("import_ban",)),
    (EventType.EXPANDED, date(2016, 1, 1), ("export_ban",)),
    (EventType.EXPANDED, date(2015, 6, 1), ("asset_freeze",)),
    (EventType.EASED, date(2017, 1, 1), ("import_ban",)),
    (EventType.LIFTED, date(2018, 1, 1), ()),
    (EventType.IMPOSED, date(2019, 1, 1), ("financing_ban", "services_ban")),
    (EventType.EXPANDED, date(2020, 1, 1), ("price_cap",)),
)
LAST_STEP_EVEN = (EventType.LIFTED, date(2022, 1, 1), ())
LAST_STEP_ODD = (EventType.EXPANDED, date(2022, 1, 1), ("quota",))
EVENTS_PER_STREAM = len(RECIPE) + 1

console = Console(stderr=True)


def say(message: str) -> None:
    """One line of progress on stderr, stamped with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# The synthetic events


def synthetic_keys(excluded: set[str]) -> Iterator[StreamKey]:
    """Distinct stream keys spread over every authority, country and commodity."""
    for n in range(STREAM_SPACE):
        code, commodity = divmod(n * STRIDE % STREAM_SPACE, len(COMMODITIES))
        authority, country = divmod(code, len(COUNTRIES))
        key = StreamKey(AUTHORITIES[authority], COUNTRIES[country], COMMODITIES[commodity])
        if key.name not in excluded:
            yield key


class Filler:
    """The endless, deterministic sequence of synthetic drafts; each one valid in turn."""

    def __init__(self, excluded: set[str]) -> None:
        self._keys = synthetic_keys(excluded)
        self._key: StreamKey | None = None
        self._streams = 0
        self._step = 0

    def next_draft(self) -> EventDraft:
        if self._step == 0:
            self._key = next(self._keys)
            self._streams += 1
        assert self._key is not None
        if self._step < len(RECIPE):
            kind, day, measures = RECIPE[self._step]
        else:
            kind, day, measures = LAST_STEP_EVEN if self._streams % 2 == 0 else LAST_STEP_ODD
        number = (self._streams - 1) * EVENTS_PER_STREAM + self._step + 1
        self._step = (self._step + 1) % EVENTS_PER_STREAM
        return EventDraft(
            type=kind,
            key=self._key,
            effective_date=day,
            measures=frozenset(measures),
            legal_basis=f"Synthetic benchmark act {number}",
            source={
                "url": f"https://example.org/bench/acts/{number}",
                "title": f"Synthetic act {number}: {kind} on {self._key.name}",
                "published": day.isoformat(),
            },
            note="Synthetic event recorded by bench/read.py to grow the log.",
        )

    def batch(self, size: int) -> list[EventDraft]:
        return [self.next_draft() for _ in range(size)]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@dataclass
class Phase:
    """One timed step of the run, for the phase table."""

    name: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def fill(log: SanctionsLog, filler: Filler, count: int) -> tuple[float, float]:
    """Record `count` synthetic events, RECORD_BATCH per transaction.

    Returns (seconds building drafts, seconds inside `record`).
    """
    building = recording = 0.0
    with progress_bar() as bar:
        task = bar.add_task(f"recording {count:,} events", total=count)
        done = 0
        while done < count:
            started = time.perf_counter()
            drafts = filler.batch(min(RECORD_BATCH, count - done))
            built = time.perf_counter()
            log.record(drafts, recorded_by=RECORDED_BY)
            building += built - started
            recording += time.perf_counter() - built
            done += len(drafts)
            bar.update(task, completed=done)
    return building, recording


def catch_up(svc: Service, behind: int) -> int:
    """Project everything recorded so far, with a progress bar; the events projected."""
    with progress_bar() as bar:
        task = bar.add_task(f"projecting {behind:,} events", total=behind)
        return svc.projector.catch_up(
            batch_size=PROJECT_BATCH,
            progress=lambda done, _position: bar.update(task, completed=done),
        )


# The reads


@dataclass(frozen=True)
class Moment:
    """One (as_of, known_at) pair a read is asked with."""

    as_of: date
    known_at: datetime

    def query(self) -> dict[str, str]:
        return {
            "as_of": self.as_of.isoformat(),
            "known_at": self.known_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


def moments(log: SanctionsLog) -> list[Moment]:
    """4 valid times x 3 transaction times: before the US lift, at it, after the seed."""
    recorded = [r.event.recorded_at for r in log.stream_events(StreamKey("US", "BY", "potash"))]
    known = (recorded[1], recorded[-1], datetime.now(UTC))
    return [Moment(as_of, known_at) for known_at in known for as_of in AS_OF]


def http_query(where: EventFilter, moment: Moment) -> dict[str, str]:
    params = {
        name: value
        for name, value in (
            ("authority", where.authority),
            ("country", where.country),
            ("commodity", where.commodity),
        )
        if value is not None
    }
    return {**params, **moment.query()}


def diff_query(moment: Moment, until: Moment) -> dict[str, str]:
    """The diff from `moment` to `until`, as the REST route's parameters."""
    since, to = moment.query(), until.query()
    return {
        "from_as_of": since["as_of"],
        "from_known_at": since["known_at"],
        "to_as_of": to["as_of"],
        "to_known_at": to["known_at"],
    }


def in_process(
    svc: Service, name: str, where: EventFilter, until: Moment
) -> Callable[[Moment], Any]:
    keys = {"authority": where.authority, "country": where.country, "commodity": where.commodity}
    if name == "diff":
        return lambda m: svc.diff(DiffQuery.of(**keys, **diff_query(m, until)))
    return lambda m: svc.status(StatusQuery.of(**keys, **m.query()))


def over_http(
    client: httpx.Client, name: str, where: EventFilter, until: Moment
) -> Callable[[Moment], Any]:
    path = "/v1/status/diff" if name == "diff" else "/v1/status"

    def read(moment: Moment) -> httpx.Response:
        params = http_query(where, moment)
        if name == "diff":
            params = {k: v for k, v in params.items() if k not in ("as_of", "known_at")}
            params.update(diff_query(moment, until))
        response = client.get(path, params=params)
        if response.status_code != 200:
            raise BenchError(f"GET {path} answered {response.status_code}: {response.text}")
        return response

    return read


def timings(read: Callable[[Moment], Any], when: list[Moment], reps: int) -> list[float]:
    """Milliseconds of `reps` reads after WARMUP untimed ones, cycling over `when`."""
    for rep in range(WARMUP):
        read(when[rep % len(when)])
    samples = []
    for rep in range(reps):
        moment = when[rep % len(when)]
        started = time.perf_counter()
        read(moment)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank q-th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class ReadFigures:
    """p50 and p95 (ms) by (size, read, mode)."""

    p50: dict[tuple[int, str, str], float] = field(default_factory=dict)
    p95: dict[tuple[int, str, str], float] = field(default_factory=dict)

    def add(self, size: int, read: str, mode: str, samples: list[float]) -> None:
        self.p50[(size, read, mode)] = percentile(samples, 50)
        self.p95[(size, read, mode)] = percentile(samples, 95)


def answers(svc: Service, client: httpx.Client, when: list[Moment]) -> dict[str, list[Any]]:
    """Every answer of the measured reads, checking that HTTP says what the function says."""
    found: dict[str, list[Any]] = {}
    until = Moment(DIFF_TO, when[-1].known_at)
    for name, where in READS.items():
        found[name] = []
        for moment in when:
            direct = in_process(svc, name, where, until)(moment)
            direct = direct.model_dump(mode="json", by_alias=True)
            remote = over_http(client, name, where, until)(moment).json()
            if remote != direct:
                raise BenchError(f"{name} read at {moment}: HTTP and in-process answers differ")
            found[name].append(direct)
    if not any(row["results"] for row in found["country"]):
        raise BenchError("the country-wide read found nothing: the seed is missing")
    if not any(answer["changes"] for answer in found["diff"]):
        raise BenchError("no diff found a change: the seed is missing")
    return found


def measure_reads(
    svc: Service,
    client: httpx.Client,
    when: list[Moment],
    size: int,
    reps: int,
    figures: ReadFigures,
) -> None:
    until = Moment(DIFF_TO, when[-1].known_at)
    for name, where in READS.items():
        modes = {
            "in-process": in_process(svc, name, where, until),
            "http": over_http(client, name, where, until),
        }
        for mode, read in modes.items():
            samples = timings(read, when, reps)
            figures.add(size, name, mode, samples)
            say(
                f"  {size:>9,} events  {name:7} {mode:10}  p50 {percentile(samples, 50):7.2f} ms"
                f"  p95 {percentile(samples, 95):7.2f} ms"
            )


# The rebuild


def raw_read_decode(log: SanctionsLog) -> Phase:
    """The raw library's rate: read every notification in pages and decode it, nothing more."""
    started = time.perf_counter()
    position = count = 0
    while True:
        page = log.recorder.select_notifications(
            start=position, limit=RAW_PAGE, inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            log.mapper.to_domain_event(notification)
        count += len(page)
        position = page[-1].id
    return Phase("raw read + decode (library, in-process)", count, time.perf_counter() - started)


def rebuild_in_process(svc: Service, total: int) -> Phase:
    with progress_bar() as bar:
        task = bar.add_task("rebuilding", total=total)
        report = svc.projector.rebuild(
            batch_size=PROJECT_BATCH,
            progress=lambda done, _position: bar.update(task, completed=done),
        )
    say(f"  read models after rebuild: {report.rows}")
    return Phase("rebuild (in-process)", report.events, report.seconds)


@dataclass(frozen=True)
class Child:
    """What a finished subprocess left: exit code, output, peak resident set sizes (MB)."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # VmHWM of the child's own image, as it reported it at exit
    ru_maxrss_mb: float  # os.wait4's ru_maxrss: includes the loader's RSS at fork


# Linux carries the high-water mark of the image a process replaces across execve
# (the kernel keeps max(old mm's peak, new mm's peak) in ru_maxrss), and a child is
# forked from this loader: getrusage(RUSAGE_CHILDREN) or wait4's ru_maxrss therefore
# never reads below the loader's own RSS at the fork. VmHWM in /proc/self/status
# belongs to the address space the child's exec created, so the child reads that at
# exit and prints it; ru_maxrss is kept beside it for comparison.
PEAK_PROBE = """\
import atexit, runpy, sys

def _peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print("PEAK_RSS_KIB", line.split()[1], file=sys.stderr, flush=True)

atexit.register(_peak)
"""
RUN_CLI = PEAK_PROBE + (
    "sys.argv = ['sanctions', *sys.argv[1:]]\n"
    "runpy.run_module('api.cli.main', run_name='__main__', alter_sys=True)\n"
)
OPEN_ONLY = PEAK_PROBE + (
    "from api.app.bootstrap import build_service\n"
    "from api.app.settings import Settings\n"
    "import api.cli.main\n"
    "svc = build_service(Settings())\n"
    "print(svc.log.recorder.max_notification_id())\n"
    "svc.log.close()\n"
)
PEAK = re.compile(r"^PEAK_RSS_KIB (\d+)$", re.MULTILINE)
REBUILT = re.compile(r"(\d+) events projected in ([\d.]+) s")


def run_child(code: str, args: list[str], database_url: str) -> Child:
    """Run `python -c code args...` on the store; its peak RSS, and wait4's figure."""
    env = {**os.environ, "SANCTIONS_DATABASE_URL": database_url, "COLUMNS": "200"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise BenchError(f"child {args or code[-60:]!r} failed: {stderr[-2000:]}")
    peak = PEAK.search(stderr)
    if peak is None:
        raise BenchError(f"child {args or code[-60:]!r} did not report its peak RSS")
    # Both figures are in KiB on Linux.
    return Child(process.returncode, stdout, stderr, int(peak[1]) / 1024, usage.ru_maxrss / 1024)


def rebuild_in_child(database_url: str) -> tuple[Phase, float, float]:
    """The CLI's rebuild in a fresh process: its rate, its peak RSS, and an idle child's RSS."""
    idle = run_child(OPEN_ONLY, [], database_url)
    child = run_child(RUN_CLI, ["rebuild", "--batch", str(PROJECT_BATCH)], database_url)
    found = REBUILT.search(child.stdout)
    if found is None:
        raise BenchError(f"cannot read the rebuild's report in: {child.stdout[-2000:]}")
    say(
        f"  peak RSS (VmHWM): rebuild {child.peak_rss_mb:.0f} MB, open only "
        f"{idle.peak_rss_mb:.0f} MB; wait4 ru_maxrss would say {child.ru_maxrss_mb:.0f} "
        f"and {idle.ru_maxrss_mb:.0f} MB (this loader's RSS at fork counts there)"
    )
    phase = Phase("rebuild (`python -m api.cli.main rebuild`)", int(found[1]), float(found[2]))
    return phase, child.peak_rss_mb, idle.peak_rss_mb


# The store and the server


@contextlib.contextmanager
def store_url(kind: str, postgres_url: str, keep: Path | None) -> Iterator[str]:
    """A fresh, empty store; a PostgreSQL schema is dropped at the end, a temp dir removed."""
    suffix = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            path = keep.resolve() / f"bench-read-{suffix}.db"
            say(f"keeping the SQLite store at {path}")
            yield f"sqlite:///{path}"
            return
        with tempfile.TemporaryDirectory(prefix="bench-read-") as workdir:
            yield f"sqlite:///{Path(workdir) / 'bench-read.db'}"
        return
    schema = f"benchread_{suffix}"
    try:
        yield f"{postgres_url}?{urlencode({'schema': schema})}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))
        say(f"dropped schema {schema}")


def settle(url: str) -> None:
    """On PostgreSQL, `VACUUM (ANALYZE)` the store's tables after a fill, as autovacuum
    would in a running deployment: reads are then timed against a settled database, not
    while autovacuum works through the rows just written (which moved p95 by tens of ms)."""
    if not url.startswith("postgresql"):
        return
    base, _, query = url.partition("?")
    schema = query.removeprefix("schema=")
    started = time.perf_counter()
    with psycopg.connect(base, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            conn.execute(SQL("VACUUM (ANALYZE) {}").format(Identifier(schema, table)))
    say(f"  vacuumed and analysed {len(tables)} tables in {_since(started):.1f} s")


# The run


@dataclass
class Results:
    sizes: list[int]
    reads: ReadFigures = field(default_factory=ReadFigures)
    phases: list[Phase] = field(default_factory=list)
    raw: Phase | None = None
    rebuild: Phase | None = None
    child_rebuild: Phase | None = None
    rebuild_runs: int = 1
    peak_rss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    database_bytes: int | None = None


def grow(svc: Service, filler: Filler, total: int, size: int, results: Results) -> None:
    """Record synthetic events from `total` up to `size`, then project them all."""
    count = size - total
    say(f"filling {total:,} -> {size:,} events")
    started = time.perf_counter()
    building, recording = fill(svc.log, filler, count)
    recorded = Phase(f"record -> {size:,} (1,000/tx)", count, _since(started))
    say(
        f"  recorded {count:,} in {recorded.seconds:.1f} s ({recorded.rate:,.0f} ev/s): "
        f"{building:.1f} s building drafts, {recording:.1f} s in record()"
    )
    started = time.perf_counter()
    projected = catch_up(svc, svc.projector.lag())
    caught_up = Phase(f"catch up -> {size:,} (5,000/tx)", projected, _since(started))
    say(f"  projected {projected:,} in {caught_up.seconds:.1f} s ({caught_up.rate:,.0f} ev/s)")
    results.phases += [recorded, caught_up]


def rebuilds(svc: Service, url: str, total: int, runs: int, results: Results) -> None:
    """Raw read + decode then the rebuild in this process, `runs` times (the pair with
    the median ratio is kept: each rebuild against the baseline measured beside it, as
    other jobs come and go), then the rebuild in a fresh process."""
    say(f"rebuild at {total:,} events")
    pairs = []
    for _ in range(runs):
        raw = raw_read_decode(svc.log)
        say(f"  raw read + decode: {raw.seconds:.1f} s ({raw.rate:,.0f} ev/s)")
        rebuilt = rebuild_in_process(svc, total)
        say(
            f"  rebuild: {rebuilt.seconds:.1f} s ({rebuilt.rate:,.0f} ev/s,"
            f" {rebuilt.rate / raw.rate:.0%} of raw)"
        )
        pairs.append((raw, rebuilt))
    pairs.sort(key=lambda pair: pair[1].rate / pair[0].rate)
    results.raw, results.rebuild = pairs[len(pairs) // 2]
    results.rebuild_runs = runs
    phase, peak, idle = rebuild_in_child(url)
    results.child_rebuild, results.peak_rss_mb, results.idle_rss_mb = phase, peak, idle
    say(
        f"  rebuild in a subprocess: {phase.seconds:.1f} s ({phase.rate:,.0f} ev/s), "
        f"peak RSS {peak:.0f} MB (open only: {idle:.0f} MB)"
    )


def run(args: argparse.Namespace) -> Results:
    results = Results(args.sizes)
    with store_url(args.store, args.postgres_url, args.keep) as url:
        say(f"store: {url}")
        svc = build_service(Settings(database_url=url, embedded_projector=False))
        with serving(svc) as client:
            started = time.perf_counter()
            seeded = seed(svc).recorded
            results.phases.append(
                Phase("record the bundled timeline (1 event/tx)", seeded, _since(started))
            )
            when = moments(svc.log)
            filler = Filler({event.draft().key.name for event in bundled_events()})
            total = seeded
            reference: dict[str, list[Any]] | None = None
            for size in args.sizes:
                grow(svc, filler, total, size, results)
                settle(url)
                total = size
                found = answers(svc, client, when)
                if reference is None:
                    reference = found
                elif found != reference:
                    raise BenchError(f"the measured answers changed at {size:,} events")
                measure_reads(svc, client, when, size, args.reps, results.reads)
            if not args.reads_only:
                rebuilds(svc, url, total, args.rebuild_runs, results)
            if answers(svc, client, when) != reference:
                raise BenchError("the measured answers changed after the rebuilds")
        if args.store == "sqlite":
            path = Path(url.split("://", 1)[1])
            results.database_bytes = sum(
                p.stat().st_size for p in path.parent.glob(path.name + "*")
            )
    return results


def _since(started: float) -> float:
    return time.perf_counter() - started


# The report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def read_table(results: Results, read: str) -> str:
    figures = results.reads
    lines = [
        "| events | in-process p50 | in-process p95 | HTTP p50 | HTTP p95 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in results.sizes:
        cells = [
            f"{table[(size, read, mode)]:.2f}"
            for mode in ("in-process", "http")
            for table in (figures.p50, figures.p95)
        ]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def phase_table(phases: list[Phase]) -> str:
    lines = ["| phase | events | seconds | events/s |", "|---|---:|---:|---:|"]
    lines += [f"| {p.name} | {p.events:,} | {p.seconds:.1f} | {p.rate:,.0f} |" for p in phases]
    return "\n".join(lines)


def target_table(results: Results) -> str:
    small, large = results.sizes[0], results.sizes[-1]
    lines = ["| measure | value | target | |", "|---|---:|---:|---|"]
    for read in READS:
        for mode in ("in-process", "http"):
            ratio = results.reads.p50[(large, read, mode)] / results.reads.p50[(small, read, mode)]
            target = P50_GROWTH_TARGETS[read]
            lines.append(
                f"| {read} read p50, {mode}: {large:,} / {small:,} events | {ratio:.2f} "
                f"| ≤ {target:.1f} | {verdict(ratio <= target)} |"
            )
    if results.raw is None:  # --reads-only
        return "\n".join(lines)
    assert results.raw is not None and results.rebuild is not None
    ratio = results.rebuild.rate / results.raw.rate
    lines.append(
        f"| rebuild / raw read + decode ({results.rebuild.rate:,.0f} / "
        f"{results.raw.rate:,.0f} ev/s; median of {results.rebuild_runs}) | {ratio:.0%} "
        f"| ≥ {REBUILD_RATIO_TARGET:.0%} "
        f"| {verdict(ratio >= REBUILD_RATIO_TARGET)} |"
    )
    if results.child_rebuild is not None:
        child = results.child_rebuild.rate / results.raw.rate
        lines.append(
            f"| same, rebuild in the CLI subprocess ({results.child_rebuild.rate:,.0f} ev/s) "
            f"| {child:.0%} | ≥ {REBUILD_RATIO_TARGET:.0%} "
            f"| {verdict(child >= REBUILD_RATIO_TARGET)} |"
        )
    lines.append(
        f"| rebuild peak RSS, MB (a child that only opens the store: "
        f"{results.idle_rss_mb:.0f} MB) | {results.peak_rss_mb:.0f} | < {RSS_TARGET_MB:.0f} "
        f"| {verdict(results.peak_rss_mb < RSS_TARGET_MB)} |"
    )
    return "\n".join(lines)


def report(results: Results, args: argparse.Namespace) -> str:
    phases = [*results.phases]
    phases += [p for p in (results.raw, results.rebuild, results.child_rebuild) if p is not None]
    size = ""
    if results.database_bytes is not None:
        size = f", database {results.database_bytes / 2**20:,.0f} MiB at the end"
    return "\n\n".join(
        [
            f"## bench/read.py: {args.store}, sizes {', '.join(f'{s:,}' for s in args.sizes)}, "
            f"{args.reps} timed reads each (after {WARMUP} warm-up){size}",
            f"### Point read `US/BY/potash` (ms)\n\n{read_table(results, 'point')}",
            f"### Country-wide read `country=BY` (ms)\n\n{read_table(results, 'country')}",
            "### Diff `country=BY` from each moment to 2025-12-16 as known at the last (ms)"
            f"\n\n{read_table(results, 'diff')}",
            f"### Targets\n\n{target_table(results)}",
            f"### Phases\n\n{phase_table(phases)}",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="comma-separated, increasing log sizes in events",
    )
    parser.add_argument("--store", choices=STORES, default="sqlite", help="which database")
    parser.add_argument("--reps", type=int, default=300, help="timed reads per figure")
    parser.add_argument(
        "--reads-only", action="store_true", help="measure the reads, skip the rebuilds"
    )
    parser.add_argument(
        "--rebuild-runs",
        type=int,
        default=3,
        help="in-process rebuilds, each after its own raw read + decode (median kept)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the SQLite file in DIR")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL database")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size]
    except ValueError:
        parser.error("--sizes takes comma-separated integers")
    seeded = len(bundled_events())
    if not args.sizes or args.sizes != sorted(set(args.sizes)) or args.sizes[0] < seeded:
        parser.error(f"--sizes must be increasing, the first at least {seeded} (the seed)")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.rebuild_runs < 1:
        parser.error("--rebuild-runs must be at least 1")
    if args.keep is not None and args.store != "sqlite":
        parser.error("--keep applies to --store sqlite only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    results = run(args)
    say(f"done in {_since(started) / 60:.1f} min")
    print(report(results, args))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"bench/read.py: ABORTED: {error}")
