"""The projection equals a fold of the log, for random histories, dates and moments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.app.bootstrap import build_service
from api.app.service import Service
from api.app.settings import Settings
from domain.errors import RuleViolation
from domain.keys import EventFilter, StreamKey
from domain.rules import MEASURES, EventType, TimelineEntry, fold
from domain.stream import EventDraft, SanctionsStream
from tests.conftest import POSTGRES_URL, drop_schema
from tests.reference import happening_days, reference_fold

pytestmark = pytest.mark.integration  # property runs on a real store, in process

KEYS = [StreamKey("US", "BY", "potash"), StreamKey("EU", "BY", "potash")]
Operation = tuple[str, int, date, frozenset[str], int, bool, int | None]
Probe = tuple[date, int]  # as_of, and which moment to read as known at
Answer = tuple[str, list[str], date | None, list[str], date | None]
"""status, measures, since, event_ids, expires"""
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


# (what to do, which stream, effective date, measures, which event to retract or renew,
# whether to project right away, the days of a term if any). A "change" becomes whichever
# event fits the stream's state on that date, so most operations are recorded, many of
# them late (before later events); a "renew" renews the run or a termed event.
operation = st.tuples(
    st.sampled_from(["change", "change", "change", "lift", "retract", "renew", "renew"]),
    st.sampled_from(range(len(KEYS))),
    st.sampled_from(DAYS),
    st.frozensets(st.sampled_from(MEASURES[:4]), min_size=1, max_size=3),
    st.integers(0, 30),
    st.booleans(),
    st.one_of(st.none(), st.sampled_from([1, 45, 90, 130, 200, 400, 700])),
)


def known_entries(
    events: list[SanctionsStream.Event], key: StreamKey, known_at: datetime
) -> list[TimelineEntry]:
    known = [e for e in events if e.stream == key.name and e.recorded_at <= known_at]
    retracted = {str(e.retracts) for e in known if isinstance(e, SanctionsStream.Retracted)}
    return [
        e.entry()
        for e in known
        if isinstance(e, SanctionsStream.TakesEffect) and str(e.event_id) not in retracted
    ]


def reference_state(
    events: list[SanctionsStream.Event], key: StreamKey, as_of: date, known_at: datetime
) -> Answer:
    """The log as it stood at `known_at`, folded by the tests' own reference (and checked
    against the service's fold)."""
    entries = known_entries(events, key, known_at)
    answer = reference_fold(entries, as_of)
    state = fold(key.name, entries, as_of)
    assert answer == (
        state.status,
        sorted(state.measures),
        state.since,
        list(state.event_ids),
        state.expires,
    ), (key.name, as_of, known_at)
    return answer


def stored_answers(svc: Service, as_of: date, known_at: datetime) -> dict[str, Answer]:
    """Every stream's stored status on `as_of` known at `known_at`, in one read."""
    rows = svc.projector.view.status(EventFilter(country="BY", commodity="potash"), as_of, known_at)
    answers = {
        row.stream: (row.status, row.measures, row.since, row.event_ids, row.expires)
        for row in rows
    }
    assert len(answers) == len(rows), "one row per stream"
    return answers


def assert_stored_answers_equal_the_fold(
    svc: Service, events: list[SanctionsStream.Event], as_of: date, known_at: datetime
) -> None:
    stored = stored_answers(svc, as_of, known_at)
    assert set(stored) <= {key.name for key in KEYS}
    for key in KEYS:
        expected = reference_state(events, key, as_of, known_at)
        got = stored.get(key.name, ("none", [], None, [], None))
        assert got == expected, (key.name, as_of, known_at)


def moments_of(events: list[SanctionsStream.Event]) -> list[datetime]:
    """Each event's recorded_at, the moment just before it, and now."""
    just_before = timedelta(microseconds=1)
    moments = [moment for e in events for moment in (e.recorded_at - just_before, e.recorded_at)]
    return [*moments, datetime.now(UTC)]


def draft_for(
    recorded: list[SanctionsStream.Event],
    action: str,
    key: StreamKey,
    day: date,
    measures: frozenset[str],
    target: int,
    term: int | None = None,
) -> EventDraft | None:
    """The draft an operation stands for, given what is recorded so far (None: nothing)."""
    expires = None if term is None else day + timedelta(days=term)
    if action == "renew":
        # Mostly a renewal that fits (a pending term, moved later), now and then a blind one.
        entries = known_entries(recorded, key, datetime.now(UTC))
        ends = [e.expires - timedelta(days=1) for e in entries if e.expires is not None]
        for when in [day, *ends[target % max(1, len(ends)) :], *ends]:
            pending = fold(key.name, entries, when).terms
            if pending:
                day = when
                break
        if pending and target % 4:
            term_ = pending[target % len(pending)]
            until = term_.expires + timedelta(days=term or 365)
            renews = None if term_.type is EventType.IMPOSED and target % 2 else term_.event_id
            return EventDraft(
                EventType.RENEWED, key, day, expires=until, renews=renews and uuid.UUID(renews)
            )
        termed = [
            e.event_id
            for e in recorded
            if e.stream == key.name and getattr(e, "expires", None) is not None
        ]
        blind = termed[target % len(termed)] if termed and target % 3 == 0 else None
        until = day + timedelta(days=term or 365)
        return EventDraft(EventType.RENEWED, key, day, expires=until, renews=blind)
    if action == "retract":
        own = [e for e in recorded if e.stream == key.name]
        if not own:
            return None
        retracted = own[target % len(own)].event_id
        return EventDraft(EventType.RETRACTED, key, retracts=retracted, note="property test")
    status, in_force, *_ = reference_state(recorded, key, day, datetime.now(UTC))
    if action == "lift" or (status == "active" and measures == set(in_force)):
        return EventDraft(EventType.LIFTED, key, day)
    if status != "active":
        return EventDraft(EventType.IMPOSED, key, day, measures, expires=expires)
    if measures < set(in_force):
        return EventDraft(EventType.EASED, key, day, measures, expires=expires)
    return EventDraft(EventType.EXPANDED, key, day, measures, expires=expires)


def record_history(svc: Service, ops: list[Operation]) -> list[SanctionsStream.Event]:
    """Record what the rules let through, projecting now and then in small batches."""
    recorded: list[SanctionsStream.Event] = []
    for action, key_index, day, measures, target, project_now, term in ops:
        draft = draft_for(recorded, action, KEYS[key_index], day, measures, target, term)
        if draft is None:
            continue
        try:
            outcome = svc.log.record([draft], recorded_by="hypothesis")
        except RuleViolation:
            continue  # e.g. a late event that would break a later one
        recorded.extend(r.event for r in outcome.events)
        if project_now:
            svc.projector.catch_up(batch_size=3)
    svc.projector.catch_up(batch_size=3)
    kinds = {e.TYPE for e in recorded}
    event(f"a renewal recorded: {EventType.RENEWED in kinds}")
    event(f"a term recorded: {any(getattr(e, 'expires', None) for e in recorded)}")
    return recorded


def check_projection_equals_fold(backend: str, ops: list[Operation], probes: list[Probe]) -> None:
    with fresh_services(backend) as svc:
        events = record_history(svc, ops)
        moments = moments_of(events)
        for day, moment_index in probes:
            known_at = moments[moment_index % len(moments)]
            assert_stored_answers_equal_the_fold(svc, events, day, known_at)
        # As known now, every stream on every probed date.
        for day in PROBE_DAYS:
            assert_stored_answers_equal_the_fold(svc, events, day, moments[-1])
        for moment in moments[-1:] + moments[:: max(1, len(moments) // 4)]:
            assert_timeline_equals_the_reference(svc, events, moment)


def assert_timeline_equals_the_reference(
    svc: Service, events: list[SanctionsStream.Event], known_at: datetime
) -> None:
    """Each stored interval holds the reference's answer from its first day to its last,
    and begins wherever the reference's answer changes."""
    rows = svc.projector.view.timeline(EventFilter(country="BY", commodity="potash"), known_at)
    for key in KEYS:
        intervals = [row for row in rows if row.stream == key.name]
        entries = known_entries(events, key, known_at)
        far = date(2030, 1, 1)
        for row in intervals:
            last = (row.valid_to or far) - timedelta(days=1)
            for day in (row.valid_from, last):
                status, measures, *_ = reference_fold(entries, day)
                assert (row.status, row.measures) == (status, measures), (key.name, row, day)
        starts = {row.valid_from for row in intervals}
        for day in happening_days(entries, far):
            if reference_fold(entries, day)[:2] != reference_fold(entries, day - timedelta(1))[:2]:
                assert day in starts, (key.name, day)


PROBE_DAYS = sorted({d + timedelta(days=shift) for d in DAYS for shift in (-1, 0, 45)})
probes = st.lists(
    st.tuples(st.sampled_from(PROBE_DAYS), st.integers(0, 200)),
    min_size=10,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25), probes=probes)
def test_projection_equals_fold_of_the_log_on_sqlite(
    ops: list[Operation], probes: list[Probe]
) -> None:
    check_projection_equals_fold("sqlite", ops, probes)


@pytest.mark.postgres
@pytest.mark.slow  # 25 histories, each in a schema of its own
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25), probes=probes)
def test_projection_equals_fold_of_the_log_on_postgres(
    ops: list[Operation], probes: list[Probe]
) -> None:
    check_projection_equals_fold("postgres", ops, probes)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_stored_rows_answer_every_moment_as_a_fold_of_the_log(backend: str) -> None:
    """Late expansions (one on the day of its imposition), a retraction and two streams,
    projected in batches: every date at every moment answers as the fold of the log as
    it then stood."""
    with fresh_services(backend) as svc:
        events: list[SanctionsStream.Event] = []

        def record(draft: EventDraft) -> SanctionsStream.Event:
            events.append(svc.log.record([draft], recorded_by="t").events[0].event)
            return events[-1]

        us, eu = KEYS
        record(EventDraft(EventType.IMPOSED, us, DAYS[2], frozenset({"quota"})))
        record(EventDraft(EventType.EXPANDED, us, DAYS[5], frozenset({"price_cap"})))
        svc.projector.catch_up()
        record(EventDraft(EventType.IMPOSED, eu, DAYS[0], frozenset({"quota", "import_ban"})))
        record(EventDraft(EventType.EASED, eu, DAYS[1], frozenset({"quota"})))
        # Late, and on the day of the imposition: it folds in after it.
        record(EventDraft(EventType.EXPANDED, eu, DAYS[0], frozenset({"price_cap"})))
        late = record(EventDraft(EventType.EXPANDED, us, DAYS[3], frozenset({"import_ban"})))
        record(EventDraft(EventType.LIFTED, eu, DAYS[4]))
        svc.projector.catch_up(batch_size=2)
        record(EventDraft(EventType.RETRACTED, us, retracts=late.event_id, note="wrong"))
        svc.projector.catch_up()
        for known_at in moments_of(events):
            for day in PROBE_DAYS:
                assert_stored_answers_equal_the_fold(svc, events, day, known_at)
        assert any(row.tx_to is not None for row in svc.projector.view.all_interval_rows())
