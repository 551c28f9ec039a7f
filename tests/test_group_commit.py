"""Group commit: many concurrent writers, each answered with its own outcome, every
answer true of the log afterwards.

64 writers post at once over real HTTP (uvicorn, one keep-alive client each): events on
streams of their own under Idempotency-Keys (and their retries), expected versions on
eight shared streams (most of them lose), writes the rules refuse, a key reused with
another body, and one key all 64 share. Then the log, read back on its own, is
compared with every answer: nothing answered is missing, nothing unanswered is there,
replays equal the originals, versions and hash chains run unbroken.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pycountry
import pytest

from api.app.service import Service
from domain.group_commit import Write
from domain.hashing import GENESIS_HASH
from domain.keys import StreamKey
from domain.rules import MEASURES, EventType
from domain.stream import EventDraft
from tests.conftest import READER, WRITER

pytestmark = pytest.mark.e2e  # concurrent writers against a served app

WRITERS = 64
SHARED = 8
COUNTRIES = sorted(c.alpha_2 for c in pycountry.countries if c.alpha_2 not in {"BY", "RU"})


EXPANSIONS = [measure for measure in MEASURES if measure != "import_ban"]


def body(
    authority: str, country: str, commodity: str, kind: str, day: date, **more: Any
) -> dict[str, Any]:
    measures = ["import_ban"] if kind == "imposed" else ["quota"]
    return {
        "type": kind,
        "authority": authority,
        "country": country,
        "commodity": commodity,
        "effective_date": day.isoformat(),
        "measures": measures,
        **more,
    }


def writer_script(number: int) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """What writer `number` posts, in order: (label, body, extra headers)."""
    own = COUNTRIES[number]
    shared = COUNTRIES[100 + number % SHARED]
    first = body("US", own, "crude-oil", "imposed", date(2020, 1, 1))
    key = {"Idempotency-Key": f"own-{number}"}
    return [
        ("own", first, key),
        ("own-retry", first, key),
        ("own-other-body", {**first, "note": "another body"}, key),
        ("refused", body("GB", own, "potash", "expanded", date(2021, 1, 1)), {}),
        ("shared-key", body("CA", "BY", "potash", "imposed", date(2021, 8, 9)), SHARED_KEY),
        ("versioned", body("EU", shared, "potash", "imposed", date(2019, 1, 1)), {}),
    ]


SHARED_KEY = {"Idempotency-Key": "one-for-all"}


@pytest.mark.shared_store
def test_64_concurrent_writers_through_group_commit(
    services: Service, serve: Callable[[Service], str]
) -> None:
    base = serve(services)
    start = threading.Barrier(WRITERS)
    answers: dict[int, list[tuple[str, dict[str, Any], httpx.Response]]] = defaultdict(list)
    failures: list[BaseException] = []

    def write(number: int) -> None:
        try:
            with httpx.Client(base_url=base, headers=WRITER, timeout=60) as client:
                start.wait()
                for label, sent, headers in writer_script(number):
                    if label == "versioned":
                        sent = {**sent, "expected_version": 0}
                    answers[number].append(
                        (label, sent, client.post("/v1/events", json=sent, headers=headers))
                    )
                # One more on a shared stream, expecting the version it now sees.
                stream = f"EU/{COUNTRIES[100 + number % SHARED]}/potash"
                seen = client.get(f"/v1/streams/{stream}").json()["version"]
                later = body(
                    "EU",
                    COUNTRIES[100 + number % SHARED],
                    "potash",
                    "expanded",
                    date(2020, 1, 1) + timedelta(days=number),
                    expected_version=seen,
                    measures=[EXPANSIONS[number // SHARED]],
                )
                answers[number].append(
                    ("versioned-again", later, client.post("/v1/events", json=later))
                )
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures

    # The log, read back on its own: every event, by id.
    with httpx.Client(base_url=base, headers=READER, timeout=60) as client:
        stored: dict[str, dict[str, Any]] = {}
        after = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
            page = client.get("/v1/events", params=params).json()
            stored.update({event["event_id"]: event for event in page["events"]})
            after = page["next_after"]
            if after is None:
                break
        report = client.get("/v1/audit/verify").json()
        assert report["problems"] == [] and report["events_checked"] == len(stored)
        assert report["chain_ok"] and report["projections_ok"] and report["log_ok"]

    created: dict[str, dict[str, Any]] = {}
    by_label: dict[str, list[httpx.Response]] = defaultdict(list)
    for written in answers.values():
        outcome = {label: response for label, _, response in written}
        for label, sent, response in written:
            by_label[label].append(response)
            if response.status_code == 201:
                event = response.json()
                assert event["event_id"] not in created
                created[event["event_id"]] = event
                for field in ("type", "authority", "country", "commodity", "effective_date"):
                    assert event[field] == sent[field]
        own, retry = outcome["own"], outcome["own-retry"]
        assert own.status_code == 201 and retry.status_code == 200
        assert retry.json() == own.json()
        assert outcome["own-other-body"].status_code == 409
        assert outcome["refused"].status_code == 409
        assert outcome["refused"].json()["type"].endswith("rule-violation")

    # Every 201 is in the log exactly as answered, and nothing else is.
    assert set(stored) == set(created)
    for event_id, event in created.items():
        assert stored[event_id] == event

    # The shared key: one writer recorded, every other was answered that event.
    shared = by_label["shared-key"]
    assert sorted(r.status_code for r in shared) == [200] * (WRITERS - 1) + [201]
    assert len({r.json()["event_id"] for r in shared}) == 1

    # Expected versions: on each shared stream exactly one `expected_version: 0` won,
    # and every later win had the version it expected, plus one.
    wins = [r for r in by_label["versioned"] if r.status_code == 201]
    assert len(wins) == SHARED
    assert all(r.status_code == 409 for r in by_label["versioned"] if r.status_code != 201)
    for _, written in answers.items():
        for label, sent, response in written:
            if label.startswith("versioned") and response.status_code == 201:
                assert response.json()["version"] == sent["expected_version"] + 1
            elif label.startswith("versioned"):
                problem = response.json()
                assert problem["expected_version"] == sent["expected_version"]
                assert problem["actual_version"] > sent["expected_version"]

    # Each stream's versions run 1..n, positions rise with them, and the chain holds.
    streams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in stored.values():
        streams[event["stream"]].append(event)
    for events in streams.values():
        events.sort(key=lambda e: e["version"])
        assert [e["version"] for e in events] == list(range(1, len(events) + 1))
        assert [e["position"] for e in events] == sorted(e["position"] for e in events)
        previous = GENESIS_HASH
        for e in events:
            assert e["prev_hash"] == previous
            previous = e["hash"]
    # recorded_at rises with the position across the whole log.
    in_order = sorted(stored.values(), key=lambda e: e["position"])
    assert [e["recorded_at"] for e in in_order] == sorted(e["recorded_at"] for e in in_order)

    # And they were committed together: far fewer transactions than writes.
    writes = sum(len(written) for written in answers.values())
    assert services.log.commits.groups < writes / 2, (services.log.commits.groups, writes)


def test_a_refused_write_in_a_group_leaves_the_others_alone(services: Service) -> None:
    """Three writes decided in one group: the middle one, a batch, breaks a rule with
    its second event on the stream the first write creates; the first and the third
    are stored, the batch is answered with its own error (none of it stored), and the
    third is decided on the stream as the first left it."""
    key = StreamKey("US", "BY", "potash")

    def draft(kind: EventType, day: date, measure: str, **more: Any) -> EventDraft:
        return EventDraft(kind, key, day, frozenset({measure}), **more)

    writes = [
        Write([draft(EventType.IMPOSED, date(2021, 8, 9), "import_ban")], "a", None),
        Write(
            [
                draft(EventType.EXPANDED, date(2021, 9, 1), "quota"),
                draft(EventType.IMPOSED, date(2021, 10, 1), "quota"),  # already active
            ],
            "b",
            None,
        ),
        Write(
            [draft(EventType.EXPANDED, date(2022, 1, 1), "quota", expected_version=1)], "c", None
        ),
    ]
    services.log._commit_group(writes)
    first, batch, third = writes
    assert first.answered and batch.answered and third.answered
    assert batch.error is not None and "already active" in str(batch.error)
    recorded = [first.result().events[0], third.result().events[0]]
    assert [r.event.originator_version for r in recorded] == [1, 2]
    assert recorded[1].event.prev_hash == recorded[0].event.hash
    stored = services.log.stream_events(key)
    assert [r.event.event_id for r in stored] == [r.event.event_id for r in recorded]


@pytest.mark.shared_store
def test_a_stream_moved_on_by_another_process_is_decided_again(
    make_services: Callable[..., Service],
) -> None:
    """Two services on one database, like two processes: each keeps the streams it
    wrote in memory. A write to a stream the other has written to since is decided on
    the stored stream (version and hash chain), not on the kept state."""
    one, two = make_services(), make_services()
    key = StreamKey("US", "BY", "potash")

    def draft(kind: EventType, day: date, measures: set[str]) -> list[EventDraft]:
        return [EventDraft(kind, key, day, frozenset(measures))]

    a = one.log.record(
        draft(EventType.IMPOSED, date(2021, 8, 9), {"import_ban"}), recorded_by="one"
    )
    b = two.log.record(draft(EventType.EXPANDED, date(2022, 1, 1), {"quota"}), recorded_by="two")
    c = one.log.record(
        draft(EventType.EXPANDED, date(2022, 6, 1), {"asset_freeze"}), recorded_by="one"
    )
    chain = [a.events[0].event, b.events[0].event, c.events[0].event]
    assert [e.originator_version for e in chain] == [1, 2, 3]
    assert chain[1].prev_hash == chain[0].hash and chain[2].prev_hash == chain[1].hash
    stored = one.log.stream_events(key)
    assert [r.event.hash for r in stored] == [e.hash for e in chain]


@pytest.mark.shared_store
def test_a_store_restored_from_a_backup_under_a_running_service(services: Service) -> None:
    """The service keeps the streams it writes in memory; when the store goes back in
    time under it (a backup restored), the next write is decided on what is stored, so
    versions and the hash chain run on from the restored stream, without a gap."""
    key = StreamKey("US", "BY", "potash")
    log = services.log
    first = log.record(
        [EventDraft(EventType.IMPOSED, key, date(2021, 8, 9), frozenset({"import_ban"}))],
        recorded_by="t",
    ).events[0]
    lost = log.record(
        [EventDraft(EventType.EXPANDED, key, date(2022, 1, 1), frozenset({"quota"}))],
        recorded_by="t",
    ).events[0]
    with log.store.transaction(commit=True) as cursor:  # as the backup had it
        for table in (log.store.events_table_name, "event_index"):
            cursor.execute(f"DELETE FROM {log.store.qualified(table)} WHERE originator_version = 2")
    after = log.record(
        [EventDraft(EventType.EXPANDED, key, date(2022, 6, 1), frozenset({"asset_freeze"}))],
        recorded_by="t",
    ).events[0]
    assert after.event.originator_version == 2 and after.event.event_id != lost.event.event_id
    assert after.event.prev_hash == first.event.hash
    assert [r.event.originator_version for r in log.stream_events(key)] == [1, 2]


@pytest.mark.shared_store
def test_a_refusal_is_never_decided_on_a_state_another_process_moved_on(
    make_services: Callable[..., Service],
) -> None:
    """One service keeps US/BY/potash as imposed; another lifts it. The first must not
    refuse a new imposition (nor an expected version it has not seen yet) on the
    state it kept: a refusal is checked against the store before it is answered."""
    one, two = make_services(), make_services()
    key = StreamKey("US", "BY", "potash")

    def drafts(kind: EventType, day: date, *measures: str, **more: Any) -> list[EventDraft]:
        return [EventDraft(kind, key, day, frozenset(measures), **more)]

    one.log.record(drafts(EventType.IMPOSED, date(2021, 8, 9), "import_ban"), recorded_by="one")
    two.log.record(drafts(EventType.LIFTED, date(2025, 12, 15)), recorded_by="two")
    again = one.log.record(
        drafts(EventType.IMPOSED, date(2026, 3, 1), "quota", expected_version=2), recorded_by="one"
    )
    assert again.events[0].event.originator_version == 3
    two.log.record(drafts(EventType.LIFTED, date(2026, 6, 1)), recorded_by="two")
    versioned = one.log.record(
        drafts(EventType.IMPOSED, date(2026, 9, 1), "quota", expected_version=4), recorded_by="one"
    )
    assert versioned.events[0].event.originator_version == 5
