"""The projector: feeds the log, in position order and in batches, to the status view.

The library's `ProjectionRunner` needs `subscribe()`, which its SQLite recorder does
not have, and it commits one event per transaction. This runner is a catch-up loop
over `select_notifications` that works on both databases, commits many events with
one tracking record per transaction, and lets a writer in the same process project
its own event before answering (read-your-writes without a fixed sleep).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from eventsourcing.persistence import IntegrityError, Tracking

from domain.application import SanctionsLog
from domain.store.records import TrackedPosition
from domain.stream import SanctionsStream
from projections.rebuild import rebuild_shadow
from projections.tables import TRACKED_APPLICATION
from projections.view import ProjectionMoved, StatusView

logger = logging.getLogger("sanctions.projector")
Progress = Callable[[int, int], None]
RETRY_FIRST, RETRY_MOST = 0.5, 8.0
"""Seconds before the projector tries again after a failure: doubling from the first to
the most while it keeps failing (the database away), so that it neither waits for the
next event nor fills its log."""


class Companion(Protocol):
    """Work that runs wherever the projector runs, behind it (webhook deliveries)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def open_view(log: SanctionsLog) -> StatusView:
    """The status view in the same database (and connection pool) as the log."""
    database = log.store.database()
    datastore = database.datastore
    view: StatusView
    if database.dialect == "sqlite":
        from projections.sqlite import SQLiteReadModelTables

        view = StatusView(SQLiteReadModelTables(datastore))
    else:
        from projections.postgres import PostgresReadModelTables

        view = StatusView(PostgresReadModelTables(datastore))
    view.create_table()
    view.ensure_format()
    return view


class RebuildInProgress(Exception):
    """A rebuild was asked for while another one is running."""


@dataclass(frozen=True)
class RebuildReport:
    events: int
    seconds: float
    rows: dict[str, int]


class Projector:
    """Keeps the status view caught up with the log."""

    def __init__(self, log: SanctionsLog, view: StatusView, *, batch_size: int = 1000) -> None:
        self.log = log
        self.view = view
        self.batch_size = batch_size
        self._lock = threading.RLock()  # a rebuild's swap holds it, then catches up
        self._rebuilding = threading.Lock()
        self.signals = log.signals
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.projected = 0
        """A position this process has seen the view reach (the view's tracking record
        only moves forward, but for a rebuild's swap, which resets this): a writer
        whose event is at or before it needs no query to know it is shown."""
        self.companions: list[Companion] = []
        """Started after the projector (`sanctions serve`, `sanctions project`), stopped
        before it."""

    def position(self) -> int:
        """The position of the last event the view has committed."""
        position = self.view.position(TRACKED_APPLICATION)
        self.projected = max(self.projected, position)
        return position

    def lag(self) -> int:
        """Events recorded but not yet projected."""
        return max(0, (self.log.recorder.max_notification_id() or 0) - self.position())

    def oldest_unprojected(self) -> datetime | None:
        """When the oldest event not yet projected was recorded (None: caught up)."""
        # One statement: where the view stands, and the first event after it.
        tracked = TrackedPosition(self.view.tracking_table(), TRACKED_APPLICATION)
        first = self.log.store.first_after(tracked)
        if first is None:
            return None
        event = self.log.decode_tolerantly(first.stored)
        return None if event is None else event.recorded_at

    def lag_detail(self) -> tuple[int, datetime | None]:
        """Events not yet projected, and when the oldest of them was recorded."""
        oldest = self.oldest_unprojected()
        if oldest is None:
            return 0, None
        return self.lag(), oldest

    def catch_up(
        self,
        *,
        batch_size: int | None = None,
        progress: Progress | None = None,
        reaching: int | None = None,
    ) -> int:
        """Project everything recorded so far; the number of events projected. With
        `reaching`: nothing to do (and no query) once the view is known to have reached
        that position, as after another writer's catch-up."""
        size = batch_size or self.batch_size
        done = 0
        if reaching is not None and self.projected >= reaching:
            return 0
        with self._lock:
            if reaching is not None and self.projected >= reaching:
                return 0  # caught up by the thread that held the lock
            # Where the view stands: as last seen here (the batch's tracking check
            # says if another process has moved it since), else asked.
            position = self.projected or self.position()
            while True:
                events, last = self._following(position, size)
                if last is None:
                    break
                try:
                    self.view.project_batch(
                        events, Tracking(TRACKED_APPLICATION, last), expected_position=position
                    )
                except (ProjectionMoved, IntegrityError):
                    position = self.position()  # another projector got there first
                    continue
                position = self.projected = last
                done += len(events)
                if progress is not None:
                    progress(done, last)
                self.signals.wake("projected")
                if reaching is not None and last >= reaching:
                    break  # what was asked is shown; later events are the next one's to do
        return done

    def _following(
        self, position: int, size: int
    ) -> tuple[list[tuple[SanctionsStream.Event, int]], int | None]:
        """The next events after `position` (up to `size`) and the position of the last
        one looked at (None: nothing follows). Events this process has just committed
        come from memory; any others are read from the store."""
        recent = self.log.recent.following(position, size)
        if recent:
            return [(found.event, found.position) for found in recent], recent[-1].position
        notifications = self.log.recorder.select_notifications(
            start=position, limit=size, inclusive_of_start=False
        )
        if not notifications:
            return [], None
        events = [
            (event, notification.id)
            for notification in notifications
            if (event := self.log.decode_tolerantly(notification)) is not None
        ]
        return events, notifications[-1].id

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until the view has projected `position`, woken by the projector (in this
        process, or through the database's notifications) or else polling."""
        if self.projected >= position:
            return True
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            seen = self.signals.seen("projected")
            if self.position() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Notified: a long wait is only a safety net; else poll, backing off.
            wait = 1.0 if self.signals.listening else pause
            self.signals.wait("projected", min(remaining, wait), since=seen)
            pause = min(pause * 2, 0.05)

    def rebuild(self, *, batch_size: int = 5000, progress: Progress | None = None) -> RebuildReport:
        """Rebuild every read model from the log into shadow tables, stream by stream
        (no read-model look-ups, indexes built once at the end), and the log's Merkle
        tree in position order, then swap them in
        with the tracking record in one transaction and catch up with what was
        recorded meanwhile. Reads keep their answers until the swap; a rebuild that
        dies half-way leaves the read models as they were. One rebuild at a time:
        RebuildInProgress while another runs."""
        if not self._rebuilding.acquire(blocking=False):
            raise RebuildInProgress("a rebuild of the read models is already running")
        try:
            return self._rebuild(batch_size, progress)
        finally:
            self._rebuilding.release()

    def _rebuild(self, batch_size: int, progress: Progress | None) -> RebuildReport:
        started = time.perf_counter()
        snapshot = self.log.recorder.max_notification_id() or 0
        done = rebuild_shadow(self.log, self.view.shadow, snapshot, batch_size, progress)
        with self._lock:  # held until caught up: the rebuild projects what came meanwhile
            self.view.shadow.swap_shadow(TRACKED_APPLICATION, snapshot)
            self.view.forget_records()
            self.projected = 0  # the view is at the snapshot now: look again
            done += self.catch_up()
        if progress is not None:
            progress(done, snapshot)
        return RebuildReport(done, time.perf_counter() - started, self.view.counts())

    # Running in the background

    def start(self, poll_interval: float = 0.25) -> None:
        """Catch up now, then keep catching up in a thread until `stop()`."""
        self.catch_up()
        self._thread = threading.Thread(
            target=self.run, args=(poll_interval,), name="projector", daemon=True
        )
        self._thread.start()
        for companion in self.companions:
            companion.start()

    def run(self, poll_interval: float = 0.25) -> None:
        """Catch up whenever an event is recorded (notified) or every `poll_interval`
        seconds where the database cannot notify, until stopped."""
        wait = max(poll_interval, 1.0) if self.signals.listening else poll_interval
        pause = RETRY_FIRST
        while not self._stop.is_set():
            seen = self.signals.seen("events")
            try:
                self.catch_up()
            except Exception:
                logger.exception("projector failed; retrying in %s s", pause)
                # Not caught up: tried again after a pause, not at the next event, which
                # may be long in coming (`sanctions project --poll 30` with no writes).
                self._stop.wait(pause)
                pause = min(pause * 2, RETRY_MOST)
                continue
            pause = RETRY_FIRST
            self.signals.wait("events", wait, since=seen)

    def stop(self) -> None:
        for companion in self.companions:
            companion.stop()
        self._stop.set()
        self.signals.wake("events")
        if self._thread is not None:
            self._thread.join(timeout=30)
