"""A DB-API-like cursor with `?` placeholders on either database, and transactions on a
recorder's own datastore."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

from eventsourcing.persistence import OperationalError, PersistenceError

Dialect = Literal["sqlite", "postgres"]
JUST_AFTER = timedelta(microseconds=1)
# `INSERT INTO <table> VALUES (?,?,…)` and nothing else (no column list, no ON CONFLICT).
PLAIN_INSERT = re.compile(r"INSERT INTO (\S+) VALUES \(\?(?:, ?\?)*\)")
# `DELETE FROM <table> WHERE <column> = ?`: one key a row.
DELETE_BY_KEY = re.compile(r"DELETE FROM (\S+) WHERE (\w+) = \?")
MULTI_ROW_INSERT = 500  # rows a statement at most
MAX_PARAMETERS = 65_535  # PostgreSQL's limit of parameters a statement


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
            if len(rows) > 1 and (plain := PLAIN_INSERT.fullmatch(statement)):
                self._insert_rows(plain[1], rows)
                return
            if len(rows) > 1 and (by_key := DELETE_BY_KEY.fullmatch(statement)):
                # One statement for every key (the same rows go as with one a key).
                table, column = by_key[1], by_key[2]
                self.raw.execute(
                    f"DELETE FROM {table} WHERE {column} = ANY(%s)", ([row[0] for row in rows],)
                )
                return
            statement = statement.replace("?", "%s")
        self.raw.executemany(statement, [tuple(row) for row in rows])

    def _insert_rows(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """A plain `INSERT INTO t VALUES (?, …)` of many rows as multi-row INSERTs: on
        PostgreSQL each row of an executemany is a statement the server executes (with
        its own bind and executor start-up), which cost more of the server's CPU than
        the rows themselves."""
        width = len(rows[0])
        per_statement = max(1, min(MULTI_ROW_INSERT, MAX_PARAMETERS // width))
        row_marks = "(" + ",".join(["%s"] * width) + ")"
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = ",".join([row_marks] * len(chunk))
            self.raw.execute(
                f"INSERT INTO {table} VALUES {values}", [v for row in chunk for v in row]
            )

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
