"""The log's Merkle tree as a read model, and the signed checkpoints kept beside it.

`log_leaves` holds leaf *i* (the *i*-th event in position order, its data the event's
hash) and `log_nodes` the hash of every complete subtree (level 0: leaf hashes). Both
grow in the projector's transaction, beside its tracking record, so the tree is always
exactly the projected prefix of the log; a proof or a root reads O(log n) nodes.
`log_checkpoints` keeps every signed checkpoint: it is not a read model, and no
rebuild or format change drops it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.merkle import EMPTY_ROOT, Node, appended, combined_edge, frontier, range_hashes
from domain.store.sql import Cursor
from projections.tables import SHADOW_SUFFIX, ReadModelTables

NODE_CHUNK = 200
TREE_PAGE = 50_000
"""Leaves read at a time while a rebuild computes the tree's nodes."""
UPPER_LEVEL = 10
"""Nodes at this level and above (subtrees of 1,024 leaves or more: about 2n/1024 of
them) are kept in memory once read: they never change while the tree does not."""
GENERATION_DDL = (
    "CREATE TABLE IF NOT EXISTS {name} (id INTEGER PRIMARY KEY, generation BIGINT NOT NULL)"
)
CHECKPOINTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {name} (size BIGINT NOT NULL, root {text} NOT NULL,"
    " signed_at {text} NOT NULL, note {text} NOT NULL, PRIMARY KEY (size, root))"
)


@dataclass(frozen=True)
class Leaf:
    position: int
    event_id: str
    data: bytes  # the event's 32-byte hash


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: str  # hex
    signed_at: str
    note: str


def leaf_data(event_hash: str) -> bytes:
    """An event's hash as leaf data (a hash that is not 64 hex digits, which only an edit
    outside the service makes, is taken as its text so the tree still covers it)."""
    try:
        data = bytes.fromhex(event_hash)
    except ValueError:
        return event_hash.encode("utf-8")
    return data if len(data) == 32 else event_hash.encode("utf-8")


def checkpoints_ddl(tables: ReadModelTables) -> list[str]:
    """The tables no rebuild drops: the kept checkpoints, and the tree's generation
    (bumped whenever the tree's tables are replaced, so that every process drops the
    upper nodes it keeps in memory)."""
    return [
        CHECKPOINTS_DDL.format(name=tables.qualified("log_checkpoints"), text=tables.text_type),
        GENERATION_DDL.format(name=tables.qualified("log_tree_generation")),
    ]


class LogTree:
    """The Merkle tree's tables and the reads that answer proofs, on the read models'
    tables it is given."""

    def __init__(self, tables: ReadModelTables) -> None:
        self.tables = tables
        self._upper: dict[Node, bytes] = {}
        self._upper_generation: int | None = None

    def tables_replaced(self, cursor: Cursor) -> None:
        """Bump the tree's generation, inside the transaction that replaced its tables."""
        table = self.tables.qualified("log_tree_generation")
        cursor.execute(f"UPDATE {table} SET generation = generation + 1 WHERE id = 1")
        cursor.execute(
            f"INSERT INTO {table} (id, generation) SELECT 1, 1"
            f" WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE id = 1)"
        )

    def upper_nodes(self, cursor: Cursor) -> dict[Node, bytes]:
        """The upper nodes kept in memory, dropped first if the tree was replaced since."""
        cursor.execute(
            f"SELECT generation FROM {self.tables.qualified('log_tree_generation')} WHERE id = 1"
        )
        row = cursor.fetchone()
        generation = 0 if row is None else int(row["generation"])
        if generation != self._upper_generation:
            self._upper, self._upper_generation = {}, generation
        return self._upper

    # Growing the tree (inside the projector's transaction)

    def tree_head(self, cursor: Cursor, suffix: str = "") -> tuple[int, int]:
        """The tree's size and the position of its last leaf (0, 0 when empty)."""
        cursor.execute(
            f"SELECT leaf_index, position FROM {self.tables.qualified('log_leaves' + suffix)}"
            " ORDER BY leaf_index DESC LIMIT 1"
        )
        row = cursor.fetchone()
        return (0, 0) if row is None else (int(row["leaf_index"]) + 1, int(row["position"]))

    def append_leaves(self, cursor: Cursor, leaves: Sequence[Leaf], suffix: str = "") -> int:
        """Append the leaves the tree does not hold yet (those past its last position),
        with every node they complete; the number appended."""
        size, last = self.tree_head(cursor, suffix)
        fresh = [leaf for leaf in leaves if leaf.position > last]
        if not fresh:
            return 0
        edge = self.nodes_in(cursor, combined_edge(size, len(fresh)), suffix)
        created = appended(size, edge, [leaf.data for leaf in fresh])
        self.write_tree(cursor, size, fresh, created, suffix)
        return len(fresh)

    def write_tree(
        self,
        cursor: Cursor,
        size: int,
        leaves: Sequence[Leaf],
        nodes: Mapping[Node, bytes],
        suffix: str = "",
    ) -> None:
        cursor.executemany(
            f"INSERT INTO {self.tables.qualified('log_leaves' + suffix)} VALUES (?,?,?,?)",
            [
                (size + number, leaf.position, leaf.event_id, leaf.data)
                for number, leaf in enumerate(leaves)
            ],
        )
        cursor.executemany(
            f"INSERT INTO {self.tables.qualified('log_nodes' + suffix)} VALUES (?,?,?)",
            [(level, index, value) for (level, index), value in nodes.items()],
        )

    def nodes_in(
        self, cursor: Cursor, nodes: Iterable[Node], suffix: str = ""
    ) -> dict[Node, bytes]:
        """The stored hashes of the given nodes (KeyError on a missing one)."""
        wanted = sorted(set(nodes))
        found: dict[Node, bytes] = {}
        if not wanted:
            return found
        for start in range(0, len(wanted), NODE_CHUNK):
            chunk = wanted[start : start + NODE_CHUNK]
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
            cursor.execute(
                f"SELECT level, idx, hash FROM {self.tables.qualified('log_nodes' + suffix)}"
                f" WHERE {where}",
                [value for node in chunk for value in node],
            )
            for row in cursor.fetchall():
                found[(int(row["level"]), int(row["idx"]))] = bytes(row["hash"])
        missing = [node for node in wanted if node not in found]
        if missing:
            raise KeyError(f"the stored tree lacks nodes {missing[:3]}")
        return found

    # Rebuilding (into the shadow tables a rebuild swaps in)

    def write_nodes_shadow(self, page: int = TREE_PAGE) -> int:
        """Build every node of the tree whose leaves the shadow leaf table holds, `page`
        leaves at a time; the tree's size."""
        leaves = self.tables.qualified("log_leaves" + SHADOW_SUFFIX)
        nodes = "log_nodes" + SHADOW_SUFFIX
        size, edge = 0, dict[Node, bytes]()
        while True:
            with self.tables.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT data FROM {leaves} WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
                    (size, page),
                )
                data = [bytes(row["data"]) for row in cursor.fetchall()]
            if not data:
                return size
            created = appended(size, edge, data)
            with self.tables.bulk_transaction() as cursor:
                self.tables.bulk_insert(
                    cursor, nodes, [(lvl, idx, h) for (lvl, idx), h in created.items()]
                )
            known = {**edge, **created}
            size += len(data)
            edge = {node: known[node] for node in frontier(size)}

    # Reading: sizes, roots, proofs

    def tree_size(self) -> int:
        with self.tables.transaction(commit=False) as cursor:
            return self.tree_head(cursor)[0]

    def leaf_of(self, event_id: str) -> tuple[int, bytes] | None:
        """The leaf index and data of an event, if the tree holds it."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT leaf_index, data FROM {self.tables.qualified('log_leaves')}"
                " WHERE event_id = ?",
                (event_id,),
            )
            row = cursor.fetchone()
        return None if row is None else (int(row["leaf_index"]), bytes(row["data"]))

    def tree_hashes(
        self, ranges: Sequence[tuple[int, int]], *, stored_only: bool = False
    ) -> list[bytes]:
        """The hash of each leaf range (MTH of [start, end)), from O(log n) nodes per
        range, read in one transaction; the upper ones from memory unless `stored_only`
        (verification reads every node from the database)."""
        with self.tables.transaction(commit=False) as cursor:
            if stored_only:
                return range_hashes(ranges, lambda nodes: self.nodes_in(cursor, nodes))
            upper = self.upper_nodes(cursor)

            def lookup(nodes: Iterable[Node]) -> Mapping[Node, bytes]:
                wanted = set(nodes)
                found = {node: upper[node] for node in wanted if node in upper}
                fetched = self.nodes_in(cursor, wanted - found.keys())
                upper.update((n, value) for n, value in fetched.items() if n[0] >= UPPER_LEVEL)
                return {**found, **fetched}

            return range_hashes(ranges, lookup)

    def tree_root(self, size: int, *, stored_only: bool = False) -> bytes:
        if not size:
            return EMPTY_ROOT
        return self.tree_hashes([(0, size)], stored_only=stored_only)[0]

    def leaf_rows(self, start: int, end: int) -> list[Leaf]:
        """Leaves [start, end) with the positions of their events, in order."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT position, event_id, data FROM {self.tables.qualified('log_leaves')}"
                " WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
                (start, end),
            )
            return [
                Leaf(int(row["position"]), str(row["event_id"]), bytes(row["data"]))
                for row in cursor.fetchall()
            ]

    def tree_leaves(self, start: int, end: int) -> list[tuple[str, bytes]]:
        """The event ids and data of leaves [start, end), in order."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT event_id, data FROM {self.tables.qualified('log_leaves')}"
                " WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
                (start, end),
            )
            return [(row["event_id"], bytes(row["data"])) for row in cursor.fetchall()]

    # Checkpoints

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Keep a signed checkpoint (one per tree: signatures are deterministic, so two
        processes signing the same tree write the same note)."""
        with self.tables.transaction(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {self.tables.qualified('log_checkpoints')} VALUES (?,?,?,?)"
                " ON CONFLICT (size, root) DO NOTHING",
                (checkpoint.size, checkpoint.root, checkpoint.signed_at, checkpoint.note),
            )

    def checkpoint_of(self, size: int, root: str) -> StoredCheckpoint | None:
        """The kept checkpoint of the tree of `size` leaves with that (hex) root."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('log_checkpoints')}"
                " WHERE size = ? AND root = ?",
                (size, root),
            )
            row = cursor.fetchone()
        return None if row is None else checkpoint_row(row)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every signed checkpoint kept, in the order they were signed."""
        with self.tables.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.tables.qualified('log_checkpoints')} ORDER BY signed_at, size"
            )
            return [checkpoint_row(row) for row in cursor.fetchall()]


def checkpoint_row(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row["size"]), row["root"], row["signed_at"], row["note"])
