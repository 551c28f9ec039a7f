"""The bundled real timeline, recorded on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi.testclient import TestClient

from api.seed import bundled_events, seed
from api.service import Service


def stream_events(client: TestClient, stream: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/streams/{stream}")
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_seed_records_the_bundled_timeline_once(services: Service, client: TestClient) -> None:
    first = seed(services)
    assert first.recorded == len(bundled_events()) and first.already_there == 0
    again = seed(services)
    assert again.recorded == 0 and again.already_there == first.recorded
    everything = client.get("/v1/events", params={"limit": 1000}).json()["events"]
    assert len(everything) == first.recorded
    assert {event["recorded_by"] for event in everything} == {"seed"}


def test_seeded_belarus_potash_story(services: Service, client: TestClient) -> None:
    seed(services)
    us = stream_events(client, "US/BY/potash")
    assert [(e["type"], e["effective_date"]) for e in us] == [
        ("imposed", "2021-08-09"),
        ("expanded", "2022-04-01"),
        ("lifted", "2025-12-13"),
    ]
    eu = stream_events(client, "EU/BY/potash")
    assert [(e["type"], e["effective_date"]) for e in eu][:2] == [
        ("imposed", "2021-06-24"),
        ("expanded", "2022-03-02"),
    ]
    assert all(e["type"] != "lifted" for e in eu), "the EU's measures stay in force"
    for authority in ("GB", "CA", "LT"):
        assert stream_events(client, f"{authority}/BY/potash"), authority
    assert "transit_ban" in stream_events(client, "LT/BY/potash")[0]["measures"]


def test_seeded_belavia_is_eased_then_lifted(services: Service, client: TestClient) -> None:
    seed(services)
    belavia = stream_events(client, "US/BY/aviation")
    assert [(e["type"], e["effective_date"]) for e in belavia] == [
        ("imposed", "2023-08-09"),
        ("eased", "2025-09-11"),
        ("lifted", "2025-11-04"),
    ]


def test_every_seeded_event_is_sourced() -> None:
    events = bundled_events()
    streams: dict[str, int] = defaultdict(int)
    for event in events:
        assert event.legal_basis, event
        assert event.source is not None and str(event.source.url).startswith("http")
        streams[f"{event.country}/{event.commodity}"] += 1
    assert {"BY/potash", "BY/aviation", "RU/crude-oil", "IR/crude-oil", "VE/crude-oil"} <= set(
        streams
    )
    uncertain = [e for e in events if e.note and "unconfirmed" in e.note.lower()]
    assert uncertain, "uncertain facts say so in their note"
