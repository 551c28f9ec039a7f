"""An event as a caller asks for it, checked for shape before any stream sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from domain.errors import InvalidInput
from domain.keys import StreamKey
from domain.rules import MEASURES, EventType


@dataclass(frozen=True)
class EventDraft:
    """An event as a caller asks for it, before the stream accepts it."""

    type: EventType
    key: StreamKey
    effective_date: date | None = None
    measures: frozenset[str] = frozenset()
    retracts: UUID | None = None
    legal_basis: str | None = None
    source: dict[str, str | None] | None = None
    note: str | None = None
    expected_version: int | None = None

    def __post_init__(self) -> None:
        check_draft_is_well_formed(self)


def check_draft_is_well_formed(draft: EventDraft) -> None:
    """InvalidInput naming the field if the payload does not fit the event type."""
    unknown = sorted(set(draft.measures) - set(MEASURES))
    if unknown:
        raise InvalidInput("measures", f"unknown measure(s): {', '.join(unknown)}")
    if draft.type is EventType.RETRACTED:
        if draft.retracts is None:
            raise InvalidInput("retracts", "a retraction names the event it retracts")
        if not (draft.note or "").strip():
            raise InvalidInput("note", "a retraction needs a note saying why")
        if draft.effective_date is not None:
            raise InvalidInput(
                "effective_date",
                "a retraction has no effective date: it corrects the record, not the law",
            )
        if draft.measures:
            raise InvalidInput("measures", "a retraction carries no measures")
        return
    if draft.retracts is not None:
        raise InvalidInput("retracts", f"only a retraction names `retracts`, not {draft.type}")
    if draft.effective_date is None:
        raise InvalidInput("effective_date", f"an {draft.type} event needs an effective_date")
    if draft.type is EventType.LIFTED:
        if draft.measures:
            raise InvalidInput("measures", "a lift ends every measure: name none")
    elif not draft.measures:
        raise InvalidInput("measures", f"an {draft.type} event names at least one measure")
