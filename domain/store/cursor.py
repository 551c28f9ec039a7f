"""A DB-API-like cursor with `?` placeholders on either database, and transactions on a
recorder's own datastore."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]
JUST_AFTER = timedelta(microseconds=1)


def as_bytes(value: Any) -> bytes:
    """A stored event's state; text when the column was rewritten behind our back."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class Cursor:
    """A DB-API-like cursor that takes `?` placeholders on either database."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        if self.dialect == "postgres":
            statement = statement.replace("?", "%s")
        self.raw.execute(statement, tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "postgres":
            statement = statement.replace("?", "%s")
        self.raw.executemany(statement, [tuple(row) for row in rows])

    def fetchall(self) -> list[Any]:
        return list(self.raw.fetchall())

    def fetchone(self) -> Any:
        return self.raw.fetchone()


class Transactions:
    """Transactions on a recorder's own datastore, with `?` placeholders either way."""

    dialect: Dialect
    datastore: Any  # the library's SQLiteDatastore or PostgresDatastore

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield Cursor(cursor, self.dialect)

    def qualified(self, table: str) -> str:
        """A table's name as statements spell it (schema-qualified on PostgreSQL)."""
        raise NotImplementedError
