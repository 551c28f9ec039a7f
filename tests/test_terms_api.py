"""Measures with a term over REST, on every store: status rows, timelines and diffs that
end by themselves, renewals, and what was known when."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.service import Service
from tests.conftest import READER, WRITER

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store

EU: dict[str, Any] = {"authority": "EU", "country": "BY", "commodity": "potash"}


def post(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/events", json={**EU, **body}, headers=WRITER)


def recorded(client: TestClient, **body: Any) -> dict[str, Any]:
    response = post(client, **body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def status(client: TestClient, as_of: str, **params: str) -> dict[str, Any]:
    answer = client.get("/v1/status", params={**EU, "as_of": as_of, **params}).json()
    row: dict[str, Any] = answer["results"][0]
    return row


def test_a_status_row_says_when_it_ends_and_a_renewal_moves_it(client: TestClient) -> None:
    imposed = recorded(
        client, type="imposed", effective_date="2021-06-24", measures=["import_ban"],
        expires="2022-03-01",
    )  # fmt: skip
    assert imposed["expires"] == "2022-03-01" and imposed["renews"] is None
    assert status(client, "2022-02-28")["expires"] == "2022-03-01"
    assert status(client, "2022-03-01")["status"] == "expired"
    assert status(client, "2022-03-01")["expires"] is None
    renewal = recorded(
        client, type="renewed", effective_date="2022-02-25", expires="2023-03-01",
        renews=imposed["event_id"],
    )  # fmt: skip
    row = status(client, "2022-03-01")
    assert (row["status"], row["measures"], row["expires"]) == (
        "active",
        ["import_ban"],
        "2023-03-01",
    )
    assert row["event_ids"] == [imposed["event_id"], renewal["event_id"]]


def test_the_timeline_splits_where_a_term_ends_naming_its_event(client: TestClient) -> None:
    imposed = recorded(
        client, type="imposed", effective_date="2019-01-28",
        measures=["asset_freeze", "import_ban"],
    )  # fmt: skip
    eased = recorded(
        client, type="eased", effective_date="2023-10-18", measures=["import_ban"],
        expires="2024-04-18",
    )  # fmt: skip
    intervals = client.get("/v1/timeline", params=EU).json()["intervals"]
    assert [(i["valid_from"], i["valid_to"], i["measures"], i["event_id"]) for i in intervals] == [
        ("2019-01-28", "2023-10-18", ["asset_freeze", "import_ban"], imposed["event_id"]),
        ("2023-10-18", "2024-04-18", ["asset_freeze"], eased["event_id"]),
        ("2024-04-18", None, ["asset_freeze", "import_ban"], eased["event_id"]),
    ]
    diff = client.get(
        "/v1/status/diff", params={**EU, "from_as_of": "2024-01-01", "to_as_of": "2024-05-01"}
    ).json()
    (change,) = diff["changes"]
    assert change["event_ids"] == [eased["event_id"]]
    assert change["before"]["expires"] == "2024-04-18" and change["after"]["expires"] is None


def test_a_measure_added_again_without_a_term_outlives_the_first_expansions_term(
    client: TestClient,
) -> None:
    # The rule: an expansion's term ends only the measures it added. Eased for good and
    # added again by an expansion without a term, the measure no longer ends with the first.
    recorded(client, type="imposed", effective_date="2020-01-01", measures=["import_ban"])
    recorded(
        client, type="expanded", effective_date="2020-02-01", measures=["export_ban"],
        expires="2020-06-01",
    )  # fmt: skip
    recorded(client, type="eased", effective_date="2020-03-01", measures=["export_ban"])
    again = recorded(client, type="expanded", effective_date="2020-04-01", measures=["export_ban"])
    row = status(client, "2020-06-01")
    assert (row["measures"], row["expires"]) == (["export_ban", "import_ban"], None)
    assert status(client, "2020-04-01")["expires"] is None
    intervals = client.get("/v1/timeline", params=EU).json()["intervals"]
    assert intervals[-1]["valid_from"] == "2020-04-01" and intervals[-1]["valid_to"] is None
    assert intervals[-1]["event_id"] == again["event_id"]
    window = {**EU, "from": "2020-01-01", "to": "2021-01-01"}
    assert client.get("/v1/expiring", params=window).json()["expiries"] == []


def test_a_renewal_recorded_late_changes_only_what_is_known_after_it(
    client: TestClient,
) -> None:
    recorded(
        client, type="imposed", effective_date="2021-06-24", measures=["import_ban"],
        expires="2022-03-01",
    )  # fmt: skip
    before = status(client, "2022-06-01")["status"]
    moment = client.get("/v1/status", params={**EU, "as_of": "2022-06-01"}).json()["known_at"]
    recorded(client, type="renewed", effective_date="2022-02-25", expires="2023-03-01")
    assert before == "expired"
    assert status(client, "2022-06-01")["status"] == "active"
    then = status(client, "2022-06-01", known_at=moment)
    assert (then["status"], then["expires"]) == ("expired", None)
    assert status(client, "2022-02-28", known_at=moment)["expires"] == "2022-03-01"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"type": "imposed", "measures": ["import_ban"], "expires": "2021-06-24"}, ["expires"]),
        ({"type": "renewed"}, ["expires"]),
        ({"type": "renewed", "expires": "2022-01-01", "renews": "nope"}, ["renews"]),
        ({"type": "lifted", "expires": "2022-01-01"}, ["expires"]),
        ({"type": "imposed", "measures": ["bogus"], "expires": "June"}, ["measures", "expires"]),
    ],
)
def test_a_misfit_term_is_422_naming_its_fields(
    client: TestClient, body: dict[str, Any], fields: list[str]
) -> None:
    response = post(client, effective_date="2021-06-24", **body)
    assert response.status_code == 422, response.text
    named = {
        error["field"].removeprefix("body.").split(".")[0] for error in response.json()["errors"]
    }
    assert set(fields) <= named, named


@pytest.mark.parametrize(
    ("renewal", "detail"),
    [
        ({"effective_date": "2022-03-01", "expires": "2023-03-01"}, "ended on 2022-03-01"),
        ({"effective_date": "2022-02-01", "expires": "2022-03-01"}, "already runs until"),
        ({"effective_date": "2021-01-01", "expires": "2023-03-01"}, "not active on 2021-01-01"),
        (
            {
                "effective_date": "2022-02-01",
                "expires": "2023-03-01",
                "renews": "00000000-0000-4000-8000-000000000000",
            },
            "has no event",
        ),
    ],
)
def test_a_renewal_that_does_not_fit_is_a_409_saying_why(
    client: TestClient, renewal: dict[str, Any], detail: str
) -> None:
    recorded(
        client, type="imposed", effective_date="2021-06-24", measures=["import_ban"],
        expires="2022-03-01",
    )  # fmt: skip
    response = post(client, type="renewed", **renewal)
    assert response.status_code == 409, response.text
    assert detail in response.json()["detail"]


def test_retracting_a_renewal_brings_the_old_end_back(client: TestClient) -> None:
    recorded(
        client, type="imposed", effective_date="2021-06-24", measures=["import_ban"],
        expires="2022-03-01",
    )  # fmt: skip
    renewal = recorded(client, type="renewed", effective_date="2022-02-25", expires="2023-03-01")
    recorded(client, type="retracted", retracts=renewal["event_id"], note="wrong decision")
    assert status(client, "2022-03-01")["status"] == "expired"


def test_a_rebuild_and_verify_agree_with_the_live_read_models_on_terms(
    client: TestClient, services: Service
) -> None:
    imposed = recorded(
        client, type="imposed", effective_date="2021-06-24", measures=["import_ban"],
        expires="2022-03-01",
    )  # fmt: skip
    recorded(
        client, type="expanded", effective_date="2021-09-01", measures=["transit_ban"],
        expires="2021-12-01",
    )  # fmt: skip
    recorded(client, type="renewed", effective_date="2022-02-25", expires="2023-03-01")
    recorded(
        client, type="renewed", effective_date="2022-06-01", expires="2024-03-01",
        renews=imposed["event_id"],
    )  # fmt: skip
    live = sorted(services.projector.view.all_interval_rows())
    services.projector.rebuild(batch_size=2)
    assert sorted(services.projector.view.all_interval_rows()) == live
    report = client.get("/v1/audit/verify", headers=READER).json()
    assert report["chain_ok"] and report["projections_ok"], report["problems"]
    assert status(client, "2024-03-01")["status"] == "expired"
