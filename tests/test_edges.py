"""Right answers at every edge: strict queries, every error named, never a 500.

Each odd input is refused with a problem document naming what is wrong, changes
nothing, and leaves the connection usable; on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app.identity import Role, TokenError
from api.app.service import Service
from api.http.app import create_app
from tests.conftest import ADMIN, READER, WRITER
from tests.tamper import behind_the_back, events_table, stream_id

pytestmark = pytest.mark.e2e  # mostly in process on a real store; some against a served app

US_IMPOSED: dict[str, Any] = {
    "type": "imposed",
    "authority": "US",
    "country": "BY",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["asset_freeze", "import_ban"],
}
US_EXPANDED = {**US_IMPOSED, "type": "expanded", "effective_date": "2022-04-01",
               "measures": ["financing_ban"]}  # fmt: skip
US_LIFTED = {**US_IMPOSED, "type": "lifted", "effective_date": "2025-12-15", "measures": None}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


def count(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 1000}).json()["events"])


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/events", json=body, headers=WRITER)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


# Unknown query parameters: never silently ignored


READ_ROUTES = [
    "/v1/status",
    "/v1/timeline",
    "/v1/events",
    "/v1/audit/replay",
    "/v1/commodities",
    "/v1/streams/US/BY/potash",
    "/v1/events/stream",
]


@pytest.mark.parametrize("route", READ_ROUTES)
def test_an_unknown_query_parameter_is_refused_naming_it(client: TestClient, route: str) -> None:
    post(client, US_IMPOSED)
    body = problem(client.get(route, params={"asof": "2023-06-01"}), 422)
    assert fields(body) == ["query.asof"]
    if route in ("/v1/status",):
        assert "did you mean 'as_of'?" in body["errors"][0]["message"]


def test_asof_is_never_answered_as_today(client: TestClient) -> None:
    post(client, US_IMPOSED)
    post(client, US_LIFTED)
    query = {"country": "BY", "commodity": "potash", "authority": "US"}
    assert problem(client.get("/v1/status", params={**query, "asof": "2023-06-01"}), 422)
    (row,) = client.get("/v1/status", params={**query, "as_of": "2023-06-01"}).json()["results"]
    assert row["status"] == "active"


# Every error named, at once, in the user's terms


def test_every_invalid_field_of_a_body_is_named_at_once(client: TestClient) -> None:
    body = {**US_IMPOSED, "authority": "XX", "country": "Belarus", "commodity": "potas",
            "effective_date": "2021-02-30"}  # fmt: skip
    found = problem(client.post("/v1/events", json=body, headers=WRITER), 422)
    assert sorted(fields(found)) == [
        "body.authority", "body.commodity", "body.country", "body.effective_date",
    ]  # fmt: skip
    messages = {error["field"]: error["message"] for error in found["errors"]}
    assert "did you mean 'BY' (Belarus)?" in messages["body.country"]
    assert "did you mean 'potash'?" in messages["body.commodity"]
    assert (
        "2021-02-30 is not a date that exists: February 2021 has 28 days"
        in (messages["body.effective_date"])
    )
    assert count(client) == 0


def test_every_invalid_query_filter_is_named_at_once(client: TestClient) -> None:
    found = problem(
        client.get(
            "/v1/status", params={"authority": "XX", "country": "Belarus", "commodity": "x"}
        ),
        422,
    )
    assert sorted(fields(found)) == ["query.authority", "query.commodity", "query.country"]
    assert "'BY' (Belarus)" in found["detail"]


def test_a_date_that_does_not_exist_is_said_so_in_query_and_body_alike(client: TestClient) -> None:
    query = problem(client.get("/v1/status", params={"as_of": "2026-02-30"}), 422)
    assert query["errors"][0]["message"] == (
        "2026-02-30 is not a date that exists: February 2026 has 28 days, not 30"
    )
    body = problem(
        client.post(
            "/v1/events", json={**US_IMPOSED, "effective_date": "2026-02-30"}, headers=WRITER
        ),
        422,
    )
    assert body["errors"][0]["message"] == query["errors"][0]["message"]
    known = problem(client.get("/v1/status", params={"known_at": "2026-13-01T00:00:00Z"}), 422)
    assert "there is no month 13" in known["detail"]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "says"),
    [
        ("text/plain", b"{}", 415, "application/json, not text/plain"),
        ("application/x-www-form-urlencoded", b"a=b", 415, "application/json"),
        ("application/json", b'{"type": "imposed",\n "authority": }', 422, "line 2, column 15"),
        ("application/json", b"\xb2\xffnot utf-8", 422, "not valid UTF-8 (byte 0)"),
        ("application/json", b"[" * 20000 + b"]" * 20000, 422, "nests too deeply"),
        ("application/json", b'{"expected_version": ' + b"9" * 5000 + b"}", 422, "number too long"),
    ],
)
def test_a_body_that_is_not_json_is_refused_saying_why(
    client: TestClient, content_type: str, body: bytes, status: int, says: str
) -> None:
    headers = {**WRITER, "Content-Type": content_type}
    for route in ("/v1/events", "/v1/events:batch"):
        found = problem(client.post(route, content=body, headers=headers), status)
        assert says in found["detail"], found
    assert count(client) == 0


def test_a_refused_batch_names_the_failing_event(client: TestClient) -> None:
    eu = {**US_IMPOSED, "authority": "EU"}
    batch = [US_IMPOSED, eu, {**eu, "effective_date": "2022-01-01"}]  # EU imposed twice
    conflict = problem(client.post("/v1/events:batch", json={"events": batch}, headers=WRITER), 409)
    assert conflict["index"] == 2 and conflict["stream"] == "EU/BY/potash"
    invalid = [US_IMPOSED, eu, {**eu, "country": "Belarus"}]
    found = problem(client.post("/v1/events:batch", json={"events": invalid}, headers=WRITER), 422)
    assert found["index"] == 2 and fields(found) == ["body.events.2.country"]
    stale = [US_IMPOSED, {**eu, "expected_version": 3}]
    version = problem(client.post("/v1/events:batch", json={"events": stale}, headers=WRITER), 409)
    assert version["index"] == 1
    assert count(client) == 0


def test_a_revoked_token_is_said_to_be_revoked(services: Service, client: TestClient) -> None:
    token = services.tokens.create("carol", Role.WRITER)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/v1/events", json=US_IMPOSED, headers=headers).status_code == 201
    services.tokens.revoke("carol")
    assert (
        problem(client.post("/v1/events", json=US_EXPANDED, headers=headers), 401)["detail"]
        == "token revoked"
    )
    unknown = {"Authorization": "Bearer st_never-issued"}
    assert (
        problem(client.post("/v1/events", json=US_EXPANDED, headers=unknown), 401)["detail"]
        == "unknown token"
    )


@pytest.mark.shared_store
def test_a_token_name_is_unique_across_configured_and_stored(
    services: Service, make_services: Callable[..., Service]
) -> None:
    with pytest.raises(TokenError, match="configured"):
        services.tokens.create("wendy", Role.ADMIN)  # wendy is configured (conftest TOKENS)
    with pytest.raises(TokenError, match="SANCTIONS_API_TOKENS"):
        services.tokens.revoke("wendy")
    services.tokens.create("carol", Role.READER)
    with pytest.raises(TokenError, match="'carol'"):
        make_services(api_tokens="carol:admin:another-token")
    with pytest.raises(TokenError, match="'w'"):
        make_services(api_tokens="w:admin:a,w:reader:b")


# No 500, ever


@pytest.mark.parametrize(
    "known_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30"]
)
@pytest.mark.parametrize("route", ["/v1/status", "/v1/timeline", "/v1/audit/replay"])
def test_a_known_at_outside_the_calendar_is_a_422(
    client: TestClient, route: str, known_at: str
) -> None:
    found = problem(client.get(route, params={"country": "BY", "known_at": known_at}), 422)
    assert fields(found) == ["query.known_at"]


def test_a_bare_date_known_at_means_midnight_utc_and_says_so(client: TestClient) -> None:
    answer = client.get("/v1/status", params={"country": "BY", "known_at": "2026-01-15"}).json()
    assert answer["known_at"] == "2026-01-15T00:00:00.000000Z"


@pytest.mark.parametrize("after", ["9223372036854775808", "-1", "1e3", "99999999999999999999999"])
def test_an_after_beyond_any_position_is_a_422(client: TestClient, after: str) -> None:
    post(client, US_IMPOSED)
    assert fields(problem(client.get("/v1/events", params={"after": after}), 422)) == [
        "query.after"
    ]
    found = problem(client.get("/v1/events/stream", params={"after": after}), 422)
    assert fields(found) == ["query.after"]
    biggest = client.get("/v1/events", params={"after": "9223372036854775807"})
    assert biggest.status_code == 200 and biggest.json()["events"] == []


@pytest.mark.parametrize("last_event_id", ["\xb2", "1" * 5000, "-3", "12a", "9223372036854775808"])
def test_an_odd_last_event_id_is_a_422(client: TestClient, last_event_id: str) -> None:
    found = problem(
        client.get("/v1/events/stream", headers={"Last-Event-ID": last_event_id.encode("latin-1")}),
        422,
    )
    assert fields(found) == ["header.Last-Event-ID"]


def raw_exchange(base: str, requests: list[bytes]) -> list[int]:
    """Send the requests one after another on ONE keep-alive connection; their statuses."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    statuses = []
    with socket.create_connection((host, port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for request in requests:
            sock.sendall(request)
            status_line = reader.readline()
            statuses.append(int(status_line.split()[1]))
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                assert not (name.lower() == "connection" and "close" in value.lower())
            reader.read(length)
    return statuses


def test_odd_inputs_leave_the_keep_alive_connection_usable(
    live_server: Callable[..., str],
) -> None:
    base = live_server(api_tokens="w:writer:wt")

    def get(target: str, extra: bytes = b"") -> bytes:
        return f"GET {target} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n"

    statuses = raw_exchange(
        base,
        [
            get("/v1/status?known_at=0001-01-01T00:00:00%2B14:00"),
            get("/v1/events?after=9223372036854775808"),
            get("/v1/events/stream", b"Last-Event-ID: \xb2\r\n"),
            get("/v1/events/stream", b"Last-Event-ID: " + b"7" * 5000 + b"\r\n"),
            get("/v1/status?asof=2023-06-01"),
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wt\r\n"
            b"Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}",
            get("/v1/status?country=BY"),
        ],
    )
    assert statuses == [422, 422, 422, 422, 422, 422, 200]


@pytest.mark.shared_store
def test_an_undecodable_stored_event_is_skipped_and_named(
    services: Service, client: TestClient
) -> None:
    first = post(client, US_IMPOSED)
    post(client, US_EXPANDED)
    post(client, {**US_IMPOSED, "authority": "EU"})
    with behind_the_back(services) as sql:
        sql(
            f"UPDATE {events_table(services)} SET state = %s WHERE originator_id = %s"
            " AND originator_version = 2",
            (b"{not json", stream_id(services, "US/BY/potash")),
        )
    page = client.get("/v1/events", params={"limit": 1000})
    assert page.status_code == 200
    assert [e["stream"] for e in page.json()["events"]] == ["US/BY/potash", "EU/BY/potash"]
    (skipped,) = page.json()["problems"]
    assert skipped["stream"] == "US/BY/potash" and skipped["version"] == 2
    paged = client.get("/v1/events", params={"limit": 1, "after": first["position"]}).json()
    assert paged["events"] == [] and paged["next_after"] == skipped["position"]
    stream = client.get("/v1/streams/US/BY/potash").json()
    assert [e["version"] for e in stream["events"]] == [1] and stream["version"] == 2
    assert stream["problems"][0]["version"] == 2
    assert "problems" not in client.get("/v1/streams/EU/BY/potash").json()
    report = client.get("/v1/audit/verify", headers=READER).json()
    assert {"kind": "undecodable", "version": 2} in [
        {"kind": p["kind"], "version": p["version"]} for p in report["problems"]
    ]
    write = client.post("/v1/events", json={**US_LIFTED, "effective_date": "2026-01-01"},
                        headers=WRITER)  # fmt: skip
    assert "verify" in problem(write, 409)["detail"]


@pytest.mark.parametrize("damage", ["deleted middle event", "renamed field"])
@pytest.mark.shared_store
def test_a_write_to_a_damaged_stream_is_a_409_naming_the_damage(
    services: Service, client: TestClient, damage: str
) -> None:
    post(client, US_IMPOSED)
    post(client, US_EXPANDED)
    post(client, {**US_EXPANDED, "effective_date": "2023-01-01", "measures": ["quota"]})
    with behind_the_back(services) as sql:
        table, stream = events_table(services), stream_id(services, "US/BY/potash")
        if damage == "deleted middle event":
            sql(
                f"DELETE FROM {table} WHERE originator_id = %s AND originator_version = 2",
                (stream,),
            )
        else:
            [(state,)] = sql(
                f"SELECT state FROM {table} WHERE originator_id = %s AND originator_version = 2",
                (stream,),
            )
            renamed = bytes(state).replace(b'"effective_date"', b'"effective_day"')
            assert renamed != bytes(state)
            sql(
                f"UPDATE {table} SET state = %s WHERE originator_id = %s"
                " AND originator_version = 2",
                (renamed, stream),
            )
    found = problem(client.post("/v1/events", json=US_LIFTED, headers=WRITER), 409)
    assert found["stream"] == "US/BY/potash" and "verify" in found["detail"]
    eu = client.post("/v1/events", json={**US_IMPOSED, "authority": "EU"}, headers=WRITER)
    assert eu.status_code == 201  # other streams are unaffected


def test_a_lift_on_the_last_day_of_the_calendar_is_an_ordinary_interval(
    client: TestClient,
) -> None:
    post(client, US_IMPOSED)
    post(client, {**US_LIFTED, "effective_date": "9999-12-31"})
    intervals = client.get("/v1/timeline", params={"authority": "US"}).json()["intervals"]
    assert [(i["valid_from"], i["valid_to"], i["status"]) for i in intervals] == [
        ("2021-08-09", "9999-12-31", "active"),
        ("9999-12-31", None, "lifted"),
    ]
    (last,) = client.get(
        "/v1/status", params={"authority": "US", "country": "BY", "as_of": "9999-12-31"}
    ).json()["results"]
    assert last["status"] == "lifted"
    report = client.get("/v1/audit/verify", headers=READER).json()
    assert report["problems"] == [] and report["projections_ok"]


# Operations


def test_concurrent_rebuilds_run_once_and_the_others_are_told(
    services: Service, client: TestClient
) -> None:
    for authority in ("US", "EU", "GB", "CA", "LT", "UN", "JP"):
        post(client, {**US_IMPOSED, "authority": authority})
    started, release = threading.Event(), threading.Event()
    original = services.projector._rebuild

    def slow(*args: Any) -> Any:
        started.set()
        release.wait(10)
        return original(*args)

    services.projector._rebuild = slow  # type: ignore[method-assign]
    answers: list[int] = []
    first = threading.Thread(
        target=lambda: answers.append(
            client.post("/v1/admin/projections/rebuild", headers=ADMIN).status_code
        )
    )
    first.start()
    assert started.wait(10)
    others = [client.post("/v1/admin/projections/rebuild", headers=ADMIN) for _ in range(3)]
    release.set()
    first.join(20)
    assert answers == [200]
    for other in others:
        assert "already running" in problem(other, 409)["detail"]
    assert client.post("/v1/admin/projections/rebuild", headers=ADMIN).status_code == 200


def test_verify_needs_a_reader_token_and_concurrent_calls_share_one_run(
    services: Service, live_server: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.app.service

    runs: list[int] = []
    original = api.app.service.verify
    gate = threading.Event()

    def counted(*args: Any) -> Any:
        runs.append(1)
        gate.wait(5)
        return original(*args)

    monkeypatch.setattr(api.app.service, "verify", counted)
    base = live_server()
    assert problem(httpx.get(f"{base}/v1/audit/verify"), 401)
    results: list[httpx.Response] = []

    def call() -> None:
        results.append(httpx.get(f"{base}/v1/audit/verify", headers=READER, timeout=30))

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    while not runs:
        threading.Event().wait(0.01)
    threading.Event().wait(0.3)  # the other three are waiting on the first run
    gate.set()
    for caller in callers:
        caller.join(30)
    assert [r.status_code for r in results] == [200] * 4
    assert len(runs) == 1
    assert len({r.text for r in results}) == 1


def test_metrics_name_static_files_and_the_openapi_document_by_route(
    services: Service,
) -> None:
    with TestClient(create_app(services)) as client:
        client.get("/static/style.css")
        client.get("/openapi.json")
        client.get("/no/such/page")
        text = client.get("/metrics").text
    assert 'route="/static/{path}",status="200"' in text
    assert 'route="/openapi.json",status="200"' in text
    assert 'route="unmatched",status="404"' in text
