"""Operating the service: readiness, metrics, request logs, tokens, graceful shutdown."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app.bootstrap import build_service
from api.app.identity import Role
from api.app.service import Service
from api.app.settings import Settings
from api.http.app import create_app
from domain.keys import StreamKey
from domain.rules import EventType
from domain.stream import EventDraft
from tests.conftest import ADMIN, US_POTASH_IMPOSED, WRITER, free_port

pytestmark = pytest.mark.e2e  # `sanctions serve` and the token commands, as an operator runs them

ROOT = Path(__file__).resolve().parents[1]
BODY = US_POTASH_IMPOSED


def test_readyz_when_caught_up_and_503_when_behind(make_services: Callable[..., Service]) -> None:
    with TestClient(create_app(make_services())) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["projection_lag_events"] == 0
    behind = make_services(embedded_projector=False, ready_max_lag_events=1)
    for country in ("BY", "RU"):
        behind.log.record(
            [
                EventDraft(
                    EventType.IMPOSED,
                    StreamKey("US", country, "potash"),
                    date(2021, 1, 1),
                    frozenset({"quota"}),
                )
            ],
            recorded_by="t",
        )
    with TestClient(create_app(behind)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "2 events behind" in response.json()["detail"]
        metrics = client.get("/metrics").text
        assert re.search(r"^sanctions_projection_lag_events 2\.0$", metrics, re.M)
        assert float(re.search(r"^sanctions_projection_lag_seconds (\S+)$", metrics, re.M)[1]) > 0
        behind.projector.catch_up()
        assert client.get("/readyz").status_code == 200


def test_metrics_count_requests_and_recorded_events(client: TestClient) -> None:
    assert client.post("/v1/events", json=BODY, headers=WRITER).status_code == 201
    client.post("/v1/events", json={**BODY, "authority": "EU", "type": "expanded"}, headers=WRITER)
    client.get("/v1/status", params={"country": "BY"})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'sanctions_events_recorded_total{type="imposed"} 1.0' in text
    assert (
        'sanctions_http_requests_total{method="POST",route="/v1/events",status="201"} 1.0' in text
    )
    assert (
        'sanctions_http_requests_total{method="POST",route="/v1/events",status="409"} 1.0' in text
    )
    assert (
        'sanctions_http_request_duration_seconds_count{method="GET",route="/v1/status"} 1.0' in text
    )
    assert "sanctions_projection_lag_events 0.0" in text


def test_one_log_line_per_request_naming_the_caller_never_the_token(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sanctions.requests")
    client.post("/v1/events", json=BODY, headers=WRITER)
    client.post("/v1/events", json=BODY, headers={"Authorization": "Bearer not-a-real-token"})
    client.get("/v1/events", params={"country": "BY"})
    lines = [r.getMessage() for r in caplog.records if r.name == "sanctions.requests"]
    assert len(lines) == 3
    assert '"caller": "wendy"' in lines[0] and '"status": 201' in lines[0]
    assert '"status": 401' in lines[1]
    assert all("writer-token" not in line and "not-a-real-token" not in line for line in lines)
    assert "country=BY" not in lines[2]


def test_tokens_list_and_revoke(services: Service) -> None:
    token = services.tokens.create("carol", Role.WRITER)
    with TestClient(create_app(services)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/v1/events", json=BODY, headers=auth).status_code == 201
        listing = {entry["name"]: entry for entry in services.tokens.listing()}
        assert listing["carol"]["role"] == "writer" and listing["carol"]["revoked_at"] is None
        assert listing["alice"]["source"] == "SANCTIONS_API_TOKENS"
        assert token not in repr(listing)
        services.tokens.revoke("carol")
        assert (
            client.post("/v1/events", json={**BODY, "authority": "EU"}, headers=auth).status_code
            == 401
        )
        assert services.tokens.listing()[-1]["revoked_at"] is not None


@pytest.mark.shared_store
def test_token_cli_list_and_revoke(database_url: str) -> None:
    env = {**os.environ, "SANCTIONS_DATABASE_URL": database_url, "SANCTIONS_API_TOKENS": ""}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "token", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    token = cli("create", "dora", "--role", "admin", "--create").stdout.strip()
    listed = cli("list")
    assert "dora" in listed.stdout and "admin" in listed.stdout and token not in listed.stdout
    assert cli("revoke", "dora").returncode == 0
    assert cli("revoke", "dora").returncode == 2
    assert cli("revoke", "nobody").returncode == 2


def test_admin_route_needs_admin(client: TestClient) -> None:
    assert client.post("/v1/admin/projections/rebuild").status_code == 401
    assert client.post("/v1/admin/projections/rebuild", headers=WRITER).status_code == 403
    assert client.post("/v1/admin/projections/rebuild", headers=ADMIN).status_code == 200


@pytest.mark.shared_store
def test_sigterm_finishes_in_flight_writes_and_loses_nothing(database_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SANCTIONS_DATABASE_URL": database_url,
        "SANCTIONS_API_TOKENS": "wendy:writer:writer-token",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        assert time.monotonic() < deadline
    acknowledged: list[str] = []
    countries = [
        "BY",
        "RU",
        "IR",
        "VE",
        "KP",
        "SY",
        "CU",
        "MM",
        "AF",
        "ZW",
        "NI",
        "ML",
        "SD",
        "SO",
        "LY",
        "YE",
        "IQ",
        "LB",
        "CF",
        "CD",
    ]

    def writer(batch: list[str]) -> None:
        with httpx.Client(base_url=base, headers=WRITER, timeout=30) as client:
            for country in batch:
                try:
                    response = client.post("/v1/events", json={**BODY, "country": country})
                except httpx.TransportError:
                    return  # refused after shutdown began: never acknowledged
                if response.status_code == 201:
                    acknowledged.append(response.json()["event_id"])

    threads = [threading.Thread(target=writer, args=(countries[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while not acknowledged:  # shut down mid-way: some writes answered, others in flight
        assert time.monotonic() < deadline, "no write was answered"
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join()
    output, _ = process.communicate(timeout=60)
    # uvicorn re-raises the signal once it has shut down cleanly: exit by SIGTERM is normal.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert acknowledged, "some writes were answered before the shutdown"
    svc = build_service(Settings(database_url=database_url))
    try:
        stored = {str(r.event.event_id) for r in svc.log.select_events()}
        assert set(acknowledged) <= stored
        assert svc.projector.lag() == 0, "the projector had caught up before it stopped"
    finally:
        svc.close()
