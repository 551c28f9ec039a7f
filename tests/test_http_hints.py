"""What the REST API says to someone finding their way: a path nothing serves gets a
problem document naming the path and where the routes are listed, and a `known_at`
given as a bare date gets a hint saying which moment it was read as."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import US_POTASH_IMPOSED, WRITER

pytestmark = pytest.mark.integration

PROBLEM_404 = "https://sanctions-timeline.dev/problems/404"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing-here"),
        ("GET", "/status"),  # the API's paths start with /v1/
        ("POST", "/v1/event"),
        ("GET", "/static/missing.js"),
    ],
)
def test_a_path_nothing_serves_says_so_and_where_to_look(
    client: TestClient, method: str, path: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert (body["type"], body["title"], body["status"]) == (PROBLEM_404, "Not found", 404)
    detail = body["detail"]
    assert f"nothing is served at {path}:" in detail, detail
    assert "/docs" in detail and "/openapi.json" in detail, detail
    # Every first part of the documented /v1/ paths, read from the OpenAPI document.
    roots = {
        "/v1/" + re.split(r"[/:{]", documented[4:])[0]
        for documented in client.get("/openapi.json").json()["paths"]
        if documented.startswith("/v1/")
    }
    assert roots >= {"/v1/events", "/v1/status", "/v1/timeline", "/v1/audit"}
    named = set(re.findall(r"/v1/[a-z-]+", detail.split("start with", 1)[1]))
    assert named == roots, detail


def test_a_very_long_unknown_path_is_named_cut_short(client: TestClient) -> None:
    path = "/v1/" + "x" * 5000
    detail = client.get(path).json()["detail"]
    assert path[:200] + "…" in detail and len(detail) < 1000


def test_a_bare_date_known_at_is_answered_with_a_hint_of_its_moment(client: TestClient) -> None:
    event = US_POTASH_IMPOSED
    assert client.post("/v1/events", json=event, headers=WRITER).status_code == 201
    today = datetime.now(UTC).date().isoformat()
    query = {"country": "BY", "commodity": "potash", "authority": "US", "as_of": "2022-01-01"}

    bare = client.get("/v1/status", params={**query, "known_at": today})
    midnight = client.get("/v1/status", params={**query, "known_at": f"{today}T00:00:00Z"})
    assert bare.status_code == midnight.status_code == 200
    # The bare date means the moment the day began: the same answer, in which the event
    # recorded later today does not count yet.
    assert bare.json() == midnight.json()
    assert bare.json()["results"][0]["status"] == "none"
    hint = bare.headers["Known-At-Hint"]
    assert f"known_at={today} is read as {today}T00:00:00Z" in hint, hint
    assert "transaction time" in hint and "as_of" in hint
    assert "Known-At-Hint" not in midnight.headers
    now = client.get("/v1/status", params=query)
    assert now.json()["results"][0]["status"] == "active" and "Known-At-Hint" not in now.headers

    diff = client.get(
        "/v1/status/diff",
        params={"from_known_at": today, "to_known_at": f"{today}T23:59:59Z", "country": "BY"},
    )
    assert diff.status_code == 200
    assert f"from_known_at={today} is read as {today}T00:00:00Z" in diff.headers["Known-At-Hint"]
    assert "to_known_at" not in diff.headers["Known-At-Hint"]
    # A date that does not exist is still refused, saying why, with no hint.
    refused = client.get("/v1/status", params={**query, "known_at": "2025-02-30"})
    assert refused.status_code == 422 and "Known-At-Hint" not in refused.headers
