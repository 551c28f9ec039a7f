"""The status view on SQLite, on the library's SQLite tracking recorder."""

from __future__ import annotations

from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from domain.store.sql import Cursor, Dialect
from projections.tables import TRACKED_APPLICATION
from projections.view import StatusView


class SQLiteStatusView(StatusView, SQLiteTrackingRecorder):
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
            *self.checkpoints_ddl(),
        ]

    def qualified(self, table: str) -> str:
        return table

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
