"""The API token table, beside the events: names, roles and hashes, never a token."""

from __future__ import annotations

from dataclasses import dataclass

from domain.store.sql import Transactions

TOKENS_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    " name TEXT PRIMARY KEY,"
    " role TEXT NOT NULL,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " created_at TEXT NOT NULL,"
    " revoked_at TEXT)"
)


@dataclass(frozen=True)
class StoredToken:
    """One row of the token table."""

    name: str
    role: str
    token_hash: str
    created_at: str
    revoked_at: str | None


class TokenTable:
    """The `api_tokens` table in the store's own database."""

    def __init__(self, store: Transactions) -> None:
        self.store = store
        self.table = store.qualified("api_tokens")
        with store.transaction(commit=True) as cursor:
            cursor.execute(TOKENS_TABLE.format(table=self.table))

    def rows(self) -> list[StoredToken]:
        """Every stored token, revoked ones included, by name."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {self.table} ORDER BY name")
            return [
                StoredToken(
                    row["name"],
                    row["role"],
                    row["token_hash"],
                    row["created_at"],
                    row["revoked_at"],
                )
                for row in cursor.fetchall()
            ]

    def find(self, name: str) -> StoredToken | None:
        return next((row for row in self.rows() if row.name == name), None)

    def is_empty(self) -> bool:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table}")
            return int(cursor.fetchone()["n"]) == 0

    def insert(self, name: str, role: str, token_hash: str, created_at: str) -> bool:
        """Store a new token; False (and nothing stored) if the name is taken."""
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(f"SELECT 1 FROM {self.table} WHERE name = ?", (name,))
            if cursor.fetchone() is not None:
                return False
            cursor.execute(
                f"INSERT INTO {self.table} VALUES (?,?,?,?,NULL)",
                (name, role, token_hash, created_at),
            )
        return True

    def mark_revoked(self, name: str, revoked_at: str) -> None:
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (revoked_at, name),
            )
