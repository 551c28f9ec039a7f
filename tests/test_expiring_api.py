"""`GET /v1/expiring` on every store, written from the rule: every term that runs out in
`[from, to)`, by date and then stream, as known at a moment — renewed terms at their new end,
terms cut off by a lift or retracted not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import WRITER

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store

EU: dict[str, Any] = {"authority": "EU", "country": "BY", "commodity": "potash"}
WIDE = {"from": "2000-01-01", "to": "2100-01-01"}


def recorded(client: TestClient, key: dict[str, Any] = EU, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/events", json={**key, **body}, headers=WRITER)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def imposed(client: TestClient, day: str, expires: str | None, **key: str) -> dict[str, Any]:
    return recorded(
        client, {**EU, **key}, type="imposed", effective_date=day, measures=["import_ban"],
        expires=expires,
    )  # fmt: skip


def expiring(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/v1/expiring", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ends(client: TestClient, **params: str) -> list[tuple[str, str, str, str, list[str]]]:
    """(stream, date, event_id, ends, measures) of each listed expiry, in the order given."""
    return [
        (e["stream"], e["date"], e["event_id"], e["ends"], e["measures"])
        for e in expiring(client, **params)["expiries"]
    ]


def test_the_window_includes_from_and_leaves_out_to(client: TestClient) -> None:
    run = imposed(client, "2021-06-24", "2022-03-01")
    listed = [("EU/BY/potash", "2022-03-01", run["event_id"], "run", ["import_ban"])]
    assert ends(client, **{"from": "2022-03-01", "to": "2022-03-02"}) == listed
    assert ends(client, **{"from": "2022-02-01", "to": "2022-03-01"}) == []
    assert ends(client, **{"from": "2022-03-02", "to": "2023-01-01"}) == []
    assert ends(client, **{"from": "2022-03-01", "to": "2022-03-01"}) == []


def test_the_three_kinds_of_term_and_what_each_ends_or_brings_back(client: TestClient) -> None:
    run = recorded(
        client, type="imposed", effective_date="2021-06-24",
        measures=["asset_freeze", "import_ban"], expires="2025-01-01",
    )  # fmt: skip
    added = recorded(
        client, type="expanded", effective_date="2022-01-01", measures=["export_ban"],
        expires="2023-01-01",
    )  # fmt: skip
    licence = recorded(
        client, type="eased", effective_date="2023-06-01", measures=["import_ban"],
        expires="2024-01-01",
    )  # fmt: skip
    # Added without a term: in force until the run ends, and ends with it.
    recorded(client, type="expanded", effective_date="2024-06-01", measures=["transit_ban"])
    in_force = ["asset_freeze", "import_ban", "transit_ban"]
    assert ends(client, **WIDE) == [
        ("EU/BY/potash", "2023-01-01", added["event_id"], "measures", ["export_ban"]),
        ("EU/BY/potash", "2024-01-01", licence["event_id"], "easing", ["import_ban"]),
        ("EU/BY/potash", "2025-01-01", run["event_id"], "run", in_force),
    ]
    answer = expiring(client, **WIDE)
    assert (answer["from"], answer["to"]) == ("2000-01-01", "2100-01-01")
    first = answer["expiries"][0]
    assert (first["authority"], first["country"], first["commodity"]) == ("EU", "BY", "potash")


def test_sorted_by_date_then_stream(client: TestClient) -> None:
    uk = imposed(client, "2021-06-24", "2022-03-01", authority="GB")
    us = imposed(client, "2021-06-24", "2022-02-01", authority="US")
    eu = imposed(client, "2021-06-24", "2022-03-01")
    listed = [(stream, day, event_id) for stream, day, event_id, *_ in ends(client, **WIDE)]
    assert listed == [
        ("US/BY/potash", "2022-02-01", us["event_id"]),
        ("EU/BY/potash", "2022-03-01", eu["event_id"]),
        ("GB/BY/potash", "2022-03-01", uk["event_id"]),
    ]


def test_a_renewal_moves_the_listed_date(client: TestClient) -> None:
    run = imposed(client, "2021-06-24", "2022-03-01")
    recorded(client, type="renewed", effective_date="2022-02-25", expires="2023-03-01")
    assert ends(client, **WIDE) == [
        ("EU/BY/potash", "2023-03-01", run["event_id"], "run", ["import_ban"])
    ]


def test_a_renewal_recorded_late_leaves_the_old_end_listed_as_known_before(
    client: TestClient,
) -> None:
    run = imposed(client, "2021-06-24", "2022-03-01")
    renewal = recorded(client, type="renewed", effective_date="2022-02-25", expires="2023-03-01")
    before = {**WIDE, "known_at": run["recorded_at"]}
    assert ends(client, **before) == [
        ("EU/BY/potash", "2022-03-01", run["event_id"], "run", ["import_ban"])
    ]
    assert expiring(client, **before)["known_at"] == run["recorded_at"]
    after = {**WIDE, "known_at": renewal["recorded_at"]}
    assert [e[1] for e in ends(client, **after)] == ["2023-03-01"]


def test_a_lift_before_the_end_takes_it_off_the_list(client: TestClient) -> None:
    imposed(client, "2021-06-24", "2022-03-01")
    recorded(client, type="lifted", effective_date="2022-01-15")
    assert ends(client, **WIDE) == []


def test_retracting_the_event_that_carries_the_term_takes_it_off_the_list(
    client: TestClient,
) -> None:
    run = imposed(client, "2021-06-24", "2025-01-01")
    added = recorded(
        client, type="expanded", effective_date="2023-10-18", measures=["export_ban"],
        expires="2024-04-18",
    )  # fmt: skip
    end_of_run = ("EU/BY/potash", "2025-01-01", run["event_id"], "run", ["import_ban"])
    listed = [
        ("EU/BY/potash", "2024-04-18", added["event_id"], "measures", ["export_ban"]),
        end_of_run,
    ]
    assert ends(client, **WIDE) == listed
    retraction = recorded(client, type="retracted", retracts=added["event_id"], note="wrong")
    assert ends(client, **WIDE) == [end_of_run]
    assert ends(client, **WIDE, known_at=added["recorded_at"]) == listed
    assert ends(client, **WIDE, known_at=retraction["recorded_at"]) == [end_of_run]


def test_every_end_of_one_day_is_listed_and_an_end_on_the_day_of_an_event(
    client: TestClient,
) -> None:
    """Two terms running out on one day, and a run that runs out on the day a new one is
    imposed: each is listed (the timeline has one interval for each of those days)."""
    first = recorded(
        client, type="imposed", effective_date="2021-01-01",
        measures=["asset_freeze", "import_ban"], expires="2023-01-01",
    )  # fmt: skip
    added = recorded(
        client, type="expanded", effective_date="2021-06-01", measures=["export_ban"],
        expires="2022-01-01",
    )  # fmt: skip
    licence = recorded(
        client, type="eased", effective_date="2021-07-01", measures=["import_ban"],
        expires="2022-01-01",
    )  # fmt: skip
    again = imposed(client, "2023-01-01", "2024-01-01")
    assert ends(client, **WIDE) == [
        ("EU/BY/potash", "2022-01-01", added["event_id"], "measures", ["export_ban"]),
        ("EU/BY/potash", "2022-01-01", licence["event_id"], "easing", ["import_ban"]),
        ("EU/BY/potash", "2023-01-01", first["event_id"], "run", ["asset_freeze", "import_ban"]),
        ("EU/BY/potash", "2024-01-01", again["event_id"], "run", ["import_ban"]),
    ]


def test_filters_pick_the_streams(client: TestClient) -> None:
    imposed(client, "2021-06-24", "2022-03-01")
    imposed(client, "2021-06-24", "2022-03-01", authority="US")
    imposed(client, "2021-06-24", "2022-03-01", country="RU")
    imposed(client, "2021-06-24", "2022-03-01", commodity="gold")

    def streams(**params: str) -> list[str]:
        return [e[0] for e in ends(client, **WIDE, **params)]

    assert streams() == ["EU/BY/gold", "EU/BY/potash", "EU/RU/potash", "US/BY/potash"]
    assert streams(authority="us") == ["US/BY/potash"]
    assert streams(country="RU") == ["EU/RU/potash"]
    assert streams(commodity="gold") == ["EU/BY/gold"]
    assert streams(authority="EU", country="BY", commodity="potash") == ["EU/BY/potash"]


def test_the_window_defaults_to_today_and_the_90_days_after(client: TestClient) -> None:
    today = datetime.now(UTC).date()
    run = imposed(client, "2021-06-24", (today + timedelta(days=89)).isoformat())
    later = imposed(client, "2021-06-24", (today + timedelta(days=90)).isoformat(), authority="US")
    answer = expiring(client)
    assert (answer["from"], answer["to"]) == (
        today.isoformat(),
        (today + timedelta(days=90)).isoformat(),
    )
    assert [e["event_id"] for e in answer["expiries"]] == [run["event_id"]]
    shifted = expiring(client, **{"from": (today + timedelta(days=1)).isoformat()})
    assert [e["event_id"] for e in shifted["expiries"]] == [run["event_id"], later["event_id"]]


def refusal(client: TestClient, **params: str) -> dict[str, str]:
    response = client.get("/v1/expiring", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_from_after_to_is_refused_naming_both(client: TestClient) -> None:
    fields = refusal(client, **{"from": "2030-01-02", "to": "2030-01-01"})
    assert set(fields) == {"query.from", "query.to"}
    assert "2030-01-02" in fields["query.from"] and "2030-01-01" in fields["query.to"]


def test_a_bad_date_or_an_unknown_parameter_is_refused(client: TestClient) -> None:
    assert set(refusal(client, **{"from": "2030-13-01"})) == {"query.from"}
    assert set(refusal(client, to="tomorrow")) == {"query.to"}
    assert set(refusal(client, known_at="yesterday")) == {"query.known_at"}
    assert set(refusal(client, country="Belarus")) == {"query.country"}
    assert set(refusal(client, since="2030-01-01")) == {"query.since"}
