"""Webhooks (Standard Webhooks): signed deliveries to real local receivers, retried in
order, refused targets, secrets kept, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.service import Service
from api.app.webhooks.targets import AllowList, TargetRefused
from api.http.app import create_app
from tests.conftest import ADMIN, READER, WRITER
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e  # deliveries to real local receivers

FAST = {
    "webhook_timeout_seconds": 0.5,
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_cap_seconds": 0.2,
}
Make = Callable[..., Service]


@contextmanager
def running(make: Make, *allowed: Receiver, **settings: Any) -> Iterator[TestClient]:
    """The app on the test's store, its projector and deliveries running, allowed to send
    to the given receivers (each on 127.0.0.1 at a port of its own)."""
    allow = ",".join(f"{receiver.host}:{receiver.port}" for receiver in allowed)
    with TestClient(
        create_app(make(**{**FAST, "webhook_allow_hosts": allow, **settings}))
    ) as client:
        yield client


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**behaviour: Any) -> Receiver:
        started.append(Receiver(**behaviour))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def subscribe(client: TestClient, url: str, **filter: str) -> dict[str, Any]:
    response = client.post("/v1/subscriptions", json={"url": url, "filter": filter}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def record(client: TestClient, **body: Any) -> dict[str, Any]:
    event = {"authority": "US", "country": "BY", "commodity": "potash", **body}
    response = client.post("/v1/events", json=event, headers=WRITER)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def impose(client: TestClient, country: str = "BY", day: str = "2021-08-09") -> dict[str, Any]:
    return record(
        client, type="imposed", country=country, effective_date=day, measures=["import_ban"]
    )


def test_a_delivery_is_signed_as_standard_webhooks_say_and_carries_the_stored_event(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    with running(make_services, receiver) as client:
        before = impose(client, "RU")  # recorded before the subscription: never sent
        created = subscribe(client, receiver.url, country="by")
        assert created["secret"].startswith("whsec_")
        assert created["filter"] == {"authority": None, "country": "BY", "commodity": None}
        impose(client, "IR")  # not matching the filter
        imposed = impose(client)
        expanded = record(
            client, type="expanded", effective_date="2022-06-01", measures=["asset_freeze"]
        )
        receiver.wait_for(lambda: len(receiver.delivered()) >= 2)
        time.sleep(0.3)  # nothing else arrives
        got = receiver.delivered()
        assert len(got) == 2
        bodies = [request.verified(created["secret"]) for request in got]
        assert [b["event"] for b in bodies] == [
            client.get(f"/v1/events/{e['event_id']}").json() for e in (imposed, expanded)
        ]
        assert [r.headers["webhook-id"] for r in got] == [
            imposed["event_id"],
            expanded["event_id"],
        ]
        assert before["event_id"] not in str(bodies)
        assert {b["subscription_id"] for b in bodies} == {created["id"]}
        assert bodies[0]["stream_status"] == {
            "status": "active",
            "measures": ["import_ban"],
            "since": "2021-08-09",
            "expires": None,
        }
        assert bodies[1]["stream_status"] == {
            "status": "active",
            "measures": ["asset_freeze", "import_ban"],
            "since": "2022-06-01",
            "expires": None,
        }
        assert abs(int(got[0].headers["webhook-timestamp"]) - time.time()) < 60
        with pytest.raises(Exception, match="signature"):
            receiver.received[0].verified("whsec_" + "A" * 44)  # another secret: refused


def test_a_retraction_carries_the_status_as_of_the_retracted_event(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    with running(make_services, receiver) as client:
        impose(client)
        created = subscribe(client, receiver.url)
        eased = record(
            client, type="expanded", effective_date="2023-01-01", measures=["asset_freeze"]
        )
        record(client, type="retracted", retracts=eased["event_id"], note="wrong date")
        receiver.wait_for(lambda: len(receiver.delivered()) >= 2)
        retraction = receiver.delivered()[1].verified(created["secret"])
        assert retraction["event"]["type"] == "retracted"
        assert retraction["stream_status"] == {
            "status": "active",
            "measures": ["import_ban"],
            "since": "2021-08-09",
            "expires": None,
        }


def test_a_delivery_says_when_the_status_ends_by_itself(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    # stream_status carries `expires`: the next date its answer changes by itself (the
    # earliest pending term), moved by a renewal; null once nothing is pending.
    receiver = receivers()
    with running(make_services, receiver) as client:
        created = subscribe(client, receiver.url)
        record(
            client, type="imposed", effective_date="2021-06-24", measures=["import_ban"],
            expires="2022-03-01",
        )  # fmt: skip
        record(
            client, type="expanded", effective_date="2021-09-01", measures=["asset_freeze"],
            expires="2021-12-01",
        )  # fmt: skip
        record(client, type="renewed", effective_date="2022-02-25", expires="2023-03-01")
        record(client, type="lifted", effective_date="2022-06-01")
        receiver.wait_for(lambda: len(receiver.delivered()) >= 4)
        statuses = [r.verified(created["secret"])["stream_status"] for r in receiver.delivered()]
        assert [(s["status"], s["expires"]) for s in statuses] == [
            ("active", "2022-03-01"),
            ("active", "2021-12-01"),
            ("active", "2023-03-01"),
            ("lifted", None),
        ]


def test_a_receiver_that_fails_first_then_succeeds_gets_every_event_in_order(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(failures=3)
    with running(make_services, receiver) as client:
        created = subscribe(client, receiver.url)
        ids = [impose(client, country)["event_id"] for country in ("BY", "RU", "IR", "KP")]
        receiver.wait_for(lambda: len(receiver.delivered()) >= 4)
        assert receiver.statuses[:4] == [500, 500, 500, 200]
        # The first event was tried until it got through; none overtook it.
        assert [r.headers["webhook-id"] for r in receiver.received[:4]] == [ids[0]] * 4
        assert [r.headers["webhook-id"] for r in receiver.delivered()] == ids
        for request in receiver.received:
            request.verified(created["secret"])
        last = max(client.get(f"/v1/events/{i}").json()["position"] for i in ids)
        path = f"/v1/subscriptions/{created['id']}/deliveries"
        # The last answer is recorded just after the receiver has sent it.
        receiver.wait_for(
            lambda: client.get(path, headers=ADMIN).json()["delivered_position"] == last
        )
        answer = client.get(path, headers=ADMIN)
        assert answer.status_code == 200
        attempts = answer.json()["attempts"][::-1]  # oldest first
        assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts[:4]] == [
            (1, "failed", 500),
            (2, "failed", 500),
            (3, "failed", 500),
            (4, "delivered", 200),
        ]


def test_a_dead_receiver_slows_neither_writers_nor_other_subscribers(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    """A receiver that holds every request past the (4 s) timeout, and one that always
    fails: the healthy one still gets all five events before the first timeout could even
    have fired, so nothing waited behind the dead one."""
    dead = receivers(delay=10.0)  # answers long after the timeout
    down = receivers(failures=10**6)
    alive = receivers()
    with running(make_services, dead, down, alive, webhook_timeout_seconds=4.0) as client:
        for receiver in (dead, down):
            subscribe(client, receiver.url)
        subscribe(client, alive.url)
        started = time.monotonic()
        ids = [impose(client, country)["event_id"] for country in ("BY", "RU", "IR", "KP", "SY")]
        writing = time.monotonic() - started
        alive.wait_for(lambda: len(alive.delivered()) == 5, timeout=3.5)
        assert [r.headers["webhook-id"] for r in alive.delivered()] == ids
        assert time.monotonic() - started < 3.5  # the dead one's first timeout is at 4 s
        assert writing < 2.5, f"five writes took {writing:.2f} s"
        assert not dead.delivered()
        down.wait_for(lambda: len(down.received) >= 2, timeout=10)  # retried, with backoff
        assert {r.headers["webhook-id"] for r in down.received} == {ids[0]}


def test_a_disallowed_host_is_refused_naming_url(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    with running(make_services, webhook_allow_hosts="") as client:
        refused = client.post("/v1/subscriptions", json={"url": receiver.url}, headers=ADMIN)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["body.url"]
        assert "SANCTIONS_WEBHOOK_ALLOW_HOSTS" in refused.json()["errors"][0]["message"]
    with running(make_services, webhook_allow_hosts="localhost,10.0.0.0/8:8080") as client:
        for url in (
            receiver.url.replace("127.0.0.1", "localhost"),  # a name resolving to loopback
            "http://10.1.2.3:8080/hook.",
            "http://127.0.0.1:1/",
            "ftp://10.1.2.3/",
            "http://user:pw@10.1.2.3/",
        ):
            answer = client.post("/v1/subscriptions", json={"url": url}, headers=ADMIN)
            if url.startswith("http://10."):
                assert answer.status_code == 201, answer.text  # the range allows it
                continue
            assert answer.status_code == 422, url
            assert "body.url" in [e["field"] for e in answer.json()["errors"]], url
        both = client.post(
            "/v1/subscriptions",
            json={"url": "http://127.0.0.1/", "filter": {"country": "XX", "colour": "red"}},
            headers=ADMIN,
        )
        assert both.status_code == 422
        assert sorted(e["field"] for e in both.json()["errors"]) == [
            "body.filter.colour",
            "body.filter.country",
            "body.url",
        ]


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    """A receiver sending its answer a byte a second never lets a read time out: the
    timeout bounds the whole attempt all the same, which is recorded as failed, and the
    receiver sees the connection closed long before its answer is done."""
    receiver = receivers(trickle=True)
    with running(make_services, receiver, webhook_timeout_seconds=1.5) as client:
        created = subscribe(client, receiver.url)
        imposed = impose(client)
        path = f"/v1/subscriptions/{created['id']}/deliveries"
        receiver.wait_for(lambda: len(client.get(path, headers=ADMIN).json()["attempts"]) >= 1)
        first = client.get(path, headers=ADMIN).json()["attempts"][-1]
        assert first["event_id"] == imposed["event_id"]
        assert (first["attempt"], first["outcome"], first["status_code"]) == (1, "failed", None)
        assert first["error"] == "no complete answer within 1.5 s"
        assert first["duration_ms"] < 10_000  # a sanity bound: the answer takes 600 s
        receiver.wait_for(lambda: bool(receiver.cut_off))
        assert receiver.cut_off[0] < 100  # of the answer's 620 bytes
        assert client.get(path, headers=ADMIN).json()["delivered_position"] == 0


def test_target_ports_and_ipv6_literals_are_judged_by_the_allow_list(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    """Port 0, the database's port and any port not listed with the host are refused
    (422 naming body.url, nothing stored); an IPv6 literal is allowed when listed, with its
    port, and delivered to; one not listed, or another address in disguise, is refused."""
    six = receivers(host="::1")
    allow = f"127.0.0.1,[::1]:{six.port},fd00::/8,10.0.0.0/8:8443,hooks.example.com:8080"
    with running(make_services, webhook_allow_hosts=allow) as client:
        for url in (
            "http://127.0.0.1:0/",
            "http://127.0.0.1:5432/",
            "http://127.0.0.1:8080/hook",
            f"http://127.0.0.1:{six.port}/hook",  # the port is listed for [::1] only
            "http://[::1]:8080/hook",
            "http://[::2]/",
            "http://[fd00::1]:5432/",
            "http://10.1.2.3:8080/",
            "http://[::ffff:127.0.0.1]/",  # 127.0.0.1 in disguise
            "http://[::ffff:7f00:1]/",
            "http://[fe80::1]/",
            "http://[::]/",
            "http://hooks.example.com:8443/",
        ):
            answer = client.post("/v1/subscriptions", json={"url": url}, headers=ADMIN)
            assert answer.status_code == 422, (url, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in answer.json()["errors"]] == ["body.url"], url
        port = client.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:5432/"}, headers=ADMIN
        ).json()["errors"][0]["message"]
        assert "port 5432" in port and "127.0.0.1:5432" in port
        assert client.get("/v1/subscriptions", headers=ADMIN).json()["subscriptions"] == []
        for url in (
            "http://127.0.0.1/",
            "https://127.0.0.1:443/",
            "http://[fd00::1]/",
            "https://10.1.2.3:8443/",
        ):
            subscribed = client.post("/v1/subscriptions", json={"url": url}, headers=ADMIN)
            assert subscribed.status_code == 201, (url, subscribed.text)
            assert (
                client.delete(
                    f"/v1/subscriptions/{subscribed.json()['id']}", headers=ADMIN
                ).status_code
                == 204
            )
        created = subscribe(client, six.url)
        assert created["url"] == f"http://[::1]:{six.port}/hook"
        imposed = impose(client)
        six.wait_for(lambda: len(six.delivered()) == 1)
        got = six.delivered()[0]
        assert got.headers["webhook-id"] == imposed["event_id"]
        assert got.headers["Host"] == f"[::1]:{six.port}"
        assert got.verified(created["secret"])["event"]["event_id"] == imposed["event_id"]


@pytest.mark.shared_store
def test_a_target_no_longer_allowed_is_refused_at_delivery_and_retried(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    with running(make_services, receiver) as client:
        created = subscribe(client, receiver.url)
    with running(make_services, webhook_allow_hosts="10.0.0.0/8") as client:  # restarted
        impose(client)
        path = f"/v1/subscriptions/{created['id']}/deliveries"
        receiver.wait_for(lambda: len(client.get(path, headers=ADMIN).json()["attempts"]) >= 2)
        attempts = client.get(path, headers=ADMIN).json()["attempts"]
        assert {a["outcome"] for a in attempts} == {"refused"}
        assert "127.0.0.1 is not in SANCTIONS_WEBHOOK_ALLOW_HOSTS" in attempts[0]["error"]
        assert not receiver.received
    with running(make_services, receiver) as client:  # allowed again: the event gets through
        receiver.wait_for(lambda: len(receiver.delivered()) == 1)


@pytest.mark.shared_store
def test_a_lease_left_by_an_unseen_process_is_released_on_sqlite_only(
    make_services: Make, receivers: Callable[..., Receiver], database_url: str
) -> None:
    """A lease held by a process on another machine (a name no liveness check can see) is
    released at once by a server starting on SQLite, which one process serves; on
    PostgreSQL, which several share, it is kept until it runs out."""
    receiver = receivers()
    with running(make_services, receiver) as client:
        created = subscribe(client, receiver.url)
    service = make_services(**FAST, webhook_allow_hosts=f"127.0.0.1:{receiver.port}")
    elsewhere = "another-host/4026531836/1/1/0b6f7c52-4d1e-4a8e-9f51-2f1d6a3c9e10"
    now_ms = round(time.time() * 1000)
    service.webhooks.table.claim(created["id"], elsewhere, now_ms, 120_000)
    with TestClient(create_app(service)) as client:
        imposed = impose(client)
        if database_url.startswith("sqlite"):
            receiver.wait_for(lambda: len(receiver.delivered()) == 1)
            assert receiver.delivered()[0].headers["webhook-id"] == imposed["event_id"]
        else:
            time.sleep(1.0)  # the worker looked, and found the lease held
            assert not receiver.received
            assert service.webhooks.table.lease_holders() == [elsewhere]


def test_the_allow_list_checks_every_address_a_name_resolves_to() -> None:
    answers = {
        "public.example": ["93.184.215.14"],
        "inside.example": ["10.0.0.7"],
        "mixed.example": ["93.184.215.14", "127.0.0.1"],
        "mapped.example": ["::ffff:127.0.0.1"],
        "v6.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    }
    allow = AllowList(
        "public.example, inside.example, mixed.example, mapped.example, *.v6.example,"
        " v6.example:8080",
        resolver=lambda host, port: answers[host],
    )
    assert allow.check("https://public.example/x?y=1").address == "93.184.215.14"
    assert allow.check("https://public.example/x?y=1").path == "/x?y=1"
    assert allow.check("http://v6.example:8080/").port == 8080
    for url in ("http://inside.example/", "http://mixed.example/", "http://mapped.example/"):
        with pytest.raises(TargetRefused, match="not a public address"):
            allow.check(url)
    with pytest.raises(TargetRefused, match="not in"):
        allow.check("http://elsewhere.example/")
    with pytest.raises(TargetRefused, match="not in"):
        allow.check("http://93.184.215.14/")  # an address literal needs an address entry
    inside = AllowList("inside.example,10.0.0.0/24", resolver=lambda host, port: answers[host])
    assert inside.check("http://inside.example/").address == "10.0.0.7"
    with pytest.raises(TargetRefused, match="empty"):
        AllowList("").check("http://public.example/")
    with pytest.raises(ValueError):
        AllowList("10.0.0.0/33")
    for entry in ("127.0.0.1:0", "[::1", "[::1]8080", "hooks.example:http", "host:65536"):
        with pytest.raises(ValueError):
            AllowList(entry)
    ports = AllowList(
        "public.example:8443, *.v6.example:9000, [2606:2800::/32]:8080",
        resolver=lambda host, port: answers.get(host, answers["v6.example"]),
    )
    assert ports.check("https://public.example:8443/").port == 8443
    assert ports.check("https://public.example/").port == 443
    assert ports.check("http://a.v6.example:9000/").address == answers["v6.example"][0]
    assert ports.check("http://[2606:2800::1]:8080/").host_header == "[2606:2800::1]:8080"
    for url in (
        "http://public.example:8080/",
        "http://a.v6.example:8443/",
        "http://[2606:2800::1]:9000/",
    ):
        with pytest.raises(TargetRefused, match="port"):
            ports.check(url)


def test_secrets_never_appear_in_answers_or_logs(
    make_services: Make, receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = receivers(failures=1)
    with running(make_services, receiver) as client:
        created = subscribe(client, receiver.url)
        secret = created["secret"]
        impose(client)
        receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        seen = [
            client.get("/v1/subscriptions", headers=ADMIN).text,
            client.get(f"/v1/subscriptions/{created['id']}/deliveries", headers=ADMIN).text,
            client.get("/metrics").text,
            client.get("/openapi.json").text,
            client.post("/v1/subscriptions", json={"url": 1}, headers=ADMIN).text,
        ]
        assert created["id"] in seen[0]
        for text in seen:
            assert secret not in text
            assert secret[len("whsec_") :] not in text
        assert (
            "secret"
            not in client.get("/v1/subscriptions", headers=ADMIN).json()["subscriptions"][0]
        )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/subscriptions" in logged  # the request log did see the requests
    assert secret[len("whsec_") :] not in logged


def test_subscriptions_need_an_admin_and_unknown_ones_are_404(client: TestClient) -> None:
    for headers, status in (({}, 401), (READER, 403), (WRITER, 403)):
        assert client.get("/v1/subscriptions", headers=headers).status_code == status
        posted = client.post("/v1/subscriptions", json={"url": "http://x/"}, headers=headers)
        assert posted.status_code == status
    unknown = "0b6f7c52-4d1e-4a8e-9f51-2f1d6a3c9e10"
    for method, path in (
        ("DELETE", f"/v1/subscriptions/{unknown}"),
        ("GET", f"/v1/subscriptions/{unknown}/deliveries"),
    ):
        answer = client.request(method, path, headers=ADMIN)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        bad = client.request(method, path.replace(unknown, "not-a-uuid"), headers=ADMIN)
        assert bad.status_code == 422


def test_a_deleted_subscription_is_sent_nothing_more(
    make_services: Make, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    with running(make_services, receiver) as client:
        created = subscribe(client, receiver.url)
        impose(client)
        receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        assert client.delete(f"/v1/subscriptions/{created['id']}", headers=ADMIN).status_code == 204
        assert client.get("/v1/subscriptions", headers=ADMIN).json()["subscriptions"] == []
        impose(client, "RU")
        time.sleep(0.5)
        assert len(receiver.received) == 1
        gone = client.get(f"/v1/subscriptions/{created['id']}/deliveries", headers=ADMIN)
        assert gone.status_code == 404
