"""The screening box's "Download receipt" in a real browser, with its script, without one,
and on a server whose reads need a token: the file saved is a receipt that
`sanctions audit receipt` accepts, of the very answer `GET /v1/screen` gives."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.test_page import give_token, open_page, seeded
from tests.test_page_screen import no_script, screen_with_script, screen_without_script, site
from tests.test_receipts import audit

pytestmark = pytest.mark.e2e  # a served app in Chromium (each test also marked browser)

__all__ = ["no_script", "site"]  # fixtures, shared with the box's own tests


def downloaded(page: Page, tmp_path: Path) -> Path:
    """Click "Download receipt" and keep the file the browser saves."""
    with page.expect_download() as download:
        page.click("#screen-receipt")
    file = tmp_path / download.value.suggested_filename
    download.value.save_as(file)
    return file


def check(file: Path, base: str, expected: dict[str, Any]) -> None:
    """The file is a receipt that holds, of the expected answer."""
    key = httpx.get(f"{base}/v1/audit/key", headers={"Authorization": "Bearer reader-token"})
    code, said = audit(file, "--key", key.text.strip())
    assert code == 0, said
    statement = json.loads(base64.b64decode(json.loads(file.read_text())["payload"]))
    assert statement["predicate"]["answer"] == expected


def test_the_box_downloads_a_receipt_of_its_answer(
    browser: Browser, site: str, tmp_path: Path
) -> None:
    page = open_page(browser, f"{site}/?country=BY&commodity=potash")
    assert page.is_hidden("#screen-receipt"), "no receipt before a screen"
    screen_with_script(page, "3104.20", "2026-01-15")
    file = downloaded(page, tmp_path)
    assert file.name == "screening-receipt.json"
    params = {"hs": "3104.20", "origin": "BY", "date": "2026-01-15"}
    check(file, site, httpx.get(f"{site}/v1/screen", params=params).json())


def test_without_javascript_the_link_downloads_the_receipt(
    no_script: BrowserContext, site: str, tmp_path: Path
) -> None:
    page = no_script.new_page()
    page.goto(f"{site}/?country=BY&commodity=potash")
    page.fill("#screen-origin", "BY")
    page.fill("#screen-date", "2024-06-01")
    screen_without_script(page, "3104")
    file = downloaded(page, tmp_path)
    params = {"hs": "3104", "origin": "BY", "date": "2024-06-01"}
    check(file, site, httpx.get(f"{site}/v1/screen", params=params).json())


def test_with_reads_behind_a_token_the_receipt_is_fetched_with_it(
    browser: Browser,
    live_server: Callable[..., str],
    make_services: Callable[..., Any],
    tmp_path: Path,
) -> None:
    base = seeded(live_server(reads_require_token=True), make_services)
    page = browser.new_page(accept_downloads=True)
    page.goto(f"{base}/?country=BY&commodity=potash&hs=3104.20&origin=BY&date=2026-01-15")
    page.wait_for_selector("#screen-problem:not([hidden])")  # the screen refused, no token
    give_token(page, "reader-token")
    page.wait_for_selector("#screen-table tbody tr[data-authority]")
    file = downloaded(page, tmp_path)
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer reader-token"}) as client:
        params = {"hs": "3104.20", "origin": "BY", "date": "2026-01-15"}
        check(file, base, client.get("/v1/screen", params=params).json())
