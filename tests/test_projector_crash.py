"""A projector killed with SIGKILL at random points resumes exactly where it stopped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date as DAY
from pathlib import Path

import pycountry
import pytest

from api.app.service import Service
from domain.keys import StreamKey
from domain.rules import EventType
from domain.stream import EventDraft, SanctionsStream
from projections.tables import TRACKED_APPLICATION
from tests.reference import replay

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # SIGKILLed projector processes, many times

ROOT = Path(__file__).resolve().parents[1]


def record_history(svc: Service, streams: int) -> int:
    """Per stream: an imposition, a late expansion, a lift, a wrong event and its retraction."""
    countries = sorted(c.alpha_2 for c in pycountry.countries)[:streams]

    def record(draft: EventDraft) -> SanctionsStream.Event:
        return svc.log.record([draft], recorded_by="crash-test").events[0].event

    total = 0
    for country in countries:
        key = StreamKey("US", country, "potash")
        record(EventDraft(EventType.IMPOSED, key, DAY(2021, 8, 9), frozenset({"import_ban"})))
        record(EventDraft(EventType.LIFTED, key, DAY(2025, 12, 13)))
        record(EventDraft(EventType.EXPANDED, key, DAY(2022, 4, 1), frozenset({"asset_freeze"})))
        wrong = record(EventDraft(EventType.EASED, key, DAY(2023, 1, 1), frozenset({"import_ban"})))
        record(EventDraft(EventType.RETRACTED, key, retracts=wrong.event_id, note="mistake"))
        total += 5
    return total


@pytest.mark.shared_store
def test_projector_killed_many_times_resumes_exactly(services: Service) -> None:
    total = record_history(services, streams=120)
    view = services.projector.view
    env = {
        **os.environ,
        "SANCTIONS_DATABASE_URL": services.log.database_url,
        "SANCTIONS_API_TOKENS": "x:reader:y",
    }
    rng = random.Random(20251213)
    kills_mid_way = 0
    for _ in range(12):
        start = view.position(TRACKED_APPLICATION)
        if start >= total:
            break
        target = start + rng.randint(3, 40)
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "project", "--batch", "3", "--poll", "0.05"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while view.position(TRACKED_APPLICATION) < min(target, total):
            assert process.poll() is None, "the projector died by itself"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        if view.position(TRACKED_APPLICATION) < total:
            kills_mid_way += 1
    assert kills_mid_way >= 5
    services.projector.catch_up()
    assert view.position(TRACKED_APPLICATION) == total
    stored = sorted(
        view.all_interval_rows(), key=lambda r: (r.stream, r.tx_from, r.interval.valid_from)
    )
    fresh = replay(services.log)
    assert stored == fresh.rows()
    assert view.counts()["current_status"] == len(fresh.records)
    assert view.counts()["projected_entries"] == sum(len(r.entries) for r in fresh.records.values())
