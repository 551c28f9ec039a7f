"""The page's dates are ISO 8601 (YYYY-MM-DD) whatever the browser's locale, and a date it
cannot use is refused beside its field, saying why, in a real browser (Chromium)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.test_page import redrawn, seeded, statuses
from tests.test_page_screen import box_problems, screen_with_script

pytestmark = pytest.mark.e2e  # a served app in Chromium (each test also marked browser)

DATE_FIELDS = ("#as_of", "#screen-date")


@pytest.fixture
def site(live_server: Callable[..., str], make_services: Callable[..., Any]) -> str:
    return seeded(live_server(), make_services)


@pytest.fixture
def american(browser: Browser, site: str) -> Iterator[Page]:
    """The page in a browser whose locale writes dates month first (12/04/2026)."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site}/?country=BY&commodity=potash&as_of=2026-01-15&date=2026-01-15")
    page.wait_for_selector("#app[data-ready]")
    yield page
    assert errors == []
    context.close()


def test_date_fields_show_iso_dates_in_a_month_first_locale(american: Page) -> None:
    assert american.evaluate("navigator.language") == "en-US"
    # What a field shows is its text as written only when it is a text field: a
    # type="date" field shows the day in the browser's locale, 01/15/2026 here.
    for field in DATE_FIELDS:
        shown = american.eval_on_selector(
            field, "e => ({type: e.type, value: e.value, placeholder: e.placeholder})"
        )
        assert shown == {"type": "text", "value": "2026-01-15", "placeholder": "YYYY-MM-DD"}
    # The slider's days are written into the field as ISO dates too.
    american.fill("#as_of", "2023-06-01")
    american.wait_for_function(
        "() => document.getElementById('status-date').textContent === '2023-06-01'"
    )
    assert american.input_value("#as_of") == "2023-06-01"


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("06/01/2023", '"06/01/2023" is not a date written YYYY-MM-DD, e.g. 2026-01-15'),
        ("2023-02-30", "2023-02-30 is not a day of the calendar"),
    ],
)
def test_a_date_the_page_cannot_use_is_refused_beside_its_field(
    american: Page, site: str, typed: str, says: str
) -> None:
    before = statuses(american)
    american.fill("#as_of", typed)
    american.press("#as_of", "Enter")
    american.wait_for_selector("#as_of_problem:not([hidden])")
    assert american.inner_text("#as_of_problem") == says
    assert american.get_attribute("#as_of", "aria-invalid") == "true"
    assert american.inner_text("#status-date") == "2026-01-15"  # the view stays as it was
    assert statuses(american) == before and "as_of=2026-01-15" in american.url
    # A good date clears the problem and is shown.
    redrawn(american, lambda: american.fill("#as_of", "2023-06-01"))
    assert american.is_hidden("#as_of_problem")
    assert american.get_attribute("#as_of", "aria-invalid") is None
    assert american.inner_text("#status-date") == "2023-06-01"

    # The shipment date is refused in the box with the API's own words for it.
    american.fill("#screen-origin", "BY")
    screen_with_script(american, "3104.20", typed)
    api = httpx.get(f"{site}/v1/screen", params={"hs": "3104.20", "origin": "BY", "date": typed})
    assert api.status_code == 422
    [expected] = [e["message"] for e in api.json()["errors"] if e["field"] == "query.date"]
    assert box_problems(american) == {"date": expected}
    assert american.get_attribute("#screen-date", "aria-invalid") == "true"
