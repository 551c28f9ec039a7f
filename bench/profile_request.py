"""Where one request spends its time: a POST /v1/events and a GET /v1/status, profiled.

The real app (``api.app.bootstrap``) is served by uvicorn in a thread of this process, on a
fresh SQLite file or PostgreSQL schema, and called by one keep-alive ``httpx.Client``
with a token stored in the database (as ``sanctions token create`` makes them). Per
store and request kind it reports:

- the median and p90 latency seen by the client, unprofiled;
- the worker-thread hand-offs per request (calls of ``anyio.to_thread.run_sync``);
- a pyinstrument profile of the server's event-loop thread, with the hand-offs run in
  place (so that the endpoint's work is sampled on the same thread), summed into parts:
  HTTP protocol, our middleware, framework, token check, store write, read models,
  answer's JSON, event loop; time the loop spends idle (waiting for the client) is left
  out. Sampling slows Python code down, so the parts' milliseconds add up to more than
  the unprofiled latency: read the percentages.

Usage::

    .venv/bin/python bench/profile_request.py [--requests N] [--stores sqlite,postgres]
        [--http auto|h11|httptools] [--loop auto|asyncio|uvloop] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import psycopg
import pycountry
import uvicorn
from psycopg.sql import SQL, Identifier
from pyinstrument import Profiler
from pyinstrument.frame import Frame
from serving import free_port, wait_until_healthy  # bench/serving.py

from api.app.bootstrap import build_service
from api.app.identity import Role
from api.app.settings import Settings
from api.http.app import create_app

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
COUNTRIES = sorted(str(country.alpha_2) for country in pycountry.countries)
PARTS: list[tuple[str, Callable[[str, str], bool]]] = [
    # innermost match wins: a frame takes the part of its nearest ancestor named here
    ("request: body, parameters", lambda f, p: f in ("solve_dependencies", "_extract_form_body")),
    ("token check", lambda f, p: f in ("require", "cached_caller") and "/api/" in p),
    ("store: rules, hashes, insert, commit", lambda f, p: f == "record" and "domain/app" in p),
    ("read models: in-request projection", lambda f, p: f == "show_writes"),
    ("read: status from the read model", lambda f, p: f == "status" and "api/service" in p),
    ("answer: validate, JSON", lambda f, p: f in ("serialize_response", "render")),
]
IDLE = {("selectors.py", "select"), ("runners.py", "run"), ("base_events.py", "run_forever")}
MODULES = [
    ("HTTP protocol (uvicorn, parser)", ("uvicorn/protocols", "/h11/", "httptools")),
    ("middleware (ours)", ("api/security", "api/observability", "api/limits")),
    ("framework (Starlette, FastAPI, pydantic)", ("starlette", "fastapi", "pydantic", "anyio")),
    ("event loop", ("asyncio", "uvloop", "selectors", "uvicorn")),
]


def event(index: int) -> dict[str, Any]:
    authority, country = COUNTRIES[index // len(COUNTRIES)], COUNTRIES[index % len(COUNTRIES)]
    return {
        "type": "imposed",
        "authority": authority,
        "country": country,
        "commodity": "potash",
        "effective_date": "2021-08-09",
        "measures": ["asset_freeze"],
        "legal_basis": "Executive Order 14038",
        "source": {"url": "https://example.org/a", "title": "t", "published": "2021-08-09"},
    }


class LoopServer(uvicorn.Server):
    """uvicorn, keeping its event loop so that the profiler can be started on it."""

    loop: asyncio.AbstractEventLoop

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def on_loop(self, action: Callable[[], object]) -> None:
        done = threading.Event()

        def act() -> None:
            action()
            done.set()

        self.loop.call_soon_threadsafe(act)
        done.wait(10)


@contextmanager
def store(kind: str, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'profile.db'}"
        return
    schema = f"profile_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{postgres_url}?schema={schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


@contextmanager
def hand_offs(inline: bool, counted: Counter[str]) -> Iterator[None]:
    """Count worker-thread hand-offs; with `inline`, run them on the calling thread."""
    original = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        counted["hand-offs"] += 1
        return func(*args) if inline else await original(func, *args, **kwargs)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    try:
        yield
    finally:
        anyio.to_thread.run_sync = original


def parts_of(root: Frame | None) -> dict[str, float]:
    """Seconds per part; a frame's own time (its `[self]`, the C functions it calls) goes
    to its part, else to the module of the Python function it is in."""
    found: dict[str, float] = defaultdict(float)

    def walk(frame: Frame, part: str | None, where: tuple[str, str]) -> None:
        if not frame.is_synthetic and frame.file_path not in (None, "<built-in>"):
            where = (frame.file_path or "", frame.function or "")
            for name, matches in PARTS:
                if matches(where[1], where[0]):
                    part = name
        own = frame.time - sum(child.time for child in frame.children)
        path, function = where
        if part is None and (Path(path).name, function) in IDLE:
            found["(idle)"] += own
        elif part is not None:
            found[part] += own
        else:
            found[next((n for n, keys in MODULES if any(k in path for k in keys)), "other")] += own
        for child in frame.children:
            walk(child, part, where)

    if root is not None:
        walk(root, None, ("", ""))
    return found


def run(kind: str, url: str, args: argparse.Namespace) -> None:
    svc = build_service(Settings(database_url=url, api_tokens=""))
    token = svc.tokens.create("profiler", Role.WRITER)
    config = uvicorn.Config(
        create_app(svc), port=free_port(), log_level="warning", http=args.http, loop=args.loop
    )
    server = LoopServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    n = args.requests
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", headers=auth) as client:
            wait_until_healthy(client, thread)
            calls: dict[str, Callable[[int], httpx.Response]] = {
                "POST /v1/events": lambda i: client.post("/v1/events", json=event(i)),
                "GET /v1/status": lambda i: client.get(
                    "/v1/status", params={"country": COUNTRIES[i % len(COUNTRIES)]}
                ),
            }
            for number, (name, call) in enumerate(calls.items()):
                first = number * (20 + 2 * n)
                for i in range(first, first + 20):  # warm up
                    assert call(i).status_code in (200, 201)
                counted: Counter[str] = Counter()
                latencies = []
                with hand_offs(False, counted):
                    for i in range(first + 20, first + 20 + n):
                        start = time.perf_counter()
                        assert call(i).status_code in (200, 201)
                        latencies.append((time.perf_counter() - start) * 1000)
                profiler = Profiler(interval=0.0002, async_mode="disabled")
                with hand_offs(True, Counter()):
                    server.on_loop(profiler.start)
                    for i in range(first + 20 + n, first + 20 + 2 * n):
                        assert call(i).status_code in (200, 201)
                    server.on_loop(profiler.stop)
                session = profiler.last_session
                root = None if session is None else session.root_frame()
                report(kind, name, latencies, counted["hand-offs"] / n, parts_of(root), n)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def report(
    kind: str, name: str, latencies: list[float], hops: float, parts: dict[str, float], n: int
) -> None:
    parts.pop("(idle)", None)
    total = sum(parts.values())
    p90 = statistics.quantiles(latencies, n=10)[-1]
    print(
        f"\n{kind} {name}: median {statistics.median(latencies):.2f} ms, p90 {p90:.2f} ms,"
        f" {hops:.2f} hand-offs per request; profiled {total / n * 1000:.2f} ms per request"
    )
    print("| part | ms | % |\n|---|---:|---:|")
    for part, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"| {part} | {seconds / n * 1000:.2f} | {100 * seconds / total:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    for kind in args.stores.split(","):
        with store(kind, args.postgres_url) as url:
            run(kind, url, args)


if __name__ == "__main__":
    main()
