"""The timeline page over plain HTTP (no browser): what a crawler, `curl`, or a reader
without JavaScript gets, and how the page answers a wrong address."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from api.app.seed import seed
from api.app.service import Service
from api.http.app import create_app
from api.schemas.queries import StatusQuery

pytestmark = pytest.mark.integration  # the app in process (TestClient) on a real store


class StatusRows(HTMLParser):
    """The rows of `#status-table`'s body: data-stream → the text of each cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.in_body = False
        self.stream: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.stream = found.get("data-stream")
            if self.stream:
                self.rows[self.stream] = []
        elif tag in ("th", "td") and self.stream:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.in_body = False
        elif tag in ("th", "td") and self.stream and self.cell is not None:
            self.rows[self.stream].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def status_rows(html: str) -> dict[str, list[str]]:
    parser = StatusRows()
    parser.feed(html)
    return parser.rows


def problems_of(page: str) -> dict[str, str]:
    """The page's list of problems: field → message (as read, entities decoded)."""
    items = re.findall(r'<li data-field="([^"]*)"><code>[^<]*</code>: ([^<]*)</li>', page)
    return {html.unescape(field): html.unescape(message) for field, message in items}


def test_page_renders_the_status_table_without_javascript(
    client: TestClient, services: Service
) -> None:
    seed(services)
    answer = client.get("/?country=BY&commodity=potash&as_of=2023-06-01")
    assert answer.status_code == 200
    rows = status_rows(answer.text)
    expected = services.status(
        StatusQuery.of(country="BY", commodity="potash", as_of="2023-06-01")
    ).results
    assert {"US/BY/potash", "EU/BY/potash"} <= rows.keys()
    for row in expected:
        assert rows[row.stream] == [
            row.stream,
            row.status,
            ", ".join(row.measures) or "—",
            row.since.isoformat() if row.since else "—",
            row.expires.isoformat() if row.expires else "—",
        ]
    assert rows["US/BY/potash"][1] == rows["EU/BY/potash"][1] == "active"
    assert "asset_freeze" in rows["US/BY/potash"][2]
    assert "import_ban" in rows["EU/BY/potash"][2]
    # After the US lift, the same address for a later date shows it.
    later = status_rows(client.get("/?country=BY&commodity=potash&as_of=2026-01-15").text)
    assert (later["US/BY/potash"][1], later["EU/BY/potash"][1]) == ("lifted", "active")


def test_page_without_events_says_so(client: TestClient) -> None:
    answer = client.get("/?country=BY&commodity=potash")
    assert answer.status_code == 200
    assert status_rows(answer.text) == {}
    assert "Nothing in force or recorded for this selection" in answer.text


@pytest.mark.parametrize(
    ("address", "field", "says"),
    [
        ("/?asof=2023-06-01", "asof", "did you mean 'as_of'?"),
        ("/?country=BY&Commodity=potash", "Commodity", "did you mean 'commodity'?"),
        ("/?country=XX", "country", "not an ISO 3166-1 alpha-2 country code"),
        ("/?commodity=potahs", "commodity", "potash"),
        ("/?as_of=2025-02-30", "as_of", "February 2025 has 28 days"),
        ("/?known_at=yesterday", "known_at", "not an RFC 3339 timestamp"),
        ("/?known_at=0001-01-01T00:00:00%2B14:00", "known_at", "outside years 1 to 9999"),
        ("/?known_at=9999-12-31T23:59:59-14:00", "known_at", "outside years 1 to 9999"),
    ],
)
def test_page_shows_the_problem_instead_of_a_default_view(
    client: TestClient, address: str, field: str, says: str
) -> None:
    answer = client.get(address)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert says in problems_of(answer.text)[field]
    assert 'role="alert"' in answer.text
    # No data for a view nobody asked for: no status table, no script fetching one.
    assert 'id="status-table"' not in answer.text
    assert "timeline.js" not in answer.text
    assert "default view instead" not in answer.text


def test_page_names_every_problem_at_once(client: TestClient) -> None:
    answer = client.get("/?asof=2023-06-01&country=XX&as_of=2023-13-01")
    assert answer.status_code == 422
    assert problems_of(answer.text).keys() == {"asof", "country", "as_of"}


def test_page_never_builds_urls_from_the_host_header(client: TestClient) -> None:
    for address in ("/?country=BY", "/?asof=2023-06-01"):
        answer = client.get(address, headers={"Host": "evil.example"})
        assert "evil.example" not in answer.text
        assert re.search(r'(src|href)="https?://', answer.text) is None
        assert 'href="/static/style.css"' in answer.text
    assert 'src="/static/timeline.js"' in client.get("/", headers={"Host": "evil.example"}).text


def test_page_holds_back_data_when_reads_need_a_token(
    make_services: Callable[..., Service], services: Service
) -> None:
    seed(services)
    guarded = make_services(reads_require_token=True)
    with TestClient(create_app(guarded)) as guarded_client:
        answer = guarded_client.get("/?country=BY&commodity=potash&as_of=2023-06-01")
    assert answer.status_code == 200
    assert status_rows(answer.text) == {}
    assert "need a reader token" in answer.text
