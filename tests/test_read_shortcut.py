"""The questions answered by a shortcut (`api.http.routes.shortcuts.AskShortcut`: status,
timeline, diff, screen, expiring) are answered exactly as the framework's routes answer
them: every read below, on the bundled timeline, is asked of an app with the shortcuts and
of one without, and the two answers must match in status, headers and body (the moment
`known_at` settles at aside), with reads open and with reads behind a token."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.seed import seed
from api.app.service import Service
from api.http.app import create_app
from api.http.routes import shortcuts
from tests.conftest import READER, WRITER

# (path and query, whether the shortcut answers it)
READS: list[tuple[str, bool]] = [
    ("/v1/status", True),
    ("/v1/status?country=BY", True),
    ("/v1/status?country=BY&commodity=potash&as_of=2024-01-01", True),
    ("/v1/status?country=BY&known_at=2026-01-01T00:00:00Z", True),
    ("/v1/status?authority=US&country=BY&as_of=2025-12-16", True),
    ("/v1/status?country=XX", False),
    ("/v1/status?country=BY&as_of=", False),  # blank: the route's default
    ("/v1/status?known_at=2026-01-01", False),  # a bare date: the route adds a hint
    ("/v1/status?as_of=2024-13-01", False),
    ("/v1/status?country=BY&country=RU", False),
    ("/v1/status?asof=2024-01-01", False),
    ("/v1/timeline?country=BY&commodity=potash", True),
    ("/v1/timeline?country=VE&known_at=2024-06-01T00:00:00Z", True),
    ("/v1/status/diff?from_as_of=2021-01-01&country=BY", True),
    ("/v1/status/diff?from_as_of=2025-12-01&to_as_of=2025-12-31&authority=US", True),
    ("/v1/screen?hs=310420&origin=BY", True),
    ("/v1/screen?hs=3104&origin=BY&date=2022-06-01", True),
    ("/v1/screen?hs=999999&origin=BY", False),
    ("/v1/screen?origin=BY", False),
    ("/v1/expiring?from=2026-01-01&to=2027-06-01&country=BY", True),
    ("/v1/expiring?from=2027-01-01&to=2026-01-01", True),
    ("/v1/expiring", True),
    ("/v1/events?limit=2", False),  # not a question of the shortcut's
]
NOW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def comparable(answer: Any) -> tuple[int, list[tuple[str, str]], str]:
    headers = [(k, v) for k, v in answer.headers.items() if k not in ("date", "content-length")]
    assert int(answer.headers["content-length"]) == len(answer.content)
    return answer.status_code, headers, NOW.sub("<moment>", answer.text)


def asked_of_both(
    svc: Service, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], reads: list[Any]
) -> Counter[str]:
    answered: Counter[str] = Counter()
    real: Callable[..., Any] = shortcuts.answered

    def counted(*args: Any) -> Any:
        answered["shortcut"] += 1
        return real(*args)

    monkeypatch.setattr(shortcuts, "answered", counted)
    framework = TestClient(create_app(svc, shortcuts=False))
    with TestClient(create_app(svc)) as shortcut:
        for target, taken in reads:
            before = answered["shortcut"]
            through_framework = framework.get(target, headers=headers)
            assert answered["shortcut"] == before, target
            through_shortcut = shortcut.get(target, headers=headers)
            assert answered["shortcut"] == before + taken, f"{target}: shortcut taken?"
            assert comparable(through_shortcut) == comparable(through_framework), target
    return answered


def test_reads_open(make_services: Callable[..., Service], monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make_services()
    seed(svc)
    answered = asked_of_both(svc, monkeypatch, {}, READS)
    assert answered["shortcut"] == sum(taken for _, taken in READS)


@pytest.mark.parametrize(
    ("headers", "taken"),
    [(READER, True), (WRITER, True), ({"Authorization": "Bearer nope"}, False), ({}, False)],
)
def test_reads_behind_a_token(
    make_services: Callable[..., Service],
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    taken: bool,
) -> None:
    svc = make_services(reads_require_token=True)
    seed(svc)
    reads = [(target, taken and shortcut) for target, shortcut in READS[:6]]
    asked_of_both(svc, monkeypatch, headers, reads)
