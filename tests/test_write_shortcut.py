"""`POST /v1/events` answered by its shortcut (`api.http.routes.shortcuts.RecordShortcut`) is
answered exactly as the framework's route answers it: every write below is sent to an app
with the shortcut and to one without, on streams that differ only in their country, and
the two answers must match in status, headers and body (ids and times aside)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.service import Service
from api.http.app import create_app
from api.http.routes import shortcuts
from tests.conftest import READER, WRITER

IMPOSED = {
    "type": "imposed",
    "authority": "US",
    "country": "{country}",
    "commodity": "potash",
    "effective_date": "2021-08-09",
    "measures": ["import_ban"],
    "legal_basis": "Executive Order 14038",
    "source": {"url": "https://ofac.treasury.gov/a", "title": "t", "published": "2021-08-09"},
}
LIFTED = {**IMPOSED, "type": "lifted", "effective_date": "2025-12-15"}
LIFTED.pop("measures")
NO_KEY: dict[str, str] = {}
SHORTCUT = "shortcut"
"""The counter of the writes the shortcut answered itself."""

# (name, body, headers, query, whether the shortcut answers it)
WRITES: list[tuple[str, dict[str, Any] | str, dict[str, str], str, bool]] = [
    ("recorded", IMPOSED, WRITER, "", True),
    ("a broken rule: imposed twice", IMPOSED, WRITER, "", True),
    ("lifted", LIFTED, WRITER, "", True),
    (
        "keyed",
        {**IMPOSED, "commodity": "crude-oil"},
        {**WRITER, "Idempotency-Key": "k1-{country}"},
        "",
        True,
    ),
    (
        "replayed",
        {**IMPOSED, "commodity": "crude-oil"},
        {**WRITER, "Idempotency-Key": "k1-{country}"},
        "",
        True,
    ),
    (
        "key reused",
        {**IMPOSED, "commodity": "coal"},
        {**WRITER, "Idempotency-Key": "k1-{country}"},
        "",
        True,
    ),
    (
        "stale expected_version",
        {**IMPOSED, "commodity": "copper", "expected_version": 3},
        WRITER,
        "",
        True,
    ),
    (
        "expires before the date",
        {**IMPOSED, "commodity": "nickel", "expires": "2020-01-01"},
        WRITER,
        "",
        True,
    ),
    ("source missing", {k: v for k, v in IMPOSED.items() if k != "source"}, WRITER, "", True),
    ("type missing", {k: v for k, v in IMPOSED.items() if k != "type"}, WRITER, "", False),
    ("a field unknown", {**IMPOSED, "colour": "red"}, WRITER, "", False),
    ("not an object", "[1, 2]", WRITER, "", False),
    ("reader's token", {**IMPOSED, "commodity": "aluminium"}, READER, "", False),
    (
        "unknown token",
        {**IMPOSED, "commodity": "aluminium"},
        {"Authorization": "Bearer nope"},
        "",
        False,
    ),
    ("no token", {**IMPOSED, "commodity": "aluminium"}, NO_KEY, "", False),
    (
        "basic auth",
        {**IMPOSED, "commodity": "aluminium"},
        {"Authorization": "Basic d3JpdGVy"},
        "",
        False,
    ),
    ("a query", {**IMPOSED, "commodity": "aluminium"}, WRITER, "dry_run=1", False),
    (
        "a key too long",
        {**IMPOSED, "commodity": "aluminium"},
        {**WRITER, "Idempotency-Key": "k" * 256},
        "",
        False,
    ),
]


def post(client: TestClient, country: str, write: tuple[Any, ...]) -> Any:
    _, body, headers, query, _ = write
    text = (body if isinstance(body, str) else json.dumps(body)).replace("{country}", country)
    return client.post(
        "/v1/events" + (f"?{query}" if query else ""),
        content=text,
        headers={
            "Content-Type": "application/json",
            **{name: value.replace("{country}", country) for name, value in headers.items()},
        },
    )


def comparable(answer: Any, country: str) -> tuple[int, list[tuple[str, str]], Any]:
    """The answer with its country written as XX, and ids and times left out."""
    body = json.loads(answer.text.replace(country, "XX"))
    if isinstance(body, dict):
        for varying in ("event_id", "recorded_at", "position", "hash", "prev_hash"):
            body.pop(varying, None)
    headers = [(k, v) for k, v in answer.headers.items() if k != "date"]
    if "location" in answer.headers:
        assert answer.headers["location"] == f"/v1/events/{answer.json()['event_id']}"
        headers = [(k, "/v1/events/{event_id}" if k == "location" else v) for k, v in headers]
    return answer.status_code, headers, list(body.items()) if isinstance(body, dict) else body


def test_the_shortcut_answers_as_the_route_does(
    services: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: Counter[str] = Counter()
    real = shortcuts.recorded

    def counted(*args: Any) -> Any:
        answered[SHORTCUT] += 1
        return real(*args)

    monkeypatch.setattr(shortcuts, "recorded", counted)
    framework = TestClient(create_app(services, shortcuts=False))
    with TestClient(create_app(services)) as shortcut:
        for write in WRITES:
            before = answered[SHORTCUT]
            through_framework = post(framework, "RU", write)
            assert answered[SHORTCUT] == before, write[0]
            through_shortcut = post(shortcut, "BY", write)
            assert answered[SHORTCUT] == before + write[4], f"{write[0]}: shortcut taken?"
            by_shortcut = comparable(through_shortcut, "BY")
            assert by_shortcut == comparable(through_framework, "RU"), write[0]
    assert answered[SHORTCUT] == sum(write[4] for write in WRITES)


def test_the_first_authorization_header_counts_as_for_the_route(services: Service) -> None:
    # A reader's token first and a writer's second: the route reads the first (403), and
    # so must the shortcut; the writer's first and a reader's second: recorded by both.
    framework = TestClient(create_app(services, shortcuts=False))
    with TestClient(create_app(services)) as shortcut:
        for country, client in (("RU", framework), ("BY", shortcut)):
            body = json.dumps(IMPOSED).replace("{country}", country)
            headers = [("Content-Type", "application/json")]
            refused = client.post(
                "/v1/events", content=body, headers=[*headers, *READER.items(), *WRITER.items()]
            )
            assert refused.status_code == 403, (country, refused.text)
            accepted = client.post(
                "/v1/events", content=body, headers=[*headers, *WRITER.items(), *READER.items()]
            )
            assert accepted.status_code == 201, (country, accepted.text)
