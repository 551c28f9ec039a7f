"""The projection equals a fold of the log, for random histories, dates and moments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bootstrap import build_service
from api.service import Service
from api.settings import Settings
from domain.errors import RuleViolation
from domain.keys import EventFilter, StreamKey
from domain.rules import MEASURES, EventType, fold
from domain.stream import EventDraft, SanctionsStream
from tests.conftest import POSTGRES_URL, drop_schema
from tests.reference import logged_events, replay

KEYS = [StreamKey("US", "BY", "potash"), StreamKey("EU", "BY", "potash")]
DAYS = [date(2021, 1, 1) + timedelta(days=90 * n) for n in range(8)]


@contextmanager
def fresh_services(backend: str) -> Iterator[Service]:
    if backend == "sqlite":
        with TemporaryDirectory() as folder:
            svc = build_service(Settings(database_url=f"sqlite:///{Path(folder)}/p.db"))
            try:
                yield svc
            finally:
                svc.close()
        return
    schema = f"h_{uuid.uuid4().hex[:12]}"
    svc = build_service(Settings(database_url=f"{POSTGRES_URL}?schema={schema}"))
    try:
        yield svc
    finally:
        svc.close()
        drop_schema(schema)


operation = st.one_of(
    st.tuples(
        st.sampled_from([EventType.IMPOSED, EventType.EXPANDED, EventType.EASED]),
        st.sampled_from(range(len(KEYS))),
        st.sampled_from(DAYS),
        st.frozensets(st.sampled_from(MEASURES[:4]), min_size=1, max_size=3),
        st.booleans(),
    ),
    st.tuples(
        st.just(EventType.LIFTED),
        st.sampled_from(range(len(KEYS))),
        st.sampled_from(DAYS),
        st.just(frozenset()),
        st.booleans(),
    ),
    st.tuples(
        st.just(EventType.RETRACTED),
        st.sampled_from(range(len(KEYS))),
        st.integers(0, 30),
        st.just(frozenset()),
        st.booleans(),
    ),
)


def reference_state(
    events: list[SanctionsStream.Event], key: StreamKey, as_of: date, known_at: datetime
) -> tuple[str, list[str], date | None, list[str]]:
    """A fold of the log as it stood at `known_at`, computed straight from the events."""
    known = [e for e in events if e.stream == key.name and e.recorded_at <= known_at]
    retracted = {str(e.retracts) for e in known if isinstance(e, SanctionsStream.Retracted)}
    entries = [
        e.entry()
        for e in known
        if isinstance(e, SanctionsStream.TakesEffect) and str(e.event_id) not in retracted
    ]
    state = fold(key.name, entries, as_of)
    return state.status, sorted(state.measures), state.since, list(state.event_ids)


def check_projection_equals_fold(backend: str, ops: list[tuple], probes: list[tuple]) -> None:  # type: ignore[type-arg]
    with fresh_services(backend) as svc:
        recorded: list[SanctionsStream.Event] = []
        for kind, key_index, day_or_target, measures, project_now in ops:
            key = KEYS[key_index]
            if kind is EventType.RETRACTED:
                own = [e for e in recorded if e.stream == key.name]
                if not own:
                    continue
                target = own[day_or_target % len(own)].event_id
                draft = EventDraft(kind, key, retracts=target, note="property test")
            else:
                draft = EventDraft(kind, key, day_or_target, measures)
            try:
                outcome = svc.log.record([draft], recorded_by="hypothesis")
            except RuleViolation:
                continue
            recorded.extend(r.event for r in outcome.events)
            if project_now:
                svc.projector.catch_up(batch_size=3)
        svc.projector.catch_up(batch_size=3)
        events = [event for event, _ in logged_events(svc.log)]
        moments = [e.recorded_at for e in events] + [
            e.recorded_at - timedelta(microseconds=1) for e in events
        ]
        model = replay(svc.log)
        for key_index, day, moment_index in probes:
            key = KEYS[key_index]
            known_at = moments[moment_index % len(moments)] if moments else datetime.now()
            where = EventFilter(key.authority, key.country, key.commodity)
            rows = svc.projector.view.status(where, day, known_at)
            got = (
                (rows[0].status, rows[0].measures, rows[0].since, rows[0].event_ids)
                if rows
                else ("none", [], None, [])
            )
            assert got == reference_state(events, key, day, known_at)
            in_memory = model.status(key.name, day, known_at)
            assert (in_memory.status if in_memory else "none") == got[0]


probes = st.lists(
    st.tuples(
        st.sampled_from(range(len(KEYS))),
        st.sampled_from(DAYS + [d - timedelta(days=1) for d in DAYS]),
        st.integers(0, 200),
    ),
    min_size=5,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25), probes=probes)
def test_projection_equals_fold_of_the_log_on_sqlite(ops: list[tuple], probes: list[tuple]) -> None:  # type: ignore[type-arg]
    check_projection_equals_fold("sqlite", ops, probes)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25), probes=probes)
def test_projection_equals_fold_of_the_log_on_postgres(
    ops: list[tuple], probes: list[tuple]
) -> None:  # type: ignore[type-arg]
    check_projection_equals_fold("postgres", ops, probes)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stored_rows_equal_a_fresh_replay(backend: str) -> None:
    with fresh_services(backend) as svc:

        def record(draft: EventDraft) -> SanctionsStream.Event:
            return svc.log.record([draft], recorded_by="t").events[0].event

        us, eu = KEYS
        record(EventDraft(EventType.IMPOSED, us, DAYS[2], frozenset({"quota"})))
        svc.projector.catch_up()
        record(EventDraft(EventType.IMPOSED, eu, DAYS[0], frozenset({"quota"})))
        late = record(EventDraft(EventType.EXPANDED, us, DAYS[3], frozenset({"import_ban"})))
        record(EventDraft(EventType.RETRACTED, us, retracts=late.event_id, note="wrong"))
        svc.projector.catch_up(batch_size=2)
        stored = sorted(
            svc.projector.view.all_interval_rows(),
            key=lambda r: (r.stream, r.tx_from, r.interval.valid_from),
        )
        assert stored == replay(svc.log).rows()
        assert any(row.tx_to is not None for row in stored), "the retraction closed rows"
