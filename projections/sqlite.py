"""The read models' tables on SQLite: the library's SQLite tracking recorder, with the
read models' DDL and transactions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from domain.store.sql import Cursor, Dialect
from projections.log.signing_keys import signing_keys_ddl
from projections.log.tree import checkpoints_ddl
from projections.tables import TRACKED_APPLICATION, ReadModelTables

SWAP_CACHE = -32_000
"""KiB of page cache while the swap builds the indexes (the default: 2,000)."""


class SQLiteReadModelTables(ReadModelTables, SQLiteTrackingRecorder):
    dialect: Dialect = "sqlite"
    text_type = "TEXT"
    blob_type = "BLOB"
    row_key_type = "INTEGER"
    without_rowid = " WITHOUT ROWID"

    def __init__(self, datastore: SQLiteDatastore) -> None:
        super().__init__(datastore)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *self.read_model_statements(),
            *checkpoints_ddl(self),
            *signing_keys_ddl(self),
        ]

    def qualified(self, table: str) -> str:
        return table

    @contextmanager
    def bulk_transaction(self) -> Iterator[Cursor]:
        # synchronous=NORMAL: in WAL mode a commit is not synced to disk (a checkpoint
        # is), and a crash never corrupts the database: it may lose the last shadow
        # writes, which no swap follows then.
        with self.pragmas(synchronous="NORMAL", secure_delete="OFF") as cursor:
            yield cursor

    @contextmanager
    def projection_transaction(self) -> Iterator[Cursor]:
        # Not synced at its commit either (WAL, synchronous=NORMAL): a power loss may
        # roll back the last batches projected, tracking record and all, and the
        # projector projects them again from the log, whose own commits stay synced.
        with self.pragmas(synchronous="NORMAL") as cursor:
            yield cursor

    @contextmanager
    def swap_transaction(self) -> Iterator[Cursor]:
        # As durable as any transaction. secure_delete is compiled in: dropping the
        # replaced read models would overwrite every page they held (~1.25 GB at 1M
        # events) with zeros; their data is all in the log, kept in this same file.
        # The index builds sort with a helper thread and a larger cache.
        with self.pragmas(secure_delete="OFF", threads="2", cache_size=str(SWAP_CACHE)) as cursor:
            yield cursor

    @contextmanager
    def pragmas(self, **settings: str) -> Iterator[Cursor]:
        """A write transaction on a connection with these settings, restored after it."""
        with self.datastore.get_connection(commit=True) as connection:
            raw = connection._sqlite_conn
            before = {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in settings}
            try:
                for name, value in settings.items():
                    raw.execute(f"PRAGMA {name}={value}")
                with connection.transaction(commit=True) as cursor:
                    yield Cursor(cursor, self.dialect)
            finally:
                for name, value in before.items():
                    raw.execute(f"PRAGMA {name}={value}")

    def tracking_table(self) -> str:
        return "tracking"

    def lock(self, cursor: Cursor, table: str) -> None:
        # SQLite has one write lock per database: a write takes it for the transaction.
        cursor.execute(f"DELETE FROM {table} WHERE 0")

    def claim(self, cursor: Cursor) -> int:
        # A write first, so the transaction holds SQLite's write lock before it reads.
        cursor.execute(
            "UPDATE tracking SET notification_id = notification_id WHERE application_name = ?",
            (TRACKED_APPLICATION,),
        )
        cursor.execute(
            "SELECT notification_id FROM tracking WHERE application_name = ?",
            (TRACKED_APPLICATION,),
        )
        row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])
