"""The live stream of recorded events (Server-Sent Events), against a real server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import WRITER

pytestmark = pytest.mark.e2e  # Server-Sent Events from a served app

BODY = {
    "type": "imposed",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["import_ban"],
}
COUNTRIES = ["BY", "RU", "IR", "VE", "KP", "SY", "CU", "MM", "AF", "ZW", "NI", "ML"]


def read_events(
    base: str, last_id: str | None, want: int, idle: Callable[[], bool] = lambda: False
) -> tuple[list[int], list[Any]]:
    """Connect, read up to `want` events, then hang up (mid-stream); also hang up on a
    keep-alive when `idle()` says nothing more is coming."""
    ids: list[int] = []
    payloads: list[Any] = []
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    with httpx.stream("GET", f"{base}/v1/events/stream", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id:"):
                ids.append(int(line[3:].strip()))
            elif line.startswith("data:"):
                payloads.append(json.loads(line[5:].strip()))
                if len(payloads) >= want:
                    break
            elif line.startswith(":") and idle():
                break
    return ids, payloads


def test_reconnecting_client_misses_nothing_and_sees_nothing_twice(
    live_server: Callable[..., str],
) -> None:
    base = live_server(sse_poll_seconds=0.02, sse_ping_seconds=0.3)
    written: list[int] = []
    done = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=base, headers=WRITER) as client:
            for authority in ("US", "EU", "GB", "CA", "LT"):
                for country in COUNTRIES:
                    response = client.post(
                        "/v1/events", json={**BODY, "authority": authority, "country": country}
                    )
                    assert response.status_code == 201
                    written.append(response.json()["position"])
                    time.sleep(0.005)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int] = []
    last: str | None = None
    reconnects = 0
    while not (done.is_set() and seen and seen[-1] == written[-1]):
        ids, payloads = read_events(base, last, want=7, idle=done.is_set)
        assert [p["position"] for p in payloads] == ids[: len(payloads)]
        seen.extend(ids[: len(payloads)])
        last = str(seen[-1]) if seen else None
        reconnects += 1
    thread.join()
    assert reconnects > 3
    assert seen == sorted(set(seen)), "in order, none repeated"
    assert seen == written, "none missed"


def test_stream_resumes_after_a_position_and_sends_keep_alives(
    live_server: Callable[..., str],
) -> None:
    base = live_server(sse_ping_seconds=0.2, sse_poll_seconds=0.05)
    with httpx.Client(base_url=base, headers=WRITER) as client:
        positions = [
            client.post("/v1/events", json={**BODY, "authority": a, "country": "BY"}).json()[
                "position"
            ]
            for a in ("US", "EU", "GB")
        ]
    ids, _ = read_events(base, str(positions[0]), want=2)
    assert ids == positions[1:]
    comments = 0
    with httpx.stream(
        "GET", f"{base}/v1/events/stream", params={"after": positions[-1]}, timeout=10
    ) as response:
        started = time.monotonic()
        for line in response.iter_lines():
            if line.startswith(":"):
                comments += 1
            if comments >= 2 or time.monotonic() - started > 5:
                break
    assert comments >= 2
    bad = httpx.get(f"{base}/v1/events/stream", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422
