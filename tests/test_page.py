"""The timeline page in a real browser (the system Chromium, driven by Playwright)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.seed import seed
from tests.conftest import WRITER

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "the system Chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def site(live_server: Callable[..., str], make_services: Callable[..., Any]) -> str:
    base = live_server()
    # The server's own services hold the store; seed through a second handle on it,
    # then wait for the server's projector to pick the events up (it polls).
    seed(make_services())
    deadline = time.monotonic() + 20
    while httpx.get(f"{base}/readyz").json()["projection_lag_events"] > 0:
        assert time.monotonic() < deadline, "the server's projector did not catch up"
        time.sleep(0.05)
    return base


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


def open_page(browser: Browser, url: str, width: int = 1280, height: int = 800) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#app[data-ready]")
    assert errors == []
    return page


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
    page.wait_for_function(
        "document.getElementById('verify-result').textContent.includes('intact')"
    )


def test_shared_url_restores_the_view(browser: Browser, site: str) -> None:
    page = open_page(browser, f"{site}/?country=by&commodity=potash&as_of=2023-06-01")
    assert page.input_value("#as_of") == "2023-06-01"
    assert page.input_value("#country") == "BY" and page.input_value("#commodity") == "potash"
    assert statuses(page)["US/BY/potash"] == "active"
    assert page.locator("label[for=as_of]").count() == 1
    assert page.locator("label[for=known_at_slider]").count() == 1
    bad = httpx.get(f"{site}/?country=XX")
    assert bad.status_code == 422 and "showing the default view" in bad.text


def test_known_at_shows_a_retracted_event_appear_and_disappear(browser: Browser, site: str) -> None:
    base = {"authority": "EU", "country": "BY", "commodity": "potash"}
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
                "note": "the EU did not lift; the US did",
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
    assert statuses(page)["EU/BY/potash"] == "active"

    last = int(slider.get_attribute("max") or "0")
    # One step back: the record as it stood when the mistaken lift was the newest event.
    redrawn(page, lambda: (slider.focus(), page.keyboard.press("ArrowLeft")))
    assert page.locator("#known_at_text").inner_text() == wrong["recorded_at"]
    assert "retracted" not in (item.get_attribute("class") or "")
    assert statuses(page)["EU/BY/potash"] == "lifted"
    # One more step back: the mistaken event is not in the record at all.
    redrawn(page, lambda: page.keyboard.press("ArrowLeft"))
    assert item.count() == 0
    assert statuses(page)["EU/BY/potash"] == "active"
    redrawn(page, lambda: slider.fill(str(last)))
    assert page.locator("#known_at_text").inner_text() == "now"
    assert "retracted" in (item.get_attribute("class") or "")
    assert retraction["retracts"] == wrong["event_id"]
