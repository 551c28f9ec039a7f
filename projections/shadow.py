"""Rebuilding the read models into shadow tables, swapped in at the end in one transaction.

Reads keep their answers until the swap; a rebuild that dies half-way leaves the
read models as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent, Tracking

from projections.log.tree import LogTree
from projections.tables import READ_MODELS, SHADOW_SUFFIX, ReadModelTables

Row = tuple[Any, ...]
STAGED_LEAVES = "log_leaves_staged"
"""The Merkle tree's leaves as a rebuild finds them, in no order, before they are numbered."""
STAGED_LEAVES_DDL = (
    "CREATE TABLE {name} (position BIGINT NOT NULL, event_id {text} NOT NULL, data {blob} NOT NULL)"
)
STAGED_ENTRIES = "projected_entries_staged"
"""`projected_entries`' rows as a rebuild finds them, without its primary key: inserting
a million random event ids into that index, a batch at a time, rewrites most of its
pages at every commit; copied over in event id order at the end, it grows at its edge."""
STAGED_ENTRIES_DDL = (
    "CREATE TABLE {name} (event_id {text} NOT NULL, stream {text} NOT NULL,"
    " version BIGINT NOT NULL, type {text} NOT NULL, effective_date {text} NOT NULL,"
    " measures {text} NOT NULL, expires {text}, renews {text})"
)


@dataclass
class Built:
    """Streams as rows of the shadow tables (`rows.py`'s columns), and the leaves of
    their events."""

    events: int = 0
    """Stored events read, decodable or not."""
    intervals: list[Row] = field(default_factory=list)
    entries: list[Row] = field(default_factory=list)
    currents: list[Row] = field(default_factory=list)
    leaves: list[Row] = field(default_factory=list)
    """(position, event id, leaf data), in no order."""
    undecodable: list[tuple[int, StoredEvent]] = field(default_factory=list)


class ShadowTables:
    """Fresh, index-less copies of the read-model tables, filled whole streams at a time,
    on the read models' tables it is given; the Merkle tree's nodes built by `tree`."""

    def __init__(self, tables: ReadModelTables, tree: LogTree) -> None:
        self.tables = tables
        self.tree = tree

    def begin_shadow(self) -> None:
        """Empty shadow tables to rebuild into."""
        with self.tables.transaction(commit=True) as cursor:
            for table in READ_MODELS:
                cursor.execute(
                    f"DROP TABLE IF EXISTS {self.tables.qualified(table + SHADOW_SUFFIX)}"
                )
                cursor.execute(self.tables.table_ddl(table, table + SHADOW_SUFFIX))
            for staged, ddl in (
                (STAGED_LEAVES, STAGED_LEAVES_DDL),
                (STAGED_ENTRIES, STAGED_ENTRIES_DDL),
            ):
                name = self.tables.qualified(staged)
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
                cursor.execute(
                    ddl.format(name=name, text=self.tables.text_type, blob=self.tables.blob_type)
                )

    def write_shadow(self, rows: Built) -> None:
        """Write whole streams' rows, and their leaves, into the shadow tables."""
        with self.tables.bulk_transaction() as cursor:
            self.tables.bulk_insert(cursor, "status_intervals" + SHADOW_SUFFIX, rows.intervals)
            self.tables.bulk_insert(cursor, "current_status" + SHADOW_SUFFIX, rows.currents)
            self.tables.bulk_insert(cursor, STAGED_ENTRIES, rows.entries)
            self.tables.bulk_insert(cursor, STAGED_LEAVES, rows.leaves)

    def finish_shadow(self) -> int:
        """Copy the staged entries in, number the staged leaves in position order, and
        build the Merkle tree's nodes over them; the tree's size."""
        leaves = self.tables.qualified("log_leaves" + SHADOW_SUFFIX)
        entries = self.tables.qualified("projected_entries" + SHADOW_SUFFIX)
        staged_leaves, staged_entries = (
            self.tables.qualified(STAGED_LEAVES),
            self.tables.qualified(STAGED_ENTRIES),
        )
        with self.tables.bulk_transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {entries} SELECT * FROM {staged_entries} ORDER BY event_id"
            )
            cursor.execute(f"DROP TABLE {staged_entries}")
            cursor.execute(
                f"INSERT INTO {leaves} (leaf_index, position, event_id, data)"
                " SELECT row_number() OVER (ORDER BY position) - 1, position, event_id, data"
                f" FROM {staged_leaves} ORDER BY position"
            )
            cursor.execute(f"DROP TABLE {staged_leaves}")
        return self.tree.write_nodes_shadow()

    def swap_shadow(self, application_name: str, position: int) -> None:
        """Replace the read models by the shadow tables, and the tracking record by
        `position` (the last event the shadow tables hold), in one transaction."""
        with self.tables.swap_transaction() as cursor:
            self.tables.claim(cursor)
            for table in READ_MODELS:
                cursor.execute(f"DROP TABLE IF EXISTS {self.tables.qualified(table)}")
                shadow = self.tables.qualified(table + SHADOW_SUFFIX)
                cursor.execute(f"ALTER TABLE {shadow} RENAME TO {self.tables.bare(table)}")
            for statement in self.tables.index_ddl():
                cursor.execute(statement)
            self.tree.tables_replaced(cursor)
            cursor.execute(
                f"DELETE FROM {self.tables.tracking_table()} WHERE application_name = ?",
                (application_name,),
            )
            if position > 0:
                self.tables.record_tracking(cursor, Tracking(application_name, position))
