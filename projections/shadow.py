"""Rebuilding the read models into shadow tables, swapped in at the end in one transaction.

Reads keep their answers until the swap; a rebuild that dies half-way leaves the
read models as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import Tracking

from projections.log_tree import LogTree
from projections.model import IntervalRow, StreamRecord
from projections.rows import current_params, entry_params, interval_params
from projections.tables import READ_MODELS, SHADOW_SUFFIX


class ShadowTables(LogTree):
    """Fresh, index-less copies of the read-model tables, filled whole streams at a time."""

    def begin_shadow(self) -> None:
        """Empty shadow tables to rebuild into."""
        with self.transaction(commit=True) as cursor:
            for table in READ_MODELS:
                cursor.execute(f"DROP TABLE IF EXISTS {self.qualified(table + SHADOW_SUFFIX)}")
                cursor.execute(self.table_ddl(table, table + SHADOW_SUFFIX))

    def write_shadow(self, records: Sequence[tuple[StreamRecord, list[IntervalRow]]]) -> None:
        """Write whole streams (their final record and every row) into the shadow tables."""
        rows = [interval_params(row) for _, stream_rows in records for row in stream_rows]
        entries = [
            entry_params(record.stream, entry)
            for record, _ in records
            for entry in record.entries.values()
        ]
        currents = [current_params(record) for record, _ in records]
        with self.transaction(commit=True) as cursor:
            for table, marks, values in (
                ("status_intervals", 13, rows),
                ("projected_entries", 6, entries),
                ("current_status", 10, currents),
            ):
                if values:
                    cursor.executemany(
                        f"INSERT INTO {self.qualified(table + SHADOW_SUFFIX)}"
                        f" VALUES ({','.join('?' * marks)})",
                        values,
                    )

    def swap_shadow(self, application_name: str, position: int) -> None:
        """Replace the read models by the shadow tables, and the tracking record by
        `position` (the last event the shadow tables hold), in one transaction."""
        with self.transaction(commit=True) as cursor:
            self.claim(cursor)
            for table in READ_MODELS:
                cursor.execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
                shadow = self.qualified(table + SHADOW_SUFFIX)
                cursor.execute(f"ALTER TABLE {shadow} RENAME TO {self.bare(table)}")
            for statement in self.index_ddl():
                cursor.execute(statement)
            self.tables_replaced(cursor)
            cursor.execute(
                f"DELETE FROM {self.tracking_table()} WHERE application_name = ?",
                (application_name,),
            )
            if position > 0:
                self._insert_tracking(cursor.raw, Tracking(application_name, position))
