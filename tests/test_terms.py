"""Measures with a term: expiry, renewal and licences that end, on the domain model alone."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from domain.errors import InvalidInput, RuleViolation
from domain.keys import StreamKey
from domain.rules import EventType, fold
from domain.stream import EventDraft, SanctionsStream

pytestmark = pytest.mark.unit  # the domain model alone: no database, no server

KEY = StreamKey("EU", "BY", "potash")
T = EventType


def day(text: str) -> date:
    return date.fromisoformat(text)


def draft(
    type: EventType, on: str, *measures: str, expires: str | None = None, **extra: object
) -> EventDraft:
    return EventDraft(
        type,
        KEY,
        day(on),
        frozenset(measures),
        expires=None if expires is None else day(expires),
        **extra,  # type: ignore[arg-type]
    )


def record(stream: SanctionsStream, d: EventDraft) -> str:
    event = stream.record(
        d, event_id=uuid.uuid4(), recorded_at=datetime.now(UTC), recorded_by="test"
    )
    return str(event.event_id)


@pytest.fixture
def stream() -> SanctionsStream:
    return SanctionsStream.empty(KEY)


def on(stream: SanctionsStream, when: str) -> tuple[str, set[str], date | None]:
    state = fold(KEY.name, stream.entries.values(), day(when))
    return state.status, set(state.measures), state.expires


def test_an_imposition_expires_at_the_end_of_its_term(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    assert on(stream, "2022-02-28") == ("active", {"import_ban"}, day("2022-03-01"))
    assert on(stream, "2022-03-01") == ("expired", set(), None)
    assert on(stream, "2030-01-01") == ("expired", set(), None)


def test_a_renewal_before_the_end_extends_the_term(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    record(stream, draft(T.RENEWED, "2022-02-25", expires="2023-03-01"))
    assert on(stream, "2022-02-24") == ("active", {"import_ban"}, day("2022-03-01"))
    assert on(stream, "2022-03-01") == ("active", {"import_ban"}, day("2023-03-01"))
    assert on(stream, "2023-03-01") == ("expired", set(), None)


def test_a_renewal_on_or_after_the_end_is_refused(stream: SanctionsStream) -> None:
    imposed = record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    with pytest.raises(RuleViolation, match=f"began the run {imposed} ended on 2022-03-01"):
        record(stream, draft(T.RENEWED, "2022-03-01", expires="2023-03-01"))
    with pytest.raises(RuleViolation, match=f"term of event {imposed} ended on 2022-03-01"):
        record(
            stream, draft(T.RENEWED, "2022-04-01", expires="2023-03-01", renews=uuid.UUID(imposed))
        )


def test_a_renewal_must_move_the_end_later(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    for until in ("2022-03-01", "2022-02-27"):
        with pytest.raises(RuleViolation, match="already runs until 2022-03-01"):
            record(stream, draft(T.RENEWED, "2022-02-25", expires=until))


def test_a_renewal_of_a_run_without_a_term_is_refused(stream: SanctionsStream) -> None:
    imposed = record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban"))
    with pytest.raises(RuleViolation, match="has no term in force"):
        record(stream, draft(T.RENEWED, "2022-02-25", expires="2023-03-01"))
    with pytest.raises(RuleViolation, match="has no term, so there is nothing to renew"):
        record(
            stream, draft(T.RENEWED, "2022-02-25", expires="2023-03-01", renews=uuid.UUID(imposed))
        )


def test_renews_must_name_a_termed_event_of_the_stream(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    lifted = record(stream, draft(T.LIFTED, "2021-12-01"))
    with pytest.raises(RuleViolation, match="no event"):
        record(stream, draft(T.RENEWED, "2021-09-01", expires="2023-03-01", renews=uuid.uuid4()))
    with pytest.raises(RuleViolation, match="which has no term"):
        record(
            stream, draft(T.RENEWED, "2021-09-01", expires="2023-03-01", renews=uuid.UUID(lifted))
        )


def test_an_easing_licence_ends_and_the_measures_return(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2019-01-28", "import_ban", "asset_freeze"))
    record(stream, draft(T.EASED, "2023-10-18", "import_ban", expires="2024-04-18"))
    assert on(stream, "2024-04-17") == ("active", {"asset_freeze"}, day("2024-04-18"))
    assert on(stream, "2024-04-18") == ("active", {"asset_freeze", "import_ban"}, None)


def test_a_licence_renewed_ends_later(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2019-01-28", "import_ban", "asset_freeze"))
    eased = record(stream, draft(T.EASED, "2023-10-18", "import_ban", expires="2024-04-18"))
    record(stream, draft(T.RENEWED, "2024-04-17", expires="2024-05-31", renews=uuid.UUID(eased)))
    assert on(stream, "2024-05-30") == ("active", {"asset_freeze"}, day("2024-05-31"))
    assert on(stream, "2024-05-31") == ("active", {"asset_freeze", "import_ban"}, None)


def test_an_expansion_term_ends_only_the_measures_it_added(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban"))
    record(
        stream, draft(T.EXPANDED, "2022-03-02", "import_ban", "transit_ban", expires="2023-01-01")
    )
    assert on(stream, "2022-12-31") == ("active", {"import_ban", "transit_ban"}, day("2023-01-01"))
    assert on(stream, "2023-01-01") == ("active", {"import_ban"}, None)


def test_an_expansion_term_does_not_end_a_measure_eased_for_good_and_added_again(
    stream: SanctionsStream,
) -> None:
    # The rule: an expansion's term ends only the measures it added. Once a measure it added
    # was eased without a term, that addition is over; a later expansion without a term that
    # adds the measure again owns it, and the first term's end leaves it in force.
    record(stream, draft(T.IMPOSED, "2020-01-01", "import_ban"))
    record(stream, draft(T.EXPANDED, "2020-02-01", "export_ban", expires="2020-06-01"))
    record(stream, draft(T.EASED, "2020-03-01", "export_ban"))
    assert on(stream, "2020-03-01") == ("active", {"import_ban"}, None)
    record(stream, draft(T.EXPANDED, "2020-04-01", "export_ban"))
    assert on(stream, "2020-04-01") == ("active", {"export_ban", "import_ban"}, None)
    assert on(stream, "2020-06-01") == ("active", {"export_ban", "import_ban"}, None)


def test_an_expansion_term_does_not_end_a_measure_another_expansion_added_again(
    stream: SanctionsStream,
) -> None:
    # Eased by a licence, the measure is out of force; an expansion without a term adds it
    # again before the first expansion's term ends: it stays after that end.
    record(stream, draft(T.IMPOSED, "2020-01-01", "import_ban"))
    record(stream, draft(T.EXPANDED, "2020-02-01", "export_ban", expires="2020-06-01"))
    record(stream, draft(T.EASED, "2020-03-01", "export_ban", expires="2020-05-01"))
    record(stream, draft(T.EXPANDED, "2020-04-01", "export_ban"))
    assert on(stream, "2020-06-01") == ("active", {"export_ban", "import_ban"}, None)


def test_a_renewal_after_an_expansions_term_ended_says_to_record_the_measures_anew(
    stream: SanctionsStream,
) -> None:
    # The run goes on: what ended is the expansion's term, so the way out is a new
    # expansion, not a new imposition (which an active stream refuses).
    record(stream, draft(T.IMPOSED, "2020-01-01", "import_ban"))
    added = record(stream, draft(T.EXPANDED, "2020-02-01", "export_ban", expires="2020-03-01"))
    with pytest.raises(RuleViolation, match="record `expanded` or `eased` anew") as refused:
        record(
            stream, draft(T.RENEWED, "2020-03-01", expires="2021-01-01", renews=uuid.UUID(added))
        )
    assert "imposed" not in str(refused.value)


def test_a_new_imposition_after_expiry_begins_a_new_run(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    with pytest.raises(RuleViolation, match="already active"):
        record(stream, draft(T.IMPOSED, "2022-02-28", "asset_freeze"))
    record(stream, draft(T.IMPOSED, "2022-03-01", "asset_freeze"))
    assert on(stream, "2022-03-01") == ("active", {"asset_freeze"}, None)


def test_a_lift_ends_every_pending_term(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    record(stream, draft(T.LIFTED, "2021-12-01"))
    assert on(stream, "2022-06-01") == ("lifted", set(), None)


def test_a_late_event_that_would_break_a_renewal_is_refused(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    renewal = record(stream, draft(T.RENEWED, "2022-02-25", expires="2023-03-01"))
    with pytest.raises(RuleViolation, match=f"would break event {renewal}"):
        record(stream, draft(T.LIFTED, "2022-01-01"))


def test_retracting_the_renewal_restores_the_old_end(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    renewal = record(stream, draft(T.RENEWED, "2022-02-25", expires="2023-03-01"))
    stream.record(
        EventDraft(T.RETRACTED, KEY, retracts=uuid.UUID(renewal), note="wrong decision"),
        event_id=uuid.uuid4(),
        recorded_at=datetime.now(UTC),
        recorded_by="test",
    )
    assert on(stream, "2022-03-01") == ("expired", set(), None)


def test_a_retraction_that_would_leave_a_renewal_without_a_term_is_refused(
    stream: SanctionsStream,
) -> None:
    record(stream, draft(T.IMPOSED, "2021-06-24", "import_ban", expires="2022-03-01"))
    record(stream, draft(T.RENEWED, "2022-02-25", expires="2023-03-01"))
    imposed = next(iter(stream.entries))
    with pytest.raises(RuleViolation, match="depends on"):
        stream.record(
            EventDraft(T.RETRACTED, KEY, retracts=uuid.UUID(imposed), note="wrong"),
            event_id=uuid.uuid4(),
            recorded_at=datetime.now(UTC),
            recorded_by="test",
        )


@pytest.mark.parametrize(
    ("type", "measures", "expires", "field"),
    [
        (T.IMPOSED, ("import_ban",), "2021-06-24", "expires"),
        (T.EASED, ("import_ban",), "2021-01-01", "expires"),
        (T.LIFTED, (), "2022-01-01", "expires"),
        (T.RENEWED, (), None, "expires"),
        (T.RENEWED, ("import_ban",), "2022-01-01", "measures"),
    ],
)
def test_a_misfit_term_names_its_field(
    type: EventType, measures: tuple[str, ...], expires: str | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        draft(type, "2021-06-24", *measures, expires=expires)
    assert raised.value.field == field


def test_only_a_renewal_names_renews() -> None:
    with pytest.raises(InvalidInput) as raised:
        draft(T.IMPOSED, "2021-06-24", "import_ban", renews=uuid.uuid4())
    assert raised.value.field == "renews"
