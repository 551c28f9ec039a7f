"""A stream as the write side keeps it between writes: the aggregate, plus what lets a
write's cost not grow with its stream (the fold of its timeline, kept while events only
append to it) and notice the store changed behind its back (its stored size)."""

from __future__ import annotations

from datetime import date

from domain.errors import RuleViolation
from domain.keys import StreamKey
from domain.rules import RuleBroken, StreamState, TimelineEntry, apply, fold
from domain.stream import SanctionsStream


class KeptStream(SanctionsStream):
    """The stream a write is decided on: its rules are the aggregate's, checked against
    the kept fold when an entry appends to the timeline (cost independent of the
    stream's length), and against the whole timeline otherwise."""

    def start_state(self, key: StreamKey) -> None:
        super().start_state(key)
        self.stored_size = 0
        """Bytes of its stored events, as the write side last saw them: with the version,
        what it compares with the store to notice an event deleted, added or edited
        behind its back."""
        # The fold of `entries` in valid-time order, kept while events only append to
        # the timeline (the usual case): a write effective on or after every entry is
        # then checked against it alone, not against the whole timeline again.
        self.latest: StreamState | None = StreamState()
        self.last_order: tuple[date, int] | None = None

    def copy(self) -> KeptStream:
        """A copy to decide a write on, so that this state stays as committed if the write
        is refused (the timeline's containers copied, its entries shared: they never change)."""
        twin = object.__new__(KeptStream)
        twin.__dict__.update(self.__dict__)
        twin.entries = dict(self.entries)
        twin.types = dict(self.types)
        twin.retracted = set(self.retracted)
        twin._pending_events = []
        return twin

    def take(self, event: SanctionsStream.Event) -> None:
        super().take(event)
        if isinstance(event, SanctionsStream.TakesEffect):
            entry = self.entries[str(event.event_id)]
            self.latest = self._extended(entry)
            self.last_order = max(self.last_order or entry.order, entry.order)
        elif isinstance(event, SanctionsStream.Retracted):
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
        super().check_can_take_effect(entry)
