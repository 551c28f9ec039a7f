"""`sanctions expiring`: the terms that run out in a window, from the database or a server."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from api.app.service import Service
from domain.keys import StreamKey
from domain.rules import EventType
from domain.stream import EventDraft
from tests.test_cli import sanctions

# The `sanctions` command as a user runs it, on a store that outlives each command.
pytestmark = [pytest.mark.e2e, pytest.mark.shared_store]

EU = StreamKey("EU", "BY", "potash")
US = StreamKey("US", "VE", "crude-oil")


def record(svc: Service) -> dict[str, str]:
    """An EU run with a term and its renewal, and a US licence (an easing with a term)."""
    drafts = {
        "run": EventDraft(
            EventType.IMPOSED, EU, date(2021, 6, 24), frozenset({"import_ban", "transit_ban"}),
            expires=date(2022, 3, 1),
        ),
        "renewal": EventDraft(
            EventType.RENEWED, EU, date(2022, 2, 25), expires=date(2023, 3, 1)
        ),
        "oil": EventDraft(
            EventType.IMPOSED, US, date(2019, 1, 28), frozenset({"import_ban", "asset_freeze"})
        ),
        "licence": EventDraft(
            EventType.EASED, US, date(2023, 10, 18), frozenset({"import_ban"}),
            expires=date(2024, 4, 18),
        ),
    }  # fmt: skip
    ids = {}
    for name, draft in drafts.items():
        ids[name] = str(svc.log.record([draft], recorded_by="t").events[0].event.event_id)
    svc.projector.catch_up()
    return ids


def test_expiring_lists_each_end_in_the_window(
    make_services: Callable[..., Service], database_url: str
) -> None:
    ids = record(make_services())
    window = ("--from", "2020-01-01", "--to", "2030-01-01")
    table = sanctions("expiring", *window, database=database_url)
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if "│ 20" in line]
    assert [line.split("│")[1:5] for line in lines] == [
        [" 2023-03-01 ", " EU/BY/potash    ", " run ends: expired            ",
         " import_ban, transit_ban "],
        [" 2024-04-18 ", " US/VE/crude-oil ", " easing ends: measures return ",
         " import_ban              "],
    ]  # fmt: skip
    assert ids["run"] in table.stdout and ids["licence"] in table.stdout
    assert "what ends from 2020-01-01 to 2030-01-01, known at" in table.stdout
    answer = json.loads(sanctions("expiring", *window, "--json", database=database_url).stdout)
    assert [(e["event_id"], e["date"], e["ends"]) for e in answer["expiries"]] == [
        (ids["run"], "2023-03-01", "run"),
        (ids["licence"], "2024-04-18", "easing"),
    ]
    assert (answer["from"], answer["to"]) == ("2020-01-01", "2030-01-01")
    only_us = sanctions("expiring", "VE", *window, "--authority", "US", "--json",
                        database=database_url)  # fmt: skip
    assert [e["stream"] for e in json.loads(only_us.stdout)["expiries"]] == ["US/VE/crude-oil"]


def test_nothing_ending_is_said_so_with_the_moment(
    make_services: Callable[..., Service], database_url: str
) -> None:
    record(make_services())
    known = "2020-01-01T00:00:00Z"
    empty = sanctions(
        "expiring", "--from", "2022-01-01", "--to", "2022-06-01", "--known-at", known,
        database=database_url,
    )  # fmt: skip
    assert empty.returncode == 0, empty.stderr
    assert "nothing ends from 2022-01-01 to 2022-06-01, known at 2020-01-01T00:00:00" in (
        " ".join(empty.stdout.split())
    )


def test_a_window_running_backwards_is_refused_naming_both_options(
    make_services: Callable[..., Service], database_url: str
) -> None:
    record(make_services())
    refused = sanctions("expiring", "--from", "2027-01-02", "--to", "2027-01-01",
                        database=database_url)  # fmt: skip
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--from: 2027-01-02" in refused.stderr and "--to: 2027-01-01" in refused.stderr
    bad = sanctions("expiring", "--to", "2027-02-30", database=database_url)
    assert bad.returncode == 2 and "--to: 2027-02-30 is not a date that exists" in bad.stderr


def test_expiring_never_creates_a_database(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path}/none.db"
    refused = sanctions("expiring", database=missing)
    assert refused.returncode == 1 and "no database" in refused.stderr
    assert not (tmp_path / "none.db").exists()


def test_expiring_answers_the_same_from_a_server(
    make_services: Callable[..., Service], live_server: Callable[..., str], database_url: str
) -> None:
    record(make_services())
    server = live_server()
    question = ["expiring", "--from", "2020-01-01", "--to", "2030-01-01", "--known-at",
                "2999-01-01T00:00:00Z", "--json"]  # fmt: skip
    local = json.loads(sanctions("--database", database_url, *question).stdout)
    remote = json.loads(sanctions("--url", server, *question).stdout)
    assert remote["expiries"] == local["expiries"] and len(local["expiries"]) == 2
    refused = sanctions("--url", server, "expiring", "--from", "2027-01-02", "--to", "2027-01-01")
    assert refused.returncode == 2
    assert "--from:" in refused.stderr and "--to:" in refused.stderr
