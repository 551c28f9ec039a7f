"""Append throughput of the sanctions service, measured against the raw library.

Four figures per store (SQLite in a fresh temporary file, PostgreSQL in a fresh
schema of ``postgresql://postgres@127.0.0.1:5432/test``), every repetition on
new, empty databases:

- service, single: one event per ``POST /v1/events``;
- service, batch: 100 events per ``POST /v1/events:batch``;
- raw library, single: a plain ``eventsourcing`` ``Application`` with a trivial
  ``Aggregate``, one ``app.save(aggregate)`` (one event, one transaction) each;
- raw library, batch: 100 new aggregates per ``app.save``.

The service runs over real HTTP: uvicorn serves the app built by
``api.app.bootstrap`` in a background thread of this process, and one keep-alive
``httpx.Client`` posts to it, so client and server share the GIL (and the two
cores) just as the figures say. Events go to distinct streams
(``A/C/potash`` for pairs of ISO 3166 alpha-2 codes) so the rules accept them;
past 62,001 events a run goes round again with ``expanded`` events adding one
more measure per stream. Every answer must be a 201, else the run aborts.

The raw baseline uses the project's own store configuration
(``domain.store.config.environment_for``) without its recorder subclass, under
another application name, in another SQLite file or PostgreSQL schema.

Defaults: 2,000 single events and 10,000 batched events per store, 3
repetitions; medians are reported. The default run takes about 80 seconds on a
2-core machine.

Usage::

    .venv/bin/python bench/append.py [--events N] [--batch-events N]
        [--repeat N] [--stores sqlite,postgres] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pycountry
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg.sql import SQL, Identifier
from serving import BenchError, serving  # bench/serving.py

from api.app.bootstrap import build_service
from api.app.settings import Settings
from domain.rules import MEASURES
from domain.store.config import environment_for

BATCH_SIZE = 100
TOKEN = "benchtoken"
API_TOKENS = f"bench:writer:{TOKEN}"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ("sqlite", "postgres")
MODES = ("single", "batch")
FIRST_MEASURE, *MORE_MEASURES = MEASURES
CODES = sorted(str(country.alpha_2) for country in pycountry.countries)
PAIRS = [(authority, country) for authority in CODES for country in CODES]


def event_body(index: int) -> dict[str, Any]:
    """The `index`-th event of a run: an imposition, or later an expansion, on its own pair."""
    round_, pair = divmod(index, len(PAIRS))
    if round_ > len(MORE_MEASURES):
        raise BenchError(f"at most {len(PAIRS) * (1 + len(MORE_MEASURES))} events per store")
    authority, country = PAIRS[pair]
    body: dict[str, Any] = {
        "authority": authority,
        "country": country,
        "commodity": "potash",
        "effective_date": date(2021, 1 + round_, 1).isoformat(),
    }
    if round_ == 0:
        return {"type": "imposed", **body, "measures": [FIRST_MEASURE]}
    return {"type": "expanded", **body, "measures": [MORE_MEASURES[round_ - 1]]}


# The stores


@dataclass
class Stores:
    """Fresh databases for one store kind, removed when the run leaves them."""

    kind: str
    postgres_url: str
    workdir: Path
    schemas: list[str] = field(default_factory=list)

    def fresh(self, tag: str) -> str:
        """The URL of a new, empty database for `tag` (service or raw)."""
        suffix = uuid.uuid4().hex[:10]
        if self.kind == "sqlite":
            path = self.workdir / f"{tag}-{suffix}.db"
            return f"sqlite:///{path}"
        schema = f"bench_{suffix}" if tag == "service" else f"bench_{suffix}_{tag}"
        self.schemas.append(schema)
        return f"{self.postgres_url}?{urlencode({'schema': schema})}"

    def drop_all(self) -> None:
        """Drop every PostgreSQL schema made so far (SQLite files go with the temp dir)."""
        if not self.schemas:
            return
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))
        self.schemas.clear()


# The service over HTTP


@contextlib.contextmanager
def running_service(database_url: str) -> Iterator[httpx.Client]:
    """The service on `database_url`, served by uvicorn in a thread; a client bound to it."""
    svc = build_service(Settings(database_url=database_url, api_tokens=API_TOKENS))
    with serving(svc, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def expect_created(response: httpx.Response, events: int) -> None:
    """Abort unless the answer is a 201 that recorded `events` events."""
    if response.status_code != 201:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, not 201: {response.text[:2000]}"
        )
    body = response.json()
    recorded = len(body["events"]) if "events" in body else 1
    if recorded != events:
        raise BenchError(f"{response.request.url.path} recorded {recorded} of {events} events")


def service_single(client: httpx.Client, first: int, count: int) -> float:
    """Events per second posting `count` events one per `POST /v1/events`."""
    bodies = [event_body(i) for i in range(first, first + count)]
    started = time.perf_counter()
    for body in bodies:
        expect_created(client.post("/v1/events", json=body), 1)
    return count / (time.perf_counter() - started)


def service_batch(client: httpx.Client, first: int, count: int) -> float:
    """Events per second posting `count` events, 100 per `POST /v1/events:batch`."""
    batches = [
        [event_body(i) for i in range(start, min(start + BATCH_SIZE, first + count))]
        for start in range(first, first + count, BATCH_SIZE)
    ]
    started = time.perf_counter()
    for batch in batches:
        expect_created(client.post("/v1/events:batch", json={"events": batch}), len(batch))
    return count / (time.perf_counter() - started)


# The raw library


class Note(Aggregate):
    """The most trivial aggregate: created by one decorated event."""

    @event("Noted")
    def __init__(self, number: int) -> None:
        self.number = number


class RawApp(Application[uuid.UUID]):
    """A plain application: no rules, no side rows, no HTTP."""

    name = "BenchRaw"


def raw_app(database_url: str) -> RawApp:
    """The raw application on the project's store configuration, minus its recorder."""
    env = environment_for(database_url)
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    return RawApp(env=env)


def raw_single(app: RawApp, first: int, count: int) -> float:
    """Events per second with one new aggregate (one event) per `save`."""
    started = time.perf_counter()
    for number in range(first, first + count):
        app.save(Note(number))
    return count / (time.perf_counter() - started)


def raw_batch(app: RawApp, first: int, count: int, size: int = BATCH_SIZE) -> float:
    """Events per second with `size` (100) new aggregates per `save`."""
    started = time.perf_counter()
    for start in range(first, first + count, size):
        app.save(*(Note(n) for n in range(start, min(start + size, first + count))))
    return count / (time.perf_counter() - started)


# The run


@dataclass
class Figures:
    """Events per second of every repetition, by (store, mode, side)."""

    rates: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def add(self, store: str, mode: str, side: str, rate: float) -> None:
        self.rates.setdefault((store, mode, side), []).append(rate)

    def median(self, store: str, mode: str, side: str) -> float:
        return statistics.median(self.rates[(store, mode, side)])


def one_repetition(stores: Stores, events: int, batch_events: int, figures: Figures) -> None:
    """Raw and service, single then batch, alternating, each on new databases."""
    app = raw_app(stores.fresh("raw"))
    try:
        with running_service(stores.fresh("service")) as client:
            steps: list[tuple[str, str, Callable[[], float]]] = [
                ("single", "raw", lambda: raw_single(app, 0, events)),
                ("single", "service", lambda: service_single(client, 0, events)),
                ("batch", "raw", lambda: raw_batch(app, events, batch_events)),
                ("batch", "service", lambda: service_batch(client, events, batch_events)),
            ]
            for mode, side, step in steps:
                rate = step()
                figures.add(stores.kind, mode, side, rate)
                print(f"  {stores.kind:8} {mode:6} {side:7} {rate:10,.0f} ev/s", file=sys.stderr)
    finally:
        app.close()
        stores.drop_all()


def table(figures: Figures, kinds: list[str]) -> str:
    """The medians as a Markdown table."""
    lines = [
        "| store | mode | service ev/s | raw library ev/s | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for kind in kinds:
        for mode in MODES:
            service = figures.median(kind, mode, "service")
            raw = figures.median(kind, mode, "raw")
            label = "single (1/POST)" if mode == "single" else f"batch ({BATCH_SIZE}/POST)"
            ratio = service / raw
            lines.append(f"| {kind} | {label} | {service:,.0f} | {raw:,.0f} | {ratio:.2f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000, help="single posts per store")
    parser.add_argument("--batch-events", type=int, default=10_000, help="batched events per store")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated subset")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL database")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.stores.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(STORES))
    if unknown or not kinds:
        parser.error(f"--stores takes a comma-separated subset of {','.join(STORES)}")
    if min(args.events, args.batch_events, args.repeat) < 1:
        parser.error("--events, --batch-events and --repeat must be at least 1")
    event_body(args.events + args.batch_events - 1)  # fails early if too many per store
    args.kinds = list(dict.fromkeys(kinds))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = Figures()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-append-") as workdir:
        for kind in args.kinds:
            stores = Stores(kind, args.postgres_url, Path(workdir))
            for repetition in range(1, args.repeat + 1):
                print(f"{kind}: repetition {repetition}/{args.repeat}", file=sys.stderr)
                one_repetition(stores, args.events, args.batch_events, figures)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(
        f"\n{args.events:,} single and {args.batch_events:,} batched events per store, "
        f"median of {args.repeat}\n"
    )
    print(table(figures, args.kinds))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"bench/append.py: ABORTED: {error}")
