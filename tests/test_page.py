"""The timeline page in a real browser (the system Chromium, driven by Playwright)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route

from api.app.seed import seed
from tests.conftest import WRITER

pytestmark = pytest.mark.e2e  # a served app in Chromium (each test also marked browser)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def seeded(base: str, make_services: Callable[..., Any]) -> str:
    # The server's own services hold the store; seed through a second handle on it,
    # then wait for the server's projector to pick the events up (it polls).
    seed(make_services())
    deadline = time.monotonic() + 20
    while httpx.get(f"{base}/readyz").json()["projection_lag_events"] > 0:
        assert time.monotonic() < deadline, "the server's projector did not catch up"
        time.sleep(0.05)
    return base


@pytest.fixture
def site(live_server: Callable[..., str], make_services: Callable[..., Any]) -> str:
    return seeded(live_server(), make_services)


def redrawn(page: Page, action: Callable[[], None]) -> None:
    """Do `action` and wait until the page has redrawn from the API."""
    before = page.get_attribute("#app", "data-ready")
    action()
    page.wait_for_function(
        "before => document.getElementById('app').dataset.ready !== before", arg=before
    )


def statuses(page: Page) -> dict[str, str]:
    rows = page.locator("#status-table tbody tr[data-stream]")
    return {
        rows.nth(i).get_attribute("data-stream") or "": rows.nth(i).locator("td").first.inner_text()
        for i in range(rows.count())
    }


def blocked_by_policy(page: Page) -> list[str]:
    """Collects what the Content-Security-Policy refused on this page, as Chromium reports it."""
    refused: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", seen)
    return refused


def open_page(browser: Browser, url: str, width: int = 1280, height: int = 800) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    refused = blocked_by_policy(page)
    page.goto(url)
    page.wait_for_selector("#app[data-ready]")
    assert errors == []
    assert refused == [], "the page works within its Content-Security-Policy"
    return page


def give_token(page: Page, token: str) -> None:
    page.wait_for_selector("#token-form:not([hidden])")
    page.fill("#reader-token", token)
    page.press("#reader-token", "Enter")


def test_page_shows_us_and_eu_potash_and_moves_through_time(
    browser: Browser, site: str, database_url: str
) -> None:
    page = open_page(browser, f"{site}/?country=BY&commodity=potash")
    chart = page.locator("#chart svg")
    for stream in ("US/BY/potash", "EU/BY/potash"):
        assert chart.locator(f'g[data-stream="{stream}"] rect').count() >= 2
    assert chart.locator("a .marker").count() >= 10, "event markers link to their sources"

    redrawn(page, lambda: page.fill("#as_of", "2023-06-01"))
    found = statuses(page)
    assert (found["US/BY/potash"], found["EU/BY/potash"]) == ("active", "active")
    assert "as_of=2023-06-01" in page.url
    redrawn(page, lambda: page.fill("#as_of", "2026-01-15"))
    found = statuses(page)
    assert (found["US/BY/potash"], found["EU/BY/potash"]) == ("lifted", "active")

    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"timeline-laptop-{backend}.png", full_page=True)
    phone = open_page(browser, f"{site}/?country=BY&commodity=potash&as_of=2026-01-15", 390, 844)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no sideways scrolling of the page itself at phone width"
    phone.screenshot(path=ARTIFACTS / f"timeline-phone-{backend}.png", full_page=True)

    page.click("#verify")
    give_token(page, "reader-token")
    wait_for_result(page, "intact")


def test_shared_url_restores_the_view(browser: Browser, site: str) -> None:
    page = open_page(browser, f"{site}/?country=by&commodity=potash&as_of=2023-06-01")
    assert page.input_value("#as_of") == "2023-06-01"
    assert page.input_value("#country") == "BY" and page.input_value("#commodity") == "potash"
    assert statuses(page)["US/BY/potash"] == "active"
    assert page.locator("label[for=as_of]").count() == 1
    assert page.locator("label[for=known_at_slider]").count() == 1
    bad = httpx.get(f"{site}/?country=XX")
    assert bad.status_code == 422 and "not an ISO 3166-1 alpha-2" in bad.text
    assert "status-table" not in bad.text


def test_known_at_shows_a_retracted_event_appear_and_disappear(browser: Browser, site: str) -> None:
    base = {"authority": "CA", "country": "BY", "commodity": "potash"}  # one event: no renewal
    with httpx.Client(base_url=site, headers=WRITER) as client:
        wrong = client.post(
            "/v1/events", json={**base, "type": "lifted", "effective_date": "2025-12-13"}
        ).json()
        retraction = client.post(
            "/v1/events",
            json={
                **base,
                "type": "retracted",
                "retracts": wrong["event_id"],
                "note": "Canada did not lift; the US did",
            },
        ).json()
    page = open_page(browser, f"{site}/?country=BY&commodity=potash&as_of=2026-01-15")
    slider = page.locator("#known_at_slider")
    moments = page.evaluate(
        "Array.from(new Set([...document.querySelectorAll('#events li')]"
        ".map(li => li.dataset.eventId)))"
    )
    assert wrong["event_id"] in moments
    item = page.locator(f'#events li[data-event-id="{wrong["event_id"]}"]')
    assert "retracted" in (item.get_attribute("class") or "")
    assert statuses(page)["CA/BY/potash"] == "active"

    last = int(slider.get_attribute("max") or "0")
    # One step back: the record as it stood when the mistaken lift was the newest event.
    slider.focus()
    redrawn(page, lambda: page.keyboard.press("ArrowLeft"))
    assert page.locator("#known_at_text").inner_text() == wrong["recorded_at"]
    assert "retracted" not in (item.get_attribute("class") or "")
    assert statuses(page)["CA/BY/potash"] == "lifted"
    # One more step back: the mistaken event is not in the record at all.
    redrawn(page, lambda: page.keyboard.press("ArrowLeft"))
    assert item.count() == 0
    assert statuses(page)["CA/BY/potash"] == "active"
    redrawn(page, lambda: slider.fill(str(last)))
    assert page.locator("#known_at_text").inner_text() == "now"
    assert "retracted" in (item.get_attribute("class") or "")
    assert retraction["retracts"] == wrong["event_id"]


TOKEN_KEY = "sanctions-timeline.reader-token"


def wait_for_result(page: Page, text: str) -> None:
    page.wait_for_function(
        "text => document.getElementById('verify-result').textContent.includes(text)", arg=text
    )


def stored_token(page: Page) -> str | None:
    found: str | None = page.evaluate("key => sessionStorage.getItem(key)", TOKEN_KEY)
    return found


def test_verify_asks_for_a_reader_token_and_keeps_it_for_the_tab(
    browser: Browser, site: str
) -> None:
    page = open_page(browser, f"{site}/?country=BY&commodity=potash")
    sent: list[str | None] = []

    # Verify refused as the API refuses it without a reader token (401) or with a token
    # of a role that may not (403), whether or not this server already does.
    def guard(route: Route, request: Request) -> None:
        authorization = request.headers.get("authorization")
        sent.append(authorization)
        if authorization == "Bearer reader-token":
            route.continue_()
            return
        status = 403 if authorization == "Bearer forbidden-token" else 401
        detail = "nobody has role none; this needs reader" if status == 403 else "unknown token"
        problem = {"type": "about:blank", "title": "refused", "status": status, "detail": detail}
        route.fulfill(
            status=status, content_type="application/problem+json", body=json.dumps(problem)
        )

    page.route("**/v1/audit/verify*", guard)

    page.click("#verify")
    page.wait_for_selector("#token-form:not([hidden])")
    assert sent == [], "nothing is sent before a token is given"
    assert "needs a reader token" in page.inner_text("#verify-result")
    assert page.evaluate("document.activeElement.id") == "reader-token"
    assert page.get_attribute("#reader-token", "type") == "password"
    assert page.get_attribute("#reader-token", "name") is None, "never part of a form's URL"
    assert page.locator("label[for=reader-token]").count() == 1

    give_token(page, "wrong-token")
    wait_for_result(page, "A valid reader token is needed")
    assert sent == ["Bearer wrong-token"]
    assert page.is_visible("#token-form")
    assert stored_token(page) is None, "a refused token is forgotten"

    give_token(page, "forbidden-token")
    wait_for_result(page, "may not be used to verify the record")
    assert stored_token(page) is None

    give_token(page, "reader-token")
    wait_for_result(page, "intact")
    assert sent[-1] == "Bearer reader-token"
    assert page.is_hidden("#token-form")
    assert stored_token(page) == "reader-token"
    assert page.evaluate("localStorage.length") == 0
    assert "token" not in page.url and all(
        "token" not in r
        for r in page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    )

    # Kept for this tab: verifying again asks nothing.
    page.evaluate("document.getElementById('verify-result').textContent = ''")
    page.click("#verify")
    wait_for_result(page, "intact")
    assert page.is_hidden("#token-form")
    assert sent[-1] == "Bearer reader-token" and len(sent) == 4


def test_a_server_that_needs_tokens_for_reads_asks_once_then_works(
    browser: Browser, live_server: Callable[..., str], make_services: Callable[..., Any]
) -> None:
    base = seeded(live_server(reads_require_token=True), make_services)
    page = open_page(browser, f"{base}/?country=BY&commodity=potash&as_of=2023-06-01")
    page.wait_for_selector("#token-form:not([hidden])")
    assert "A valid reader token is needed to read" in page.inner_text("#verify-result")
    assert statuses(page) == {}

    redrawn(page, lambda: give_token(page, "wrong-token"))  # the server's own 401
    assert page.is_visible("#token-form") and statuses(page) == {}
    assert stored_token(page) is None

    redrawn(page, lambda: give_token(page, "reader-token"))
    assert statuses(page)["US/BY/potash"] == "active"
    assert page.is_hidden("#token-form")
    page.click("#verify")
    wait_for_result(page, "intact")
    assert page.is_hidden("#token-form")


def test_docs_render_with_every_other_host_cut_off(
    browser: Browser, live_server: Callable[..., str]
) -> None:
    base = live_server()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    refused = blocked_by_policy(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    outside: list[str] = []

    def only_ours(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() >= 15, "the operations are listed"
    assert "sanctions-timeline" in page.inner_text(".information-container")
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock-body")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "docs-offline.png")
    assert outside == [], "nothing is fetched from another host"
    assert refused == [] and errors == []
