"""The API token table, beside the events: names, roles and hashes, never a token.

Every authenticated request needs the stored tokens, so they are kept in memory while
nothing can have changed them: creating or revoking a token forgets them at once in its
own process, and other processes learn of it through the store. On PostgreSQL the
change's transaction NOTIFYs the `tokens` channel and a process forgets its copy when
its listener hears it (`Signals.seen("tokens")` moved); on SQLite, which cannot notify,
each use first reads a fingerprint of the table (row count and revoked count: tokens are
never deleted or un-revoked) on a connection of its own, a few microseconds that never
wait for the store's pool. Either way the copy is also dropped after `MAX_AGE` seconds.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.store.sql import Cursor, Transactions

if TYPE_CHECKING:
    from domain.store.signals import Signals

TOKENS_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    " name TEXT PRIMARY KEY,"
    " role TEXT NOT NULL,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " created_at TEXT NOT NULL,"
    " revoked_at TEXT)"
)
MAX_AGE = 1.0
"""Seconds a copy of the table is used at most, should a change go unheard (a PostgreSQL
listener reconnecting, say)."""
SQLITE_BUSY_SECONDS = 0.05
"""How long the fingerprint waits for a locked SQLite file before giving up (the copy is
then simply not used)."""


@dataclass(frozen=True)
class StoredToken:
    """One row of the token table."""

    name: str
    role: str
    token_hash: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class _Copy:
    rows: list[StoredToken]
    forgotten: int  # `TokenTable.forgotten` when it was read
    mark: object  # the change counter or fingerprint read before the rows
    read_at: float


class TokenTable:
    """The `api_tokens` table in the store's own database, and a copy of it in memory."""

    def __init__(self, store: Transactions, signals: Signals | None = None) -> None:
        self.store = store
        self.table = store.qualified("api_tokens")
        self.signals = signals if signals is not None and signals.listening else None
        self.channel = _notify_channel(store)
        self.forgotten = 0
        """How many times this process changed the table (each forgets the copy)."""
        self._copy: _Copy | None = None
        self._fingerprints = _Fingerprints(store, self.table) if self.signals is None else None
        with store.transaction(commit=True) as cursor:
            cursor.execute(TOKENS_TABLE.format(table=self.table))

    def rows(self) -> list[StoredToken]:
        """Every stored token, revoked ones included, by name (read now; the copy is
        refreshed)."""
        mark = self._mark()
        forgotten = self.forgotten
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {self.table} ORDER BY name")
            rows = [
                StoredToken(
                    row["name"],
                    row["role"],
                    row["token_hash"],
                    row["created_at"],
                    row["revoked_at"],
                )
                for row in cursor.fetchall()
            ]
        if mark is not None:
            self._copy = _Copy(rows, forgotten, mark, time.monotonic())
        return rows

    def cached_rows(self) -> list[StoredToken] | None:
        """The rows as last read, when nothing can have changed them since; None when they
        must be read again (`rows`). Never waits for the store's connection pool."""
        copy = self._copy
        if (
            copy is None
            or copy.forgotten != self.forgotten
            or time.monotonic() - copy.read_at > MAX_AGE
            or self._mark() != copy.mark
        ):
            return None
        return copy.rows

    def _mark(self) -> object:
        """What tells a change by another process: the `tokens` signal count, or the
        table's fingerprint (None when it cannot be read: no copy is kept)."""
        if self.signals is not None:
            return self.signals.seen("tokens")
        assert self._fingerprints is not None
        return self._fingerprints.read()

    def forget(self) -> None:
        """Drop the copy: this process has just changed the table."""
        self.forgotten += 1
        self._copy = None

    def find(self, name: str) -> StoredToken | None:
        return next((row for row in self.rows() if row.name == name), None)

    def is_empty(self) -> bool:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table}")
            return int(cursor.fetchone()["n"]) == 0

    def insert(self, name: str, role: str, token_hash: str, created_at: str) -> bool:
        """Store a new token; False (and nothing stored) if the name is taken."""
        try:
            with self.store.transaction(commit=True) as cursor:
                cursor.execute(f"SELECT 1 FROM {self.table} WHERE name = ?", (name,))
                if cursor.fetchone() is not None:
                    return False
                cursor.execute(
                    f"INSERT INTO {self.table} VALUES (?,?,?,?,NULL)",
                    (name, role, token_hash, created_at),
                )
                self._announce(cursor)
        finally:
            self.forget()
        return True

    def mark_revoked(self, name: str, revoked_at: str) -> None:
        try:
            with self.store.transaction(commit=True) as cursor:
                cursor.execute(
                    f"UPDATE {self.table} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                    (revoked_at, name),
                )
                self._announce(cursor)
        finally:
            self.forget()

    def _announce(self, cursor: Cursor) -> None:
        """Tell every process listening on the database, once this transaction commits."""
        if self.channel is not None:
            cursor.execute("SELECT pg_notify(?, ?)", (self.channel, ""))


def _notify_channel(store: Transactions) -> str | None:
    """The NOTIFY channel for token changes (PostgreSQL only)."""
    if store.dialect != "postgres":
        return None
    from domain.store.postgres import PostgresSanctionsRecorder

    if not isinstance(store, PostgresSanctionsRecorder):
        return None
    return store.signal_names()["tokens"]


class _Fingerprints:
    """SQLite: the token table's row and revoked counts, read on a connection of this
    process's own in autocommit (a WAL reader: it waits for no writer)."""

    def __init__(self, store: Transactions, table: str) -> None:
        pool = getattr(store.datastore, "pool", None)
        db_name: str | None = getattr(pool, "db_name", None)
        memory = getattr(pool, "is_sqlite_memory_mode", True)
        self.db_name = None if memory else db_name
        self.statement = f"SELECT COUNT(*), COUNT(revoked_at) FROM {table}"
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def read(self) -> tuple[int, int] | None:
        if self.db_name is None:  # an in-memory database: nothing to share, keep no copy
            return None
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = sqlite3.connect(
                        self.db_name,
                        timeout=SQLITE_BUSY_SECONDS,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                row = self._connection.execute(self.statement).fetchone()
            except sqlite3.Error:
                self._connection = None
                return None
        return int(row[0]), int(row[1])
