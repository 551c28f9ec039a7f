"""The verifier keys that sign the log's checkpoints, kept beside them.

`log_signing_keys` lists every verifier key the log's checkpoints were signed with, in
the order they became current: the last is the key the service signs with now, the
earlier ones still verify the checkpoints signed before a rotation. Like the kept
checkpoints, it is not a read model, and no rebuild drops it. It holds public keys
only: the private key stays in its file, never in the database.
"""

from __future__ import annotations

from projections.tables import ReadModelTables

KEYS_DDL = (
    "CREATE TABLE IF NOT EXISTS {name} (serial BIGINT PRIMARY KEY,"
    " verifier {text} NOT NULL, added_at {text} NOT NULL)"
)


def signing_keys_ddl(tables: ReadModelTables) -> list[str]:
    return [KEYS_DDL.format(name=tables.qualified("log_signing_keys"), text=tables.text_type)]


class SigningKeys:
    """The log's verifier keys (their signed-note text), oldest first."""

    def __init__(self, tables: ReadModelTables) -> None:
        self.tables = tables

    def listed(self) -> list[str]:
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT verifier FROM {self.tables.qualified('log_signing_keys')} ORDER BY serial"
            )
            return [str(row["verifier"]) for row in cursor.fetchall()]

    def make_current(self, verifier: str, added_at: str, *, unless_listed: bool = False) -> bool:
        """Record `verifier` as the key the log's checkpoints are signed with from now on
        (if it is not already the current one; with `unless_listed`, only when no key is
        listed yet). Whether it did."""
        table = self.tables.qualified("log_signing_keys")
        with self.tables.transaction(commit=True) as cursor:
            cursor.execute(f"SELECT serial, verifier FROM {table} ORDER BY serial DESC LIMIT 1")
            row = cursor.fetchone()
            if row is not None and (unless_listed or row["verifier"] == verifier):
                return False
            serial = 1 if row is None else int(row["serial"]) + 1
            # Two processes adding at once: the primary key lets one of them in.
            cursor.execute(
                f"INSERT INTO {table} (serial, verifier, added_at) VALUES (?,?,?)"
                " ON CONFLICT (serial) DO NOTHING",
                (serial, verifier, added_at),
            )
            cursor.execute(f"SELECT verifier FROM {table} WHERE serial = ?", (serial,))
            row = cursor.fetchone()
            return row is not None and row["verifier"] == verifier

    def latest_checkpoint_note(self) -> str | None:
        """The note of the checkpoint signed last, if any was."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT note FROM {self.tables.qualified('log_checkpoints')}"
                " ORDER BY signed_at DESC, size DESC LIMIT 1"
            )
            row = cursor.fetchone()
        return None if row is None else str(row["note"])

    def replace_note(self, size: int, root: str, note: str) -> None:
        """Replace the note of a kept checkpoint by one that carries the same signatures
        and more (a rotation's co-signature)."""
        with self.tables.transaction(commit=True) as cursor:
            cursor.execute(
                f"UPDATE {self.tables.qualified('log_checkpoints')} SET note = ?"
                " WHERE size = ? AND root = ?",
                (note, size, root),
            )
