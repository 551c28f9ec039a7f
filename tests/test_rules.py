"""The rules of a stream, on the domain model alone (no storage)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from domain.errors import InvalidInput, RuleViolation
from domain.hashing import GENESIS_HASH
from domain.keys import StreamKey
from domain.rules import EventType, fold
from domain.stream import EventDraft, SanctionsStream

pytestmark = pytest.mark.unit  # the domain model alone: no database, no server

KEY = StreamKey("US", "BY", "potash")
T = EventType


def draft(type: EventType, day: str | None = None, *measures: str, **extra: object) -> EventDraft:
    return EventDraft(
        type,
        KEY,
        None if day is None else date.fromisoformat(day),
        frozenset(measures),
        **extra,  # type: ignore[arg-type]
    )


def record(stream: SanctionsStream, d: EventDraft) -> SanctionsStream.Event:
    return stream.record(
        d, event_id=uuid.uuid4(), recorded_at=datetime.now(UTC), recorded_by="test"
    )


@pytest.fixture
def stream() -> SanctionsStream:
    return SanctionsStream.empty(KEY)


def state_on(stream: SanctionsStream, day: str) -> tuple[str, set[str]]:
    state = fold(KEY.name, stream.entries.values(), date.fromisoformat(day))
    return state.status, set(state.measures)


def test_imposed_needs_the_stream_not_active(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    with pytest.raises(RuleViolation, match="already active on 2022-01-01"):
        record(stream, draft(T.IMPOSED, "2022-01-01", "asset_freeze"))


def test_reimposition_after_a_lift_is_allowed(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2019-01-28", "import_ban"))
    record(stream, draft(T.LIFTED, "2023-10-18"))
    record(stream, draft(T.IMPOSED, "2024-04-18", "asset_freeze"))
    assert state_on(stream, "2023-12-31") == ("lifted", set())
    assert state_on(stream, "2024-04-18") == ("active", {"asset_freeze"})


def test_expanded_needs_an_active_stream(stream: SanctionsStream) -> None:
    with pytest.raises(RuleViolation, match="not active on 2022-04-01, so it cannot be expanded"):
        record(stream, draft(T.EXPANDED, "2022-04-01", "import_ban"))


def test_expanded_needs_a_new_measure(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban", "asset_freeze"))
    with pytest.raises(RuleViolation, match="already in force"):
        record(stream, draft(T.EXPANDED, "2022-04-01", "import_ban"))
    record(stream, draft(T.EXPANDED, "2022-04-01", "import_ban", "financing_ban"))
    assert state_on(stream, "2022-04-01")[1] == {"import_ban", "asset_freeze", "financing_ban"}


def test_eased_needs_every_named_measure_in_force(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban", "asset_freeze"))
    with pytest.raises(RuleViolation, match="price_cap not in force"):
        record(stream, draft(T.EASED, "2022-01-01", "price_cap"))


def test_eased_must_leave_a_measure_in_force(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban", "asset_freeze"))
    with pytest.raises(RuleViolation, match="record `lifted` instead"):
        record(stream, draft(T.EASED, "2022-01-01", "import_ban", "asset_freeze"))
    record(stream, draft(T.EASED, "2022-01-01", "import_ban"))
    assert state_on(stream, "2022-01-01") == ("active", {"asset_freeze"})


def test_eased_needs_an_active_stream(stream: SanctionsStream) -> None:
    with pytest.raises(RuleViolation, match="cannot be eased"):
        record(stream, draft(T.EASED, "2022-01-01", "import_ban"))


def test_lifted_needs_an_active_stream(stream: SanctionsStream) -> None:
    with pytest.raises(
        RuleViolation, match="US/BY/potash is not active on 2019-01-01, so it cannot be lifted"
    ):
        record(stream, draft(T.LIFTED, "2019-01-01"))


def test_late_event_is_judged_where_it_lands(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    record(stream, draft(T.LIFTED, "2025-12-13"))
    # Recorded now, effective in 2022: it lands between the imposition and the lift.
    record(stream, draft(T.EXPANDED, "2022-04-01", "asset_freeze"))
    assert state_on(stream, "2023-01-01") == ("active", {"import_ban", "asset_freeze"})
    assert state_on(stream, "2026-01-01") == ("lifted", set())


def test_late_event_that_would_break_a_later_one_is_refused_naming_it(
    stream: SanctionsStream,
) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    expansion = record(stream, draft(T.EXPANDED, "2022-04-01", "asset_freeze"))
    # A lift in 2022-01 would leave the 2022-04 expansion with nothing active to expand.
    with pytest.raises(RuleViolation) as refused:
        record(stream, draft(T.LIFTED, "2022-01-01"))
    assert refused.value.breaks_event_id == str(expansion.event_id)
    assert str(expansion.event_id) in refused.value.message
    # And an earlier imposition would make the 2021 one a second imposition.
    with pytest.raises(RuleViolation, match="would break"):
        record(stream, draft(T.IMPOSED, "2020-01-01", "quota"))


def test_same_day_events_apply_in_recording_order(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2022-12-05", "import_ban"))
    record(stream, draft(T.EXPANDED, "2022-12-05", "price_cap"))
    assert state_on(stream, "2022-12-05") == ("active", {"import_ban", "price_cap"})


def test_retraction_removes_the_target_from_the_timeline(stream: SanctionsStream) -> None:
    record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    wrong = record(stream, draft(T.EXPANDED, "2022-04-01", "asset_freeze"))
    record(stream, draft(T.RETRACTED, retracts=wrong.event_id, note="wrong date"))
    assert state_on(stream, "2023-01-01") == ("active", {"import_ban"})
    with pytest.raises(RuleViolation, match="already retracted"):
        record(stream, draft(T.RETRACTED, retracts=wrong.event_id, note="again"))


def test_retraction_refused_while_a_remaining_event_depends_on_the_target(
    stream: SanctionsStream,
) -> None:
    imposed = record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    expansion = record(stream, draft(T.EXPANDED, "2022-04-01", "asset_freeze"))
    with pytest.raises(RuleViolation, match="retract it first") as refused:
        record(stream, draft(T.RETRACTED, retracts=imposed.event_id, note="wrong"))
    assert refused.value.breaks_event_id == str(expansion.event_id)
    record(stream, draft(T.RETRACTED, retracts=expansion.event_id, note="dependant first"))
    record(stream, draft(T.RETRACTED, retracts=imposed.event_id, note="then the target"))
    assert state_on(stream, "2023-01-01") == ("none", set())


def test_retraction_needs_a_known_target_of_the_same_stream(stream: SanctionsStream) -> None:
    with pytest.raises(RuleViolation, match="has no event"):
        record(stream, draft(T.RETRACTED, retracts=uuid.uuid4(), note="n"))


def test_a_retraction_cannot_itself_be_retracted(stream: SanctionsStream) -> None:
    imposed = record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    retraction = record(stream, draft(T.RETRACTED, retracts=imposed.event_id, note="n"))
    with pytest.raises(RuleViolation, match="itself a retraction"):
        record(stream, draft(T.RETRACTED, retracts=retraction.event_id, note="n"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": T.IMPOSED, "day": "2021-01-01"}, "measures"),
        ({"type": T.IMPOSED}, "effective_date"),
        ({"type": T.LIFTED, "day": "2021-01-01", "measures": ("import_ban",)}, "measures"),
        ({"type": T.IMPOSED, "day": "2021-01-01", "measures": ("embargo",)}, "measures"),
        ({"type": T.RETRACTED, "note": "n"}, "retracts"),
        ({"type": T.RETRACTED, "retracts": uuid.uuid4()}, "note"),
        ({"type": T.RETRACTED, "retracts": uuid.uuid4(), "note": "  "}, "note"),
        (
            {"type": T.RETRACTED, "retracts": uuid.uuid4(), "note": "n", "day": "2021-01-01"},
            "effective_date",
        ),
        (
            {
                "type": T.IMPOSED,
                "day": "2021-01-01",
                "measures": ("quota",),
                "retracts": uuid.uuid4(),
            },
            "retracts",
        ),
    ],
)
def test_a_payload_that_does_not_fit_its_type_is_invalid(
    kwargs: dict[str, object], field: str
) -> None:
    measures = kwargs.pop("measures", ())
    with pytest.raises(InvalidInput) as invalid:
        draft(kwargs.pop("type"), kwargs.pop("day", None), *measures, **kwargs)  # type: ignore[arg-type, misc]
    assert invalid.value.field == field


def test_each_event_hash_links_to_the_one_before(stream: SanctionsStream) -> None:
    first = record(stream, draft(T.IMPOSED, "2021-08-09", "import_ban"))
    second = record(stream, draft(T.EXPANDED, "2022-04-01", "asset_freeze"))
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.computed_hash() == first.hash
    assert second.computed_hash() == second.hash
    assert len(first.hash) == 64 and first.hash != second.hash


@pytest.mark.parametrize(
    ("authority", "country", "commodity", "field"),
    [
        ("XX", "BY", "potash", "authority"),
        ("US", "EU", "potash", "country"),
        ("US", "ZZ", "potash", "country"),
        ("US", "BY", "potassium", "commodity"),
    ],
)
def test_unknown_codes_are_invalid(
    authority: str, country: str, commodity: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as invalid:
        StreamKey.parse(authority, country, commodity)
    assert invalid.value.field == field


def test_codes_are_case_insensitive_and_come_out_upper_case() -> None:
    assert StreamKey.parse("eu", "by", "Potash").name == "EU/BY/potash"


def test_unknown_commodity_names_close_matches() -> None:
    with pytest.raises(InvalidInput, match="did you mean 'crude-oil'"):
        StreamKey.parse("US", "RU", "crude_oil")
