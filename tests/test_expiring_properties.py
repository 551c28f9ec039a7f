"""What `GET /v1/expiring` answers equals the tests' own reference, for random histories with
late events, terms, renewals (late ones too) and retractions, for random windows and moments."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.app.service import Service
from api.schemas.queries import ExpiringQuery
from domain.hashing import format_timestamp
from domain.stream import SanctionsStream
from tests.reference import reference_expiries
from tests.test_projection_properties import (
    DAYS,
    KEYS,
    MEASURES,
    Operation,
    fresh_services,
    known_entries,
    moments_of,
    record_history,
)

pytestmark = pytest.mark.integration  # property runs on a real store, in process

Listed = tuple[str, date, str, str, list[str]]
"""stream, date, event_id, ends, measures"""
# As the projection's property test draws them, with more terms and renewals.
operation = st.tuples(
    st.sampled_from(["change", "change", "change", "lift", "retract", "renew", "renew", "renew"]),
    st.sampled_from(range(len(KEYS))),
    st.sampled_from(DAYS),
    st.frozensets(st.sampled_from(MEASURES[:4]), min_size=1, max_size=3),
    st.integers(0, 30),
    st.booleans(),
    st.one_of(st.none(), st.sampled_from([1, 45, 90, 130, 200, 400, 700])),
)
Window = tuple[date, int, int]  # start, length in days, which moment to read as known at
STARTS = sorted({d + timedelta(days=shift) for d in DAYS for shift in (-1, 0, 45, 400)})
windows = st.lists(
    st.tuples(
        st.sampled_from(STARTS), st.sampled_from([0, 1, 30, 90, 365, 3000]), st.integers(0, 200)
    ),
    min_size=5,
    max_size=15,
)


def reference_answer(
    events: list[SanctionsStream.Event], start: date, end: date, known_at: datetime
) -> list[Listed]:
    """Each stream's ends in the window as the reference sweeps them from the log as it stood
    at `known_at`, merged by date and then stream."""
    listed = [
        (key.name, day, event_id, ends, measures)
        for key in KEYS
        for day, event_id, ends, measures in reference_expiries(
            known_entries(events, key, known_at), start, end
        )
    ]
    return sorted(listed, key=lambda item: (item[1], item[0]))


def served_answer(svc: Service, start: date, end: date, known_at: datetime) -> list[Listed]:
    asked = ExpiringQuery.of(
        country="BY",
        commodity="potash",
        from_=start.isoformat(),
        to=end.isoformat(),
        known_at=format_timestamp(known_at),
    )
    answer = svc.expiring(asked)
    assert (answer.from_, answer.to) == (start, end)
    assert answer.known_at == format_timestamp(known_at)
    return [(e.stream, e.date, e.event_id, e.ends, e.measures) for e in answer.expiries]


def check_expiring_equals_the_reference(
    backend: str, ops: list[Operation], asked: list[Window]
) -> None:
    with fresh_services(backend) as svc:
        events = record_history(svc, ops)
        moments = moments_of(events)
        far = (date(2000, 1, 1), date(2100, 1, 1))
        for moment in moments[-1:] + moments[:: max(1, len(moments) // 4)]:
            expected = reference_answer(events, *far, moment)
            assert served_answer(svc, *far, moment) == expected, moment
        listed = reference_answer(events, *far, moments[-1])
        event(f"ends listed as known now: {min(len(listed), 3)}{'+' if len(listed) > 2 else ''}")
        event(f"kinds listed: {sorted({item[3] for item in listed})}")
        for start, length, moment_index in asked:
            known_at = moments[moment_index % len(moments)]
            end = start + timedelta(days=length)
            expected = reference_answer(events, start, end, known_at)
            assert served_answer(svc, start, end, known_at) == expected, (start, end, known_at)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=6, max_size=30), asked=windows)
def test_expiring_equals_the_reference_on_sqlite(ops: list[Operation], asked: list[Window]) -> None:
    check_expiring_equals_the_reference("sqlite", ops, asked)


@pytest.mark.postgres
@pytest.mark.slow  # 20 histories, each in a schema of its own
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=6, max_size=30), asked=windows)
def test_expiring_equals_the_reference_on_postgres(
    ops: list[Operation], asked: list[Window]
) -> None:
    check_expiring_equals_the_reference("postgres", ops, asked)
