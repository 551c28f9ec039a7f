"""An event as a caller asks for it, checked for shape before any stream sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from domain.errors import InvalidInput
from domain.keys import StreamKey
from domain.rules import MEASURES, TERMED, EventType, TimelineEntry


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
    expires: date | None = None
    renews: UUID | None = None

    def __post_init__(self) -> None:
        check_draft_is_well_formed(self)

    def entry(self, event_id: str, version: int) -> TimelineEntry:
        """The draft as an entry of its stream's timeline, recorded as `event_id` at
        `version` (a draft that takes effect: not a retraction)."""
        assert self.effective_date is not None
        renews = None if self.renews is None else str(self.renews)
        return TimelineEntry(
            event_id, version, self.type, self.effective_date, self.measures, self.expires, renews
        )


def check_draft_is_well_formed(draft: EventDraft) -> None:
    """InvalidInput naming the field if the payload does not fit the event type."""
    check_term_is_well_formed(draft)
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
    if draft.type in (EventType.LIFTED, EventType.RENEWED):
        if draft.measures:
            what = (
                "a lift ends every measure"
                if draft.type is EventType.LIFTED
                else ("a renewal moves the end of a term")
            )
            raise InvalidInput("measures", f"{what}: name none")
    elif not draft.measures:
        raise InvalidInput("measures", f"an {draft.type} event names at least one measure")


def check_term_is_well_formed(draft: EventDraft) -> None:
    """InvalidInput naming `expires` or `renews` if they do not fit the event."""
    if draft.renews is not None and draft.type is not EventType.RENEWED:
        raise InvalidInput("renews", f"only a renewal names `renews`, not {draft.type}")
    if draft.type is EventType.RENEWED and draft.expires is None:
        raise InvalidInput("expires", "a renewal names the new end of the term: `expires`")
    if draft.expires is None:
        return
    if draft.type not in (*TERMED, EventType.RENEWED):
        raise InvalidInput(
            "expires", f"{draft.type} has no term: only imposed, expanded and eased do"
        )
    if draft.effective_date is not None and draft.expires <= draft.effective_date:
        raise InvalidInput(
            "expires",
            f"a term ends after it begins: {draft.expires} is not later than "
            f"the effective_date {draft.effective_date}",
        )
