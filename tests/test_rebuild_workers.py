"""The rebuild in worker processes (`projections.rebuild`), which only large logs take:
here forced on a small one, cut into many ranges of streams, so that every path of it
runs — and its read models must equal what the incremental projection wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from api.app.seed import seed
from api.app.service import Service
from api.schemas.queries import StatusQuery, TimelineQuery
from domain.keys import StreamKey
from domain.rules import EventType
from domain.stream import EventDraft
from projections import rebuild

pytestmark = pytest.mark.e2e  # the rebuild in worker processes


def answers(svc: Service, moments: list[str | None]) -> list[Any]:
    found = []
    for moment in moments:
        found.append(svc.timeline(TimelineQuery.of(known_at=moment)).model_dump()["intervals"])
        for day in ("2021-07-01", "2022-04-01", "2025-12-14", "2026-01-15"):
            found.append(
                svc.status(StatusQuery.of(as_of=day, known_at=moment)).model_dump()["results"]
            )
    return found


@pytest.mark.shared_store
def test_a_rebuild_in_workers_equals_the_incremental_projection(
    make_services: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_services()
    seed(svc)
    key = StreamKey("GB", "BY", "potash")
    mistake = EventDraft(EventType.EXPANDED, key, date(2023, 1, 1), frozenset({"price_cap"}))
    wrong = svc.log.record([mistake], recorded_by="t").events[0]
    svc.log.record(
        [EventDraft(EventType.RETRACTED, key, retracts=wrong.event.event_id, note="a mistake")],
        recorded_by="t",
    )
    svc.projector.catch_up()
    moments = [wrong.event.recorded_at.isoformat(), None]
    before, counts = answers(svc, moments), svc.projector.view.counts()

    monkeypatch.setattr(rebuild, "WORKER_THRESHOLD", 0)
    monkeypatch.setattr(rebuild, "EVENTS_PER_RANGE", 7)  # about ten ranges
    used: list[int] = []
    real = rebuild.in_workers

    def counted(*args: Any, **kwargs: Any) -> Any:
        used.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(rebuild, "in_workers", counted)
    report = svc.projector.rebuild(batch_size=5)
    assert used, "the rebuild did not use worker processes"
    assert report.events == svc.log.recorder.max_notification_id()
    assert report.rows == counts
    assert answers(svc, moments) == before
    verified = svc.verify()
    assert verified.projections_ok and verified.log_ok and verified.problems == []


@pytest.mark.shared_store
def test_a_worker_that_fails_leaves_the_read_models_as_they_were(
    make_services: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_services()
    seed(svc)
    svc.projector.catch_up()
    before = answers(svc, [None])
    monkeypatch.setattr(rebuild, "WORKER_THRESHOLD", 0)
    monkeypatch.setattr(rebuild, "EVENTS_PER_RANGE", 7)
    real = rebuild.source_of(svc.log)
    assert real is not None
    nowhere = (
        "postgresql://postgres@127.0.0.1:5432/no_such_database"
        if real.dialect == "postgres"
        else "/no/such/folder/sanctions.db"
    )
    monkeypatch.setattr(rebuild, "source_of", lambda log: replace(real, location=nowhere))
    with pytest.raises(Exception):  # noqa: B017 - whatever the worker raised
        svc.projector.rebuild(batch_size=5)
    assert answers(svc, [None]) == before
