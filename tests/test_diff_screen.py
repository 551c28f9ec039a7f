"""What changed between two bitemporal points (`/v1/status/diff`, `sanctions diff`), and
shipment screening by HS code (`/v1/screen`, `sanctions screen`), on SQLite and PostgreSQL.

The expected answers are written out from the story each test records, not computed by the
service's code."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import US_POTASH_IMPOSED, WRITER, run_cli

pytestmark = pytest.mark.e2e  # mostly in process on a real store; `sanctions diff` and `screen` too

BY_POTASH: dict[str, Any] = {"country": "BY", "commodity": "potash"}
STORY = [
    {
        **BY_POTASH,
        "authority": "US",
        "type": "imposed",
        "effective_date": "2021-08-09",
        "measures": ["asset_freeze", "import_ban"],
    },
    {
        **BY_POTASH,
        "authority": "US",
        "type": "expanded",
        "effective_date": "2022-04-01",
        "measures": ["financing_ban"],
    },
    {**BY_POTASH, "authority": "US", "type": "lifted", "effective_date": "2025-12-15"},
    {
        **BY_POTASH,
        "authority": "EU",
        "type": "imposed",
        "effective_date": "2021-06-24",
        "measures": ["import_ban"],
    },
    {
        **BY_POTASH,
        "authority": "LT",
        "type": "imposed",
        "effective_date": "2022-02-01",
        "measures": ["transit_ban"],
    },
    {
        "authority": "US",
        "country": "RU",
        "commodity": "crude-oil",
        "type": "imposed",
        "effective_date": "2022-03-08",
        "measures": ["import_ban"],
    },
]


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/events", json=body, headers=WRITER)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def story(client: TestClient) -> list[dict[str, Any]]:
    return [post(client, body) for body in STORY]


def diff(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/v1/status/diff", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def assert_refused(
    client: TestClient, path: str, params: dict[str, str], fields: list[str]
) -> None:
    """A 422 problem document naming exactly `fields`."""
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert sorted(e["field"] for e in response.json()["errors"]) == sorted(fields)


def by_stream(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {change["stream"]: change for change in answer["changes"]}


# The diff

US_ACTIVE = {
    "status": "active",
    "measures": ["asset_freeze", "financing_ban", "import_ban"],
    "since": "2022-04-01",
    "expires": None,
}
US_LIFTED = {"status": "lifted", "measures": [], "since": "2025-12-15", "expires": None}
NONE = {"status": "none", "measures": [], "since": None, "expires": None}


def test_diff_between_two_dates_names_the_lift_and_leaves_unchanged_streams_out(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    answer = diff(client, from_as_of="2025-12-14", to_as_of="2025-12-15")
    assert answer["from"]["as_of"] == "2025-12-14"
    assert answer["to"]["as_of"] == "2025-12-15"
    assert answer["from"]["known_at"] == answer["to"]["known_at"]  # both "now", one moment
    assert answer["changes"] == [
        {
            "stream": "US/BY/potash",
            "authority": "US",
            "country": "BY",
            "commodity": "potash",
            "before": US_ACTIVE,
            "after": US_LIFTED,
            "event_ids": [story[2]["event_id"]],
        }
    ]


def test_diff_over_years_lists_every_event_in_between_in_log_order(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    changes = by_stream(diff(client, from_as_of="2021-07-01", to_as_of="2022-06-01", country="by"))
    assert sorted(changes) == ["LT/BY/potash", "US/BY/potash"]  # EU was already active
    assert changes["US/BY/potash"]["before"] == NONE
    assert changes["US/BY/potash"]["after"] == US_ACTIVE
    assert changes["US/BY/potash"]["event_ids"] == [story[0]["event_id"], story[1]["event_id"]]
    assert changes["LT/BY/potash"]["event_ids"] == [story[4]["event_id"]]
    # The other way round: the same streams, before and after swapped.
    back = by_stream(diff(client, from_as_of="2022-06-01", to_as_of="2021-07-01", country="BY"))
    assert back["US/BY/potash"]["before"] == US_ACTIVE
    assert back["US/BY/potash"]["after"] == NONE
    assert back["US/BY/potash"]["event_ids"] == changes["US/BY/potash"]["event_ids"]


def test_diff_filters_by_key(client: TestClient, story: list[dict[str, Any]]) -> None:
    answer = diff(client, from_as_of="2020-01-01", to_as_of="2023-01-01", authority="us")
    assert [c["stream"] for c in answer["changes"]] == ["US/BY/potash", "US/RU/crude-oil"]
    answer = diff(client, from_as_of="2020-01-01", to_as_of="2023-01-01", commodity="crude-oil")
    assert [c["stream"] for c in answer["changes"]] == ["US/RU/crude-oil"]


def test_diff_of_one_point_with_itself_is_empty(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    assert diff(client)["changes"] == []
    assert diff(client, from_as_of="2022-01-01", to_as_of="2022-01-01")["changes"] == []


def test_diff_between_knowledge_times_shows_a_late_event_and_a_retraction(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    """One date, two moments: what corrections and late reports changed in what we knew."""
    time.sleep(0.01)
    before = client.get("/v1/status", params={"as_of": "2024-01-01"}).json()["known_at"]
    time.sleep(0.01)
    late = post(  # a late report: recorded now, effective in 2023
        client,
        {
            **BY_POTASH,
            "authority": "EU",
            "type": "expanded",
            "effective_date": "2023-01-01",
            "measures": ["transit_ban"],
        },
    )
    retraction = post(  # a correction: LT's imposition was recorded by mistake
        client,
        {
            **BY_POTASH,
            "authority": "LT",
            "type": "retracted",
            "retracts": story[4]["event_id"],
            "note": "recorded by mistake",
        },
    )
    answer = diff(client, from_as_of="2024-01-01", from_known_at=before, to_as_of="2024-01-01")
    assert answer["from"] == {"as_of": "2024-01-01", "known_at": before}
    changes = by_stream(answer)
    assert sorted(changes) == ["EU/BY/potash", "LT/BY/potash"]  # US unchanged: absent
    eu = changes["EU/BY/potash"]
    assert eu["before"] == {
        "status": "active",
        "measures": ["import_ban"],
        "since": "2021-06-24",
        "expires": None,
    }
    assert eu["after"] == {
        "status": "active",
        "measures": ["import_ban", "transit_ban"],
        "since": "2023-01-01",
        "expires": None,
    }
    assert eu["event_ids"] == [late["event_id"]]
    lt = changes["LT/BY/potash"]
    assert lt["before"] == {
        "status": "active",
        "measures": ["transit_ban"],
        "since": "2022-02-01",
        "expires": None,
    }
    assert lt["after"] == NONE
    assert lt["event_ids"] == [story[4]["event_id"], retraction["event_id"]]
    # Before the late event's date, what we learned makes no difference to EU.
    earlier = diff(client, from_as_of="2022-12-31", from_known_at=before, to_as_of="2022-12-31")
    assert sorted(by_stream(earlier)) == ["LT/BY/potash"]


def test_diff_known_before_anything_was_recorded_shows_everything_as_new(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    answer = diff(client, from_known_at="2000-01-01T00:00:00Z", to_as_of="2026-01-01")
    assert answer["from"] == {"as_of": "2026-01-01", "known_at": "2000-01-01T00:00:00.000000Z"}
    changes = by_stream(answer)
    assert sorted(changes) == ["EU/BY/potash", "LT/BY/potash", "US/BY/potash", "US/RU/crude-oil"]
    assert changes["US/BY/potash"]["before"] == NONE
    assert changes["US/BY/potash"]["after"] == US_LIFTED
    assert changes["US/BY/potash"]["event_ids"] == [e["event_id"] for e in story[:3]]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"from_as_of": "2025-02-30"}, ["query.from_as_of"]),
        (
            {"to_as_of": "yesterday", "from_known_at": "soon"},
            ["query.to_as_of", "query.from_known_at"],
        ),
        (
            {"to_known_at": "2026-13-01T00:00:00Z", "country": "XX"},
            ["query.to_known_at", "query.country"],
        ),
        ({"as_of": "2025-01-01"}, ["query.as_of"]),
        ({"commodity": "potasj"}, ["query.commodity"]),
    ],
)
def test_diff_refuses_bad_input_naming_every_field(
    client: TestClient, params: dict[str, str], fields: list[str]
) -> None:
    assert_refused(client, "/v1/status/diff", params, fields)


# Screening


def screen(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/v1/screen", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def rows(answer: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {row["authority"]: (row["status"], row["measures"]) for row in answer["results"]}


@pytest.mark.parametrize("hs", ["3104", "3104.20", "310420", "3104.20.50", "31042050", " 3104.90 "])
def test_screen_maps_potash_headings_and_subheadings(
    client: TestClient, story: list[dict[str, Any]], hs: str
) -> None:
    answer = screen(client, hs=hs, origin="by", date="2025-12-14")
    assert answer["commodity"] == "potash"
    assert answer["hs"] == hs.strip()
    assert answer["origin"] == "BY"
    assert answer["date"] == "2025-12-14"
    assert [row["stream"] for row in answer["results"]] == [
        "EU/BY/potash",
        "LT/BY/potash",
        "US/BY/potash",
    ]
    assert rows(answer) == {
        "EU": ("active", ["import_ban"]),
        "LT": ("active", ["transit_ban"]),
        "US": ("active", ["asset_freeze", "financing_ban", "import_ban"]),
    }


def test_screen_before_and_after_the_lift(client: TestClient, story: list[dict[str, Any]]) -> None:
    before = screen(client, hs="3104.20", origin="BY", date="2025-12-14")
    after = screen(client, hs="3104.20", origin="BY", date="2025-12-15")
    assert rows(before)["US"] == ("active", ["asset_freeze", "financing_ban", "import_ban"])
    assert rows(after)["US"] == ("lifted", [])
    assert rows(after)["EU"] == ("active", ["import_ban"])
    us = next(row for row in after["results"] if row["authority"] == "US")
    assert us["since"] == "2025-12-15"
    assert us["event_ids"] == [e["event_id"] for e in story[:3]]
    only_us = screen(client, hs="3104.20", origin="BY", date="2025-12-15", authority="us")
    assert rows(only_us) == {"US": ("lifted", [])}


def test_screen_gives_every_authority_with_events_a_row_even_before_they_take_effect(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    answer = screen(client, hs="3104", origin="BY", date="2021-07-01")
    assert rows(answer) == {
        "EU": ("active", ["import_ban"]),
        "LT": ("none", []),
        "US": ("none", []),
    }


def test_screen_at_chapter_level_is_another_commodity(
    client: TestClient, story: list[dict[str, Any]]
) -> None:
    """3105 (mixed fertilisers) falls under chapter 31, fertilizers, not potash: nothing
    recorded for BY, so no rows; crude oil from RU at heading level."""
    answer = screen(client, hs="3105.20", origin="BY", date="2025-01-01")
    assert (answer["commodity"], answer["results"]) == ("fertilizers", [])
    crude = screen(client, hs="2709.00", origin="RU", date="2025-01-01")
    assert crude["commodity"] == "crude-oil"
    assert rows(crude) == {"US": ("active", ["import_ban"])}


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"hs": "3", "origin": "BY"}, ["query.hs"]),
        ({"hs": "31a4", "origin": "BY"}, ["query.hs"]),
        ({"hs": "31..04", "origin": "BY"}, ["query.hs"]),
        ({"hs": "3104.", "origin": "BY"}, ["query.hs"]),
        ({"hs": "31042050123", "origin": "BY"}, ["query.hs"]),
        ({"hs": "9999", "origin": "BY"}, ["query.hs"]),  # no commodity covers it
        ({"hs": "27", "origin": "BY"}, ["query.hs"]),  # a chapter wider than any commodity
        ({"hs": "3104", "origin": "XX", "date": "2025-02-30"}, ["query.origin", "query.date"]),
        ({"hs": "3104"}, ["query.origin"]),
        ({"origin": "BY"}, ["query.hs"]),
        ({"hs": "3104", "origin": "BY", "authority": "QQ"}, ["query.authority"]),
        ({"hs": "3104", "origin": "BY", "as_of": "2025-01-01"}, ["query.as_of"]),
    ],
)
def test_screen_refuses_malformed_or_uncovered_codes(
    client: TestClient, params: dict[str, str], fields: list[str]
) -> None:
    assert_refused(client, "/v1/screen", params, fields)


def test_uncovered_code_says_so(client: TestClient) -> None:
    response = client.get("/v1/screen", params={"hs": "9999", "origin": "BY"})
    [error] = response.json()["errors"]
    assert "no commodity in the catalogue covers HS 9999" in error["message"]


def test_catalogue_lists_each_commoditys_hs_prefixes(client: TestClient) -> None:
    commodities = {c["slug"]: c for c in client.get("/v1/commodities").json()["commodities"]}
    assert {"3104", "310420"} <= set(commodities["potash"]["hs_prefixes"])
    assert commodities["crude-oil"]["hs_prefixes"][0] == "2709"


# The command line


@pytest.mark.shared_store
def test_cli_diff_and_screen(
    client: TestClient, story: list[dict[str, Any]], database_url: str
) -> None:
    done = run_cli(
        database_url, "diff", "BY", "--from-as-of", "2025-12-14", "--to-as-of", "2025-12-15"
    )
    assert done.returncode == 0, done.stderr
    assert "US/BY/potash" in done.stdout and "EU/BY/potash" not in done.stdout
    assert "US/BY/potash  " + story[2]["event_id"] in done.stdout
    as_json = run_cli(
        database_url, "diff", "BY", "--from-as-of", "2025-12-14", "--to-as-of", "2025-12-15",
        "--json",
    )  # fmt: skip
    answer = json.loads(as_json.stdout)
    assert answer["changes"][0]["event_ids"] == [story[2]["event_id"]]
    assert answer["from"]["as_of"] == "2025-12-14"
    done = run_cli(database_url, "screen", "3104.20", "BY", "--date", "2025-12-15", "--json")
    assert done.returncode == 0, done.stderr
    assert rows(json.loads(done.stdout))["US"] == ("lifted", [])
    refused = run_cli(database_url, "screen", "9999", "XX")
    assert refused.returncode == 2
    assert "HS: no commodity in the catalogue covers HS 9999" in refused.stderr
    assert "ORIGIN: 'XX' is not an ISO 3166-1 alpha-2 country code" in refused.stderr


def test_a_screening_as_known_at_a_moment_has_no_row_for_a_stream_first_recorded_later(
    client: TestClient,
) -> None:
    us = {**US_POTASH_IMPOSED, "country": "TJ"}
    first = client.post("/v1/events", json=us, headers=WRITER).json()
    time.sleep(0.01)
    client.post("/v1/events", json={**us, "authority": "EU"}, headers=WRITER)
    asked = {"hs": "3104.20", "origin": "TJ", "known_at": first["recorded_at"]}
    receipt = client.get("/v1/screen/receipt", params=asked)
    assert receipt.status_code == 200, receipt.text
    statement = json.loads(base64.b64decode(receipt.json()["payload"]))
    rows = statement["predicate"]["answer"]["results"]
    assert [row["stream"] for row in rows] == ["US/TJ/potash"]  # EU's came later
    now = client.get("/v1/screen", params={"hs": "3104.20", "origin": "TJ"}).json()
    assert [row["stream"] for row in now["results"]] == ["EU/TJ/potash", "US/TJ/potash"]
