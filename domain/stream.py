"""The SanctionsStream aggregate: one authority's measures on one country's commodity."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Self, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.drafts import EventDraft
from domain.hashing import GENESIS_HASH, event_hash
from domain.keys import StreamKey
from domain.rules import EventType, TimelineEntry, check_can_insert
from domain.targets import check_renewal_target, check_retraction_target


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
        expires: date | None = None
        """The end of its term (exclusive); stored and hashed only when set."""
        renews: UUID | None = None
        """The event whose term a renewal extends (None: the run's imposition)."""

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
                getattr(self, "expires", None),
                None if getattr(self, "renews", None) is None else str(self.renews),
            )

    class Imposed(TakesEffect):
        TYPE = EventType.IMPOSED

    class Expanded(TakesEffect):
        TYPE = EventType.EXPANDED

    class Eased(TakesEffect):
        TYPE = EventType.EASED

    class Lifted(TakesEffect):
        TYPE = EventType.LIFTED

    class Renewed(TakesEffect):
        TYPE = EventType.RENEWED

    class Retracted(Event):
        TYPE = EventType.RETRACTED
        retracts: UUID

        @property
        def retracted_id(self) -> UUID | None:
            return self.retracts

    EVENT_CLASSES: ClassVar[dict[EventType, type[Event]]] = {
        kind.TYPE: kind for kind in (Imposed, Expanded, Eased, Lifted, Retracted, Renewed)
    }

    @classmethod
    def empty(cls, key: StreamKey) -> Self:
        """A stream with nothing recorded yet (version 0)."""
        stream = cls.__new__(cls)
        stream.__base_init__(key.aggregate_id, 0, cls.Event.create_timestamp())
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

    def take(self, event: SanctionsStream.Event) -> None:
        """Evolve the state by one recorded event (on recording and on replay)."""
        event_id = str(event.event_id)
        self.types[event_id] = event.TYPE
        self.last_hash = event.hash
        if isinstance(event, SanctionsStream.TakesEffect):
            self.entries[event_id] = event.entry()
        elif isinstance(event, SanctionsStream.Retracted):
            target = str(event.retracts)
            self.entries.pop(target, None)
            self.retracted.add(target)

    def check_can_take_effect(self, entry: TimelineEntry) -> None:
        """RuleViolation if `entry` cannot take effect where it lands, or breaks a later one."""
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
            check_retraction_target(self, str(draft.retracts))
            fields = {"retracts": draft.retracts}
        else:
            entry = draft.entry(str(event_id), version)
            if entry.renews is not None:
                check_renewal_target(self, entry.renews)
            self.check_can_take_effect(entry)
            fields = {"effective_date": draft.effective_date, "measures": sorted(draft.measures)}
            termed = {"expires": draft.expires, "renews": draft.renews}  # stored only when set
            fields.update({name: value for name, value in termed.items() if value is not None})
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


__all__ = ["EventDraft", "SanctionsStream"]
