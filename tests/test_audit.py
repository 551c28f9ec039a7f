"""Replay and verification, with the database altered behind the service's back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.seed import bundled_events, seed
from api.app.service import Service
from tests.conftest import READER, WRITER, run_cli
from tests.tamper import behind_the_back, events_table, stream_id

pytestmark = pytest.mark.e2e  # mostly in process on a real store; the CLI's replay and verify too

ROOT = Path(__file__).resolve().parents[1]
Execute = Callable[[str, tuple[Any, ...]], list[Any]]


@pytest.fixture
def seeded(services: Service, client: TestClient) -> TestClient:
    seed(services)
    services.projector.catch_up()
    return client


def verify(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/audit/verify", headers=READER)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def kinds(report: dict[str, Any], stream: str) -> set[tuple[str, int | None]]:
    return {(p["kind"], p["version"]) for p in report["problems"] if p["stream"] == stream}


def test_an_untouched_store_verifies_clean(seeded: TestClient) -> None:
    report = verify(seeded)
    assert report["chain_ok"] and report["projections_ok"] and report["problems"] == []
    bundled = bundled_events()
    streams = {event.draft().key.name for event in bundled}
    assert report["events_checked"] == len(bundled) and report["streams_checked"] == len(streams)


@pytest.mark.shared_store
def test_a_changed_payload_byte_is_detected(services: Service, seeded: TestClient) -> None:
    with behind_the_back(services) as sql:
        [(state,)] = sql(
            f"SELECT state FROM {events_table(services)} WHERE originator_id = %s"
            " AND originator_version = 2",
            (stream_id(services, "US/BY/potash"),),
        )
        altered = bytes(state).replace(b"financing_ban", b"financing_bam", 1)
        assert altered != bytes(state)
        sql(
            f"UPDATE {events_table(services)} SET state = %s WHERE originator_id = %s"
            " AND originator_version = 2",
            (altered, stream_id(services, "US/BY/potash")),
        )
    report = verify(seeded)
    assert not report["chain_ok"]
    assert ("hash_mismatch", 2) in kinds(report, "US/BY/potash")


@pytest.mark.parametrize(("version", "field"), [(1, "expires"), (2, "expires"), (2, "renews")])
@pytest.mark.shared_store
def test_a_term_and_a_renewal_are_covered_by_the_hash(
    services: Service, seeded: TestClient, version: int, field: str
) -> None:
    """Editing a term's end or a renewal's target breaks the chain, as any stored field."""
    key = {"authority": "JP", "country": "BY", "commodity": "potash"}
    imposed = seeded.post(
        "/v1/events",
        json={**key, "type": "imposed", "effective_date": "2021-08-09",
              "measures": ["import_ban"], "expires": "2022-08-09"},
        headers=WRITER,
    ).json()  # fmt: skip
    renewal = seeded.post(
        "/v1/events",
        json={**key, "type": "renewed", "effective_date": "2022-08-01",
              "expires": "2023-08-09", "renews": imposed["event_id"]},
        headers=WRITER,
    )  # fmt: skip
    assert renewal.status_code == 201, renewal.text
    assert not kinds(verify(seeded), "JP/BY/potash")
    with behind_the_back(services) as sql:
        where = " WHERE originator_id = %s AND originator_version = %s"
        params = (stream_id(services, "JP/BY/potash"), version)
        (state,) = sql(f"SELECT state FROM {events_table(services)}" + where, params)[0]
        document = json.loads(bytes(state))
        value = document[field]
        forged = "2099-01-01" if field == "expires" else uuid.uuid4().hex
        document[field] = {**value, "_data_": forged} if isinstance(value, dict) else forged
        sql(
            f"UPDATE {events_table(services)} SET state = %s" + where,
            (json.dumps(document).encode(), *params),
        )
    assert ("hash_mismatch", version) in kinds(verify(seeded), "JP/BY/potash")


@pytest.mark.shared_store
def test_a_byte_that_breaks_decoding_is_reported_not_crashed(
    services: Service, seeded: TestClient
) -> None:
    with behind_the_back(services) as sql:
        sql(
            f"UPDATE {events_table(services)} SET state = %s WHERE originator_id = %s"
            " AND originator_version = 1",
            (b"{not json", stream_id(services, "EU/BY/potash")),
        )
    report = verify(seeded)
    assert ("undecodable", 1) in kinds(report, "EU/BY/potash")
    assert ("broken_link", 2) in kinds(report, "EU/BY/potash")
    assert seeded.get("/v1/status", params={"country": "BY"}).status_code == 200


@pytest.mark.shared_store
def test_a_deleted_middle_event_is_detected(services: Service, seeded: TestClient) -> None:
    with behind_the_back(services) as sql:
        sql(
            f"DELETE FROM {events_table(services)} WHERE originator_id = %s"
            " AND originator_version = 2",
            (stream_id(services, "US/BY/potash"),),
        )
    report = verify(seeded)
    found = kinds(report, "US/BY/potash")
    assert ("missing_event", 2) in found and ("broken_link", 3) in found
    assert not report["chain_ok"] and not report["projections_ok"]


@pytest.mark.shared_store
def test_a_deleted_last_event_is_detected(services: Service, seeded: TestClient) -> None:
    with behind_the_back(services) as sql:
        sql(
            f"DELETE FROM {events_table(services)} WHERE originator_id = %s"
            " AND originator_version = 3",
            (stream_id(services, "US/BY/potash"),),
        )
    report = verify(seeded)
    assert ("missing_event", 3) in kinds(report, "US/BY/potash")
    assert any("lifted" in p["detail"] for p in report["problems"])


@pytest.mark.shared_store
def test_swapped_versions_are_detected(services: Service, seeded: TestClient) -> None:
    table, sid = events_table(services), stream_id(services, "US/BY/potash")
    with behind_the_back(services) as sql:
        sql(
            f"UPDATE {table} SET originator_version = 99 WHERE originator_id = %s"
            " AND originator_version = 2",
            (sid,),
        )
        sql(
            f"UPDATE {table} SET originator_version = 2 WHERE originator_id = %s"
            " AND originator_version = 3",
            (sid,),
        )
        sql(
            f"UPDATE {table} SET originator_version = 3 WHERE originator_id = %s"
            " AND originator_version = 99",
            (sid,),
        )
    report = verify(seeded)
    found = {kind for kind, _ in kinds(report, "US/BY/potash")}
    assert {"hash_mismatch", "broken_link", "out_of_order"} <= found


@pytest.mark.shared_store
def test_an_edited_read_model_row_is_detected(services: Service, seeded: TestClient) -> None:
    with behind_the_back(services) as sql:
        sql(
            "UPDATE status_intervals SET measures = %s WHERE stream = %s AND status = %s",
            ('["import_ban"]', "GB/BY/potash", "active"),
        )
        sql("UPDATE current_status SET status = %s WHERE stream = %s", ("lifted", "EU/BY/potash"))
    report = verify(seeded)
    assert report["chain_ok"] and not report["projections_ok"]
    assert {k for k, _ in kinds(report, "GB/BY/potash")} == {
        "read_model_row_differs",
        "read_model_row_missing",
    }
    eu_version = sum(1 for e in bundled_events() if e.draft().key.name == "EU/BY/potash")
    assert ("current_status_differs", eu_version) in kinds(report, "EU/BY/potash")  # its last


def test_replay_shows_each_step_with_the_status_after_it(seeded: TestClient) -> None:
    response = seeded.get(
        "/v1/audit/replay", params={"authority": "US", "country": "BY", "commodity": "potash"}
    )
    assert response.status_code == 200
    steps = response.json()["steps"]
    assert [
        (s["event"]["type"], s["stream_status"]["status"], s["stream_status"]["since"])
        for s in steps
    ] == [
        ("imposed", "active", "2021-08-09"),
        ("expanded", "active", "2022-04-01"),
        ("lifted", "lifted", "2025-12-15"),
    ]
    positions = [s["event"]["position"] for s in steps]
    assert positions == sorted(positions)
    everything = seeded.get("/v1/audit/replay").json()["steps"]
    assert len(everything) == len(bundled_events())
    assert seeded.get("/v1/audit/replay", params={"known_at": "2020-01-01T00:00:00Z"}).json() == {
        "steps": []
    }
    assert seeded.get("/v1/audit/replay", params={"country": "XX"}).status_code == 422


def test_replay_of_a_retraction_shows_the_corrected_status(client: TestClient) -> None:
    base = {"authority": "US", "country": "BY", "commodity": "potash"}
    first = client.post(
        "/v1/events",
        headers=WRITER,
        json={
            **base,
            "type": "imposed",
            "effective_date": "2021-08-09",
            "measures": ["import_ban"],
        },
    )
    wrong = client.post(
        "/v1/events",
        headers=WRITER,
        json={**base, "type": "expanded", "effective_date": "2022-01-01", "measures": ["quota"]},
    ).json()
    client.post(
        "/v1/events",
        headers=WRITER,
        json={**base, "type": "retracted", "retracts": wrong["event_id"], "note": "no quota"},
    )
    assert first.status_code == 201
    steps = client.get("/v1/audit/replay").json()["steps"]
    assert [s["stream_status"]["measures"] for s in steps] == [
        ["import_ban"],
        ["import_ban", "quota"],
        ["import_ban"],
    ]


@pytest.mark.shared_store
def test_cli_replay_and_verify(services: Service, seeded: TestClient) -> None:
    url = services.log.database_url
    lines = run_cli(
        url, "replay", "BY", "potash", "--authority", "US", "--json"
    ).stdout.splitlines()
    assert [json.loads(line)["stream_status"]["status"] for line in lines] == [
        "active",
        "active",
        "lifted",
    ]
    table = run_cli(url, "replay", "BY", "potash", "--authority", "US")
    assert "US/BY/potash" in table.stdout and "lifted" in table.stdout
    clean = run_cli(url, "verify")
    bundled = bundled_events()
    streams = len({event.draft().key.name for event in bundled})
    checked = f"{len(bundled)} events in {streams} streams checked"
    assert clean.returncode == 0 and checked in clean.stdout
    with behind_the_back(services) as sql:
        sql(
            f"DELETE FROM {events_table(services)} WHERE originator_id = %s"
            " AND originator_version = 3",
            (stream_id(services, "US/BY/potash"),),
        )
    tampered = run_cli(url, "verify", "--json")
    assert tampered.returncode == 1
    report = json.loads(tampered.stdout)
    assert not report["chain_ok"]
    assert {"kind": "missing_event", "stream": "US/BY/potash", "version": 3} in [
        {k: p[k] for k in ("kind", "stream", "version")} for p in report["problems"]
    ]


@pytest.mark.shared_store
def test_a_payload_rewritten_by_sql_text_functions_is_detected(
    services: Service, seeded: TestClient
) -> None:
    """The insider edits the payload with the database's text functions: SQLite's replace()
    leaves text in the state column (a storage-class quirk), PostgreSQL's goes through text
    and back to bytes. Either way the event is checked, not skipped as unreadable."""
    sqlite = services.log.store.dialect == "sqlite"
    rewritten = "replace(state, 'transit_ban', 'transit_bam')"
    if not sqlite:  # bytea: decoded to text, edited, encoded back
        rewritten = "convert_to(replace(convert_from(state, 'UTF8'),"
        rewritten += " 'transit_ban', 'transit_bam'), 'UTF8')"
    with behind_the_back(services) as sql:
        sql(
            f"UPDATE {events_table(services)} SET state = {rewritten} WHERE originator_id = %s",
            (stream_id(services, "LT/BY/potash"),),
        )
        (stored,) = sql(
            f"SELECT state FROM {events_table(services)} WHERE originator_id = %s"
            " AND originator_version = 1",
            (stream_id(services, "LT/BY/potash"),),
        )[0]
    assert isinstance(stored, str) is sqlite  # SQLite's quirk: text where bytes were
    assert "transit_bam" in (stored if sqlite else bytes(stored).decode())  # the edit took
    report = verify(seeded)
    assert ("hash_mismatch", 1) in kinds(report, "LT/BY/potash")
    assert not any(p["kind"] == "unreadable" for p in report["problems"])


@pytest.mark.parametrize("field", ["timestamp", "timestamp_value", "event_id", "recorded_by"])
@pytest.mark.shared_store
def test_every_stored_field_is_covered_by_the_hash(
    services: Service, seeded: TestClient, field: str
) -> None:
    """Renaming or editing any stored field, the library's own included, breaks the chain
    (the hash covered neither `timestamp` nor `event_id` before)."""
    with behind_the_back(services) as sql:
        (state,) = sql(
            f"SELECT state FROM {events_table(services)} WHERE originator_id = %s"
            " AND originator_version = 2",
            (stream_id(services, "US/BY/potash"),),
        )[0]
        document = json.loads(bytes(state))
        if field == "timestamp":
            document["timestamp_renamed"] = document.pop("timestamp")
        elif field == "event_id":
            document["event_id"] = {**document["event_id"], "_data_": uuid.uuid4().hex}
        elif field == "timestamp_value":
            document["timestamp"] = {**document["timestamp"], "_data_": "2020-01-01T00:00:00+00:00"}
        elif field == "recorded_by":
            document["recorded_by"] = "someone-else"
        sql(
            f"UPDATE {events_table(services)} SET state = %s WHERE originator_id = %s"
            " AND originator_version = 2",
            (json.dumps(document).encode(), stream_id(services, "US/BY/potash")),
        )
    report = verify(seeded)
    assert not report["chain_ok"], report
    assert ("hash_mismatch", 2) in kinds(report, "US/BY/potash")
