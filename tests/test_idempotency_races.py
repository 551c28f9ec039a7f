"""An Idempotency-Key keeps its promise across processes: the same key sent at once on
several connections records one event (201 once, 200 with that event for every other
copy), and a 503 says `not_recorded` only when no attempt with that key can still
record it.

The races are real: `sanctions serve --workers 2` on PostgreSQL, copies of each write
sent at the same moment on connections of their own (the kernel hands each connection
to either worker), and the log counted afterwards on its own.
"""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, free_port
from tests.test_scaleout import (
    WRITER,
    drop_schema,
    sanctions,
    streams,
    wait_until_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

COPIES = 4
"""Copies of each keyed write sent at once."""
KEYS = 240
"""Keys raced: enough that, without the fix, some copies land in the window between one
worker's key look-up and its reading of the stream (a few percent of keys did)."""


@pytest.fixture
def schema_url() -> Iterator[str]:
    import uuid

    schema = f"race_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


def served_with_workers(schema_url: str) -> tuple[str, list[subprocess.Popen[str]]]:
    port = free_port()
    started = [
        sanctions(
            schema_url, "serve", "--port", str(port), "--workers", "2",
            SANCTIONS_EMBEDDED_PROJECTOR="0",
        ),
        sanctions(schema_url, "project", "--poll", "30"),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_up([base], started)
    return base, started


def stop(started: list[subprocess.Popen[str]]) -> None:
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow  # two worker processes and a projector, ~1,000 racing requests
def test_one_key_sent_at_once_to_two_workers_records_once_and_replays_to_every_copy(
    schema_url: str,
) -> None:
    base, started = served_with_workers(schema_url)
    try:
        bodies = streams(KEYS)  # each an `imposed` on a fresh stream: refused if decided again
        answers: dict[int, list[tuple[int, dict[str, Any]]]] = {n: [] for n in range(KEYS)}
        together = threading.Barrier(COPIES)
        failures: list[BaseException] = []

        def copy(_: int) -> None:
            # A client of its own: its keep-alive connection stays on one worker.
            with httpx.Client(base_url=base, headers=WRITER, timeout=60) as client:
                for number, body in enumerate(bodies):
                    together.wait(60)
                    answer = client.post(
                        "/v1/events", json=body, headers={"Idempotency-Key": f"race-{number}"}
                    )
                    answers[number].append((answer.status_code, answer.json()))

        def guarded(number: int) -> None:
            try:
                copy(number)
            except BaseException as failure:
                failures.append(failure)
                together.abort()

        threads = [threading.Thread(target=guarded, args=(n,)) for n in range(COPIES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not failures, failures[0]

        wrong = {
            number: sorted(status for status, _ in got)
            for number, got in answers.items()
            if sorted(status for status, _ in got) != [200] * (COPIES - 1) + [201]
        }
        assert wrong == {}, f"{len(wrong)} of {KEYS} keys: {list(wrong.items())[:5]}"
        differing = [
            number for number, got in answers.items() if len({a["event_id"] for _, a in got}) != 1
        ]
        assert differing == [], "every copy of a key is answered with the one event"
        # The log, counted on its own in the database: one event per key, no more.
        schema = schema_url.split("schema=")[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            rows = conn.execute(f'SELECT stream FROM "{schema}".event_index').fetchall()
            keys = conn.execute(f'SELECT COUNT(*) FROM "{schema}".idempotency_keys').fetchone()
        per_stream = Counter(stream for (stream,) in rows)
        expected = Counter(
            "/".join(b[k] for k in ("authority", "country", "commodity")) for b in bodies
        )
        assert per_stream == expected
        assert keys == (KEYS,)
        answered = {a["event_id"] for got in answers.values() for _, a in got}
        assert len(answered) == KEYS
    finally:
        stop(started)
