"""The diff between any two bitemporal points equals a comparison of two folds of the log,
for random histories (late events, retractions, re-impositions) on both stores."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app.service import Service
from api.schemas.queries import DiffQuery
from domain.hashing import format_timestamp
from domain.stream import SanctionsStream
from tests.reference import ended_by
from tests.test_projection_properties import (
    KEYS,
    PROBE_DAYS,
    Operation,
    fresh_services,
    known_entries,
    moments_of,
    operation,
    record_history,
    reference_state,
)

pytestmark = pytest.mark.integration  # property runs on a real store, in process

Point = tuple[date, datetime]


def counted(events: list[SanctionsStream.Event], stream: str, point: Point) -> set[str]:
    """The ids of the stream's events that shape its state at the point: those recorded by
    then and effective by then that no retraction recorded by then took away, and the
    retractions recorded by then of events effective by then, and the events whose term
    had ended by then."""
    day, moment = point
    known = [e for e in events if e.stream == stream and e.recorded_at <= moment]
    effective = {
        str(e.event_id): e.effective_date
        for e in known
        if isinstance(e, SanctionsStream.TakesEffect)
    }
    taken_away = {str(e.retracts) for e in known if isinstance(e, SanctionsStream.Retracted)}
    ids = {i for i, d in effective.items() if d <= day and i not in taken_away}
    ids |= {
        str(e.event_id)
        for e in known
        if isinstance(e, SanctionsStream.Retracted)
        and effective.get(str(e.retracts), date.max) <= day
    }
    key = next(key for key in KEYS if key.name == stream)
    return ids | {f"ended:{i}" for i in ended_by(known_entries(events, key, moment), day)}


def expected_diff(
    events: list[SanctionsStream.Event], before: Point, after: Point
) -> dict[str, tuple[tuple[object, ...], tuple[object, ...], list[str]]]:
    order = [str(e.event_id) for e in events]
    changes = {}
    for key in KEYS:
        status, measures, since, _, expires = reference_state(events, key, *before)
        then = (status, measures, since, expires)
        status, measures, since, _, expires = reference_state(events, key, *after)
        now = (status, measures, since, expires)
        if then[:2] != now[:2]:
            ids = counted(events, key.name, before) ^ counted(events, key.name, after)
            named = {i.removeprefix("ended:") for i in ids}
            changes[key.name] = (then, now, sorted(named, key=order.index))
    return changes


def answered_diff(
    svc: Service, before: Point, after: Point
) -> dict[str, tuple[tuple[object, ...], tuple[object, ...], list[str]]]:
    answer = svc.diff(
        DiffQuery.of(
            country="BY",
            commodity="potash",
            from_as_of=before[0].isoformat(),
            from_known_at=format_timestamp(before[1]),
            to_as_of=after[0].isoformat(),
            to_known_at=format_timestamp(after[1]),
        )
    )
    return {
        c.stream: (
            (c.before.status, c.before.measures, c.before.since, c.before.expires),
            (c.after.status, c.after.measures, c.after.since, c.after.expires),
            c.event_ids,
        )
        for c in answer.changes
    }


def check_diff_equals_two_folds(
    backend: str, ops: list[Operation], pairs: list[tuple[date, int, date, int]]
) -> None:
    with fresh_services(backend) as svc:
        events = record_history(svc, ops)
        moments = moments_of(events)
        for day_1, moment_1, day_2, moment_2 in pairs:
            before = (day_1, moments[moment_1 % len(moments)])
            after = (day_2, moments[moment_2 % len(moments)])
            assert answered_diff(svc, before, after) == expected_diff(events, before, after), (
                before,
                after,
            )


pairs = st.lists(
    st.tuples(
        st.sampled_from(PROBE_DAYS),
        st.integers(0, 200),
        st.sampled_from(PROBE_DAYS),
        st.integers(0, 200),
    ),
    min_size=5,
    max_size=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25), pairs=pairs)
def test_diff_equals_two_folds_of_the_log_on_sqlite(
    ops: list[Operation], pairs: list[tuple[date, int, date, int]]
) -> None:
    check_diff_equals_two_folds("sqlite", ops, pairs)


@pytest.mark.postgres
@pytest.mark.slow  # 15 histories, each in a schema of its own
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25), pairs=pairs)
def test_diff_equals_two_folds_of_the_log_on_postgres(
    ops: list[Operation], pairs: list[tuple[date, int, date, int]]
) -> None:
    check_diff_equals_two_folds("postgres", ops, pairs)
