"""The read models' tables on PostgreSQL: the library's PostgreSQL tracking recorder,
with the read models' DDL and transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier

from domain.store.postgres import projected_channel
from domain.store.sql import Cursor, Dialect
from projections.log.signing_keys import signing_keys_ddl
from projections.log.tree import checkpoints_ddl
from projections.tables import TRACKED_APPLICATION, ReadModelTables


class PostgresReadModelTables(ReadModelTables, PostgresTrackingRecorder):
    dialect: Dialect = "postgres"
    text_type = 'TEXT COLLATE "C"'
    blob_type = "BYTEA"
    row_key_type = "BIGINT"
    without_rowid = ""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, tracking_table_name="status_tracking")
        self.sql_create_statements.extend(
            Composed([SQL(statement)])
            for statement in [
                *self.read_model_statements(),
                *checkpoints_ddl(self),
                *signing_keys_ddl(self),
            ]
        )

    def qualified(self, table: str) -> str:
        return Identifier(self.datastore.schema, table).as_string()

    def tracking_table(self) -> str:
        return self.qualified(self.tracking_table_name)

    def bare(self, table: str) -> str:
        return Identifier(table).as_string()

    def bulk_insert(self, cursor: Cursor, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            with cursor.raw.copy(f"COPY {self.qualified(table)} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def announce(self, cursor: Cursor, position: int) -> None:
        cursor.execute(
            "SELECT pg_notify(?, ?)", (projected_channel(self.datastore.schema), str(position))
        )

    def lock(self, cursor: Cursor, table: str) -> None:
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

    def claim(self, cursor: Cursor) -> int:
        cursor.execute(
            f"SELECT notification_id FROM {self.tracking_table()}"
            " WHERE application_name = ? FOR UPDATE",
            (TRACKED_APPLICATION,),
        )
        row = cursor.fetchone()
        return 0 if row is None else int(row["notification_id"])
