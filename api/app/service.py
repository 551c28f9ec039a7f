"""The service layer: every use case the REST API, the CLI, the seed and the import share.

`api.app.bootstrap` builds one `Service`; the FastAPI dependencies only hand it over.
Each question is one method taking the caller's raw input (parsed here, in one
place), so REST and CLI cannot drift apart.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from api.app.changes import ChangeQuestions
from api.app.identity import TokenStore
from api.app.notary import Notary
from api.app.observability import Metrics
from api.app.receipts import Receipts
from api.app.replica import Replica, place_read
from api.app.settings import Settings
from api.app.signing import Rotation, rotate, verifiers
from api.app.webhooks.registry import Webhooks
from api.schemas.answers import (
    EventOut,
    EventPage,
    IntervalOut,
    RebuildOut,
    ReplayStepOut,
    SkippedEvent,
    StatusOut,
    StatusResult,
    StreamOut,
    TimelineOut,
    VerifyOut,
    keyed,
)
from api.schemas.inputs import parse_as_of, parse_known_at
from api.schemas.queries import EventsQuery, ReplayQuery, StatusQuery, TimelineQuery
from domain.application import SanctionsLog
from domain.errors import TreeMismatch
from domain.hashing import format_timestamp
from domain.keys import (
    EventFilter,
    StreamKey,
)
from domain.recorded import IdempotentRequest, RecordedEvent, WriteOutcome
from domain.store.config import environment_for, setup_lock
from domain.store.tokens import TokenTable
from domain.stream import EventDraft
from projections.audit_trail import replay_steps
from projections.log.signing_keys import SigningKeys
from projections.projector import Progress, Projector
from projections.verify import verify

logger = logging.getLogger("sanctions.service")


@dataclass(frozen=True)
class Written:
    """What a write recorded; `replayed` when an Idempotency-Key answered it, and
    `projection_pending` when the read models did not show it in time."""

    events: list[RecordedEvent]
    replayed: bool
    projection_pending: bool


@dataclass
class Service(ChangeQuestions, Receipts):
    """Everything a request or a command may need, built once by `api.app.bootstrap`."""

    settings: Settings
    log: SanctionsLog
    tokens: TokenStore
    projector: Projector
    notary: Notary
    webhooks: Webhooks
    metrics: Metrics = field(default_factory=Metrics)
    replica: Replica | None = None
    """A standby that reads are answered from (SANCTIONS_READ_DATABASE_URL), if any."""
    horizon: datetime | None = None
    """The horizon reads are settled at, when the primary gave it (a read on a standby)."""

    verifying: Future[VerifyOut] | None = None
    """The verification now running, which concurrent calls wait for and share."""
    verifying_lock: threading.Lock = field(default_factory=threading.Lock)
    recovering: threading.Lock = field(default_factory=threading.Lock)

    # Writing

    def record(
        self,
        drafts: Sequence[EventDraft],
        *,
        recorded_by: str,
        idempotency: IdempotentRequest | None = None,
        shown: bool = True,
    ) -> Written:
        """Record the drafts; return once every read on this server reflects them, or
        (projection pending) once the read models have been waited for long enough —
        or at once, not `shown` (an import, which brings the read models up at its end)."""
        outcome = self.log.record(drafts, recorded_by=recorded_by, idempotency=idempotency)
        self.log.signals.wake("events")
        if not outcome.replayed:
            for recorded in outcome.events:
                self.metrics.recorded.labels(recorded.event.TYPE.value).inc()
        pending = not shown or not self.show_writes(outcome)
        return Written(outcome.events, outcome.replayed, pending)

    def show_writes(self, outcome: WriteOutcome) -> bool:
        """Whether every read on this server now reflects the written events (waiting a
        bounded time for the read models; a failing projector only delays them)."""
        position = max(recorded.position for recorded in outcome.events)
        try:
            if self.settings.embedded_projector:
                self.projector.catch_up(reaching=position)
            return self.projector.wait_for(position, self.settings.read_your_writes_timeout)
        except Exception:  # recorded all the same: the answer says the read models lag
            logger.exception("the read models could not be brought up to position %s", position)
            return False

    def settled(self, known_at: datetime) -> datetime:
        """The latest moment, no later than `known_at`, whose record can no longer change.

        An event is given its `recorded_at` inside the store's write lock, a moment
        before it is committed and projected. Answering "as known at T" while such an
        event with a `recorded_at` before T is on its way, or not yet projected, would
        give an answer that changes once it lands, so T is moved to just before it (the
        log's horizon; the oldest event not yet projected): the answer says which
        moment it is for, and stays true for ever.
        """
        known_at = min(known_at, self.horizon or self.log.horizon())
        oldest = self.projector.oldest_unprojected()
        if oldest is not None:
            known_at = min(known_at, oldest - timedelta(microseconds=1))
        return known_at

    def for_reads(self) -> Service:
        """The service a read asked now is answered by: this one, or with a standby the
        same questions on the standby's copy (`api.app.replica`). Blocks: a worker
        thread's."""
        if self.replica is None:
            return self
        place = place_read(self.log, self.replica, self.settings.read_your_writes_timeout)
        self.metrics.reads_placed.labels(place.why).inc()
        if not place.on_standby:
            return self
        replica = self.replica
        return replace(
            self,
            log=replica.log,
            projector=replica.projector,
            notary=replica.notary or self.notary,
            replica=None,
            horizon=place.horizon,
        )

    def known_at(self, value: str | None) -> datetime:
        """The settled moment a `known_at` input asks for (now when absent)."""
        return self.settled(parse_known_at(value, datetime.now(UTC)))

    # Questions

    def status(self, query: StatusQuery) -> StatusOut:
        """Each matching stream with anything effective by `as_of`, as recorded by `known_at`;
        with all three keys given and nothing effective, one row with status `none`."""
        where = query.where()
        day = parse_as_of(query.as_of, datetime.now(UTC).date())
        moment = self.known_at(query.known_at)
        results = [
            keyed(StatusResult, row) for row in self.projector.view.status(where, day, moment)
        ]
        if not results and where.stream is not None:
            results = [StatusResult.nothing_in_force(where.stream)]
        return StatusOut(as_of=day, known_at=format_timestamp(moment), results=results)

    def timeline(self, query: TimelineQuery) -> TimelineOut:
        """The consecutive validity intervals of each matching stream, as recorded by `known_at`."""
        where = query.where()
        moment = self.known_at(query.known_at)
        return TimelineOut(
            known_at=format_timestamp(moment),
            intervals=[
                keyed(IntervalOut, row) for row in self.projector.view.timeline(where, moment)
            ],
        )

    def replay(self, query: ReplayQuery) -> Iterator[ReplayStepOut]:
        """Every matching event in position order with its stream's status after it,
        recorded by `known_at` (streamed: bounded memory for any size of log)."""
        where = query.where()  # refused now, not mid-stream
        moment = self.known_at(query.known_at)
        self.projector.wait_for(self.log.recorder.max_notification_id() or 0, timeout=30)
        steps = replay_steps(self.log, self.projector.view, where, moment)
        return (ReplayStepOut.of(step) for step in steps)

    def events(self, query: EventsQuery) -> EventPage:
        """A page of the log in position order."""
        page = self.log.page(query.where(), after=query.after, limit=query.limit)
        return EventPage(
            events=[EventOut.of(recorded.position, recorded.event) for recorded in page.events],
            next_after=page.last_position if page.more else None,
            problems=[SkippedEvent.of(found) for found in page.undecodable],
        )

    def event(self, event_id: UUID) -> EventOut:
        recorded = self.log.event(event_id)
        return EventOut.of(recorded.position, recorded.event)

    def stream(self, key: StreamKey) -> StreamOut:
        """Every event of one stream, in version order."""
        page = self.log.page(EventFilter.of_stream(key))
        return StreamOut(
            stream=key.name,
            version=self.log.store.count(EventFilter.of_stream(key)),
            events=[EventOut.of(recorded.position, recorded.event) for recorded in page.events],
            problems=[SkippedEvent.of(found) for found in page.undecodable],
        )

    def verify(self) -> VerifyOut:
        """Every hash chain recomputed; the Merkle tree recomputed against every signed
        checkpoint; every read model against a fresh replay. Calls
        made while a run is under way share its result instead of starting another."""
        with self.verifying_lock:
            run, leader = self.verifying, self.verifying is None
            if run is None:
                run = self.verifying = Future()
        if not leader:
            return run.result()
        try:
            with contextlib.suppress(TreeMismatch):  # verify says what differs
                self.notary.checkpoint()  # the latest checkpoint covers the log as it stands
            keys = verifiers(SigningKeys(self.projector.view.tables), self.notary.signer.verifier)
            run.set_result(VerifyOut.of(verify(self.log, self.projector.view, keys)))
        except BaseException as error:
            run.set_exception(error)
        finally:
            with self.verifying_lock:
                self.verifying = None
        return run.result()

    def rotate_key(self, new_key_file: Path, name: str) -> Rotation:
        """Make the key in `new_key_file` (created if absent) the log's signing key, the
        tree as it stands first signed with the current one, then co-signed with the new.
        The earlier keys stay listed: the checkpoints they signed still verify."""
        self.notary.checkpoint()
        return rotate(
            self.notary.signer, new_key_file, name, SigningKeys(self.projector.view.tables)
        )

    def rebuild(self, batch_size: int = 5000, progress: Progress | None = None) -> RebuildOut:
        """Every read model dropped and rebuilt from the log."""
        report = self.projector.rebuild(batch_size=batch_size, progress=progress)
        return RebuildOut(
            events=report.events, seconds=round(report.seconds, 3), read_models=report.rows
        )

    def connection_lost(self, error: Exception) -> bool:
        """Whether a storage error says its database connection died under it (a read may
        then be asked again: it gets a fresh connection)."""
        return self.log.store.is_connection_lost(error)

    def recover(self, error: Exception) -> bool:
        """After a storage error: when the database answers but the store's tables are
        gone (a database dropped and created again, empty), set the store up again, as
        on first start. Whether it did."""
        if not self.log.store.is_missing_tables(error):
            return False
        with self.recovering:
            logger.warning("the store's tables are gone; setting them up again")
            with setup_lock(self.settings.database_url):
                environment_for(self.settings.database_url)  # the schema, on PostgreSQL
                self.log.store.setup()
                self.log.forget_kept()
                self.projector.projected = 0
                self.projector.view.create_table()
                self.projector.view.ensure_format()
                TokenTable(self.log.store.database())
                self.webhooks.table.create_tables()
        return True

    def close(self) -> None:
        self.projector.stop()
        self.log.close()
        if self.replica is not None:
            self.replica.close()
