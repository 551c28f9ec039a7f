"""The PostgreSQL event store: the library's recorder, writing side tables in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.store.sql import Cursor, Dialect, SanctionsRecorderMixin


class PostgresSanctionsRecorder(SanctionsRecorderMixin, PostgresApplicationRecorder):
    dialect: Dialect = "postgres"
    position_column = "notification_id"

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.sql_create_statements.extend(
            Composed([SQL(statement)]) for statement in self.side_table_statements("uuid")
        )

    def qualified(self, table: str) -> str:
        return Identifier(self.datastore.schema, table).as_string()

    def id_param(self, value: UUID) -> Any:
        return value

    def id_value(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(str(value))

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        # The database's clock, one for every process and host that writes here.
        now = curs.execute("SELECT clock_timestamp() AS now").fetchone()
        assert now is not None
        stamped = self.stamped(Cursor(curs, "postgres"), now["now"], stored_events, kwargs)
        super()._insert_stored_events(curs, stamped, **kwargs)

    def _fetch_ids_after_insert_events(
        self,
        curs: psycopg.Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # After the events, so inside the table lock: writing the key before it
        # could deadlock two requests that share an Idempotency-Key.
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        with curs.connection.pipeline():  # syncs on exit: a conflict raises here
            self.write_side_rows(Cursor(curs, "postgres"), kwargs)
        return notification_ids


def ensure_schema(conninfo: str, schema: str) -> None:
    """Create the PostgreSQL schema the store lives in, if it is not there yet."""
    if not schema:
        return
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
