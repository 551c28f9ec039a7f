"""Recording events over REST, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from api.app.identity import Role
from api.app.service import Service
from api.http.app import create_app
from domain.application import SanctionsLog
from domain.errors import VersionConflict
from domain.hashing import GENESIS_HASH
from domain.keys import STREAM_NAMESPACE, StreamKey
from domain.rules import EventType
from domain.stream import EventDraft
from tests.conftest import ADMIN, READER, WRITER

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store

US_IMPOSED: dict[str, Any] = {
    "type": "imposed",
    "authority": "US",
    "country": "BY",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["asset_freeze", "import_ban"],
    "legal_basis": "Executive Order 14038",
    "source": {
        "url": "https://ofac.treasury.gov/recent-actions/20210809",
        "title": "Belarus-related Designations",
        "published": "2021-08-09",
    },
}


def post(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/v1/events", json=body, headers={**WRITER, **headers})


def log_size(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 1000}).json()["events"])


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def test_recorded_event_is_answered_with_the_service_fields(client: TestClient) -> None:
    response = post(client, {**US_IMPOSED, "authority": "us", "expected_version": 0})
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["authority"] == "US" and event["stream"] == "US/BY/potash"
    assert event["version"] == 1 and event["position"] >= 1
    assert event["recorded_by"] == "wendy"
    assert event["effective_date"] == "2021-08-09"
    assert event["measures"] == ["asset_freeze", "import_ban"]
    assert event["source"] == US_IMPOSED["source"]
    assert event["recorded_at"].endswith("Z")
    assert event["prev_hash"] == GENESIS_HASH and len(event["hash"]) == 64
    assert response.headers["location"] == f"/v1/events/{event['event_id']}"
    assert client.get(f"/v1/events/{event['event_id']}").json() == event


def test_stream_reads_back_in_version_order(client: TestClient) -> None:
    post(client, US_IMPOSED)
    post(
        client,
        {
            **US_IMPOSED,
            "type": "expanded",
            "effective_date": "2022-04-01",
            "measures": ["financing_ban"],
        },
    )
    post(client, {**US_IMPOSED, "type": "lifted", "effective_date": "2025-12-13", "measures": None})
    stream = client.get("/v1/streams/us/by/potash").json()
    assert stream["stream"] == "US/BY/potash" and stream["version"] == 3
    assert [e["type"] for e in stream["events"]] == ["imposed", "expanded", "lifted"]
    assert [e["version"] for e in stream["events"]] == [1, 2, 3]
    empty = client.get("/v1/streams/EU/BY/potash").json()
    assert empty == {"stream": "EU/BY/potash", "version": 0, "events": []}


# Every rule's refusal, each with nothing stored.
RULE_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], str]] = [
    (
        "second imposition",
        [US_IMPOSED],
        {**US_IMPOSED, "effective_date": "2022-01-01"},
        "already active",
    ),
    ("expand inactive", [], {**US_IMPOSED, "type": "expanded"}, "not active"),
    (
        "expand nothing new",
        [US_IMPOSED],
        {
            **US_IMPOSED,
            "type": "expanded",
            "effective_date": "2022-01-01",
            "measures": ["import_ban"],
        },
        "already in force",
    ),
    (
        "ease inactive",
        [],
        {**US_IMPOSED, "type": "eased", "measures": ["import_ban"]},
        "not active",
    ),
    (
        "ease a measure not in force",
        [US_IMPOSED],
        {**US_IMPOSED, "type": "eased", "effective_date": "2022-01-01", "measures": ["quota"]},
        "not in force",
    ),
    (
        "ease everything",
        [US_IMPOSED],
        {**US_IMPOSED, "type": "eased", "effective_date": "2022-01-01"},
        "lifted` instead",
    ),
    ("lift inactive", [], {**US_IMPOSED, "type": "lifted", "measures": None}, "cannot be lifted"),
    (
        "lift before imposition",
        [US_IMPOSED],
        {**US_IMPOSED, "type": "lifted", "effective_date": "2019-01-01", "measures": None},
        "not active on 2019-01-01",
    ),
]


@pytest.mark.parametrize(
    ("name", "before", "body", "message"), RULE_CASES, ids=[c[0] for c in RULE_CASES]
)
def test_rule_violation_is_409_and_stores_nothing(
    client: TestClient, name: str, before: list[dict[str, Any]], body: dict[str, Any], message: str
) -> None:
    for earlier in before:
        assert post(client, earlier).status_code == 201
    problem = assert_problem(post(client, body), 409)
    assert message in problem["detail"]
    assert log_size(client) == len(before)


def test_late_insertion_that_breaks_a_later_event_names_it(client: TestClient) -> None:
    post(client, US_IMPOSED)
    expansion = post(
        client,
        {
            **US_IMPOSED,
            "type": "expanded",
            "effective_date": "2022-04-01",
            "measures": ["financing_ban"],
        },
    ).json()
    problem = assert_problem(
        post(
            client,
            {**US_IMPOSED, "type": "lifted", "effective_date": "2022-01-01", "measures": None},
        ),
        409,
    )
    assert problem["breaks_event_id"] == expansion["event_id"]
    assert expansion["event_id"] in problem["detail"]
    assert log_size(client) == 2


def test_retraction_rules_over_http(client: TestClient) -> None:
    imposed = post(client, US_IMPOSED).json()
    expansion = post(
        client,
        {
            **US_IMPOSED,
            "type": "expanded",
            "effective_date": "2022-04-01",
            "measures": ["financing_ban"],
        },
    ).json()
    retract = {"type": "retracted", "authority": "US", "country": "BY", "commodity": "potash"}
    problem = assert_problem(
        post(client, {**retract, "retracts": imposed["event_id"], "note": "wrong"}), 409
    )
    assert problem["breaks_event_id"] == expansion["event_id"]
    done = post(client, {**retract, "retracts": expansion["event_id"], "note": "wrong date"})
    assert done.status_code == 201
    assert done.json()["retracts"] == expansion["event_id"]
    assert done.json()["effective_date"] is None
    assert_problem(post(client, {**retract, "retracts": expansion["event_id"], "note": "x"}), 409)
    other = {**retract, "authority": "EU", "retracts": imposed["event_id"], "note": "x"}
    assert_problem(post(client, other), 409)
    assert log_size(client) == 3


INVALID_BODIES: list[tuple[str, Any, str]] = [
    ("unknown authority", {**US_IMPOSED, "authority": "XX"}, "body.authority"),
    ("bloc as target", {**US_IMPOSED, "country": "EU"}, "body.country"),
    ("unknown country", {**US_IMPOSED, "country": "QQ"}, "body.country"),
    ("unknown commodity", {**US_IMPOSED, "commodity": "potassium"}, "body.commodity"),
    ("unknown type", {**US_IMPOSED, "type": "suspended"}, "body.type"),
    ("unknown measure", {**US_IMPOSED, "measures": ["embargo"]}, "body.measures.0"),
    ("no measures", {**US_IMPOSED, "measures": []}, "body.measures"),
    ("lift with measures", {**US_IMPOSED, "type": "lifted"}, "body.measures"),
    (
        "no effective date",
        {k: v for k, v in US_IMPOSED.items() if k != "effective_date"},
        "body.effective_date",
    ),
    ("bad date", {**US_IMPOSED, "effective_date": "2021-02-30"}, "body.effective_date"),
    ("date as number", {**US_IMPOSED, "effective_date": 1628467200}, "body.effective_date"),
    (
        "date with time",
        {**US_IMPOSED, "effective_date": "2021-08-09T00:00:00"},
        "body.effective_date",
    ),
    ("ftp source", {**US_IMPOSED, "source": {"url": "ftp://example.org/x"}}, "body.source.url"),
    ("source not a url", {**US_IMPOSED, "source": {"url": "treasury"}}, "body.source.url"),
    ("negative expected version", {**US_IMPOSED, "expected_version": -1}, "body.expected_version"),
    ("string expected version", {**US_IMPOSED, "expected_version": "0"}, "body.expected_version"),
    ("unknown field", {**US_IMPOSED, "colour": "red"}, "body.colour"),
    (
        "retraction without note",
        {
            "type": "retracted",
            "authority": "US",
            "country": "BY",
            "commodity": "potash",
            "retracts": "6f1c1a8e-2d1b-4a8e-9c7a-1f2e3d4c5b6a",
        },
        "body.note",
    ),
    (
        "retraction with bad id",
        {
            "type": "retracted",
            "authority": "US",
            "country": "BY",
            "commodity": "potash",
            "retracts": "nope",
            "note": "x",
        },
        "body.retracts",
    ),
    (
        "retraction with a date",
        {
            "type": "retracted",
            "authority": "US",
            "country": "BY",
            "commodity": "potash",
            "retracts": "6f1c1a8e-2d1b-4a8e-9c7a-1f2e3d4c5b6a",
            "note": "x",
            "effective_date": "2021-01-01",
        },
        "body.effective_date",
    ),
    ("authority not a string", {**US_IMPOSED, "authority": 840}, "body.authority"),
    ("not an object", ["imposed"], "body"),
    ("null body", None, "body"),
]


@pytest.mark.parametrize(
    ("name", "body", "field"), INVALID_BODIES, ids=[c[0] for c in INVALID_BODIES]
)
def test_invalid_input_is_422_naming_the_field_and_stores_nothing(
    client: TestClient, name: str, body: Any, field: str
) -> None:
    response = client.post("/v1/events", json=body, headers=WRITER)
    problem = assert_problem(response, 422)
    fields = [error["field"] for error in problem["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert log_size(client) == 0


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b'{"type": "imposed",}', b"[1, 2", b"nan"])
def test_malformed_json_is_422(client: TestClient, raw: bytes) -> None:
    response = client.post(
        "/v1/events", content=raw, headers={**WRITER, "content-type": "application/json"}
    )
    assert_problem(response, 422)
    assert log_size(client) == 0


def test_unknown_commodity_names_close_matches(client: TestClient) -> None:
    problem = assert_problem(post(client, {**US_IMPOSED, "commodity": "crude_oil"}), 422)
    assert "crude-oil" in problem["detail"]


def test_body_over_64_kib_is_413(client: TestClient) -> None:
    body = {**US_IMPOSED, "note": "x" * (64 * 1024)}
    assert_problem(post(client, body), 413)
    assert log_size(client) == 0


def test_batch_body_over_8_mib_is_413(client: TestClient) -> None:
    events = [{**US_IMPOSED, "note": "x" * 8000, "legal_basis": "y" * 900}] * 1000  # ~9.2 MB
    response = client.post("/v1/events:batch", json={"events": events}, headers=WRITER)
    assert_problem(response, 413)


def test_expected_version_mismatch_is_409(client: TestClient) -> None:
    assert post(client, {**US_IMPOSED, "expected_version": 0}).status_code == 201
    expansion = {
        **US_IMPOSED,
        "type": "expanded",
        "effective_date": "2022-04-01",
        "measures": ["financing_ban"],
    }
    problem = assert_problem(post(client, {**expansion, "expected_version": 0}), 409)
    assert problem["expected_version"] == 0 and problem["actual_version"] == 1
    assert post(client, {**expansion, "expected_version": 1}).status_code == 201


def test_expected_version_race_has_exactly_one_winner(client: TestClient) -> None:
    post(client, US_IMPOSED)
    statuses: list[int] = []
    start = threading.Barrier(8)

    def contender(index: int) -> None:
        start.wait()
        body = {
            **US_IMPOSED,
            "type": "expanded",
            "effective_date": f"2022-0{index + 1}-01",
            "measures": ["financing_ban"],
            "expected_version": 1,
        }
        statuses.append(post(client, body).status_code)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 7
    assert client.get("/v1/streams/US/BY/potash").json()["version"] == 2


@pytest.mark.shared_store
def test_version_race_between_separate_applications_has_one_winner(
    make_services: Callable[..., Service],
) -> None:
    """Like separate processes sharing one database: the store itself decides."""

    first = make_services()
    logs = [first.log] + [SanctionsLog(first.log.database_url) for _ in range(7)]
    key = StreamKey("US", "BY", "potash")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def contender(log: SanctionsLog) -> None:
        start.wait()
        draft = EventDraft(
            EventType.IMPOSED,
            key,
            date(2021, 8, 9),
            frozenset({"import_ban"}),
            expected_version=0,
        )
        try:
            log.record([draft], recorded_by="race")
            outcomes.append("won")
        except VersionConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=contender, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs[1:]:
        log.close()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    assert first.log.stream(key).version == 1


def test_idempotent_retry_answers_the_recorded_event(client: TestClient) -> None:
    first = post(client, US_IMPOSED, **{"Idempotency-Key": "k-1"})
    again = post(client, US_IMPOSED, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert log_size(client) == 1


def test_idempotency_key_reused_with_another_body_is_409(client: TestClient) -> None:
    post(client, US_IMPOSED, **{"Idempotency-Key": "k-1"})
    other = {**US_IMPOSED, "authority": "GB"}
    problem = assert_problem(post(client, other, **{"Idempotency-Key": "k-1"}), 409)
    assert "Idempotency-Key" in problem["detail"]
    assert log_size(client) == 1


@pytest.mark.shared_store
def test_idempotent_retry_survives_a_restart(make_services: Callable[..., Service]) -> None:
    with TestClient(create_app(make_services())) as before:
        first = post(before, US_IMPOSED, **{"Idempotency-Key": "durable"})
    with TestClient(create_app(make_services())) as after:
        again = post(after, US_IMPOSED, **{"Idempotency-Key": "durable"})
        assert again.status_code == 200 and again.json() == first.json()
        assert log_size(after) == 1


def test_concurrent_retries_with_one_key_record_once(client: TestClient) -> None:
    statuses: list[int] = []
    start = threading.Barrier(6)

    def retry() -> None:
        start.wait()
        statuses.append(post(client, US_IMPOSED, **{"Idempotency-Key": "same"}).status_code)

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [201]
    assert log_size(client) == 1


def test_batch_records_all_in_order(client: TestClient) -> None:
    events = [
        {**US_IMPOSED, "authority": "EU", "effective_date": "2021-06-24"},
        US_IMPOSED,
        {
            **US_IMPOSED,
            "authority": "EU",
            "type": "expanded",
            "effective_date": "2022-03-02",
            "measures": ["transit_ban"],
        },
    ]
    response = client.post("/v1/events:batch", json={"events": events}, headers=WRITER)
    assert response.status_code == 201, response.text
    recorded = response.json()["events"]
    assert [e["stream"] for e in recorded] == ["EU/BY/potash", "US/BY/potash", "EU/BY/potash"]
    positions = [e["position"] for e in recorded]
    assert positions == sorted(positions)
    assert [e["version"] for e in recorded] == [1, 1, 2]
    assert recorded[2]["prev_hash"] == recorded[0]["hash"]


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        ({**US_IMPOSED, "type": "lifted", "effective_date": "2019-01-01", "measures": None}, 409),
        ({**US_IMPOSED, "commodity": "unobtainium"}, 422),
        ({**US_IMPOSED, "expected_version": 5}, 409),
    ],
)
def test_batch_is_all_or_nothing(client: TestClient, bad: dict[str, Any], status: int) -> None:
    events = [{**US_IMPOSED, "authority": "EU"}, {**US_IMPOSED, "authority": "GB"}, bad]
    response = client.post("/v1/events:batch", json={"events": events}, headers=WRITER)
    problem = assert_problem(response, status)
    if status == 422:
        assert any(e["field"].startswith("body.events.2") for e in problem["errors"])
    assert log_size(client) == 0


def test_batch_within_one_stream_is_checked_in_order(client: TestClient) -> None:
    events = [
        US_IMPOSED,
        {**US_IMPOSED, "type": "lifted", "effective_date": "2025-12-13", "measures": None},
    ]
    assert (
        client.post("/v1/events:batch", json={"events": events}, headers=WRITER).status_code == 201
    )
    again = client.post("/v1/events:batch", json={"events": events[1:]}, headers=WRITER)
    assert_problem(again, 409)


def test_batch_limits(client: TestClient) -> None:
    assert_problem(client.post("/v1/events:batch", json={"events": []}, headers=WRITER), 422)
    many = [US_IMPOSED] * 1001
    assert_problem(client.post("/v1/events:batch", json={"events": many}, headers=WRITER), 422)


def test_batch_idempotent_replay(client: TestClient) -> None:
    body = {"events": [US_IMPOSED, {**US_IMPOSED, "authority": "GB"}]}
    headers = {**WRITER, "Idempotency-Key": "batch-1"}
    first = client.post("/v1/events:batch", json=body, headers=headers)
    again = client.post("/v1/events:batch", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    single = client.post("/v1/events", json=US_IMPOSED, headers=headers)
    assert_problem(single, 409)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Basic x"}, 401),
        (READER, 403),
    ],
)
def test_writes_need_a_writer_token(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    response = client.post("/v1/events", json=US_IMPOSED, headers=headers)
    assert_problem(response, status)
    batch = client.post("/v1/events:batch", json={"events": [US_IMPOSED]}, headers=headers)
    assert_problem(batch, status)
    assert log_size(client) == 0


def test_admin_may_write_and_recorded_by_is_the_token_name(client: TestClient) -> None:
    response = client.post("/v1/events", json=US_IMPOSED, headers=ADMIN)
    assert response.status_code == 201 and response.json()["recorded_by"] == "alice"


def test_reads_may_require_a_token(make_services: Callable[..., Service]) -> None:
    with TestClient(create_app(make_services(reads_require_token=True))) as client:
        assert_problem(client.get("/v1/events"), 401)
        assert client.get("/v1/events", headers=READER).status_code == 200
        assert client.get("/healthz").status_code == 200


@pytest.mark.shared_store
def test_first_start_creates_one_admin_token(make_services: Callable[..., Service]) -> None:
    svc = make_services(api_tokens="")
    token = svc.tokens.create_first_admin()
    assert token is not None
    assert make_services(api_tokens="").tokens.create_first_admin() is None  # kept, not remade
    with TestClient(create_app(svc)) as client:
        response = client.post(
            "/v1/events", json=US_IMPOSED, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 201 and response.json()["recorded_by"] == "admin"


def stored_token_rows(database_url: str) -> list[dict[str, Any]]:
    """The `api_tokens` rows, read with a raw connection rather than the service's store."""
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute("SELECT * FROM api_tokens")]
    parsed = urlparse(database_url)
    schema = parse_qs(parsed.query)["schema"][0]
    with psycopg.connect(parsed._replace(query="").geturl(), row_factory=dict_row) as conn:
        table = Identifier(schema, "api_tokens")
        return list(conn.execute(SQL("SELECT * FROM {}").format(table)).fetchall())


@pytest.mark.shared_store
def test_tokens_are_stored_hashed(services: Service, database_url: str) -> None:
    token = services.tokens.create("carol", Role.WRITER)
    rows = stored_token_rows(database_url)
    assert [(row["name"], row["role"]) for row in rows] == [("carol", "writer")]
    assert set(rows[0]) == {"name", "role", "token_hash", "created_at", "revoked_at"}
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode("utf-8")).hexdigest()
    assert token not in repr(rows) and token[::-1] not in repr(rows)
    assert rows[0]["revoked_at"] is None
    caller = services.tokens.authenticate(token)
    assert caller is not None and (caller.name, caller.role) == ("carol", Role.WRITER)


def test_events_page_in_position_order_with_filters(client: TestClient) -> None:
    for authority in ("US", "EU", "GB", "CA", "LT"):
        post(client, {**US_IMPOSED, "authority": authority})
    post(client, {**US_IMPOSED, "country": "RU", "commodity": "crude-oil"})
    page = client.get("/v1/events", params={"limit": 2}).json()
    assert len(page["events"]) == 2 and page["next_after"] == page["events"][-1]["position"]
    rest = client.get("/v1/events", params={"after": page["next_after"], "limit": 10}).json()
    assert len(rest["events"]) == 4 and rest["next_after"] is None
    positions = [e["position"] for e in page["events"] + rest["events"]]
    assert positions == sorted(positions) and len(set(positions)) == 6
    by_country = client.get("/v1/events", params={"country": "ru"}).json()["events"]
    assert [e["commodity"] for e in by_country] == ["crude-oil"]
    us = client.get("/v1/events", params={"authority": "us", "commodity": "potash"}).json()
    assert [e["stream"] for e in us["events"]] == ["US/BY/potash"]
    assert client.get("/v1/events", params={"type": "lifted"}).json()["events"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"after": -1},
        {"after": "x"},
        {"type": "x"},
        {"country": "XX"},
        {"authority": "ZZ"},
        {"commodity": "nope"},
    ],
)
def test_bad_event_query_is_422(client: TestClient, params: dict[str, Any]) -> None:
    assert_problem(client.get("/v1/events", params=params), 422)


def test_unknown_event_is_404_and_malformed_id_422(client: TestClient) -> None:
    assert_problem(client.get("/v1/events/6f1c1a8e-2d1b-4a8e-9c7a-1f2e3d4c5b6a"), 404)
    assert_problem(client.get("/v1/events/not-an-id"), 422)
    assert_problem(client.get("/v1/nothing-here"), 404)
    assert_problem(client.get("/v1/streams/XX/BY/potash"), 422)


def test_hash_chain_links_every_event_of_a_stream(client: TestClient) -> None:
    bodies = [
        US_IMPOSED,
        {
            **US_IMPOSED,
            "type": "expanded",
            "effective_date": "2022-04-01",
            "measures": ["financing_ban"],
            "note": "GL 5 expired",
        },
        {**US_IMPOSED, "type": "lifted", "effective_date": "2025-12-13", "measures": None},
    ]
    for body in bodies:
        assert post(client, body).status_code == 201
    response = client.get("/v1/streams/US/BY/potash")
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert [event["version"] for event in events] == [1, 2, 3]
    assert [event["type"] for event in events] == ["imposed", "expanded", "lifted"]
    previous = GENESIS_HASH
    for event in events:
        assert event["prev_hash"] == previous
        # Every stored field: the library's own too (the stream's id, the version and
        # the timestamp, which is the recording time), and the event id.
        document: dict[str, Any] = {
            "originator_id": str(uuid.uuid5(STREAM_NAMESPACE, event["stream"])),
            "originator_version": event["version"],
            "timestamp": event["recorded_at"],
            "type": event["type"],
            "stream": event["stream"],
            "event_id": event["event_id"],
            "effective_date": event["effective_date"],
            "measures": event["measures"],
            "legal_basis": event["legal_basis"],
            "source": event["source"],
            "note": event["note"],
            "recorded_at": event["recorded_at"],
            "recorded_by": event["recorded_by"],
            "prev_hash": event["prev_hash"],
        }
        # Canonical JSON spelled out here, not taken from domain.hashing.
        canonical = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        previous = hashlib.sha256(canonical).hexdigest()
        assert previous == event["hash"]
    assert previous == events[-1]["hash"]


def test_catalogue_lists_at_least_25_commodities_with_hs_codes(client: TestClient) -> None:
    commodities = client.get("/v1/commodities").json()["commodities"]
    by_slug = {c["slug"]: c for c in commodities}
    assert len(by_slug) >= 25
    expected = {
        "potash": "3104",
        "crude-oil": "2709",
        "refined-petroleum": "2710",
        "natural-gas": "2711",
        "coal": "2701",
        "iron-steel": "72",
        "aluminium": "76",
        "gold": "7108",
        "diamonds": "7102",
        "timber": "44",
        "tobacco": "24",
        "cement": "2523",
        "rubber": "40",
        "fertilizers": "31",
    }
    assert {slug: by_slug[slug]["hs_code"] for slug in expected} == expected


def test_openapi_and_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/events",
        "/v1/events:batch",
        "/v1/events/{event_id}",
        "/v1/streams/{authority}/{country}/{commodity}",
        "/v1/commodities",
    } <= set(paths)
