"""Bitemporal reads from the projections, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.service import Service
from api.http.app import create_app
from api.schemas.answers import EventIn
from tests.conftest import ADMIN, WRITER

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store

BASE: dict[str, Any] = {"country": "BY", "commodity": "potash"}
US_STORY = [
    {
        **BASE,
        "authority": "US",
        "type": "imposed",
        "effective_date": "2021-08-09",
        "measures": ["asset_freeze", "import_ban"],
    },
    {
        **BASE,
        "authority": "US",
        "type": "expanded",
        "effective_date": "2022-04-01",
        "measures": ["financing_ban"],
    },
    {**BASE, "authority": "US", "type": "lifted", "effective_date": "2025-12-13"},
]
EU_STORY = [
    {
        **BASE,
        "authority": "EU",
        "type": "imposed",
        "effective_date": "2021-06-24",
        "measures": ["import_ban"],
    },
    {
        **BASE,
        "authority": "EU",
        "type": "expanded",
        "effective_date": "2022-03-02",
        "measures": ["transit_ban"],
    },
]


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/events", json=body, headers=WRITER)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def status(client: TestClient, authority: str, **params: str) -> tuple[str, list[str], Any]:
    response = client.get("/v1/status", params={**BASE, "authority": authority, **params})
    assert response.status_code == 200, response.text
    [row] = response.json()["results"]
    return row["status"], row["measures"], row["since"]


def record_a_mistake_and_retract_it(client: TestClient) -> dict[str, Any]:
    """A GB imposition recorded by mistake, then retracted; the mistaken event."""
    wrong = post(
        client,
        {
            **BASE,
            "authority": "GB",
            "type": "imposed",
            "effective_date": "2020-01-01",
            "measures": ["quota"],
        },
    )
    post(
        client,
        {
            **BASE,
            "authority": "GB",
            "type": "retracted",
            "retracts": wrong["event_id"],
            "note": "no such measure",
        },
    )
    return wrong


@pytest.fixture
def belarus(client: TestClient) -> list[dict[str, Any]]:
    return [post(client, body) for body in US_STORY + EU_STORY]


US_EXPECTED = [
    ("2021-08-08", "none", []),
    ("2021-08-09", "active", ["asset_freeze", "import_ban"]),
    ("2022-03-31", "active", ["asset_freeze", "import_ban"]),
    ("2022-04-01", "active", ["asset_freeze", "financing_ban", "import_ban"]),
    ("2025-12-12", "active", ["asset_freeze", "financing_ban", "import_ban"]),
    ("2025-12-13", "lifted", []),
    ("2026-01-15", "lifted", []),
]
EU_EXPECTED = [
    ("2021-06-23", "none", []),
    ("2021-06-24", "active", ["import_ban"]),
    ("2022-03-01", "active", ["import_ban"]),
    ("2022-03-02", "active", ["import_ban", "transit_ban"]),
    ("2025-12-13", "active", ["import_ban", "transit_ban"]),
    ("2026-01-15", "active", ["import_ban", "transit_ban"]),
]


@pytest.mark.parametrize(("as_of", "expected", "measures"), US_EXPECTED)
def test_us_potash_on_each_side_of_each_change(
    client: TestClient, belarus: list[Any], as_of: str, expected: str, measures: list[str]
) -> None:
    assert status(client, "US", as_of=as_of)[:2] == (expected, measures)


@pytest.mark.parametrize(("as_of", "expected", "measures"), EU_EXPECTED)
def test_us_lift_leaves_eu_potash_ban_in_force(
    client: TestClient, belarus: list[Any], as_of: str, expected: str, measures: list[str]
) -> None:
    assert status(client, "EU", as_of=as_of)[:2] == (expected, measures)


def test_status_rows_per_stream_with_since_and_event_ids(
    client: TestClient, belarus: list[dict[str, Any]]
) -> None:
    answer = client.get("/v1/status", params={"country": "by", "as_of": "2023-06-01"}).json()
    assert answer["as_of"] == "2023-06-01" and answer["known_at"].endswith("Z")
    assert [r["stream"] for r in answer["results"]] == ["EU/BY/potash", "US/BY/potash"]
    us = answer["results"][1]
    assert us["since"] == "2022-04-01" and us["in_force_since"] == "2021-08-09"
    assert us["event_ids"] == [belarus[0]["event_id"], belarus[1]["event_id"]]
    assert set(us) == {
        "authority",
        "country",
        "commodity",
        "stream",
        "status",
        "measures",
        "since",
        "in_force_since",
        "event_ids",
        "expires",
    }
    before = client.get("/v1/status", params={"country": "BY", "as_of": "2021-07-01"}).json()
    assert [r["stream"] for r in before["results"]] == ["EU/BY/potash"]
    none = client.get("/v1/status", params={**BASE, "authority": "GB"}).json()["results"]
    assert none == [
        {
            "authority": "GB",
            "country": "BY",
            "commodity": "potash",
            "stream": "GB/BY/potash",
            "status": "none",
            "measures": [],
            "since": None,
            "in_force_since": None,
            "event_ids": [],
            "expires": None,
        }
    ]


def test_timeline_intervals(client: TestClient, belarus: list[dict[str, Any]]) -> None:
    answer = client.get("/v1/timeline", params={"country": "BY"}).json()
    rows = [
        (i["stream"], i["valid_from"], i["valid_to"], i["status"], i["measures"])
        for i in answer["intervals"]
    ]
    assert rows == [
        ("EU/BY/potash", "2021-06-24", "2022-03-02", "active", ["import_ban"]),
        ("EU/BY/potash", "2022-03-02", None, "active", ["import_ban", "transit_ban"]),
        ("US/BY/potash", "2021-08-09", "2022-04-01", "active", ["asset_freeze", "import_ban"]),
        (
            "US/BY/potash",
            "2022-04-01",
            "2025-12-13",
            "active",
            ["asset_freeze", "financing_ban", "import_ban"],
        ),
        ("US/BY/potash", "2025-12-13", None, "lifted", []),
    ]
    assert answer["intervals"][4]["event_id"] == belarus[2]["event_id"]
    assert answer["intervals"][0]["authority"] == "EU"


def test_same_day_events_fold_into_one_interval(client: TestClient) -> None:
    post(
        client,
        {
            **BASE,
            "authority": "GB",
            "type": "imposed",
            "effective_date": "2022-12-05",
            "measures": ["import_ban"],
        },
    )
    post(
        client,
        {
            **BASE,
            "authority": "GB",
            "type": "expanded",
            "effective_date": "2022-12-05",
            "measures": ["price_cap"],
        },
    )
    intervals = client.get("/v1/timeline", params={"authority": "GB"}).json()["intervals"]
    assert [(i["valid_from"], i["valid_to"], i["measures"]) for i in intervals] == [
        ("2022-12-05", None, ["import_ban", "price_cap"])
    ]


def test_late_event_reorders_the_timeline(client: TestClient) -> None:
    post(client, US_STORY[0])
    post(client, US_STORY[2])
    before_late = client.get("/v1/timeline", params={"authority": "US"}).json()
    post(client, US_STORY[1])  # recorded last, effective in between
    assert status(client, "US", as_of="2023-01-01")[1] == [
        "asset_freeze",
        "financing_ban",
        "import_ban",
    ]
    intervals = client.get("/v1/timeline", params={"authority": "US"}).json()["intervals"]
    assert [i["valid_from"] for i in intervals] == ["2021-08-09", "2022-04-01", "2025-12-13"]
    then = client.get(
        "/v1/timeline", params={"authority": "US", "known_at": before_late["known_at"]}
    ).json()
    assert then["intervals"] == before_late["intervals"]


def test_reimposition_after_a_lift(client: TestClient) -> None:
    ve = {"authority": "US", "country": "VE", "commodity": "crude-oil"}
    post(
        client,
        {**ve, "type": "imposed", "effective_date": "2019-01-28", "measures": ["import_ban"]},
    )
    post(client, {**ve, "type": "lifted", "effective_date": "2023-10-18"})
    post(
        client,
        {
            **ve,
            "type": "imposed",
            "effective_date": "2024-04-18",
            "measures": ["import_ban", "asset_freeze"],
        },
    )

    def on(day: str) -> Any:
        [row] = client.get("/v1/status", params={**ve, "as_of": day}).json()["results"]
        return row["status"], row["measures"], len(row["event_ids"])

    assert on("2020-01-01") == ("active", ["import_ban"], 1)
    assert on("2024-01-01") == ("lifted", [], 2)
    assert on("2024-04-18") == ("active", ["asset_freeze", "import_ban"], 1)


def test_easing_keeps_the_rest_in_force(client: TestClient) -> None:
    belavia = {"authority": "US", "country": "BY", "commodity": "aviation"}
    post(
        client,
        {
            **belavia,
            "type": "imposed",
            "effective_date": "2023-08-09",
            "measures": ["asset_freeze", "services_ban"],
        },
    )
    post(
        client,
        {**belavia, "type": "eased", "effective_date": "2025-09-11", "measures": ["services_ban"]},
    )
    post(client, {**belavia, "type": "lifted", "effective_date": "2025-11-04"})
    [row] = client.get("/v1/status", params={**belavia, "as_of": "2025-10-01"}).json()["results"]
    assert (row["status"], row["measures"], row["since"]) == (
        "active",
        ["asset_freeze"],
        "2025-09-11",
    )
    [row] = client.get("/v1/status", params={**belavia, "as_of": "2025-11-04"}).json()["results"]
    assert row["status"] == "lifted"


def test_retraction_seen_through_known_at(client: TestClient) -> None:
    post(client, US_STORY[0])
    wrong = post(client, {**US_STORY[1], "effective_date": "2022-01-01"})
    retraction = post(
        client,
        {
            **BASE,
            "authority": "US",
            "type": "retracted",
            "retracts": wrong["event_id"],
            "note": "wrong date",
        },
    )
    post(client, US_STORY[1])
    before = wrong["recorded_at"]
    after = retraction["recorded_at"]
    assert status(client, "US", as_of="2022-02-01", known_at=before)[1] == [
        "asset_freeze",
        "financing_ban",
        "import_ban",
    ]
    assert status(client, "US", as_of="2022-02-01", known_at=after)[1] == [
        "asset_freeze",
        "import_ban",
    ]
    assert status(client, "US", as_of="2022-02-01")[1] == ["asset_freeze", "import_ban"]
    assert status(client, "US", as_of="2022-04-01")[1] == [
        "asset_freeze",
        "financing_ban",
        "import_ban",
    ]
    # Known before anything was recorded: nothing.
    assert status(client, "US", as_of="2022-02-01", known_at="2020-01-01T00:00:00Z")[0] == "none"


def test_past_known_at_answers_never_change(client: TestClient) -> None:
    post(client, US_STORY[0])
    moment = client.get("/v1/status", params={"country": "BY"}).json()["known_at"]
    queries = [
        {"country": "BY", "as_of": day, "known_at": moment}
        for day in ("2021-08-09", "2022-06-01", "2026-01-01")
    ]
    answers = [client.get("/v1/status", params=q).json() for q in queries]
    timeline = client.get("/v1/timeline", params={"known_at": moment}).json()
    post(client, US_STORY[1])
    post(client, US_STORY[2])
    post(client, EU_STORY[0])
    record_a_mistake_and_retract_it(client)
    assert [client.get("/v1/status", params=q).json() for q in queries] == answers
    assert client.get("/v1/timeline", params={"known_at": moment}).json() == timeline


def a_long_story(rounds: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """US/BY/potash imposed, expanded and lifted once a year for `rounds` years: each
    event's body with the status it leaves, worked out here, not by the service."""
    story = []
    measures = ["asset_freeze", "import_ban", "export_ban", "quota", "price_cap"]
    for year in range(2001, 2001 + rounds):
        first, added = measures[year % 5], measures[(year + 1) % 5]
        us = {**BASE, "authority": "US"}
        story += [
            (
                {**us, "type": "imposed", "effective_date": f"{year}-02-01", "measures": [first]},
                {"status": "active", "measures": [first], "since": f"{year}-02-01"},
            ),
            (
                {**us, "type": "expanded", "effective_date": f"{year}-06-01", "measures": [added]},
                {
                    "status": "active",
                    "measures": sorted([first, added]),
                    "since": f"{year}-06-01",
                },
            ),
            (
                {**us, "type": "lifted", "effective_date": f"{year}-11-01"},
                {"status": "lifted", "measures": [], "since": f"{year}-11-01"},
            ),
        ]
    return story


def assert_every_write_is_read_at_once(client: TestClient, rounds: int = 8) -> None:
    """The read right after each write answers with exactly the state that write made."""
    built: list[str] = []
    for body, expected in a_long_story(rounds):
        event_id = post(client, body)["event_id"]
        built = [event_id] if body["type"] == "imposed" else [*built, event_id]
        response = client.get("/v1/status", params={**BASE, "authority": "US"})
        assert response.status_code == 200, response.text
        [row] = response.json()["results"]
        assert {key: row[key] for key in expected} == expected, body
        assert row["event_ids"] == built, body


def test_read_your_writes_without_waiting(client: TestClient) -> None:
    assert_every_write_is_read_at_once(client)


@pytest.mark.shared_store
def test_read_your_writes_with_the_projector_in_another_process(
    make_services: Callable[..., Service],
) -> None:
    """An API without its own projector waits for the shared one to reach its write."""
    projector_side = make_services()
    projector_side.projector.start(poll_interval=0.01)
    api_side = make_services(embedded_projector=False)
    try:
        with TestClient(create_app(api_side)) as client:
            assert_every_write_is_read_at_once(client)
    finally:
        projector_side.projector.stop()


def test_rebuild_answers_identically(client: TestClient, belarus: list[Any]) -> None:
    wrong = record_a_mistake_and_retract_it(client)
    moments = [wrong["recorded_at"], belarus[2]["recorded_at"], None]

    def snapshot() -> list[Any]:
        answers = []
        for moment in moments:
            extra = {} if moment is None else {"known_at": moment}
            answers.append(client.get("/v1/timeline", params=extra).json()["intervals"])
            for day in ("2021-07-01", "2022-04-01", "2026-01-15"):
                answers.append(
                    client.get("/v1/status", params={"as_of": day, **extra}).json()["results"]
                )
        return answers

    before = snapshot()
    assert client.post("/v1/admin/projections/rebuild", headers=WRITER).status_code == 403
    started = time.perf_counter()
    response = client.post("/v1/admin/projections/rebuild", headers=ADMIN)
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["events"] == 7
    # The rebuild's own time, to the millisecond: some of the request's, never more.
    assert 0 < report["seconds"] <= round(took, 3), (report["seconds"], took)
    assert report["read_models"]["current_status"] == 3
    assert snapshot() == before


@pytest.mark.parametrize(
    "params",
    [
        {"as_of": "2021-13-01"},
        {"as_of": "yesterday"},
        {"as_of": "2021-01-01T00:00:00Z"},
        {"known_at": "noon"},
        {"known_at": "2021-01-01T25:00:00Z"},
        {"country": "XX"},
        {"authority": "QQ"},
        {"commodity": "potassium"},
    ],
)
def test_bad_read_parameters_are_422(client: TestClient, params: dict[str, str]) -> None:
    for route in ("/v1/status", "/v1/timeline"):
        if route == "/v1/timeline" and "as_of" in params:
            continue
        response = client.get(route, params=params)
        assert response.status_code == 422, (route, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_known_at_in_the_future_is_answered_as_now(client: TestClient) -> None:
    answer = client.get("/v1/status", params={"known_at": "2999-01-01T00:00:00Z"}).json()
    assert answer["known_at"] < "2999"


def test_a_rebuild_that_dies_half_way_leaves_the_read_models_as_they_were(
    services: Service, client: TestClient, belarus: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = client.get("/v1/timeline").json()["intervals"]

    def dies_while_writing(records: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(services.projector.view.shadow, "write_shadow", dies_while_writing)
    with pytest.raises(RuntimeError):
        services.projector.rebuild(batch_size=1)
    monkeypatch.undo()
    assert client.get("/v1/timeline").json()["intervals"] == before
    post(
        client,
        {
            **BASE,
            "authority": "GB",
            "type": "imposed",
            "effective_date": "2022-01-01",
            "measures": ["quota"],
        },
    )
    report = services.projector.rebuild(batch_size=2)
    assert report.events == 6 and report.rows["current_status"] == 3
    after = client.get("/v1/timeline").json()["intervals"]
    assert [i for i in after if i["authority"] != "GB"] == before


def test_events_recorded_during_a_rebuild_are_projected_after_the_swap(
    services: Service, client: TestClient, belarus: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = services.projector.view.shadow
    write_shadow = shadow.write_shadow
    recorded: list[dict[str, Any]] = []

    def write_while_someone_posts(records: Any) -> None:
        if not recorded:
            recorded.append(
                post(
                    client,
                    {
                        **BASE,
                        "authority": "CA",
                        "type": "imposed",
                        "effective_date": "2021-08-09",
                        "measures": ["quota"],
                    },
                )
            )
        write_shadow(records)

    monkeypatch.setattr(shadow, "write_shadow", write_while_someone_posts)
    report = services.projector.rebuild(batch_size=1)
    assert report.events == 6
    assert status(client, "CA", as_of="2022-01-01")[:2] == ("active", ["quota"])
    assert services.projector.lag() == 0


def test_a_read_while_a_write_is_on_its_way_is_answered_for_a_moment_before_it(
    services: Service, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write below gets its recorded_at, then stalls before it commits. A read in
    that window must not claim to know the record as of a moment after that
    recorded_at: asking again for the moment it answered must give the same answer."""
    post(client, US_STORY[0])
    stalled, release = threading.Event(), threading.Event()
    insert = services.log.recorder.insert_events

    def slow_insert(*args: Any, **kwargs: Any) -> Any:
        stalled.set()
        release.wait(10)
        return insert(*args, **kwargs)

    monkeypatch.setattr(services.log.recorder, "insert_events", slow_insert)
    writer = threading.Thread(target=post, args=(client, US_STORY[1]))
    writer.start()
    assert stalled.wait(10)
    during = client.get("/v1/status", params={**BASE, "authority": "US", "as_of": "2030-01-01"})
    release.set()
    writer.join()
    answer = during.json()
    again = client.get(
        "/v1/status",
        params={**BASE, "authority": "US", "as_of": "2030-01-01", "known_at": answer["known_at"]},
    ).json()
    assert again == answer
    assert answer["results"][0]["measures"] == ["asset_freeze", "import_ban"]
    assert status(client, "US", as_of="2030-01-01")[1] == [
        "asset_freeze",
        "financing_ban",
        "import_ban",
    ]


def test_an_event_not_yet_projected_moves_known_at_before_it(
    make_services: Callable[..., Service],
) -> None:
    api_side = make_services(embedded_projector=False)
    with TestClient(create_app(api_side)) as client:
        api_side.log.record([draft_of(US_STORY[0])], recorded_by="elsewhere")
        before = client.get("/v1/status", params={**BASE, "authority": "US"}).json()
        assert before["results"][0]["status"] == "none"
        api_side.projector.catch_up()
        again = client.get(
            "/v1/status", params={**BASE, "authority": "US", "known_at": before["known_at"]}
        ).json()
        assert again == before
        assert status(client, "US", as_of="2022-01-01")[0] == "active"


def draft_of(body: dict[str, Any]) -> Any:
    return EventIn.model_validate(body).draft()


def in_force_since_from_timeline(intervals: list[dict[str, Any]], day: str) -> str | None:
    """Independently: walk back from the interval holding `day` while intervals stay active."""
    holding = [i for i in intervals if i["valid_from"] <= day and (i["valid_to"] or "~") > day]
    if not holding or holding[0]["status"] != "active":
        return None
    start = holding[0]
    for interval in reversed(intervals[: intervals.index(start)]):
        if interval["status"] != "active" or interval["valid_to"] != start["valid_from"]:
            break
        start = interval
    return str(start["valid_from"])


def test_in_force_since_is_where_the_current_run_of_active_began(client: TestClient) -> None:
    us = {**BASE, "authority": "US"}
    post(client, {**us, "type": "imposed", "effective_date": "2020-01-01", "measures": ["quota"]})
    post(
        client,
        {**us, "type": "expanded", "effective_date": "2020-06-01", "measures": ["import_ban"]},
    )
    post(client, {**us, "type": "eased", "effective_date": "2021-01-01", "measures": ["quota"]})
    post(client, {**us, "type": "lifted", "effective_date": "2022-01-01"})
    post(client, {**us, "type": "imposed", "effective_date": "2023-01-01", "measures": ["quota"]})
    post(
        client,
        {**us, "type": "expanded", "effective_date": "2023-01-01", "measures": ["export_ban"]},
    )
    post(
        client,
        {**us, "type": "expanded", "effective_date": "2024-03-01", "measures": ["import_ban"]},
    )
    # a late event lands in the first run: the stream is refolded, the run's start kept
    post(
        client,
        {**us, "type": "expanded", "effective_date": "2020-03-01", "measures": ["services_ban"]},
    )
    intervals = client.get("/v1/timeline", params={**BASE, "authority": "US"}).json()["intervals"]
    days = ["2019-12-31", "2020-01-01", "2020-07-01", "2021-06-01", "2022-06-01", "2023-01-01",
            "2024-06-01", "2030-01-01"]  # fmt: skip
    seen = []
    for day in days:
        (row,) = client.get("/v1/status", params={**BASE, "authority": "US", "as_of": day}).json()[
            "results"
        ]
        assert row["in_force_since"] == in_force_since_from_timeline(intervals, day), day
        seen.append(row["in_force_since"])
    assert seen == [None, "2020-01-01", "2020-01-01", "2020-01-01", None, "2023-01-01",
                    "2023-01-01", "2023-01-01"]  # fmt: skip
