"""The SQLite event store: the library's recorder, writing the side tables in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from domain.store.sql import Cursor, Dialect, SanctionsRecorderMixin
from domain.store.writes import WriteExtras


class SQLiteSanctionsRecorder(SanctionsRecorderMixin, SQLiteApplicationRecorder):
    dialect: Dialect = "sqlite"
    position_column = "rowid"

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self.side_table_statements("TEXT")

    def qualified(self, table: str) -> str:
        return table

    def id_param(self, value: UUID) -> Any:
        return value.hex

    def id_value(self, value: Any) -> UUID:
        return UUID(value)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        cursor, extras = Cursor(c, "sqlite"), WriteExtras.given(kwargs)
        # A write first: it takes SQLite's write lock before the clock is read.
        cursor.execute(f"UPDATE {self.qualified('log_clock')} SET id = id WHERE id = 1")
        self.writes.check_versions(cursor, extras)
        stamped = self.writes.stamped(cursor, datetime.now(UTC), stored_events, extras)
        notification_ids = super()._insert_events(c, stamped, **kwargs)
        self.writes.side_rows(cursor, extras)
        return notification_ids
