"""Security headers on every answer, a page with nothing inline, and API docs that need
no origin but ours (no CDN)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from api.http.security import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.e2e  # headers of a served app

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_common_headers(answer: httpx.Response) -> None:
    for name, value in COMMON.items():
        assert answer.headers.get(name) == value, f"{answer.request.url}: {name}"
    assert "content-security-policy" in answer.headers, answer.request.url


def test_the_page_sends_a_strict_content_security_policy(client: TestClient) -> None:
    for address in ("/?country=BY", "/?asof=2023-06-01"):
        answer = client.get(address)
        assert_common_headers(answer)
        policy = answer.headers["content-security-policy"]
        assert policy == CONTENT_SECURITY_POLICY
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "http" not in policy and "unsafe" not in policy
        # Nothing inline that the policy would block.
        assert re.search(r"<script(?![^>]*\ssrc=)[^>]*>", answer.text) is None
        assert "<style" not in answer.text
        assert re.search(r"\sstyle=", answer.text) is None
        assert re.search(r"\son[a-z]+=", answer.text) is None


@pytest.mark.parametrize(
    ("method", "address"),
    [
        ("GET", "/v1/status?country=BY"),
        ("GET", "/v1/status?asof=2023-06-01"),  # a 422 problem
        ("GET", "/v1/commodities"),
        ("GET", "/v1/audit/replay"),  # streamed
        ("GET", "/openapi.json"),
        ("GET", "/static/style.css"),
        ("GET", "/healthz"),
        ("GET", "/no/such/route"),
        ("POST", "/v1/events"),  # 401 without a token
    ],
)
def test_every_answer_carries_the_security_headers(
    client: TestClient, method: str, address: str
) -> None:
    assert_common_headers(client.request(method, address))


def test_a_server_sent_event_stream_carries_them_and_still_streams(
    live_server: Callable[..., str],
) -> None:
    base = live_server()
    with httpx.stream("GET", f"{base}/v1/events/stream", timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert_common_headers(answer)


def test_docs_are_served_from_our_own_origin(client: TestClient) -> None:
    answer = client.get("/docs")
    assert answer.status_code == 200
    assert_common_headers(answer)
    assert re.search(r"(src|href)=[\"']?https?:", answer.text) is None
    assert "cdn" not in answer.text.lower()
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", answer.text)
    assert {"/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css"} <= set(assets)
    for asset in assets:
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 0
    assert client.get("/openapi.json").status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "http" not in policy and "unsafe" not in policy
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", policy)
    assert "frame-ancestors 'none'" in policy


def test_redoc_is_not_served_from_a_cdn(client: TestClient) -> None:
    answer = client.get("/redoc")
    assert answer.status_code == 404 or "cdn" not in answer.text.lower()
