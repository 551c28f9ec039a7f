"""The SanctionsStream aggregate: one authority's measures on one country's commodity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput, RuleViolation
from domain.hashing import GENESIS_HASH, event_hash, format_timestamp
from domain.keys import StreamKey
from domain.rules import (
    MEASURES,
    EventType,
    RuleBroken,
    StreamState,
    TimelineEntry,
    apply,
    check_can_insert,
    check_can_remove,
    fold,
)


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


class SanctionsStream(Aggregate):
    """The log of one stream, e.g. US/BY/potash, and the rules its events obey."""

    class Event(Aggregate.Event):
        """What every recorded event carries besides its type-specific payload."""

        TYPE: ClassVar[EventType]

        stream: str
        event_id: UUID
        recorded_at: datetime
        recorded_by: str
        legal_basis: str | None
        source: dict[str, Any] | None
        note: str | None
        prev_hash: str
        hash: str

        def mutate(self, aggregate: Any) -> Any:
            # Any event may be a stream's first: there is no separate "created" event,
            # so versions stay 1, 2, ... as the contract says.
            if aggregate is None:
                aggregate = SanctionsStream.empty(StreamKey.from_name(self.stream))
            return super().mutate(aggregate)

        def apply(self, aggregate: Any) -> None:
            cast(SanctionsStream, aggregate).take(self)

        @property
        def key(self) -> StreamKey:
            return StreamKey.from_name(self.stream)

        @property
        def effective(self) -> date | None:
            return None

        @property
        def measure_list(self) -> list[str] | None:
            return None

        @property
        def retracted_id(self) -> UUID | None:
            return None

        def computed_hash(self, **changes: Any) -> str:
            """The hash this event should carry, recomputed from every stored field (as
            `changes` would leave them, if any)."""
            return event_hash({**vars(self), **changes, "type": self.TYPE.value})

    class TakesEffect(Event):
        effective_date: date
        measures: list[str]

        @property
        def effective(self) -> date | None:
            return self.effective_date

        @property
        def measure_list(self) -> list[str] | None:
            return list(self.measures)

        def entry(self) -> TimelineEntry:
            return TimelineEntry(
                str(self.event_id),
                self.originator_version,
                self.TYPE,
                self.effective_date,
                frozenset(self.measures),
            )

    class Imposed(TakesEffect):
        TYPE = EventType.IMPOSED

    class Expanded(TakesEffect):
        TYPE = EventType.EXPANDED

    class Eased(TakesEffect):
        TYPE = EventType.EASED

    class Lifted(TakesEffect):
        TYPE = EventType.LIFTED

    class Retracted(Event):
        TYPE = EventType.RETRACTED
        retracts: UUID

        @property
        def retracted_id(self) -> UUID | None:
            return self.retracts

    EVENT_CLASSES: ClassVar[dict[EventType, type[Event]]] = {}

    @classmethod
    def empty(cls, key: StreamKey) -> SanctionsStream:
        """A stream with nothing recorded yet (version 0)."""
        stream = cls.__new__(cls)
        stream.__base_init__(
            originator_id=key.aggregate_id,
            originator_version=0,
            timestamp=cls.Event.create_timestamp(),
        )
        stream.start_state(key)
        return stream

    def start_state(self, key: StreamKey) -> None:
        # Set here, not as class annotations: the library would read those as the
        # fields of a "created" event, which this aggregate does not have.
        self.key: StreamKey = key
        self.entries: dict[str, TimelineEntry] = {}  # take effect, not retracted
        self.types: dict[str, EventType] = {}  # every event of the stream, by id
        self.retracted: set[str] = set()
        self.last_hash: str = GENESIS_HASH
        self.stored_size = 0
        """Bytes of its stored events, as the write side last saw them: with the version,
        what it compares with the store to notice an event deleted, added or edited
        behind its back."""
        # The fold of `entries` in valid-time order, kept while events only append to
        # the timeline (the usual case): a write effective on or after every entry is
        # then checked against it alone, not against the whole timeline again.
        self.latest: StreamState | None = StreamState()
        self.last_order: tuple[date, int] | None = None

    def copy(self) -> SanctionsStream:
        """A copy to decide a write on, so that this state stays as committed if the write
        is refused (the timeline's containers copied, its entries shared: they never change)."""
        twin = object.__new__(SanctionsStream)
        twin.__dict__.update(self.__dict__)
        twin.entries = dict(self.entries)
        twin.types = dict(self.types)
        twin.retracted = set(self.retracted)
        twin._pending_events = []
        return twin

    def take(self, event: SanctionsStream.Event) -> None:
        """Evolve the state by one recorded event (on recording and on replay)."""
        event_id = str(event.event_id)
        self.types[event_id] = event.TYPE
        self.last_hash = event.hash
        if isinstance(event, SanctionsStream.TakesEffect):
            entry = self.entries[event_id] = event.entry()
            self.latest = self._extended(entry)
            self.last_order = max(self.last_order or entry.order, entry.order)
        elif isinstance(event, SanctionsStream.Retracted):
            target = str(event.retracts)
            self.entries.pop(target, None)
            self.retracted.add(target)
            self.latest = None  # folded again when next needed
            self.last_order = max((e.order for e in self.entries.values()), default=None)

    def _appends(self, entry: TimelineEntry) -> bool:
        """Whether `entry` comes after every entry of the timeline in valid-time order."""
        return self.last_order is None or entry.order > self.last_order

    def _extended(self, entry: TimelineEntry) -> StreamState | None:
        """The fold after `entry` if it appends to the timeline (None: fold again)."""
        if self.latest is None or not self._appends(entry):
            return None
        try:
            return apply(self.key.name, self.latest, entry)
        except RuleBroken:  # stored before a rule existed: only the full check can say
            return None

    def check_can_take_effect(self, entry: TimelineEntry) -> None:
        """RuleViolation if `entry` cannot take effect where it lands in the timeline:
        for an entry appended at the end, against the kept fold (cost independent of the
        stream's length); else against the whole timeline."""
        if self._appends(entry):
            if self.latest is None:
                try:
                    self.latest = fold(self.key.name, self.entries.values())
                except RuleBroken:
                    self.latest = None
            if self.latest is not None:
                try:
                    apply(self.key.name, self.latest, entry)
                except RuleBroken as broken:
                    raise RuleViolation(str(broken)) from None
                return
        check_can_insert(self.key.name, list(self.entries.values()), entry)

    def record(
        self,
        draft: EventDraft,
        *,
        event_id: UUID,
        recorded_at: datetime,
        recorded_by: str,
        hashed: bool = True,
    ) -> SanctionsStream.Event:
        """Check the draft against the timeline and record it as the next event (its hash
        left empty when not `hashed`: the store stamps and hashes it as it stores it)."""
        version = self.version + 1
        fields: dict[str, Any]
        if draft.type is EventType.RETRACTED:
            assert draft.retracts is not None
            self.check_can_retract(str(draft.retracts))
            fields = {"retracts": draft.retracts}
        else:
            assert draft.effective_date is not None
            entry = TimelineEntry(
                str(event_id), version, draft.type, draft.effective_date, draft.measures
            )
            self.check_can_take_effect(entry)
            fields = {"effective_date": draft.effective_date, "measures": sorted(draft.measures)}
        fields.update(
            stream=self.key.name,
            event_id=event_id,
            recorded_at=recorded_at,
            timestamp=recorded_at,
            recorded_by=recorded_by,
            legal_basis=draft.legal_basis,
            source=draft.source,
            note=draft.note,
            prev_hash=self.last_hash,
        )
        stored = {"originator_id": self.id, "originator_version": version, **fields}
        digest = event_hash({**stored, "type": draft.type.value}) if hashed else ""
        self.trigger_event(self.EVENT_CLASSES[draft.type], hash=digest, **fields)
        return cast(SanctionsStream.Event, self.pending_events[-1])

    def check_can_retract(self, target: str) -> None:
        kind = self.types.get(target)
        if kind is None:
            raise RuleViolation(f"{self.key} has no event {target} to retract")
        if kind is EventType.RETRACTED:
            raise RuleViolation(
                f"event {target} is itself a retraction and cannot be retracted; "
                "record the retracted event again instead"
            )
        if target in self.retracted:
            raise RuleViolation(f"event {target} of {self.key} is already retracted")
        check_can_remove(self.key.name, list(self.entries.values()), self.entries[target])


SanctionsStream.EVENT_CLASSES.update(
    {
        EventType.IMPOSED: SanctionsStream.Imposed,
        EventType.EXPANDED: SanctionsStream.Expanded,
        EventType.EASED: SanctionsStream.Eased,
        EventType.LIFTED: SanctionsStream.Lifted,
        EventType.RETRACTED: SanctionsStream.Retracted,
    }
)

__all__ = ["EventDraft", "SanctionsStream", "format_timestamp"]
