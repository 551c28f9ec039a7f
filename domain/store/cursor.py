"""A DB-API-like cursor with `?` placeholders on either database, and transactions on a
recorder's own datastore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

from eventsourcing.persistence import OperationalError, PersistenceError

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

    @contextmanager
    def autocommit(self) -> Iterator[Cursor]:
        """A cursor whose every statement is a transaction of its own: for a read of one
        statement, without the BEGIN and ROLLBACK around it (two round trips fewer on
        PostgreSQL). Errors are the library's, as from `transaction`."""
        if self.dialect == "postgres":
            with self.datastore.get_connection() as conn:
                yield Cursor(conn.cursor(), self.dialect)
            return
        with self.datastore.get_connection(commit=False) as conn:
            try:
                yield Cursor(conn._sqlite_conn.cursor(), self.dialect)
            except sqlite3.OperationalError as error:
                raise OperationalError(error) from error
            except sqlite3.Error as error:
                raise PersistenceError(error) from error

    def qualified(self, table: str) -> str:
        """A table's name as statements spell it (schema-qualified on PostgreSQL)."""
        raise NotImplementedError
