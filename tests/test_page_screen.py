"""The page's shipment screen (issue 12) in a real browser, with its script and without one.

Every expectation is what `GET /v1/screen` answers for the same question, fetched here
independently of the page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page

from tests.test_page import ARTIFACTS, blocked_by_policy, give_token, open_page, seeded
from tests.test_page_http import problems_of

pytestmark = pytest.mark.e2e  # a served app in Chromium (each test also marked browser)

Rows = dict[str, list[str]]


@pytest.fixture
def site(live_server: Callable[..., str], make_services: Callable[..., Any]) -> str:
    return seeded(live_server(), make_services)


@pytest.fixture
def no_script(browser: Browser) -> Iterator[BrowserContext]:
    """A browser tab with JavaScript turned off: the page as the server renders it."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 800}
    )
    yield context
    context.close()


def screened_by_api(site: str, **params: str) -> httpx.Response:
    return httpx.get(f"{site}/v1/screen", params=params, timeout=10)


def expected_rows(answer: dict[str, Any]) -> Rows:
    return {
        row["authority"]: [row["status"], ", ".join(row["measures"]) or "—", row["since"] or "—"]
        for row in answer["results"]
    }


def box_rows(page: Page) -> Rows:
    rows = page.locator("#screen-table tbody tr[data-authority]")
    return {
        rows.nth(i).get_attribute("data-authority") or "": [
            cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()
        ]
        for i in range(rows.count())
    }


def box_problems(page: Page) -> dict[str, str]:
    """The box's list of problems: field → message, as shown."""
    assert page.is_visible("#screen-problem"), "the problem is shown"
    items = page.locator("#screen-problems li")
    found = {}
    for i in range(items.count()):
        field = items.nth(i).get_attribute("data-field") or ""
        found[field] = items.nth(i).inner_text().split(": ", 1)[1]
    return found


def screen_with_script(page: Page, hs: str, when: str = "") -> None:
    """Type a code (and a date) into the box, submit it, and wait for the box's answer."""
    before = page.get_attribute("#screen", "data-answered") or ""
    page.fill("#screen-hs", hs)
    page.fill("#screen-date", when)
    page.click("#screen-submit")
    page.wait_for_function(
        "before => (document.getElementById('screen').dataset.answered || '') !== before",
        arg=before,
    )


def screen_without_script(page: Page, hs: str) -> None:
    page.fill("#screen-hs", hs)
    with page.expect_navigation():
        page.click("#screen-submit")


def problem_messages(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    return {e["field"].removeprefix("query."): e["message"] for e in answer.json()["errors"]}


def test_the_box_maps_3104_20_to_potash_and_shows_each_authority(
    browser: Browser, site: str, database_url: str
) -> None:
    page = open_page(browser, f"{site}/?country=BY&commodity=potash")
    assert page.input_value("#screen-origin") == "BY", "prefilled from the country filter"
    for field in ("screen-hs", "screen-origin", "screen-date"):
        assert page.locator(f"label[for={field}]").count() == 1

    screen_with_script(page, "3104.20")
    answer = screened_by_api(site, hs="3104.20", origin="BY")
    assert answer.status_code == 200
    expected = answer.json()
    assert expected["commodity"] == "potash"
    assert page.get_attribute("#screen-commodity strong[data-commodity]", "data-commodity") == (
        "potash"
    )
    assert "potassic" in page.inner_text("#screen-commodity"), "the commodity's name"
    assert box_rows(page) == expected_rows(expected)
    assert {"US", "EU"} <= box_rows(page).keys()
    assert page.is_hidden("#screen-problem")
    assert re.search(r"[?&]hs=3104\.20(&|$)", page.url) and "origin=BY" in page.url
    ARTIFACTS.mkdir(exist_ok=True)
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    page.locator("#screen").screenshot(path=ARTIFACTS / f"screen-laptop-{backend}.png")

    # A date before the first US measure: the authorities with later events only say none.
    screen_with_script(page, "3104.20", "2021-01-01")
    early = screened_by_api(site, hs="3104.20", origin="BY", date="2021-01-01").json()
    assert box_rows(page) == expected_rows(early)
    assert box_rows(page)["US"] == ["none", "—", "—"]
    assert "date=2021-01-01" in page.url

    # The address shares the screen: opened again, the server has it in the box already.
    again = open_page(browser, page.url)
    assert box_rows(again) == expected_rows(early)
    assert again.input_value("#screen-hs") == "3104.20"
    phone = open_page(browser, page.url, 390, 844)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scroll"
    phone.locator("#screen").screenshot(path=ARTIFACTS / f"screen-phone-{backend}.png")

    # The origin follows the country filter (until someone types another).
    page.select_option("#country", "RU")
    assert page.input_value("#screen-origin") == "RU"
    page.fill("#screen-origin", "IR")
    page.select_option("#country", "BY")
    assert page.input_value("#screen-origin") == "IR"


def test_the_box_works_without_javascript(no_script: BrowserContext, site: str) -> None:
    page = no_script.new_page()
    refused = blocked_by_policy(page)
    page.goto(f"{site}/?country=BY&commodity=potash&as_of=2023-06-01")
    assert page.input_value("#screen-origin") == "BY"
    screen_without_script(page, "3104.20")
    expected = screened_by_api(site, hs="3104.20", origin="BY").json()
    assert box_rows(page) == expected_rows(expected)
    assert page.get_attribute("#screen-commodity strong[data-commodity]", "data-commodity") == (
        "potash"
    )
    # The timeline's own view is kept around the answer.
    assert "country=BY" in page.url and "commodity=potash" in page.url
    assert "as_of=2023-06-01" in page.url
    assert page.locator('#status-table tr[data-stream="US/BY/potash"] td').first.inner_text() == (
        "active"
    )
    assert refused == []


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
@pytest.mark.parametrize(
    ("hs", "says"),
    [
        ("31x4", "malformed"),  # not digits
        ("3", "malformed"),  # too short
        ("0101.21", "uncovered"),  # live horses: no commodity in the catalogue covers it
    ],
)
def test_a_code_the_service_refuses_shows_its_problem_in_the_box(
    browser: Browser, no_script: BrowserContext, site: str, script: bool, hs: str, says: str
) -> None:
    problems = problem_messages(screened_by_api(site, hs=hs, origin="BY"))
    assert "hs" in problems, f"the API refuses {hs!r} ({says}) naming hs"
    if script:
        page = open_page(browser, f"{site}/?country=BY&commodity=potash")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        screen_with_script(page, hs)
        assert errors == []
    else:
        page = no_script.new_page()
        page.goto(f"{site}/?country=BY&commodity=potash")
        screen_without_script(page, hs)
    assert box_problems(page) == problems
    assert page.get_attribute("#screen-hs", "aria-invalid") == "true"
    assert page.get_attribute("#screen-problem", "role") == "alert"
    shown = page.inner_text("#screen")
    assert "{" not in shown and '"errors"' not in shown, "no raw JSON"
    assert page.is_hidden("#screen-result")
    # The rest of the page is still there and still works.
    assert page.locator('#status-table tr[data-stream="US/BY/potash"]').count() == 1
    if script:  # and a good code afterwards replaces the problem with the answer
        screen_with_script(page, "3104")
        assert page.is_hidden("#screen-problem") and page.is_visible("#screen-result")
        assert page.get_attribute("#screen-hs", "aria-invalid") is None
        assert box_rows(page) == expected_rows(screened_by_api(site, hs="3104", origin="BY").json())


def test_the_screened_page_keeps_its_security_policy(site: str) -> None:
    answer = httpx.get(f"{site}/", params={"country": "BY", "hs": "3104.20", "origin": "BY"})
    assert answer.status_code == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert re.search(r"<script(?![^>]*\ssrc=)[^>]*>", answer.text) is None
    assert re.search(r"\s(style|on[a-z]+)=", answer.text) is None
    refused = httpx.get(f"{site}/", params={"country": "BY", "hs": "31x4", "origin": "BY"})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    assert 'id="screen-problems"' in refused.text and 'id="status-table"' in refused.text


def test_a_server_that_needs_tokens_screens_once_a_token_is_given(
    browser: Browser, live_server: Callable[..., str], make_services: Callable[..., Any]
) -> None:
    base = seeded(live_server(reads_require_token=True), make_services)
    page = browser.new_page()
    page.goto(f"{base}/?country=BY&commodity=potash&hs=3104.20&origin=BY")
    assert box_rows(page) == {}, "nothing screened on the server without a token"
    give_token(page, "reader-token")
    page.wait_for_selector("#screen-table tbody tr[data-authority]")
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer reader-token"}) as client:
        expected = client.get("/v1/screen", params={"hs": "3104.20", "origin": "BY"}).json()
    assert box_rows(page) == expected_rows(expected)
    assert page.locator("#screen-token").count() == 0


def test_a_screen_script_that_arrives_late_still_screens_the_question_in_the_address(
    browser: Browser, live_server: Callable[..., str], make_services: Callable[..., Any]
) -> None:
    # The page's first redraw rewrites its address. When that comes before screen.js has
    # run (here: the reads refused for want of a token, the script held back), the
    # question in the address must survive it, and be screened once a token is given.
    base = seeded(live_server(reads_require_token=True), make_services)
    page = browser.new_page()
    script = httpx.get(f"{base}/static/screen.js").text
    late = f"setTimeout(() => {{ {script} }}, 700);"
    page.route(
        "**/static/screen.js",
        lambda route: route.fulfill(body=late, content_type="text/javascript"),
    )
    page.goto(f"{base}/?country=BY&commodity=potash&hs=3104.20&origin=BY&date=2026-01-15")
    page.wait_for_selector("#screen-problem:not([hidden])")  # the screen ran, and was refused
    assert "hs=3104.20" in page.url and "origin=BY" in page.url and "date=2026-01-15" in page.url
    give_token(page, "reader-token")
    page.wait_for_selector("#screen-table tbody tr[data-authority]")
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer reader-token"}) as client:
        params = {"hs": "3104.20", "origin": "BY", "date": "2026-01-15"}
        expected = client.get("/v1/screen", params=params).json()
    assert box_rows(page) == expected_rows(expected)


def test_a_wrong_address_names_the_screens_problems_with_the_others(client: TestClient) -> None:
    answer = client.get("/?asof=2023-06-01&hs=31x4&origin=BY")
    assert answer.status_code == 422
    found = problems_of(answer.text)
    assert found.keys() == {"asof", "hs"}
    assert "not an HS code" in found["hs"]
    # A screen without its origin (the box's field emptied) says what is missing.
    missing = client.get("/?country=BY&hs=3104.20&origin=")
    assert missing.status_code == 422 and 'id="status-table"' in missing.text
    assert re.search(r'<li data-field="origin"><code>origin</code>: required', missing.text)
