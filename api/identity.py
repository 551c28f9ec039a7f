"""Who is calling: bearer tokens with roles, kept hashed, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from domain.errors import InvalidInput
from domain.persistence import SanctionsRecorderMixin


class Role(IntEnum):
    """Roles nest: admin ⊃ writer ⊃ reader."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise InvalidInput(
                "role", f"unknown role {value!r}: use reader, writer or admin"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its name is what events record as `recorded_by`."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role >= needed


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: Role
    token_hash: str


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token_list(configured: str) -> list[TokenEntry]:
    """Entries of SANCTIONS_API_TOKENS (`name:role:token,…`)."""
    entries = []
    for item in filter(None, (part.strip() for part in configured.split(","))):
        name, sep, rest = item.partition(":")
        role, sep2, token = rest.partition(":")
        if not (sep and sep2 and name and token):
            raise InvalidInput(
                "SANCTIONS_API_TOKENS",
                "each entry must be name:role:token (the token is not shown)",
            )
        entries.append(TokenEntry(name, Role.parse(role), hash_token(token)))
    return entries


TOKENS_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    " name TEXT PRIMARY KEY,"
    " role TEXT NOT NULL,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " created_at TEXT NOT NULL,"
    " revoked_at TEXT)"
)


class TokenStore:
    """Tokens kept (hashed) in the service's own database, beside its data."""

    def __init__(self, store: SanctionsRecorderMixin, configured: str = "") -> None:
        self.store = store
        self.table = store.qualified("api_tokens")
        self.configured = parse_token_list(configured)
        with store.transaction(commit=True) as cursor:
            cursor.execute(TOKENS_TABLE.format(table=self.table))

    def stored(self) -> list[TokenEntry]:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT name, role, token_hash FROM {self.table} WHERE revoked_at IS NULL"
            )
            rows = cursor.fetchall()
        return [TokenEntry(row["name"], Role.parse(row["role"]), row["token_hash"]) for row in rows]

    def has_any(self) -> bool:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table}")
            return int(cursor.fetchone()["n"]) > 0

    def create(self, name: str, role: Role) -> str:
        """Make a token for `name`; the only time its clear text exists is this answer."""
        if not name.strip() or ":" in name or "," in name:
            raise InvalidInput("name", "a token name is non-empty, without ':' or ','")
        token = "st_" + secrets.token_urlsafe(32)
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(f"SELECT 1 FROM {self.table} WHERE name = ?", (name,))
            if cursor.fetchone() is not None:
                raise InvalidInput("name", f"a token named {name!r} already exists")
            cursor.execute(
                f"INSERT INTO {self.table} VALUES (?,?,?,?,NULL)",
                (name, role.label, hash_token(token), datetime.now(UTC).isoformat()),
            )
        return token

    def listing(self) -> list[dict[str, str | None]]:
        """Every stored token's name, role and dates (never its hash)."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT name, role, created_at, revoked_at FROM {self.table} ORDER BY name"
            )
            rows = cursor.fetchall()
        stored = [
            {
                "name": row["name"],
                "role": row["role"],
                "created_at": row["created_at"],
                "revoked_at": row["revoked_at"],
                "source": "database",
            }
            for row in rows
        ]
        configured: list[dict[str, str | None]] = [
            {
                "name": entry.name,
                "role": entry.role.label,
                "created_at": None,
                "revoked_at": None,
                "source": "SANCTIONS_API_TOKENS",
            }
            for entry in self.configured
        ]
        return configured + stored

    def revoke(self, name: str) -> None:
        """Stop the stored token `name` from working (it stays listed, as revoked)."""
        with self.store.transaction(commit=True) as cursor:
            cursor.execute(
                f"SELECT revoked_at FROM {self.table} WHERE name = ?",
                (name,),
            )
            row = cursor.fetchone()
            if row is None:
                raise InvalidInput("name", f"no stored token is named {name!r}")
            if row["revoked_at"] is not None:
                raise InvalidInput("name", f"the token {name!r} is already revoked")
            cursor.execute(
                f"UPDATE {self.table} SET revoked_at = ? WHERE name = ?",
                (datetime.now(UTC).isoformat(), name),
            )

    def create_first_admin(self) -> str | None:
        """On first start with no tokens at all, an admin token (else None)."""
        if self.configured or self.has_any():
            return None
        return self.create("admin", Role.ADMIN)

    def authenticate(self, token: str) -> Caller | None:
        """The caller holding `token`, comparing against every entry in constant time."""
        presented = hash_token(token)
        found: Caller | None = None
        for entry in [*self.configured, *self.stored()]:
            if hmac.compare_digest(presented, entry.token_hash) and found is None:
                found = Caller(entry.name, entry.role)
        return found
