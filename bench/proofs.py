"""Merkle proofs of the log as it grows, and what keeping the tree costs the writes.

Two parts, each on SQLite (a fresh temporary directory per database) and PostgreSQL
(a fresh schema of ``postgresql://postgres@127.0.0.1:5432/test`` per database, dropped
after); the signing key goes to the same temporary directory, never to ``data/``.

**Proof latency** at a small and a large tree (by default 1,000 and 1,000,000
leaves), one store of each size open at once:

- the small store holds 1,000 real events, recorded through ``Service.record``
  (100 drafts a call, each ``imposed`` on a stream of its own) and projected, so its
  tree is built by the projector;
- the large store first gets 999,000 **synthetic** leaves written straight into the
  tree tables with ``LogTree.write_tree`` (50,000 leaves a transaction, every node
  computed with ``domain.merkle.appended``; random 32-byte leaf data, random event ids
  that are in no event of the log, position 0), then the same 1,000 real events
  recorded and projected through the service as above: they are leaves 999,000 to
  999,999, and their ``leaf_of`` look-ups hit rows the projector wrote. A proof reads
  only the tree tables (and the leaf's row), so it costs the same as over a log of
  1M real events; synthetic position 0 keeps the projector appending after them.

Before timing, the expected root of each tree is computed in memory as it is built,
and sampled proofs are checked against it with ``domain.merkle``'s RFC 9162
verifiers; every HTTP answer sampled must equal the in-process one.

Timed, each in-process (``Notary.inclusion`` / ``Notary.consistency`` /
``Notary.checkpoint``, the methods the routes call) and over HTTP (uvicorn serving
the app in a thread of this process, one keep-alive ``httpx.Client``; the routes
``GET /v1/audit/proof/inclusion?event_id=&size=``,
``/v1/audit/proof/consistency?from=&to=``, ``/v1/audit/checkpoint``):

- inclusion, real events: each real event, against the whole tree half the time and
  a random size that holds it otherwise;
- inclusion, any leaf: a random leaf anywhere in the tree (at 1M nearly always a
  synthetic one, with the longest audit paths), sizes likewise;
- consistency: ``to`` the whole tree half the time, else random; ``from`` random below;
- checkpoint: the latest signed checkpoint (signed during warm-up; then a read).

``--rounds`` rounds; in each, per (proof, mode), 20 warm-up calls then ``--reps``
timed ones on each store, the two stores taking turns call by call (so both see
the same moments of a shared, busy machine), give a p50 and p95 (nearest rank). The
figure is the median of the rounds' figures; "spread" is the min-max of the p50s.

**Write throughput with and without the tree.** ``Service.record`` (the path the
REST POST takes: rules, hash chain, one transaction, then the embedded projector
catches up before it returns - read-your-writes), single events (one draft a call)
and batches of 100, each event ``imposed`` on a stream of its own, on a fresh
pair of databases every run: one as is, one with ``LogTree.append_leaves`` replaced
by a no-op (patched in this process only, and only while that database records; the
run then checks its tree stayed empty). The two take turns, 50 single events or 5
batches at a time, who goes first alternating, so both see the same moments of a
busy machine; each side's ev/s is its events over the time spent in its own turns.
``--runs`` runs; medians of ev/s are reported, cost = 1 - with / without; beside it,
the median of the cost measured on every pair of turns (robust to bursts of load from
other processes, which a single turn rarely straddles). The tree
grows from empty to the run's size (its frontier, read on every append, has at most
log2(n) nodes); "runs' costs" is the min-max of the runs' paired costs.

Targets: proof p50 at the large size <= 1.5 x at the small; tree cost <= 10 %.
Progress goes to stderr; the Markdown tables to stdout at the end. The default run
takes about 10 minutes on a 2-core machine (17 minutes while other test suites shared it);
``--quick`` (100,000 leaves, 3 rounds of 100 calls, 3 runs of 300 single and 2,000
batched events) about 2 minutes.

Usage::

    .venv/bin/python bench/proofs.py [--quick] [--stores sqlite,postgres]
        [--sizes 1000,1000000] [--rounds N] [--reps N] [--runs N]
        [--single-events N] [--batch-events N] [--parts proofs,writes]
        [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pycountry
from psycopg.sql import SQL, Identifier
from serving import BenchError, serving  # bench/serving.py

from api.app.bootstrap import build_service
from api.app.service import Service
from api.app.settings import Settings
from domain.keys import StreamKey
from domain.merkle import (
    Node,
    appended,
    fold,
    frontier,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from domain.rules import MEASURES, EventType
from domain.stream import EventDraft
from projections.log.tree import Leaf, LogTree

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ("sqlite", "postgres")
PARTS = ("proofs", "writes")
DEFAULT_SIZES = (1_000, 1_000_000)
QUICK_SIZES = (1_000, 100_000)
FILL_BATCH = 50_000  # synthetic leaves per transaction
RECORD_BATCH = 100  # real drafts per `record` call when building the proof stores
WARMUP = 20
QUERIES = 400  # distinct requests per workload, cycled over
CHECKED = 40  # of which verified (and compared with HTTP) before timing
WRITE_WARMUP = 20  # untimed events at the start of each write run
BATCH_SIZE = 100
SINGLE_CHUNK = 50  # events recorded into one database before the other's turn
BATCH_CHUNK = 500
RECORDED_BY = "bench"
SEED = 9162

PROOF_RATIO_TARGET = 1.5
TREE_COST_TARGET = 0.10

CODES = sorted(str(country.alpha_2) for country in pycountry.countries)
PAIRS = [(authority, country) for authority in CODES for country in CODES]
FIRST_MEASURE = MEASURES[0]


def say(message: str) -> None:
    """One line of progress on stderr, stamped with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# Databases


@contextlib.contextmanager
def fresh_database(kind: str, postgres_url: str, workdir: Path) -> Iterator[Settings]:
    """Settings for a new, empty database of `kind` (and a signing key beside it, in a
    temporary directory); the database is removed on leaving."""
    with tempfile.TemporaryDirectory(prefix="run-", dir=workdir) as tmp:
        key_file = Path(tmp) / "signing.key"
        if kind == "sqlite":
            yield Settings(database_url=f"sqlite:///{tmp}/bench.db", signing_key_file=key_file)
            return
        schema = f"bench_proofs_{uuid.uuid4().hex[:10]}"
        url = f"{postgres_url}?{urlencode({'schema': schema})}"
        try:
            yield Settings(database_url=url, signing_key_file=key_file)
        finally:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


def draft(index: int) -> EventDraft:
    """The `index`-th event of a database: `imposed` on a stream of its own."""
    authority, country = PAIRS[index]
    return EventDraft(
        type=EventType.IMPOSED,
        key=StreamKey(authority, country, "potash"),
        effective_date=date(2021, 1, 1),
        measures=frozenset({FIRST_MEASURE}),
        legal_basis=f"Synthetic benchmark act {index}",
        source={
            "url": f"https://example.org/bench/proofs/{index}",
            "title": f"Synthetic act {index}",
            "published": "2021-01-01",
        },
        note="Recorded by bench/proofs.py.",
    )


def record(svc: Service, first: int, count: int, per_call: int) -> None:
    for start in range(first, first + count, per_call):
        drafts = [draft(i) for i in range(start, min(start + per_call, first + count))]
        written = svc.record(drafts, recorded_by=RECORDED_BY)
        if written.projection_pending:
            raise BenchError("a write came back with its projection pending")


# Part 1: proofs


def tree_of(svc: Service) -> LogTree:
    return svc.projector.view.tree


def fill_synthetic(tree: LogTree, count: int, rng: random.Random) -> dict[Node, bytes]:
    """Write `count` synthetic leaves (and all their nodes) into an empty tree, through
    `LogTree.write_tree`, FILL_BATCH a transaction; the tree's frontier hashes."""
    size, edge = 0, dict[Node, bytes]()
    started = time.perf_counter()
    while size < count:
        number = min(FILL_BATCH, count - size)
        leaves = [
            Leaf(0, str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.randbytes(32))
            for _ in range(number)
        ]
        created = appended(size, edge, [leaf.data for leaf in leaves])
        with tree.tables.transaction(commit=True) as cursor:
            tree.write_tree(cursor, size, leaves, created)
        known = {**edge, **created}
        size += number
        edge = {node: known[node] for node in frontier(size)}
        if size % (FILL_BATCH * 4) == 0 or size == count:
            say(f"    {size:>9,} synthetic leaves written ({time.perf_counter() - started:.0f} s)")
    return edge


@dataclass
class Inclusion:
    event_id: uuid.UUID
    size: int


@dataclass
class Consistency:
    old: int
    new: int


@dataclass
class ProofStore:
    """One open store of a given tree size, served over HTTP too."""

    kind: str
    size: int
    synthetic: int
    svc: Service
    client: httpx.Client
    root: bytes
    real: list[tuple[uuid.UUID, int]]  # event id, leaf index
    anywhere: list[tuple[uuid.UUID, int]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.size:,}"


def build_proof_store(settings: Settings, size: int, real: int, rng: random.Random) -> Service:
    """A service whose tree has `size` leaves, the last `real` of them real events."""
    svc = build_service(settings)
    tree = tree_of(svc)
    synthetic = size - real
    edge: dict[Node, bytes] = {}
    if synthetic:
        say(f"  writing {synthetic:,} synthetic leaves ({settings.database_url.split(':')[0]})")
        edge = fill_synthetic(tree, synthetic, rng)
    started = time.perf_counter()
    record(svc, 0, real, RECORD_BATCH)
    say(f"  recorded {real:,} real events in {time.perf_counter() - started:.1f} s")
    if tree.tree_size() != size:
        raise BenchError(f"the tree has {tree.tree_size():,} leaves, not {size:,}")
    tail = tree.tree_leaves(synthetic, size)
    created = appended(synthetic, edge, [data for _, data in tail])
    known = {**edge, **created}
    svc_root = tree.tree_root(size)
    if svc_root != fold([known[node] for node in frontier(size)]):
        raise BenchError(f"the stored tree of {size:,} leaves has another root than computed")
    return svc


def sample_leaves(store: ProofStore, rng: random.Random, count: int) -> None:
    tree = tree_of(store.svc)
    for index in sorted(rng.randrange(store.size) for _ in range(count)):
        ((event_id, _),) = tree.tree_leaves(index, index + 1)
        store.anywhere.append((uuid.UUID(event_id), index))


def size_for(index: int, whole: int, rng: random.Random) -> int:
    """The whole tree half the time, else a random size that holds leaf `index`."""
    return whole if rng.random() < 0.5 else rng.randint(index + 1, whole)


def inclusion_queries(
    leaves: list[tuple[uuid.UUID, int]], whole: int, rng: random.Random
) -> list[Inclusion]:
    picks = [rng.choice(leaves) for _ in range(QUERIES)]
    return [Inclusion(event_id, size_for(index, whole, rng)) for event_id, index in picks]


def consistency_queries(whole: int, rng: random.Random) -> list[Consistency]:
    queries = []
    for _ in range(QUERIES):
        new = whole if rng.random() < 0.5 else rng.randint(2, whole)
        queries.append(Consistency(rng.randint(1, new - 1), new))
    return queries


def http_ok(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise BenchError(
            f"GET {response.request.url.path} answered {response.status_code}: {response.text}"
        )
    return response


Call = Callable[[Any], Any]


@dataclass
class Workload:
    name: str
    queries: list[Any]
    in_process: Call
    http: Call


def workloads(store: ProofStore, rng: random.Random) -> list[Workload]:
    notary, client = store.svc.notary, store.client

    def inclusion_http(q: Inclusion) -> Any:
        params: dict[str, str | int] = {"event_id": str(q.event_id), "size": q.size}
        return http_ok(client.get("/v1/audit/proof/inclusion", params=params)).json()

    def consistency_http(q: Consistency) -> Any:
        params = {"from": q.old, "to": q.new}
        return http_ok(client.get("/v1/audit/proof/consistency", params=params)).json()

    return [
        Workload(
            "inclusion, real events",
            inclusion_queries(store.real, store.size, rng),
            lambda q: notary.inclusion(q.event_id, q.size),
            inclusion_http,
        ),
        Workload(
            "inclusion, any leaf",
            inclusion_queries(store.anywhere, store.size, rng),
            lambda q: notary.inclusion(q.event_id, q.size),
            inclusion_http,
        ),
        Workload(
            "consistency",
            consistency_queries(store.size, rng),
            lambda q: notary.consistency(q.old, q.new),
            consistency_http,
        ),
        Workload(
            "checkpoint (latest)",
            [None],
            lambda _: notary.checkpoint(),
            lambda _: http_ok(client.get("/v1/audit/checkpoint")).text,
        ),
    ]


def check(store: ProofStore, work: Workload) -> None:
    """Verify the first CHECKED answers (RFC 9162) and that HTTP answers the same."""
    tree = tree_of(store.svc)
    for query in work.queries[:CHECKED]:
        out = work.in_process(query)
        if isinstance(query, Inclusion):
            found = tree.leaf_of(str(query.event_id))
            assert found is not None
            index, data = found
            path = [bytes.fromhex(h) for h in out.hashes]
            ok = verify_inclusion(index, query.size, leaf_hash(data), path, bytes.fromhex(out.root))
            if not ok or (query.size == store.size and bytes.fromhex(out.root) != store.root):
                raise BenchError(f"{store.label}: a wrong inclusion proof for {query}")
            direct: Any = out.model_dump(mode="json")
        elif isinstance(query, Consistency):
            ok = verify_consistency(
                query.old,
                query.new,
                bytes.fromhex(out.from_root),
                bytes.fromhex(out.to_root),
                [bytes.fromhex(h) for h in out.hashes],
            )
            if not ok or (query.new == store.size and bytes.fromhex(out.to_root) != store.root):
                raise BenchError(f"{store.label}: a wrong consistency proof for {query}")
            direct = out.model_dump(mode="json")
        else:
            if out.size != store.size or out.root != store.root.hex():
                raise BenchError(f"{store.label}: the checkpoint is not of the whole tree")
            direct = out.note
        if work.http(query) != direct:
            raise BenchError(f"{store.label} {work.name}: HTTP and in-process answers differ")


def interleaved(
    calls: Sequence[tuple[Call, list[Any]]], reps: int, offset: int
) -> list[list[float]]:
    """Milliseconds of `reps` calls of each (call, queries), after WARMUP untimed ones,
    taking turns call by call (who goes first alternating), each cycling over its
    queries: the stores see the same moments of a busy machine."""
    for rep in range(WARMUP):
        for call, queries in calls:
            call(queries[(offset + rep) % len(queries)])
    samples: list[list[float]] = [[] for _ in calls]
    for rep in range(reps):
        turn = range(len(calls)) if rep % 2 == 0 else reversed(range(len(calls)))
        for which in turn:
            call, queries = calls[which]
            query = queries[(offset + WARMUP + rep) % len(queries)]
            started = time.perf_counter()
            call(query)
            samples[which].append((time.perf_counter() - started) * 1000)
    return samples


@dataclass
class ProofFigures:
    """The p50 (ms) of each round, by (store kind, size, workload, mode)."""

    p50s: dict[tuple[str, int, str, str], list[float]] = field(default_factory=dict)
    p95s: dict[tuple[str, int, str, str], list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, key: tuple[str, int, str, str], samples: list[float]) -> None:
        self.p50s.setdefault(key, []).append(percentile(samples, 50))
        self.p95s.setdefault(key, []).append(percentile(samples, 95))


def measure_proofs(
    kind: str, args: argparse.Namespace, workdir: Path, figures: ProofFigures
) -> None:
    small, large = args.sizes
    real = small
    rng = random.Random(SEED)
    with contextlib.ExitStack() as stack:
        stores: list[ProofStore] = []
        for size in (small, large):
            settings = stack.enter_context(fresh_database(kind, args.postgres_url, workdir))
            say(f"{kind}: building a tree of {size:,} leaves ({size - real:,} synthetic)")
            started = time.perf_counter()
            svc = build_proof_store(settings, size, real, rng)
            say(f"  built in {time.perf_counter() - started:.0f} s")
            client = stack.enter_context(serving(svc))
            tree = tree_of(svc)
            tail = tree.tree_leaves(size - real, size)
            store = ProofStore(
                kind,
                size,
                size - real,
                svc,
                client,
                tree.tree_root(size),
                [(uuid.UUID(event_id), size - real + i) for i, (event_id, _) in enumerate(tail)],
            )
            sample_leaves(store, rng, QUERIES)
            stores.append(store)
        works = {store.size: workloads(store, rng) for store in stores}
        for store in stores:
            for work in works[store.size]:
                check(store, work)
        say(f"{kind}: proofs verified (RFC 9162) and HTTP answers equal in-process ones")
        for round_ in range(args.rounds):
            for number, name in enumerate(work.name for work in works[small]):
                for mode in ("in-process", "http"):
                    pairs = []
                    for store in stores:
                        (work,) = [w for w in works[store.size] if w.name == name]
                        call = work.in_process if mode == "in-process" else work.http
                        pairs.append((call, work.queries))
                    offset = (round_ * len(WORKLOAD_ORDER) + number) * args.reps
                    for store, samples in zip(
                        stores, interleaved(pairs, args.reps, offset), strict=True
                    ):
                        figures.add((kind, store.size, name, mode), samples)
            say(f"{kind}: round {round_ + 1}/{args.rounds} done  (load {load()})")
            for work in works[small]:
                for mode in ("in-process", "http"):
                    low = figures.p50s[(kind, small, work.name, mode)][-1]
                    high = figures.p50s[(kind, large, work.name, mode)][-1]
                    say(
                        f"    {work.name:24} {mode:10} p50 {low:6.3f} ms at {small:,},"
                        f" {high:6.3f} ms at {large:,}  x{high / low:.2f}"
                    )


def proof_table(figures: ProofFigures, kinds: list[str], sizes: tuple[int, int]) -> str:
    small, large = sizes
    lines = [
        f"| store | proof | via | p50 ms, {small:,} | p50 ms, {large:,} | ratio"
        f" | p95 ms, {small:,} | p95 ms, {large:,} | spread of round p50s, {large:,} |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    names = sorted({key[2] for key in figures.p50s}, key=WORKLOAD_ORDER.index)
    for kind in kinds:
        for name in names:
            for mode in ("in-process", "http"):
                low = statistics.median(figures.p50s[(kind, small, name, mode)])
                high_runs = figures.p50s[(kind, large, name, mode)]
                high = statistics.median(high_runs)
                p95_low = statistics.median(figures.p95s[(kind, small, name, mode)])
                p95_high = statistics.median(figures.p95s[(kind, large, name, mode)])
                lines.append(
                    f"| {STORE_NAMES[kind]} | {name} | {mode} | {low:.3f} | {high:.3f}"
                    f" | {high / low:.2f} | {p95_low:.3f} | {p95_high:.3f}"
                    f" | {min(high_runs):.3f}-{max(high_runs):.3f} |"
                )
    return "\n".join(lines)


WORKLOAD_ORDER = [
    "inclusion, real events",
    "inclusion, any leaf",
    "consistency",
    "checkpoint (latest)",
]
STORE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


# Part 2: writes with and without the tree


def no_append(self: LogTree, cursor: Any, leaves: Sequence[Leaf], suffix: str = "") -> int:
    return 0


@contextlib.contextmanager
def tree_disabled() -> Iterator[None]:
    """`LogTree.append_leaves` as a no-op, in this process, until leaving (the status
    view holds a LogTree, and no class overrides its method)."""
    if LogTree.__subclasses__():
        raise BenchError("LogTree has subclasses, which may override append_leaves")
    original = LogTree.append_leaves
    LogTree.append_leaves = no_append  # type: ignore[method-assign]
    try:
        yield
    finally:
        LogTree.append_leaves = original  # type: ignore[method-assign]


def write_pair(
    with_tree: Settings, without: Settings, events: int, per_call: int, chunk: int
) -> tuple[dict[bool, float], list[float]]:
    """Events per second recording `events` (after WRITE_WARMUP untimed) into each of two
    new databases, one with the tree and one without, `chunk` events at a time in turns
    (who goes first alternating): both see the same moments of a busy machine. Also the
    cost measured on each pair of turns (1 - its time without / its time with)."""
    services = {True: build_service(with_tree), False: build_service(without)}
    seconds = {True: 0.0, False: 0.0}
    pair_costs = []
    try:
        for tree, svc in services.items():
            with contextlib.nullcontext() if tree else tree_disabled():
                record(svc, 0, WRITE_WARMUP, min(per_call, WRITE_WARMUP))
        for number, first in enumerate(range(WRITE_WARMUP, WRITE_WARMUP + events, chunk)):
            count = min(chunk, WRITE_WARMUP + events - first)
            turn = {}
            for tree in (True, False) if number % 2 == 0 else (False, True):
                with contextlib.nullcontext() if tree else tree_disabled():
                    started = time.perf_counter()
                    record(services[tree], first, count, per_call)
                    turn[tree] = time.perf_counter() - started
                    seconds[tree] += turn[tree]
            pair_costs.append(1 - turn[False] / turn[True])
        for tree, svc in services.items():
            expected = WRITE_WARMUP + events if tree else 0
            if tree_of(svc).tree_size() != expected:
                raise BenchError(f"the tree has {tree_of(svc).tree_size()} leaves, not {expected}")
        return {tree: events / seconds[tree] for tree in services}, pair_costs
    finally:
        for svc in services.values():
            svc.close()


@dataclass
class WriteFigures:
    """ev/s of every run, by (store kind, mode, with tree)."""

    rates: dict[tuple[str, str, bool], list[float]] = field(default_factory=dict)
    turn_costs: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, key: tuple[str, str, bool], rate: float) -> None:
        self.rates.setdefault(key, []).append(rate)


def measure_writes(
    kind: str, args: argparse.Namespace, workdir: Path, figures: WriteFigures
) -> None:
    modes = {
        "single": (args.single_events, 1, SINGLE_CHUNK),
        "batch": (args.batch_events, BATCH_SIZE, BATCH_CHUNK),
    }
    for run in range(args.runs):
        for mode, (events, per_call, chunk) in modes.items():
            with (
                fresh_database(kind, args.postgres_url, workdir) as with_tree,
                fresh_database(kind, args.postgres_url, workdir) as without,
            ):
                rates, turn_costs = write_pair(with_tree, without, events, per_call, chunk)
            figures.turn_costs.setdefault((kind, mode), []).extend(turn_costs)
            for tree, rate in rates.items():
                figures.add((kind, mode, tree), rate)
            say(
                f"{kind}: run {run + 1}/{args.runs} {mode:6}  with tree {rates[True]:7,.0f} ev/s"
                f"  without {rates[False]:7,.0f} ev/s  cost {1 - rates[True] / rates[False]:+6.1%}"
                f"  (load {load()})"
            )


def write_table(figures: WriteFigures, kinds: list[str], args: argparse.Namespace) -> str:
    lines = [
        "| store | mode | with tree ev/s | tree no-op ev/s | cost | runs' costs"
        " | cost per pair of turns: median (IQR, pairs) | runs' spread with / without |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for kind in kinds:
        for mode in ("single", "batch"):
            with_tree = figures.rates[(kind, mode, True)]
            without = figures.rates[(kind, mode, False)]
            cost = 1 - statistics.median(with_tree) / statistics.median(without)
            paired = [1 - a / b for a, b in zip(with_tree, without, strict=True)]
            turns = figures.turn_costs[(kind, mode)]
            low, _, high = statistics.quantiles(turns, n=4) if len(turns) > 1 else (turns * 3)
            label = (
                f"single ({args.single_events:,} x 1/call)"
                if mode == "single"
                else f"batch ({args.batch_events:,}, {BATCH_SIZE}/call)"
            )
            lines.append(
                f"| {STORE_NAMES[kind]} | {label} | {statistics.median(with_tree):,.0f}"
                f" | {statistics.median(without):,.0f} | {cost:.1%}"
                f" | {min(paired):+.1%} to {max(paired):+.1%}"
                f" | {statistics.median(turns):.1%} ({low:+.1%} to {high:+.1%}, {len(turns)})"
                f" | ±{half_range(with_tree):.0%} / ±{half_range(without):.0%} |"
            )
    return "\n".join(lines)


def half_range(rates: list[float]) -> float:
    """Half the runs' min-max range, as a share of their median."""
    return (max(rates) - min(rates)) / 2 / statistics.median(rates)


# The run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k leaves, 3 rounds, 3 runs")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated subset")
    parser.add_argument("--parts", default="proofs,writes", help="comma-separated subset")
    parser.add_argument("--sizes", help="small,large tree sizes (default 1000,1000000)")
    parser.add_argument("--rounds", type=int, help="proof rounds (default 5; quick 3)")
    parser.add_argument("--reps", type=int, help="timed proofs per round (default 200; quick 100)")
    parser.add_argument("--runs", type=int, help="write runs per variant (default 7; quick 3)")
    parser.add_argument("--single-events", type=int, help="default 1,000; quick 300")
    parser.add_argument("--batch-events", type=int, help="default 5,000; quick 2,000")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL database")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: int | None, full: int, short: int) -> int:
        return value if value is not None else (short if quick else full)

    args.rounds = pick(args.rounds, 5, 3)
    args.reps = pick(args.reps, 200, 100)
    args.runs = pick(args.runs, 7, 3)
    args.single_events = pick(args.single_events, 1_000, 300)
    args.batch_events = pick(args.batch_events, 5_000, 2_000)
    if args.sizes:
        sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(","))
    else:
        sizes = QUICK_SIZES if quick else DEFAULT_SIZES
    if len(sizes) != 2 or not 2 <= sizes[0] <= sizes[1] or sizes[0] > len(PAIRS):
        parser.error(f"--sizes takes small,large with 2 <= small <= large, small <= {len(PAIRS)}")
    args.sizes = sizes
    for name, allowed in (("stores", STORES), ("parts", PARTS)):
        chosen = [item.strip() for item in getattr(args, name).split(",") if item.strip()]
        if not chosen or set(chosen) - set(allowed):
            parser.error(f"--{name} takes a comma-separated subset of {','.join(allowed)}")
        setattr(args, name, list(dict.fromkeys(chosen)))
    if min(args.rounds, args.reps, args.runs, args.single_events, args.batch_events) < 1:
        parser.error("--rounds, --reps, --runs and the event counts must be at least 1")
    if WRITE_WARMUP + max(args.single_events, args.batch_events) > len(PAIRS):
        parser.error(f"at most {len(PAIRS) - WRITE_WARMUP:,} events per write run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = load()
    say(f"nproc {os.cpu_count()}, load average (1/5/15 min) {load_before}")
    proofs, writes = ProofFigures(), WriteFigures()
    with tempfile.TemporaryDirectory(prefix="bench-proofs-") as workdir:
        for kind in args.stores:
            if "proofs" in args.parts:
                measure_proofs(kind, args, Path(workdir), proofs)
        for kind in args.stores:
            if "writes" in args.parts:
                measure_writes(kind, args, Path(workdir), writes)
    minutes = (time.perf_counter() - started) / 60
    say(f"done in {minutes:.1f} min")
    small, large = args.sizes
    print(
        f"\nnproc {os.cpu_count()}; load average (1/5/15 min) {load_before} before,"
        f" {load()} after; {minutes:.1f} min\n"
    )
    if "proofs" in args.parts:
        print(
            f"Proof latency, ms. {small:,} leaves: {small:,} real events. {large:,} leaves:"
            f" {large - small:,} synthetic leaves written with LogTree.write_tree, then the"
            f" same {small:,} real events recorded and projected through the service."
            f" Median of {args.rounds} rounds' p50 / p95 ({args.reps} timed calls each,"
            f" after {WARMUP} warm-up); HTTP = uvicorn + httpx in this process.\n"
        )
        print(proof_table(proofs, args.stores, args.sizes))
        worst = max(
            statistics.median(proofs.p50s[(kind, large, name, mode)])
            / statistics.median(proofs.p50s[(kind, small, name, mode)])
            for (kind, size, name, mode) in proofs.p50s
            if size == small and name != "checkpoint (latest)"
        )
        verdict = "met" if worst <= PROOF_RATIO_TARGET else "MISSED"
        print(
            f"\nproof p50 ratio {large:,} / {small:,}: worst {worst:.2f}"
            f" (target <= {PROOF_RATIO_TARGET}): {verdict}\n"
        )
    if "writes" in args.parts:
        print(
            f"Service.record throughput with the Merkle tree maintained vs LogTree.append_leaves"
            f" patched to a no-op: each run a fresh pair of databases taking turns"
            f" ({SINGLE_CHUNK} single events or {BATCH_CHUNK // BATCH_SIZE} batches a turn);"
            f" medians of {args.runs} runs. Cost = 1 - with / without.\n"
        )
        print(write_table(writes, args.stores, args))
        worst_cost = max(
            1
            - statistics.median(writes.rates[(kind, mode, True)])
            / statistics.median(writes.rates[(kind, mode, False)])
            for (kind, mode, tree) in writes.rates
            if tree
        )
        worst_turns = max(statistics.median(costs) for costs in writes.turn_costs.values())
        verdict = "met" if worst_cost <= TREE_COST_TARGET else "MISSED"
        print(
            f"\ntree cost: worst {worst_cost:.1%} by the runs' medians, {worst_turns:.1%} by the"
            f" median pair of turns (target <= 10 %): {verdict}"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"bench/proofs.py: ABORTED: {error}")
