"""The read models' tables: their definitions, indexes, and the tracking record beside them."""

from __future__ import annotations

from typing import Any

from domain.application import APPLICATION_NAME
from domain.store.sql import Cursor, Dialect, Transactions

TRACKED_APPLICATION = APPLICATION_NAME
OPEN_DATE = "9999-12-31"
OPEN_TIME = "9999-12-31T23:59:59.999999Z"

TABLES = {
    "status_intervals": "CREATE TABLE IF NOT EXISTS {name} ("
    " stream {text} NOT NULL, authority {text} NOT NULL, country {text} NOT NULL,"
    " commodity {text} NOT NULL, valid_from {text} NOT NULL, valid_to {text} NOT NULL,"
    " status {text} NOT NULL, measures {text} NOT NULL, event_ids {text} NOT NULL,"
    " event_id {text} NOT NULL, tx_from {text} NOT NULL, tx_to {text} NOT NULL)",
    "projected_entries": "CREATE TABLE IF NOT EXISTS {name} ("
    " event_id {text} PRIMARY KEY, stream {text} NOT NULL, version BIGINT NOT NULL,"
    " type {text} NOT NULL, effective_date {text} NOT NULL, measures {text} NOT NULL)",
    "current_status": "CREATE TABLE IF NOT EXISTS {name} ("
    " stream {text} PRIMARY KEY, authority {text} NOT NULL, country {text} NOT NULL,"
    " commodity {text} NOT NULL, version BIGINT NOT NULL, last_position BIGINT NOT NULL,"
    " status {text} NOT NULL, measures {text} NOT NULL, since {text},"
    " event_ids {text} NOT NULL)",
}
INDEXES = (
    ("status_intervals_stream", "status_intervals", "stream, valid_from"),
    ("status_intervals_open", "status_intervals", "stream, tx_to"),
    ("status_intervals_country", "status_intervals", "country, commodity, valid_from"),
    ("status_intervals_authority", "status_intervals", "authority, valid_from"),
    ("projected_entries_stream", "projected_entries", "stream"),
)
READ_MODELS = ("status_intervals", "projected_entries", "current_status")
SHADOW_SUFFIX = "_rebuild"


class ReadModelTables(Transactions):
    """The read models' DDL, and the tracking record the library keeps beside them."""

    dialect: Dialect
    text_type: str
    _insert_tracking: Any  # the library's tracking recorder provides it

    def read_model_statements(self) -> list[str]:
        return [self.table_ddl(table, table) for table in READ_MODELS] + self.index_ddl()

    def table_ddl(self, table: str, name: str) -> str:
        return TABLES[table].format(name=self.qualified(name), text=self.text_type)

    def index_ddl(self) -> list[str]:
        return [
            f"CREATE INDEX IF NOT EXISTS {index} ON {self.qualified(table)} ({columns})"
            for index, table, columns in INDEXES
        ]

    def bare(self, table: str) -> str:
        """A table's name as ALTER TABLE ... RENAME TO wants it (never qualified)."""
        return table

    def tracking_table(self) -> str:
        raise NotImplementedError

    def claim(self, cursor: Cursor) -> int:
        """Lock the tracking record for this transaction; the position it holds."""
        raise NotImplementedError

    def position(self, application_name: str = TRACKED_APPLICATION) -> int:
        """The position of the last event the read models have committed."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT notification_id FROM {self.tracking_table()} WHERE application_name = ?",
                (application_name,),
            )
            row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])
