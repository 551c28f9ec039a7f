"""Signed checkpoints and Merkle proofs of the log, as the audit routes and the CLI serve them.

The tree itself is a read model (`projections.log.tree`); the notary brings it up to
the log's head before signing, keeps every checkpoint it signs, and answers RFC 9162
proofs from O(log n) stored nodes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from api.app.signing import checked_signer
from api.schemas.audit import ConsistencyOut, InclusionOut
from domain.checkpoints import Checkpoint, Signer
from domain.errors import EventNotFound, InvalidInput, NotInTree
from domain.hashing import format_timestamp
from domain.merkle import EMPTY_ROOT, consistency_ranges, inclusion_ranges
from projections.log.leaf_check import LeafWitness, check_leaves
from projections.log.signing_keys import SigningKeys
from projections.log.tree import StoredCheckpoint
from projections.projector import Projector

COVERS_SECONDS = 2.0
"""A checkpoint covers every event recorded more than this many seconds earlier."""


@dataclass
class Notary:
    """Signs checkpoints of the log's Merkle tree and proves events and sizes against them."""

    key_file: Path
    key_name: str
    projector: Projector
    embedded_projector: bool = True
    signing: threading.Lock = field(default_factory=threading.Lock)
    checking: threading.Lock = field(default_factory=threading.Lock)
    _signer: Signer | None = None
    _witness: LeafWitness | None = None

    @property
    def signer(self) -> Signer:
        """The signing key, read (or created, mode 0600, for a log with no checkpoint yet)
        on first use, once it is the log's current key (`api.app.signing`): a process that
        never signs (the projector) never needs it."""
        with self.signing:
            if self._signer is None:
                keys = SigningKeys(self.projector.view.tables)
                self._signer = checked_signer(self.key_file, self.key_name, keys)
            return self._signer

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier.text()

    @property
    def origin(self) -> str:
        return self.signer.name

    def tree_size(self) -> int:
        """The tree's size once it holds every event recorded so far (waiting a bounded
        time for the projector)."""
        head = self.projector.log.recorder.max_notification_id() or 0
        if self.embedded_projector:
            self.projector.catch_up()
        self.projector.wait_for(head, timeout=COVERS_SECONDS)
        return self.projector.view.tree.tree_size()

    def checkpoint(self) -> StoredCheckpoint:
        """The signed checkpoint of the tree as it stands (every event recorded so far),
        signed now if no kept checkpoint has this tree's size and root. So the service
        never serves a checkpoint its tree no longer matches, after a rewrite of history
        and a rebuild as much as after growth. Before signing, the tree's leaves are
        checked against the stored events (TreeMismatch, and nothing signed, when one
        does not match)."""
        tree = self.projector.view.tree
        size = self.tree_size()
        root = tree.tree_root(size).hex()
        kept = tree.checkpoint_of(size, root)
        if kept is None:
            self.check_leaves(size)
            note = self.signer.sign(Checkpoint(self.origin, size, bytes.fromhex(root)).text())
            signed = StoredCheckpoint(size, root, format_timestamp(datetime.now(UTC)), note)
            tree.save_checkpoint(signed)
            # Another process may have kept the same tree's checkpoint a moment earlier.
            kept = tree.checkpoint_of(size, root) or signed
        return kept

    def check_leaves(self, size: int) -> None:
        """That the tree's first `size` leaves are the stored events' hashes: every leaf
        the first time, then those added since the last check, unless a stored event
        covered before has changed (`projections.log.leaf_check.check_leaves`)."""
        with self.checking:
            self._witness = check_leaves(
                self.projector.log, self.projector.view.tree, size, self._witness
            )

    def size_or_latest(self, size: int | None, field_name: str) -> int:
        """`size` checked against the tree (which is first brought up to date), or the
        latest checkpoint's size when none is given."""
        if size is None:
            return self.checkpoint().size
        if size < 0:
            raise InvalidInput(field_name, "a tree size is 0 or more")
        current = self.projector.view.tree.tree_size()
        if size > current:
            current = self.tree_size()
        if size > current:
            raise NotInTree(f"{field_name}: the log's tree has {current} leaves, not {size} (yet)")
        return size

    def inclusion(self, event_id: UUID, size: int | None) -> InclusionOut:
        """RFC 9162 inclusion proof of an event in the tree of `size` leaves (default: the
        latest checkpoint's)."""
        tree_size = self.size_or_latest(size, "size")
        tree = self.projector.view.tree
        leaf = tree.leaf_of(str(event_id))
        if leaf is None:
            self.tree_size()  # recorded a moment ago: let the tree catch up once
            leaf = tree.leaf_of(str(event_id))
        if leaf is None:
            raise EventNotFound(str(event_id))
        index, _ = leaf
        if index >= tree_size:
            raise NotInTree(
                f"event {event_id} is leaf {index}: it is in trees of {index + 1} leaves "
                f"or more, not in the tree of {tree_size}"
            )
        ranges = [(0, tree_size), *inclusion_ranges(index, tree_size)]
        root, *path = tree.tree_hashes(ranges)
        return InclusionOut(
            event_id=event_id,
            leaf_index=index,
            size=tree_size,
            root=root.hex(),
            hashes=[item.hex() for item in path],
        )

    def consistency(self, old: int, new: int | None) -> ConsistencyOut:
        """RFC 9162 consistency proof that the tree of `old` leaves is a prefix of the
        tree of `new` (default: the latest checkpoint's size)."""
        if old < 0:
            raise InvalidInput("from", "a tree size is 0 or more")
        to = self.size_or_latest(new, "to")
        if old > to:
            raise InvalidInput("from", f"`from` ({old}) is larger than `to` ({to})")
        ranges = [(0, old), (0, to)]
        if 0 < old < to:
            ranges += consistency_ranges(old, to)
        hashes = self.projector.view.tree.tree_hashes([r for r in ranges if r[1] > r[0]])
        if old == 0:
            hashes.insert(0, EMPTY_ROOT)
        if to == 0:
            hashes.insert(1, EMPTY_ROOT)
        old_root, new_root, *path = hashes
        return ConsistencyOut.model_validate(
            {
                "from": old,
                "to": to,
                "from_root": old_root.hex(),
                "to_root": new_root.hex(),
                "hashes": [item.hex() for item in path],
            }
        )
