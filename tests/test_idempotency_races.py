"""An Idempotency-Key keeps its promise across processes and crashes: the same key sent
at once on several connections records one event (201 once, 200 with that event for
every other copy), and a server killed under keyed writes loses nothing, records no key
twice and said nothing untrue.

The races are real: `sanctions serve --workers 2` on PostgreSQL, copies of each write
sent at the same moment on connections of their own (the kernel hands each connection
to either worker), and the log counted afterwards on its own. (What a 503 says while an
attempt may still commit: `test_idempotency_outcomes.py`.)
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
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

pytestmark = pytest.mark.e2e

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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kill_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store a killed server writes to: "sqlite" (a file of the test's own) or a
    PostgreSQL schema's URL."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    import uuid

    schema = f"kill_{uuid.uuid4().hex[:12]}"
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
@pytest.mark.postgres
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


@pytest.mark.slow  # a server SIGKILLed under load and started again, on each store
def test_a_server_killed_under_keyed_writes_loses_nothing_doubles_nothing_and_told_the_truth(
    tmp_path: Path, kill_store: str
) -> None:
    """SIGKILL a server while four clients write under Idempotency-Keys; start it again
    and retry every key sent. Every acknowledged key replays its one event, every key
    records exactly one event, and no 503 said `not_recorded` of a key whose event was
    recorded before that answer."""
    url = kill_store if kill_store.startswith("postgres") else f"sqlite:///{tmp_path}/kill.db"
    bodies = streams(600)
    answers: dict[int, list[tuple[float, int, dict[str, Any]]]] = {}
    acknowledged = threading.Semaphore(0)
    stop_sending = threading.Event()
    port = free_port()
    server = sanctions(url, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up([base], [server])

        def send(worker: int) -> None:
            with httpx.Client(base_url=base, headers=WRITER, timeout=30) as client:
                for number in range(worker, len(bodies), 4):
                    if stop_sending.is_set():
                        return
                    got = answers.setdefault(number, [])
                    sent = time.time()
                    try:
                        answer = client.post(
                            "/v1/events",
                            json=bodies[number],
                            headers={"Idempotency-Key": f"kill-{number}"},
                        )
                    except httpx.TransportError:
                        return  # the server is gone: this key's outcome is unknown
                    got.append((sent, answer.status_code, answer.json()))
                    if answer.status_code in (200, 201):
                        acknowledged.release()

        senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for sender in senders:
            sender.start()
        for _ in range(120):  # well under way, then killed mid-write
            assert acknowledged.acquire(timeout=30), "the server wrote nothing"
        server.kill()  # SIGKILL
        server.wait(30)
        stop_sending.set()
        for sender in senders:
            sender.join(60)
    finally:
        if server.poll() is None:
            server.kill()
    port = free_port()
    server = sanctions(url, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up([base], [server])
        final: dict[int, dict[str, Any]] = {}
        with httpx.Client(base_url=base, headers=WRITER, timeout=30) as client:
            for number in answers:
                for _ in range(5):  # a key fenced before the kill: once more, at most
                    again = client.post(
                        "/v1/events",
                        json=bodies[number],
                        headers={"Idempotency-Key": f"kill-{number}"},
                    )
                    if again.status_code in (200, 201):
                        final[number] = again.json()
                        break
                    assert again.status_code == 503, again.text
                assert number in final, again.text
            log = client.get("/v1/events", params={"limit": 1000}).json()["events"]
    finally:
        server.terminate()
        server.wait(30)
    lost = [
        number
        for number, got in answers.items()
        for _, status, answer in got
        if status in (200, 201) and answer["event_id"] != final[number]["event_id"]
    ]
    assert lost == []
    per_stream = Counter(event["stream"] for event in log)
    sent = Counter(final[number]["stream"] for number in answers)
    assert per_stream == sent, "one event for each key, no more"
    recorded_at = {event["event_id"]: event["recorded_at"] for event in log}
    untrue = [
        number
        for number, got in answers.items()
        for sent_at, status, answer in got
        if status == 503
        and answer.get("outcome") == "not_recorded"
        and datetime.fromisoformat(recorded_at[final[number]["event_id"]]).timestamp() < sent_at
    ]
    assert untrue == []
    assert any(status in (200, 201) for got in answers.values() for _, status, _ in got)
