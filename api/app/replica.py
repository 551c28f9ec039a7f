"""Reads from a PostgreSQL standby (`SANCTIONS_READ_DATABASE_URL`).

The standby holds a copy of everything: the log, and the read models the projector keeps
on the primary. A read answered there must still never change later and must reflect
every write acknowledged before it was asked, so before each read the primary is asked
two things at once (one short statement): its horizon (the latest moment settled) and how
far its WAL is written. Once the standby has replayed that far it holds every event
recorded by that horizon, and the read is answered there, settled at that horizon and at
what the standby's copy of the read models shows. A standby still behind after the
read-your-writes timeout leaves the read to the primary; a primary that cannot be reached
leaves it to the standby, settled at the last event the standby has replayed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from api.app.notary import Notary
from api.schemas.audit import ConsistencyOut, InclusionOut
from domain.application import SanctionsLog
from domain.checkpoints import Signer
from domain.errors import EventNotFound, NotInTree
from domain.store.config import DatabaseURLError
from projections.log.tree import StoredCheckpoint
from projections.projector import Projector
from projections.view import StatusView

if TYPE_CHECKING:
    from domain.store.postgres import PostgresSanctionsRecorder


def replication(log: SanctionsLog) -> PostgresSanctionsRecorder:
    """The log's recorder, which is PostgreSQL's wherever replicas are used."""
    return cast("PostgresSanctionsRecorder", log.store)


@dataclass
class StandbyNotary(Notary):
    """Proofs from the standby's copy of the Merkle tree. A standby cannot sign (signing
    keeps the checkpoint in the database): a checkpoint not yet on the standby is signed
    by the primary's notary, and a proof the standby's tree cannot give yet (a size or
    event it has not replayed) is answered by the primary's."""

    primary: Notary | None = None

    def _primary(self) -> Notary:
        assert self.primary is not None, "a standby's notary is built with the primary's"
        return self.primary

    @property
    def signer(self) -> Signer:
        return self._primary().signer

    def checkpoint(self) -> StoredCheckpoint:
        tree = self.projector.view.tree
        size = tree.tree_size()
        kept = tree.checkpoint_of(size, tree.tree_root(size).hex()) if size else None
        return kept or self._primary().checkpoint()

    def inclusion(self, event_id: UUID, size: int | None) -> InclusionOut:
        try:
            return super().inclusion(event_id, size)
        except (NotInTree, EventNotFound):
            return self._primary().inclusion(event_id, size)

    def consistency(self, old: int, new: int | None) -> ConsistencyOut:
        try:
            return super().consistency(old, new)
        except NotInTree:
            return self._primary().consistency(old, new)


@dataclass
class Replica:
    """The log and read models as a standby has them: read, never written."""

    log: SanctionsLog
    projector: Projector
    notary: StandbyNotary | None = None
    """Proofs and checkpoints from the standby (`attach` gives it the primary's notary)."""

    def attach(self, primary: Notary) -> None:
        self.notary = StandbyNotary(
            primary.key_file,
            primary.key_name,
            self.projector,
            embedded_projector=False,
            primary=primary,
        )

    @classmethod
    def open(cls, primary_url: str, read_url: str) -> Replica:
        if not all(url.split(":", 1)[0].startswith("postgres") for url in (primary_url, read_url)):
            raise DatabaseURLError(
                "SANCTIONS_READ_DATABASE_URL: reads from a standby need PostgreSQL for both "
                "SANCTIONS_DATABASE_URL and SANCTIONS_READ_DATABASE_URL"
            )
        log = SanctionsLog(read_url, replica=True)
        from projections.postgres import PostgresReadModelTables

        view = StatusView(PostgresReadModelTables(log.store.database().datastore))
        return cls(log, Projector(log, view))

    def behind(self, wal: str) -> int | None:
        """Bytes of the primary's WAL up to `wal` not yet replayed here (0: none)."""
        return replication(self.log).replay_behind(wal)

    def reached(self, wal: str, timeout: float) -> bool:
        """Whether the standby replays up to `wal` within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            if self.behind(wal) == 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)

    def close(self) -> None:
        self.log.close()


@dataclass(frozen=True)
class ReadPlace:
    """Where a read is answered (`on_standby`), at which horizon (None: the log's own)
    and why: `standby`, `primary_away` (the standby answers alone), `standby_behind` or
    `standby_away` (the primary answers)."""

    on_standby: bool
    horizon: datetime | None
    why: str


def place_read(log: SanctionsLog, replica: Replica, timeout: float) -> ReadPlace:
    """Where a read asked now is answered: on the standby once it has replayed what the
    primary had written when asked (waiting up to `timeout`), else on the primary."""
    try:
        horizon, wal = replication(log).replication_point()
    except PersistenceError:
        return ReadPlace(True, None, "primary_away")
    if wal is None:  # the primary's URL met a standby (a failover under way): read there
        return ReadPlace(False, None, "standby_behind")
    try:
        if replica.reached(wal, timeout):
            return ReadPlace(True, horizon, "standby")
    except PersistenceError:
        return ReadPlace(False, None, "standby_away")
    return ReadPlace(False, None, "standby_behind")
