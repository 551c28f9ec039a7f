"""The read models' tables: their definitions, indexes, and the tracking record beside them.

`ReadModelTables` is the read side's one connection to its database: the library's
tracking recorder (each database's subclass is also one), the transactions that write
the read models, and their DDL. The status view, its Merkle tree and a rebuild's
shadow tables each hold it; none of them is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import Tracking

from domain.application import APPLICATION_NAME
from domain.store.sql import Cursor, Dialect, Transactions

TRACKED_APPLICATION = APPLICATION_NAME
OPEN_DATE = OPEN_TIME = "infinity"
"""An open end of an interval: no date or time is written so, and it sorts after all of
them (the columns are text compared byte by byte), so `valid_to > ?` still holds."""
READ_MODEL_FORMAT = 6
"""Raised whenever the read models' columns or encoding change: tables written in
another format are dropped and rebuilt from the log on start-up."""

TABLES = {
    "status_intervals": "CREATE TABLE IF NOT EXISTS {name} ("
    " stream {text} NOT NULL, authority {text} NOT NULL, country {text} NOT NULL,"
    " commodity {text} NOT NULL, valid_from {text} NOT NULL, valid_to {text} NOT NULL,"
    " status {text} NOT NULL, measures {text} NOT NULL, event_ids {text} NOT NULL,"
    " event_id {text} NOT NULL, tx_from {text} NOT NULL, tx_to {text} NOT NULL,"
    " in_force_since {text}, expires {text}, term_ended INTEGER NOT NULL)",
    "projected_entries": "CREATE TABLE IF NOT EXISTS {name} ("
    " event_id {text} PRIMARY KEY, stream {text} NOT NULL, version BIGINT NOT NULL,"
    " type {text} NOT NULL, effective_date {text} NOT NULL, measures {text} NOT NULL,"
    " expires {text}, renews {text})",
    "current_status": "CREATE TABLE IF NOT EXISTS {name} ("
    " stream {text} PRIMARY KEY, authority {text} NOT NULL, country {text} NOT NULL,"
    " commodity {text} NOT NULL, version BIGINT NOT NULL, last_position BIGINT NOT NULL,"
    " status {text} NOT NULL, measures {text} NOT NULL, since {text},"
    " event_ids {text} NOT NULL)",
    "log_leaves": "CREATE TABLE IF NOT EXISTS {name} ("
    " leaf_index {row_key} PRIMARY KEY, position BIGINT NOT NULL, event_id {text} NOT NULL,"
    " data {blob} NOT NULL)",
    "log_nodes": "CREATE TABLE IF NOT EXISTS {name} ("
    " level INTEGER NOT NULL, idx BIGINT NOT NULL, hash {blob} NOT NULL,"
    " PRIMARY KEY (level, idx)){without_rowid}",
}
INDEXES = (
    ("status_intervals_stream", "status_intervals", "stream, valid_from"),
    ("status_intervals_open", "status_intervals", "stream, tx_to"),
    ("status_intervals_country", "status_intervals", "country, commodity, valid_from"),
    ("status_intervals_authority", "status_intervals", "authority, valid_from"),
    ("projected_entries_stream", "projected_entries", "stream"),
    ("current_status_country", "current_status", "country, commodity"),
    ("log_leaves_event", "log_leaves", "event_id"),
)
READ_MODELS = (
    "status_intervals",
    "projected_entries",
    "current_status",
    "log_leaves",
    "log_nodes",
)
SHADOW_SUFFIX = "_rebuild"


class ReadModelTables(Transactions):
    """The read models' DDL, the transactions that write them, and the tracking record
    the library keeps beside them."""

    dialect: Dialect
    text_type: str
    blob_type: str
    row_key_type: str  # an integer primary key (SQLite: the rowid itself)
    without_rowid: str  # SQLite: a table clustered on its primary key
    _insert_tracking: Any  # the library's tracking recorder provides these two
    create_table: Callable[[], None]

    def read_model_statements(self) -> list[str]:
        return [self.table_ddl(table, table) for table in READ_MODELS] + self.index_ddl()

    def table_ddl(self, table: str, name: str) -> str:
        return TABLES[table].format(
            name=self.qualified(name),
            text=self.text_type,
            blob=self.blob_type,
            row_key=self.row_key_type,
            without_rowid=self.without_rowid,
        )

    def index_ddl(self) -> list[str]:
        return [
            f"CREATE INDEX IF NOT EXISTS {index} ON {self.qualified(table)} ({columns})"
            for index, table, columns in INDEXES
        ]

    @contextmanager
    def bulk_transaction(self) -> Iterator[Cursor]:
        """A transaction that writes a rebuild's shadow tables (nothing reads them before
        the swap, whose own transaction is as durable as any other)."""
        with self.transaction(commit=True) as cursor:
            yield cursor

    @contextmanager
    def projection_transaction(self) -> Iterator[Cursor]:
        """The transaction that projects a batch with its tracking record (everything in
        it can be projected again from the log)."""
        with self.transaction(commit=True) as cursor:
            yield cursor

    @contextmanager
    def swap_transaction(self) -> Iterator[Cursor]:
        """The transaction that swaps the shadow tables in and builds their indexes."""
        with self.transaction(commit=True) as cursor:
            yield cursor

    def bulk_insert(self, cursor: Cursor, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows to a table (unqualified name): one prepared statement executed per
        row; COPY on PostgreSQL."""
        if rows:
            marks = ",".join("?" * len(rows[0]))
            cursor.executemany(f"INSERT INTO {self.qualified(table)} VALUES ({marks})", rows)

    def bare(self, table: str) -> str:
        """A table's name as ALTER TABLE ... RENAME TO wants it (never qualified)."""
        return table

    def tracking_table(self) -> str:
        raise NotImplementedError

    def record_tracking(self, cursor: Cursor, tracking: Tracking) -> None:
        """Write the tracking record, inside the transaction that projected up to it."""
        self._insert_tracking(cursor.raw, tracking)

    def announce(self, cursor: Cursor, position: int) -> None:
        """Tell other processes, on commit, that the read models reached `position`
        (where the database can: PostgreSQL)."""

    def claim(self, cursor: Cursor) -> int:
        """Lock the tracking record for this transaction; the position it holds."""
        raise NotImplementedError

    def ensure_format(self, replaced: Callable[[Cursor], None]) -> None:
        """Drop read models written in another format (they are rebuilt from the log by
        the next catch-up) and record the current one, in one transaction; `replaced`
        is told, inside it, when the tables were replaced."""
        table = self.qualified("read_model_format")
        with self.transaction(commit=True) as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
        with self.transaction(commit=True) as cursor:
            self.lock(cursor, table)
            cursor.execute(f"SELECT version FROM {table}")
            row = cursor.fetchone()
            if row is not None and int(row["version"]) == READ_MODEL_FORMAT:
                return
            for name in READ_MODELS:
                cursor.execute(f"DROP TABLE IF EXISTS {self.qualified(name)}")
            for statement in self.read_model_statements():
                cursor.execute(statement)
            replaced(cursor)
            cursor.execute(
                f"DELETE FROM {self.tracking_table()} WHERE application_name = ?",
                (TRACKED_APPLICATION,),
            )
            cursor.execute(f"DELETE FROM {table}")
            cursor.execute(f"INSERT INTO {table} VALUES (?)", (READ_MODEL_FORMAT,))

    def lock(self, cursor: Cursor, table: str) -> None:
        """Hold `table` for this transaction against every other writer."""
        raise NotImplementedError

    def position(self, application_name: str = TRACKED_APPLICATION) -> int:
        """The position of the last event the read models have committed."""
        with self.autocommit() as cursor:
            cursor.execute(
                f"SELECT notification_id FROM {self.tracking_table()} WHERE application_name = ?",
                (application_name,),
            )
            row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])
