"""The page says when things end: an "Ends on" column in the status table, `expired` in a
style of its own, and the terms that run out in the next 90 days — in Chromium, and in the
page as served (without its script)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from domain.keys import StreamKey
from domain.rules import EventType
from domain.stream import EventDraft
from tests.test_page import open_page, redrawn
from tests.test_page_http import status_rows

pytestmark = pytest.mark.e2e  # a served app in Chromium (each test also marked browser)

TODAY = datetime.now(UTC).date()
EU = StreamKey("EU", "BY", "potash")
US = StreamKey("US", "BY", "potash")
GB = StreamKey("GB", "BY", "potash")


def in_days(days: int) -> date:
    return TODAY + timedelta(days=days)


@pytest.fixture
def site(live_server: Callable[..., str], make_services: Callable[..., Any]) -> str:
    """A run that ends in 30 days, one that expired in 2022, and a licence that ends in 60
    days, recorded through a second handle on the served store."""
    base = live_server()
    svc = make_services()
    drafts = [
        EventDraft(EventType.IMPOSED, EU, date(2021, 6, 24), frozenset({"import_ban"}),
                   expires=in_days(30)),
        EventDraft(EventType.IMPOSED, US, date(2021, 1, 1), frozenset({"import_ban"}),
                   expires=date(2022, 1, 1)),
        EventDraft(EventType.IMPOSED, GB, date(2021, 1, 1),
                   frozenset({"import_ban", "asset_freeze"})),
        EventDraft(EventType.EASED, GB, date(2024, 1, 1), frozenset({"import_ban"}),
                   expires=in_days(60)),
        EventDraft(EventType.IMPOSED, StreamKey("EU", "BY", "gold"), date(2021, 1, 1),
                   frozenset({"import_ban"}), expires=in_days(200)),  # beyond the 90 days
    ]  # fmt: skip
    for draft in drafts:
        svc.log.record([draft], recorded_by="t")
    deadline = time.monotonic() + 20
    while httpx.get(f"{base}/readyz").json()["projection_lag_events"] > 0:
        assert time.monotonic() < deadline, "the server's projector did not catch up"
        time.sleep(0.05)
    return base


EXPECTED_UPCOMING = [
    f"{in_days(30)} EU/BY/potash: the run ends (expired) (import_ban)",
    f"{in_days(60)} GB/BY/potash: the easing ends: measures return (import_ban)",
]


@pytest.mark.shared_store
def test_the_page_shows_ends_on_expired_and_upcoming_ends(browser: Browser, site: str) -> None:
    page = open_page(browser, f"{site}/?country=BY&commodity=potash")
    headers = page.locator("#status-table thead th").all_inner_texts()
    assert headers == ["Stream", "Status", "Measures", "Since", "Ends on"]

    def row(stream: str) -> list[str]:
        cells = page.locator(f'#status-table tr[data-stream="{stream}"] td')
        return cells.all_inner_texts()

    assert row("EU/BY/potash") == ["active", "import_ban", "2021-06-24", str(in_days(30))]
    assert row("US/BY/potash") == ["expired", "—", "2022-01-01", "—"]
    assert row("GB/BY/potash")[3] == str(in_days(60))
    # expired has a style of its own: neither active's nor lifted's colour, and slanted.
    style = page.eval_on_selector(
        '#status-table tr[data-stream="US/BY/potash"] td.status',
        "e => [getComputedStyle(e).color, getComputedStyle(e).fontStyle]",
    )
    active = page.eval_on_selector(
        '#status-table tr[data-stream="EU/BY/potash"] td.status', "e => getComputedStyle(e).color"
    )
    assert style[0] != active and style[0] != "rgb(0, 0, 0)" and style[1] == "italic"
    assert style[0] == page.eval_on_selector(
        ".swatch.expired", "e => getComputedStyle(e).backgroundColor"
    )
    # The next 90 days' ends, as /v1/expiring answers them.
    assert page.locator("#upcoming li").all_inner_texts() == EXPECTED_UPCOMING
    assert f"from {TODAY} to {in_days(90)}" in page.inner_text("#upcoming-window")
    # The record as it stood before anything, then with the first event only: the script
    # asks /v1/expiring again, known at each moment.
    page.locator("#known_at_slider").focus()
    redrawn(page, lambda: page.keyboard.press("Home"))  # before anything was recorded
    upcoming = page.locator("#upcoming li")
    assert upcoming.all_inner_texts()[0].startswith("Nothing ends in the next 90 days")
    redrawn(page, lambda: page.keyboard.press("ArrowRight"))  # the first event recorded
    assert upcoming.all_inner_texts() == EXPECTED_UPCOMING[:1]
    assert "as recorded by now" not in page.inner_text("#upcoming-window")


@pytest.mark.shared_store
def test_the_page_as_served_has_them_without_its_script(site: str) -> None:
    html = httpx.get(f"{site}/?country=BY&commodity=potash").text
    rows = status_rows(html)
    assert rows["EU/BY/potash"][1:] == ["active", "import_ban", "2021-06-24", str(in_days(30))]
    assert rows["US/BY/potash"][1] == "expired" and 'class="status status-expired"' in html
    for line in EXPECTED_UPCOMING:
        day, rest = line.split(" ", 1)
        assert f'<time datetime="{day}">{day}</time> {rest}</li>' in html
