"""A 503 says `not_recorded` only when nothing can still record the write's
Idempotency-Key: not while an earlier attempt with the same key waits to commit.

Two logs on one store stand for two server processes (each its own commit queue and
connections). The first attempt is held at the store's write lock by a connection of
the test's own; the retry, on the other log, fails meanwhile; then the lock is let go
and the first attempt goes on. Whatever the retry was answered must stay true.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from fastapi.testclient import TestClient

from api.app.bootstrap import build_service
from api.app.identity import Role
from api.app.settings import Settings
from api.http.app import create_app
from domain.application import SanctionsLog
from domain.drafts import EventDraft
from domain.errors import NotRecorded, OutcomeUnknown
from domain.keys import StreamKey
from domain.recorded import IdempotencyRecord, IdempotentRequest, WriteOutcome
from domain.rules import EventType
from domain.store.records import EventStore
from tests import test_store_contract as contract
from tests.conftest import POSTGRES_URL, TOKENS, US_POTASH_IMPOSED, WRITER, drop_schema
from tests.test_scaleout import Proxy
from tests.test_store_contract import filled, store  # noqa: F401 -- the stores it runs on

pytestmark = pytest.mark.integration

KEY = StreamKey("US", "BY", "potash")
REQUEST = IdempotentRequest.of("wendy", "retry-1", {"the": "body"})


def draft() -> EventDraft:
    return EventDraft(
        EventType.IMPOSED, KEY, effective_date=date(2021, 8, 9), measures=frozenset({"import_ban"})
    )


def record(log: SanctionsLog, received: float | None = None) -> WriteOutcome:
    """The keyed write; `received`: when its request reached the server, if earlier."""
    request = dataclasses.replace(REQUEST, received=received)
    return log.record([draft()], recorded_by="wendy", idempotency=request)


class Attempt(threading.Thread):
    """One attempt of the keyed write, on `log`, in a thread: its outcome or error."""

    def __init__(self, log: SanctionsLog) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.answer: WriteOutcome | BaseException | None = None

    def run(self) -> None:
        try:
            self.answer = record(self.log)
        except BaseException as error:
            self.answer = error


def recorded_on_stream(log: SanctionsLog) -> list[str]:
    return [str(r.event.event_id) for r in log.stream_events(KEY)]


def check_truthful(first: Attempt, second: Attempt, logs: list[SanctionsLog]) -> None:
    """Each answer true of the log; then retries on either log record the key once."""
    stored = recorded_on_stream(logs[0])
    for attempt in (first, second):
        if isinstance(attempt.answer, NotRecorded):
            assert stored == [], "a 503 said not_recorded, yet the key's event was recorded"
        elif isinstance(attempt.answer, WriteOutcome):
            assert [str(r.event.event_id) for r in attempt.answer.events] == stored
        else:
            assert isinstance(attempt.answer, OutcomeUnknown), attempt.answer
    assert len(stored) <= 1
    retried = [record(log) for log in (logs[1], logs[0], logs[1])]
    ids = {str(outcome.events[0].event.event_id) for outcome in retried}
    assert len(ids) == 1
    assert recorded_on_stream(logs[0]) == sorted(ids)
    assert [outcome.replayed for outcome in retried].count(False) == (0 if stored else 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


@pytest.mark.postgres
def test_on_postgres_a_retry_failing_while_the_first_attempt_waits_says_nothing_untrue(
    postgres_url: str,
) -> None:
    logs = [SanctionsLog(postgres_url), SanctionsLog(postgres_url)]
    schema = postgres_url.split("schema=")[1]
    table = f'"{schema}".sanctionstimeline_events'
    try:
        with (
            psycopg.connect(POSTGRES_URL) as holder,
            psycopg.connect(POSTGRES_URL, autocommit=True) as admin,
        ):
            holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # as every write does

            def waiting() -> set[int]:
                rows = admin.execute(
                    "SELECT pid FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                    (table,),
                ).fetchall()
                return {pid for (pid,) in rows}

            first = Attempt(logs[0])
            first.start()
            deadline = time.monotonic() + 30
            while not waiting():
                assert time.monotonic() < deadline, "the first attempt never reached the lock"
                time.sleep(0.02)
            (held,) = waiting()
            second = Attempt(logs[1])
            second.start()
            while second.is_alive():  # the retry's connections die while it waits
                for pid in waiting() - {held}:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                assert time.monotonic() < deadline + 30, "the retry was never answered"
                time.sleep(0.02)
            assert first.is_alive() and waiting() == {held}
            assert second.answer is not None and not isinstance(second.answer, WriteOutcome)
            holder.rollback()  # the first attempt goes on
        first.join(60)
        check_truthful(first, second, logs)
    finally:
        for log in logs:
            log.close()


def test_on_sqlite_a_retry_failing_while_the_first_attempt_waits_says_nothing_untrue(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/sanctions.db"
    logs = [SanctionsLog(url), SanctionsLog(url, env={"SQLITE_LOCK_TIMEOUT": "1"})]
    try:
        holder = sqlite3.connect(tmp_path / "sanctions.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held
        first = Attempt(logs[0])  # waits for the lock up to 30 s
        first.start()
        time.sleep(0.3)
        second = Attempt(logs[1])  # gives up after 1 s: "database is locked"
        second.start()
        second.join(30)
        assert first.is_alive()
        assert second.answer is not None and not isinstance(second.answer, WriteOutcome)
        holder.rollback()
        holder.close()
        first.join(60)
        check_truthful(first, second, logs)
    finally:
        for log in logs:
            log.close()


def test_a_fence_stops_attempts_begun_before_it_and_gives_way_to_a_later_retry(
    database_url: str,
) -> None:
    """A fence stored by another process (as after its attempt was answered "not
    recorded"): an attempt that began before this process saw it records nothing and
    is told its outcome is unknown; the next replaces the fence and records once."""
    log = SanctionsLog(database_url)
    try:
        fence = IdempotencyRecord.fencing(REQUEST.caller, REQUEST.key, REQUEST.request_hash)
        pair = (REQUEST.caller, REQUEST.key)
        arrived_before = time.monotonic()
        assert log.store.fence_idempotencies([fence]) == {pair: fence}
        with pytest.raises(OutcomeUnknown):
            record(log)  # the first this process sees of the fence
        with pytest.raises(OutcomeUnknown):
            record(log, received=arrived_before)  # a request that arrived before it
        assert recorded_on_stream(log) == []
        first = record(log)
        assert not first.replayed and recorded_on_stream(log) == [
            str(first.events[0].event.event_id)
        ]
        again = record(log)
        assert again.replayed and again.events == first.events
        # A fence never takes the place of recorded events: they are what it finds.
        (stored,) = log.store.fence_idempotencies([fence]).values()
        assert stored.fence is None and stored.event_ids == (str(first.events[0].event.event_id),)
        assert record(log).events == first.events
    finally:
        log.close()


def test_a_record_replaces_only_the_fence_it_was_decided_on(
    store: EventStore,  # noqa: F811
    filled: contract.Written,  # noqa: F811
) -> None:
    """In the store, on every kind: a record that replaces fence A, where fence B now
    stands (another attempt was answered "not recorded" since), stores nothing."""
    pair = ("wendy", "k-9")
    fence_a = IdempotencyRecord.fencing(*pair, "hash")
    fence_b = IdempotencyRecord.fencing(*pair, "hash")
    assert store.fence_idempotencies([fence_a]) == {pair: fence_a}
    assert store.fence_idempotencies([fence_b]) == {pair: fence_b}  # a fence replaces a fence
    before = store.max_notification_id()
    late = contract.draft(filled, contract.STREAMS[2], EventType.EXPANDED)
    key = IdempotencyRecord(*pair, "hash", ("e9",), replaces=fence_a.fence)
    with pytest.raises(IntegrityError):
        store.insert_events([late[0]], extras=contract.extras([late], idempotency=[key]))
    contract.forget_versions(filled, [late])
    assert store.max_notification_id() == before
    assert store.find_idempotencies([pair]) == {pair: fence_b}
    fresh = contract.draft(filled, contract.STREAMS[2], EventType.EXPANDED)
    key = IdempotencyRecord(*pair, "hash", ("e9",), replaces=fence_b.fence)
    contract.write(store, filled, [fresh], idempotency=[key])
    assert store.find_idempotencies([pair]) == {pair: IdempotencyRecord(*pair, "hash", ("e9",))}
    assert store.fence_idempotencies([fence_a])[pair].event_ids == ("e9",)


@pytest.mark.postgres
@pytest.mark.slow  # the pool's connections fail and come back: ~15 s of retries and timeouts
def test_with_the_database_gone_a_keyed_write_is_unknown_and_an_unkeyed_one_not_recorded(
    postgres_url: str,
) -> None:
    """Over HTTP, the database cut off: a write without a key recorded nothing (no other
    attempt shares it); a keyed one cannot fence its key, so its outcome is `unknown`.
    The same key retried once the database is back records the event once."""
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.start()
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    svc = build_service(Settings(database_url=url, api_tokens=TOKENS))
    body = US_POTASH_IMPOSED
    keyed = {**WRITER, "Idempotency-Key": "gone-1"}
    try:
        dora = {"Authorization": f"Bearer {svc.tokens.create('dora', Role.WRITER)}"}
        with TestClient(create_app(svc)) as client:
            proxy.cut()
            # A stored token not yet seen: the request fails before it reaches the log.
            early = client.post("/v1/events", json=body, headers={**dora, "Idempotency-Key": "d"})
            assert early.status_code == 503, early.text
            assert early.json()["outcome"] == "unknown", early.text
            unkeyed = client.post("/v1/events", json=body, headers=WRITER)
            assert unkeyed.status_code == 503 and unkeyed.json()["outcome"] == "not_recorded"
            answer = client.post("/v1/events", json=body, headers=keyed)
            assert answer.status_code == 503, answer.text
            assert answer.json()["outcome"] == "unknown", answer.text
            proxy.start()
            for _ in range(50):  # until the pool has connections again
                again = client.post("/v1/events", json=body, headers=keyed)
                if again.status_code != 503:
                    break
                time.sleep(0.1)
            assert again.status_code == 201, again.text
            assert client.post("/v1/events", json=body, headers=keyed).status_code == 200
            assert len(client.get("/v1/events").json()["events"]) == 1
    finally:
        proxy.cut()
        svc.log.close()
