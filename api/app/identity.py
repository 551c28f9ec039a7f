"""Who is calling: bearer tokens with roles, kept hashed, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from domain.store.tokens import StoredToken, TokenTable


class TokenError(ValueError):
    """A token or role cannot be used as given (a configuration or command error)."""


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
            raise TokenError(f"unknown role {value!r}: use reader, writer or admin") from None

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
            raise TokenError(
                "SANCTIONS_API_TOKENS: each entry must be name:role:token (the token is not shown)"
            )
        entries.append(TokenEntry(name, Role.parse(role), hash_token(token)))
    return entries


class TokenStore:
    """Tokens from the configuration and (hashed) in the service's own database."""

    def __init__(self, table: TokenTable, configured: str = "") -> None:
        self.table = table
        self.configured = parse_token_list(configured)
        names = [entry.name for entry in self.configured]
        twice = sorted({name for name in names if names.count(name) > 1})
        both = sorted(set(names) & {row.name for row in table.rows()})
        if twice or both:
            raise TokenError(
                "token names must be unique across SANCTIONS_API_TOKENS and stored tokens: "
                + ", ".join(f"{name!r}" for name in twice + both)
                + " named twice"
            )
        self._active: tuple[list[StoredToken], list[TokenEntry]] = ([], [])

    def stored(self) -> list[TokenEntry]:
        """The stored tokens that still work."""
        return self.working(self.table.rows())

    def create(self, name: str, role: Role) -> str:
        """Make a token for `name`; the only time its clear text exists is this answer."""
        if not name.strip() or ":" in name or "," in name:
            raise TokenError("a token name is non-empty, without ':' or ','")
        if any(entry.name == name for entry in self.configured):
            raise TokenError(f"a token named {name!r} is configured in SANCTIONS_API_TOKENS")
        token = "st_" + secrets.token_urlsafe(32)
        if not self.table.insert(name, role.label, hash_token(token), now()):
            raise TokenError(f"a token named {name!r} already exists")
        return token

    def listing(self) -> list[dict[str, str | None]]:
        """Every token's name, role, dates and source (never a token or its hash)."""
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
        stored: list[dict[str, str | None]] = [
            {
                "name": row.name,
                "role": row.role,
                "created_at": row.created_at,
                "revoked_at": row.revoked_at,
                "source": "database",
            }
            for row in self.table.rows()
        ]
        return configured + stored

    def revoke(self, name: str) -> None:
        """Stop the stored token `name` from working (it stays listed, as revoked)."""
        if any(entry.name == name for entry in self.configured):
            raise TokenError(
                f"{name!r} is configured in SANCTIONS_API_TOKENS, not stored: remove it "
                "there and restart the service to stop it working"
            )
        row = self.table.find(name)
        if row is None:
            raise TokenError(f"no stored token is named {name!r}")
        if row.revoked_at is not None:
            raise TokenError(f"the token {name!r} is already revoked")
        self.table.mark_revoked(name, now())

    def create_first_admin(self) -> str | None:
        """On first start with no tokens at all, an admin token (else None)."""
        if self.configured or not self.table.is_empty():
            return None
        return self.create("admin", Role.ADMIN)

    def is_revoked(self, token: str) -> bool:
        """Whether `token` is a stored token that was revoked."""
        presented = hash_token(token)
        return any(
            hmac.compare_digest(presented, row.token_hash)
            for row in self.table.rows()
            if row.revoked_at is not None
        )

    def authenticate(self, token: str) -> Caller | None:
        """The caller holding `token`, reading the stored tokens now."""
        presented = hash_token(token)
        return caller_for(presented, self.configured) or caller_for(
            presented, self.working(self.table.rows())
        )

    def cached_caller(self, token: str) -> Caller | None:
        """The caller holding `token` as far as the configuration and the in-memory copy of
        the stored tokens tell, while that copy is current (`TokenTable.cached_rows`); None
        when the table must be read to tell (`authenticate`). It never waits for the
        store's connection pool, so a request can ask it on the event loop."""
        presented = hash_token(token)
        found = caller_for(presented, self.configured)
        if found is not None:
            return found
        rows = self.table.cached_rows()
        return None if rows is None else caller_for(presented, self.working(rows))

    def working(self, rows: list[StoredToken]) -> list[TokenEntry]:
        """The entries of the stored tokens that still work, among `rows` (kept for the
        rows last asked about, which are the cached copy on every request)."""
        seen, entries = self._active
        if rows is not seen:
            entries = [
                TokenEntry(row.name, Role.parse(row.role), row.token_hash)
                for row in rows
                if row.revoked_at is None
            ]
            self._active = (rows, entries)
        return entries


def caller_for(presented: str, entries: list[TokenEntry]) -> Caller | None:
    """The caller whose token hashes to `presented`, comparing against every entry in
    constant time."""
    found: Caller | None = None
    for entry in entries:
        if hmac.compare_digest(presented, entry.token_hash) and found is None:
            found = Caller(entry.name, entry.role)
    return found


def now() -> str:
    return datetime.now(UTC).isoformat()
