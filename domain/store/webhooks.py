"""Webhook subscriptions and their delivery attempts, in the store's own database.

A subscription's `delivered_position` is its tracking record: the position of the last
event its receiver acknowledged. It moves only in the transaction that stores the
successful attempt, so a process killed at any instant resumes with the first event not
yet acknowledged (at least once, in position order). Which process delivers a
subscription is settled by a lease on its row (`lease_owner` until `lease_until_ms`),
claimed and renewed with a conditional update: any number of processes may share the
database, one of them delivers each subscription, and a dead one's lease runs out (or is
released at once by a process that knows its holder is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.store.sql import Cursor, Transactions

KEPT_ATTEMPTS = 100
"""Delivery attempts kept per subscription (older ones are deleted as new ones come)."""

TABLES = (
    "CREATE TABLE IF NOT EXISTS {subscriptions} ("
    " id TEXT PRIMARY KEY,"
    " url TEXT NOT NULL,"
    " authority TEXT,"
    " country TEXT,"
    " commodity TEXT,"
    " secret TEXT NOT NULL,"
    " created_at TEXT NOT NULL,"
    " created_by TEXT NOT NULL,"
    " deleted_at TEXT,"
    " delivered_position BIGINT NOT NULL,"
    " lease_owner TEXT,"
    " lease_until_ms BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS {attempts} ("
    " subscription_id TEXT NOT NULL,"
    " seq BIGINT NOT NULL,"
    " event_id TEXT NOT NULL,"
    " position BIGINT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " attempted_at TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " status_code INTEGER,"
    " error TEXT,"
    " duration_ms BIGINT NOT NULL,"
    " PRIMARY KEY (subscription_id, seq))",
)


@dataclass(frozen=True)
class Subscription:
    """One subscription as stored (its secret included: only the sender reads it)."""

    id: str
    url: str
    authority: str | None
    country: str | None
    commodity: str | None
    secret: str
    created_at: str
    created_by: str
    delivered_position: int


@dataclass(frozen=True)
class Attempt:
    """One attempt to deliver one event to one subscription."""

    event_id: str
    position: int
    attempt: int
    attempted_at: str
    outcome: str
    """`delivered` (a 2xx answer), `failed` (another status, a timeout, no connection) or
    `refused` (the target is not allowed now); `skipped` for an event that could not be
    decoded (the position moves past it)."""
    status_code: int | None
    error: str | None
    duration_ms: int


class LeaseLost(Exception):
    """Another process delivers this subscription now (or it was deleted)."""

    def __init__(self, subscription_id: str, holder: str | None = None) -> None:
        super().__init__(subscription_id)
        self.holder = holder
        """Who holds the lease (None: nobody, the subscription is gone)."""


class SubscriptionTable:
    """The `webhook_subscriptions` and `webhook_attempts` tables."""

    def __init__(self, store: Transactions) -> None:
        self.store = store
        self.table = store.qualified("webhook_subscriptions")
        self.attempts = store.qualified("webhook_attempts")
        self.create_tables()

    def create_tables(self) -> None:
        """Create the tables (again, after a database came back empty)."""
        with self.store.transaction(commit=True) as cursor:
            for statement in TABLES:
                cursor.execute(statement.format(subscriptions=self.table, attempts=self.attempts))

    def insert(self, subscription: Subscription) -> None:
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {self.table} (id, url, authority, country, commodity, secret,"
                " created_at, created_by, delivered_position) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    subscription.id,
                    subscription.url,
                    subscription.authority,
                    subscription.country,
                    subscription.commodity,
                    subscription.secret,
                    subscription.created_at,
                    subscription.created_by,
                    subscription.delivered_position,
                ),
            )

    def active(self) -> list[Subscription]:
        """Every subscription not deleted, oldest first."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.table} WHERE deleted_at IS NULL ORDER BY created_at, id"
            )
            return [_subscription(row) for row in cursor.fetchall()]

    def find(self, subscription_id: str) -> Subscription | None:
        """The subscription, unless unknown or deleted."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.table} WHERE id = ? AND deleted_at IS NULL",
                (subscription_id,),
            )
            row = cursor.fetchone()
        return None if row is None else _subscription(row)

    def mark_deleted(self, subscription_id: str, deleted_at: str) -> bool:
        """Delete the subscription (its row stays, marked); False if unknown or deleted."""
        with self.store.transaction(commit=True) as cursor:
            if _find_active(cursor, self.table, subscription_id) is None:
                return False
            cursor.execute(
                f"UPDATE {self.table} SET deleted_at = ?, lease_owner = NULL WHERE id = ?",
                (deleted_at, subscription_id),
            )
        return True

    def latest_attempts(self, subscription_id: str, limit: int = KEPT_ATTEMPTS) -> list[Attempt]:
        """The latest attempts, newest first."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.attempts} WHERE subscription_id = ?"
                " ORDER BY seq DESC LIMIT ?",
                (subscription_id, limit),
            )
            return [_attempt(row) for row in cursor.fetchall()]

    # The deliverer's side

    def claim(self, subscription_id: str, owner: str, now_ms: int, lease_ms: int) -> int:
        """Take or renew the lease on delivering the subscription until `now_ms + lease_ms`;
        the position delivered so far. LeaseLost when another process holds a live
        lease, or the subscription is deleted."""
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET lease_owner = ?, lease_until_ms = ?"
                " WHERE id = ? AND deleted_at IS NULL"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_until_ms < ?)",
                (owner, now_ms + lease_ms, subscription_id, owner, now_ms),
            )
            row = _find_active(cursor, self.table, subscription_id)
        if row is None or row["lease_owner"] != owner:
            raise LeaseLost(subscription_id, None if row is None else row["lease_owner"])
        return int(row["delivered_position"])

    def release(self, subscription_id: str, owner: str) -> None:
        """Give the lease up (a process stopping), so another may take over at once."""
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET lease_owner = NULL, lease_until_ms = 0"
                " WHERE id = ? AND lease_owner = ?",
                (subscription_id, owner),
            )

    def lease_holders(self) -> list[str]:
        """Every owner holding a lease on a live subscription (expired or not)."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT DISTINCT lease_owner FROM {self.table}"
                " WHERE lease_owner IS NOT NULL AND deleted_at IS NULL"
            )
            return [row["lease_owner"] for row in cursor.fetchall()]

    def release_all(self, owner: str) -> int:
        """Give up every lease `owner` holds (a process known to be gone), so that another
        may take over at once; how many there were."""
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(
                f"SELECT COUNT(*) AS n FROM {self.table} WHERE lease_owner = ?", (owner,)
            )
            count = int(cursor.fetchone()["n"])
            cursor.execute(
                f"UPDATE {self.table} SET lease_owner = NULL, lease_until_ms = 0"
                " WHERE lease_owner = ?",
                (owner,),
            )
        return count

    def record(self, subscription_id: str, owner: str, attempt: Attempt) -> None:
        """Store an attempt and, when it delivered its event, move the subscription's
        position to it, in one transaction; LeaseLost (nothing stored) if `owner` no
        longer holds the lease."""
        with self.store.transaction(commit=True) as cursor:
            # A write first: it locks the row (PostgreSQL) or the database (SQLite).
            cursor.execute(
                f"UPDATE {self.table} SET lease_owner = lease_owner WHERE id = ?",
                (subscription_id,),
            )
            row = _find_active(cursor, self.table, subscription_id)
            if row is None or row["lease_owner"] != owner:
                raise LeaseLost(subscription_id)
            if attempt.outcome in ("delivered", "skipped"):
                cursor.execute(
                    f"UPDATE {self.table} SET delivered_position = ?"
                    " WHERE id = ? AND delivered_position < ?",
                    (attempt.position, subscription_id, attempt.position),
                )
            cursor.execute(
                f"SELECT COALESCE(MAX(seq), 0) AS seq FROM {self.attempts}"
                " WHERE subscription_id = ?",
                (subscription_id,),
            )
            seq = int(cursor.fetchone()["seq"]) + 1
            cursor.execute(
                f"INSERT INTO {self.attempts} VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    subscription_id,
                    seq,
                    attempt.event_id,
                    attempt.position,
                    attempt.attempt,
                    attempt.attempted_at,
                    attempt.outcome,
                    attempt.status_code,
                    attempt.error,
                    attempt.duration_ms,
                ),
            )
            cursor.execute(
                f"DELETE FROM {self.attempts} WHERE subscription_id = ? AND seq <= ?",
                (subscription_id, seq - KEPT_ATTEMPTS),
            )


def _find_active(cursor: Cursor, table: str, subscription_id: str) -> Any:
    cursor.execute(
        f"SELECT lease_owner, delivered_position FROM {table} WHERE id = ? AND deleted_at IS NULL",
        (subscription_id,),
    )
    return cursor.fetchone()


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row["id"],
        url=row["url"],
        authority=row["authority"],
        country=row["country"],
        commodity=row["commodity"],
        secret=row["secret"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        delivered_position=int(row["delivered_position"]),
    )


def _attempt(row: Any) -> Attempt:
    return Attempt(
        event_id=row["event_id"],
        position=int(row["position"]),
        attempt=int(row["attempt"]),
        attempted_at=row["attempted_at"],
        outcome=row["outcome"],
        status_code=None if row["status_code"] is None else int(row["status_code"]),
        error=row["error"],
        duration_ms=int(row["duration_ms"]),
    )
