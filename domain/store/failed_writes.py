"""What a write is answered when the database fails under it: recorded after all,
certainly not recorded, or unknown — each true of the write's Idempotency-Key too.

The log (`domain.application`) hands a failed group or attempt here. A commit under way
when the connection was lost lands (or not) within moments, so its events are looked
for; a keyed write is answered "not recorded" only once a fence holds its key's place
(`domain.group_commit.Fences`), so that no earlier attempt with the key, still on its way
in this process or another, can record it after the answer was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from eventsourcing.persistence import PersistenceError

from domain.errors import DomainError, NotRecorded, OutcomeUnknown
from domain.group_commit import Attempt, Fences, Write, answer_replays
from domain.recorded import IdempotencyRecord, Page, RecordedEvent
from domain.store.records import EventStore

OUTCOME_CHECKS = (0.0, 0.5)
"""Pauses before each look, after a failed write, for whether it was recorded: a commit
under way when the connection was lost lands (or not) within moments."""


class FailedWrites:
    """Answers the writes of a group or an attempt that the database failed."""

    def __init__(
        self,
        store: EventStore,
        page: Callable[..., Page],
        events_by_ids: Callable[[Sequence[str]], list[RecordedEvent]],
        fences: Fences,
    ) -> None:
        self.store = store
        self.page = page
        self.events_by_ids = events_by_ids
        self.fences = fences

    def stored_after_all(self, attempt: Attempt) -> bool:
        """Before trying again: whether the last try was stored after all (the library
        retries a commit whose connection was lost, and the retry then conflicts with
        it); if so it is answered, and if that cannot be found out, its outcome is
        unknown."""
        try:
            return self.answer_if_stored(attempt)
        except (PersistenceError, DomainError) as error:
            attempt.fail(OutcomeUnknown(type(error).__name__), error)
            return True

    def answer_if_stored(self, attempt: Attempt) -> bool:
        """Whether an attempt whose commit failed to be confirmed was stored after all
        (its events share one transaction: the first stands for all); if so, answer it."""
        if not self.page(event_ids=[attempt.first_id]).events:
            return False
        recorded = self.events_by_ids(attempt.event_ids)
        attempt.answer([found.position for found in recorded], [found.event for found in recorded])
        return True

    def after_failure(self, attempt: Attempt, error: PersistenceError) -> None:
        """After the database failed mid-write: each write's outcome, found by its events
        (and, for a keyed write they are not stored for, by its key: `not_recorded`)."""
        for pause in OUTCOME_CHECKS:
            time.sleep(pause)
            try:
                if self.answer_if_stored(attempt):
                    return
            except (PersistenceError, DomainError):
                attempt.fail(OutcomeUnknown(type(error).__name__), error)
                return
        self.not_recorded(
            [write for write, _ in attempt.decided],
            lambda _: NotRecorded(type(error).__name__),
            error,
        )

    def before_commit(self, group: list[Write], error: PersistenceError) -> None:
        """The database failed before the group's commit (looking up keys, reading
        streams): nothing of the group is stored. A write without a key hears of the
        error itself (the API answers it `not_recorded`, and sets the store up again if
        its tables are gone); a keyed one is answered by `not_recorded`."""
        unanswered = [write for write in group if not write.answered]
        keyed = [write for write in unanswered if write.request is not None]
        if not keyed or self.store.is_missing_tables(error):
            raise error  # every write of the group hears of it (`CommitQueue`)
        for write in unanswered:
            if write.request is None:
                write.answer(error=error)
        self.not_recorded(keyed, lambda _: NotRecorded(type(error).__name__), error)

    def not_recorded(
        self,
        writes: list[Write],
        refusal: Callable[[Write], DomainError],
        cause: BaseException | None,
    ) -> None:
        """Answer writes that recorded nothing with `refusal` (a 503 that says
        `not_recorded`) — only where that is true of the write's Idempotency-Key too.

        Another attempt with the same key, sent earlier by a client that stopped
        waiting, may still be on its way to commit, in this process or another. So a
        keyed write is answered "not recorded" only once a fence is stored in its key's
        place (`Fences`): from then on no attempt begun before can record the key. If
        the key's events are stored instead, the write is answered as their replay; if
        the fence cannot be stored (the database is still failing), the outcome is
        unknown. Only this path pays for the fence: one statement per key."""
        keyed = [write for write in writes if write.request is not None]
        fences = [
            IdempotencyRecord.fencing(w.request.caller, w.request.key, w.request.request_hash)
            for w in keyed
            if w.request is not None
        ]
        try:
            stored = self.store.fence_idempotencies(fences) if fences else {}
            recorded: list[Write] = []
            for write in keyed:
                assert write.request is not None
                found = stored.get((write.request.caller, write.request.key))
                if found is None:
                    raise OutcomeUnknown("fence")
                if found.fence is not None:
                    self.fences.saw(found.caller, found.key, found.fence)
                else:
                    recorded.append(write)
            if recorded:  # stored by another attempt: the replay (or a conflict)
                answer_replays(recorded, lambda _: stored, self.events_by_ids, self.fences)
        except (PersistenceError, DomainError) as error:
            for write in keyed:
                if not write.answered:
                    unknown = OutcomeUnknown(type(error).__name__)
                    unknown.__cause__ = cause or error
                    write.answer(error=unknown)
        for write in writes:
            if not write.answered:
                answer = refusal(write)
                answer.__cause__ = cause
                write.answer(error=answer)
