"""Delivering webhooks: one thread per subscription, behind the projector.

Each subscription's worker takes the lease on it, reads the matching events after its
`delivered_position` that the read models have projected (so `stream_status` is known),
and POSTs them one by one, in position order; a failed attempt is retried after an
exponential backoff with full jitter, for as long as it takes, the next event waiting
behind it. A successful attempt moves the position in the transaction that stores it.
The workers wake when the projector moves (a signal, not a fast poll) and on their own
retry timers; a receiver that is down holds up only its own subscription, and writers
never wait for any of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from api.app.webhooks.owners import Owner
from api.app.webhooks.sender import Answer, Cutoff, post, signed_headers
from api.app.webhooks.targets import AllowList, TargetRefused
from api.schemas.answers import ReplayStepOut
from domain.application import SanctionsLog
from domain.hashing import format_timestamp
from domain.keys import EventFilter
from domain.store.webhooks import Attempt, LeaseLost, Subscription, SubscriptionTable
from domain.stream import SanctionsStream
from projections.audit_trail import step_at
from projections.projector import Projector

logger = logging.getLogger("sanctions.webhooks")
BATCH = 100
REFRESH_EVERY = 0.25  # seconds: the subscriptions are read at most this often


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timeouts and backoff (from the settings; tests make them small)."""

    timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_cap: float = 600.0
    lease: float = 30.0
    idle: float = 5.0
    """The longest a worker sleeps without looking (a safety net: the projector wakes it)."""

    @property
    def lease_ms(self) -> int:
        # Held across an attempt, which the timeout bounds as a whole: at least twice the
        # timeout and a second, for the name's resolution and the transactions either side.
        return round(max(self.lease, 2 * self.timeout + 1) * 1000)

    def backoff(self, attempt: int) -> float:
        """The pause after the `attempt`-th failure: full jitter under a capped exponential."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


def webhook_body(
    log: SanctionsLog,
    projector: Projector,
    subscription_id: str,
    position: int,
    event: SanctionsStream.Event,
) -> str:
    """The JSON POSTed for one event: the event as GET /v1/events/{id} answers it, and its
    stream's status as the audit replay gives it (a retraction: as of the retracted event's
    effective date, known at the retraction's recording)."""
    step = ReplayStepOut.of(step_at(log, projector.view, position, event))
    document = {
        "subscription_id": subscription_id,
        "event": step.event.model_dump(mode="json"),
        "stream_status": step.stream_status.model_dump(mode="json"),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


class Deliveries:
    """Keeps one worker per live subscription while the projector runs."""

    def __init__(
        self,
        log: SanctionsLog,
        projector: Projector,
        table: SubscriptionTable,
        allow: AllowList,
        policy: DeliveryPolicy,
    ) -> None:
        self.log = log
        self.projector = projector
        self.table = table
        self.allow = allow
        self.policy = policy
        self.owner = Owner.mine()  # this process's name on the leases it holds
        self.signals = log.signals
        self.workers: dict[str, SubscriptionWorker] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="webhooks", daemon=True)
        self._thread.start()

    def run(self) -> None:
        with contextlib.suppress(Exception):
            self.release_the_dead()
        while not self._stop.is_set():
            seen = self.signals.seen("projected")
            looked = time.monotonic()
            try:
                self.refresh()
            except Exception:
                logger.exception("could not read the webhook subscriptions; retrying")
                with contextlib.suppress(Exception):
                    self.table.create_tables()  # a database that came back empty
            self.signals.wait("projected", self.policy.idle, since=seen)
            # One look at the table for a burst of projected batches, not one per batch:
            # under a stream of writes that was a query per write.
            self._stop.wait(max(0.0, looked + REFRESH_EVERY - time.monotonic()))

    def release_the_dead(self) -> None:
        """Free at once the leases of processes known to be gone (a predecessor killed
        with SIGKILL): on SQLite, which one process serves, every lease but this
        process's; elsewhere, those of processes on this machine that no longer run."""
        single = self.table.store.dialect == "sqlite"
        for holder in self.table.lease_holders():
            if (single and not Owner.here(holder)) or Owner.gone(holder):
                released = self.table.release_all(holder)
                logger.info(
                    "took over %s webhook subscription(s) from the stopped process %s",
                    released,
                    holder,
                )

    def refresh(self) -> None:
        """A worker for every live subscription, none for deleted ones."""
        live = {subscription.id: subscription for subscription in self.table.active()}
        if self._stop.is_set():
            return
        for subscription_id, subscription in live.items():
            worker = self.workers.get(subscription_id)
            if worker is None or not worker.thread.is_alive():
                self.workers[subscription_id] = SubscriptionWorker(self, subscription)
                self.workers[subscription_id].thread.start()
        for subscription_id in set(self.workers) - set(live):
            self.forget(subscription_id)

    def forget(self, subscription_id: str) -> None:
        """Stop delivering a (deleted) subscription now."""
        worker = self.workers.pop(subscription_id, None)
        if worker is not None:
            worker.stop()

    def stop(self) -> None:
        """Stop every worker and wait for them (an attempt under way is cut short), so
        that none touches the store once it is closed."""
        self._stop.set()
        self.signals.wake("projected")
        if self._thread is not None:
            self._thread.join(timeout=10)
        workers = list(self.workers.values())
        self.workers.clear()
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + self.policy.timeout + 2
        for worker in workers:
            if worker.thread.ident is not None:
                worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        Owner.retire(self.owner)


class SubscriptionWorker:
    """Delivers one subscription's events in position order, one at a time."""

    def __init__(self, deliveries: Deliveries, subscription: Subscription) -> None:
        self.deliveries = deliveries
        self.subscription = subscription
        self.policy = deliveries.policy
        self.table = deliveries.table
        self.where = EventFilter(
            subscription.authority, subscription.country, subscription.commodity
        )
        self._stop = threading.Event()
        self._cutoff: Cutoff | None = None  # the attempt under way
        self.thread = threading.Thread(
            target=self.run, name=f"webhook-{subscription.id[:8]}", daemon=True
        )

    def stop(self) -> None:
        self._stop.set()
        cutoff = self._cutoff
        if cutoff is not None:
            cutoff.cut("stopping")  # an attempt under way is abandoned
        self.deliveries.signals.wake("projected")

    def run(self) -> None:
        signals = self.deliveries.signals
        while not self._stop.is_set():
            seen = signals.seen("projected")
            try:
                if self.deliver_pending():
                    continue
            except LeaseLost as lost:
                # Another process delivers it (or it was deleted): look again later, at
                # once if that process is known to be gone.
                if self.took_over(lost.holder):
                    continue
            except Exception:
                logger.exception(
                    "webhook delivery for subscription %s failed", self.subscription.id
                )
            signals.wait("projected", self.policy.idle, since=seen)
        with contextlib.suppress(Exception):
            self.table.release(self.subscription.id, self.deliveries.owner)

    def took_over(self, holder: str | None) -> bool:
        """Free the lease of `holder` if its process is known to be gone."""
        try:
            if holder is None or not Owner.gone(holder):
                return False
            released = self.table.release_all(holder)
        except Exception:
            logger.exception("could not release the lease of %s", holder)
            return False
        logger.info(
            "took over %s webhook subscription(s) from the stopped process %s", released, holder
        )
        return True

    def claim(self) -> int:
        """Renew the lease (LeaseLost if gone); the position delivered so far."""
        return self.table.claim(
            self.subscription.id,
            self.deliveries.owner,
            round(time.time() * 1000),
            self.policy.lease_ms,
        )

    def deliver_pending(self) -> bool:
        """Deliver the projected events not yet delivered; whether there were any."""
        position = self.claim()
        horizon = self.deliveries.projector.position()
        log = self.deliveries.log
        pending = [
            positioned
            for positioned in log.store.select_positioned(self.where, after=position, limit=BATCH)
            if positioned.position <= horizon
        ]
        for positioned in pending:
            if self._stop.is_set():
                break
            event = log.decode_tolerantly(positioned.stored)
            if event is None:
                self.skip(positioned.position)
            else:
                self.deliver(positioned.position, event)
        return bool(pending)

    def skip(self, position: int) -> None:
        logger.error(
            "subscription %s skips the undecodable event at position %s",
            self.subscription.id,
            position,
        )
        attempt = Attempt(
            "",
            position,
            1,
            format_timestamp(now()),
            "skipped",
            None,
            "the stored event cannot be decoded",
            0,
        )
        self.table.record(self.subscription.id, self.deliveries.owner, attempt)

    def deliver(self, position: int, event: SanctionsStream.Event) -> None:
        """Attempt until the receiver acknowledges the event (or the worker stops)."""
        subscription = self.subscription
        event_id = str(event.event_id)
        body = webhook_body(
            self.deliveries.log, self.deliveries.projector, subscription.id, position, event
        )
        attempt = self.first_attempt(event_id)
        while not self._stop.is_set():
            self.claim()
            answer, outcome = self.attempt(event_id, body)
            self.table.record(
                subscription.id,
                self.deliveries.owner,
                Attempt(
                    event_id,
                    position,
                    attempt,
                    format_timestamp(now()),
                    outcome,
                    answer.status_code,
                    answer.error,
                    answer.duration_ms,
                ),
            )
            if answer.delivered:
                return
            self.pause(self.policy.backoff(attempt))
            attempt += 1

    def attempt(self, event_id: str, body: str) -> tuple[Answer, str]:
        try:
            target = self.deliveries.allow.check(self.subscription.url)
        except TargetRefused as refused:
            return Answer(None, f"target refused: {refused}", 0), "refused"
        headers = signed_headers(self.subscription.secret, event_id, body, time.time())
        self._cutoff = cutoff = Cutoff()
        if self._stop.is_set():
            cutoff.cut("stopping")
        try:
            answer = post(target, headers, body, self.policy.timeout, cutoff)
        finally:
            self._cutoff = None
        return answer, "delivered" if answer.delivered else "failed"

    def first_attempt(self, event_id: str) -> int:
        """1, or one more than the last attempt at this event (before a restart)."""
        latest = self.table.latest_attempts(self.subscription.id, 1)
        if latest and latest[0].event_id == event_id and latest[0].outcome != "delivered":
            return latest[0].attempt + 1
        return 1

    def pause(self, seconds: float) -> None:
        """Sleep before a retry, keeping the lease (LeaseLost if it goes)."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(remaining, self.policy.lease_ms / 3000))
            if not self._stop.is_set() and time.monotonic() < deadline:
                self.claim()


def now() -> datetime:
    return datetime.now(UTC)
