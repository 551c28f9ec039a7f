"""Before the service signs a checkpoint: the tree's leaves against the stored events.

The tree is a read model, so an insider who rewrites an event (every hash recomputed)
and then puts the tree's tables back as they were leaves a tree whose old leaves no
longer match the events the service serves. The notary checks the leaves it signs over
first, cheaply: the stored rows are digested raw, and only the leaves added since the
last check are compared with their events, unless a row covered before has changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification

from domain.application import SanctionsLog
from domain.errors import TreeMismatch
from domain.store.cursor import as_bytes
from projections.log.tree import Leaf, LogTree, leaf_data

PAGE = 5000


@dataclass(frozen=True)
class LeafWitness:
    """What the last check of the tree's leaves found: its first `size` leaves match the
    stored events up to position `position`, whose stored rows digest to `digest`."""

    size: int
    position: int
    digest: bytes


def row_digest_input(notification: Notification) -> bytes:
    """A stored row as the digest takes it: every column, the state length-prefixed."""
    state = as_bytes(notification.state)
    head = (
        f"{notification.id}\0{notification.originator_id}\0{notification.originator_version}"
        f"\0{notification.topic}\0{len(state)}\0"
    )
    return head.encode("utf-8") + state


def check_leaves(
    log: SanctionsLog, tree: LogTree, size: int, witness: LeafWitness | None
) -> LeafWitness:
    """That the first `size` leaves of the tree are the stored events' hashes, in position
    order (TreeMismatch naming the first leaf that is not); what was found, for the next
    check. Cheap and incremental: the stored rows up to the last leaf are read raw and
    digested (no decoding), and while the rows the last check covered still digest as
    they did, only the leaves added since are compared with their events; any change to
    a stored row (a rewrite with every hash recomputed, then the old tree put back)
    changes the digest, and every leaf is compared again."""
    if size == 0:
        return LeafWitness(0, 0, hashlib.sha256().digest())
    last = tree.leaf_rows(size - 1, size)
    if not last:
        raise TreeMismatch(f"the tree of {size} leaves lacks leaf {size - 1}")
    up_to = last[0].position
    if witness is not None and (witness.size > size or witness.position > up_to):
        witness = None
    running = hashlib.sha256()
    if witness is None:  # every leaf compared, in the same pass that digests the rows
        stored = digested(log, up_to, running)
        compare_leaves(log, tree, 0, size, stored)
        for _ in stored:  # the last row taken is digested as the next is asked for
            pass
        return LeafWitness(size, up_to, running.digest())
    at_witness: bytes | None = None
    fresh: list[Notification] = []
    for notification in digested(log, up_to, running):
        if notification.id > witness.position:
            if at_witness is None:
                at_witness = running.digest()
            fresh.append(notification)
    if at_witness is None:
        at_witness = running.digest()
    if at_witness == witness.digest:
        compare_leaves(log, tree, witness.size, size, iter(fresh))
    else:  # a row covered before has changed: every leaf again
        compare_leaves(log, tree, 0, size, digested(log, up_to, hashlib.sha256()))
    return LeafWitness(size, up_to, running.digest())


def digested(log: SanctionsLog, up_to: int, running: Any) -> Iterator[Notification]:
    """The stored rows up to position `up_to`, in order, each added to `running` once the
    reader has taken it (so `running` read between two rows holds the rows before)."""
    for notifications in log.notification_pages(up_to=up_to, page=PAGE):
        for notification in notifications:
            yield notification
            running.update(row_digest_input(notification))


def compare_leaves(
    log: SanctionsLog, tree: LogTree, start: int, end: int, stored: Iterator[Notification]
) -> None:
    """Leaves [start, end) against the decodable stored events `stored` yields, in order."""
    index = start
    while index < end:
        leaves = tree.leaf_rows(index, min(end, index + PAGE))
        if not leaves:
            raise TreeMismatch(f"the tree of {end} leaves lacks leaf {index}")
        for leaf in leaves:
            compare_leaf(log, index, leaf, stored)
            index += 1


def compare_leaf(log: SanctionsLog, index: int, leaf: Leaf, stored: Iterator[Notification]) -> None:
    standing = f"leaf {index} stands for event {leaf.event_id} at position {leaf.position}"
    for notification in stored:
        event = log.decode_tolerantly(notification, position=notification.id)
        if event is None:
            continue  # passed over, as the projector passes it over; verify reports it
        if (notification.id, str(event.event_id), leaf_data(event.hash)) == (
            leaf.position,
            leaf.event_id,
            leaf.data,
        ):
            return
        raise TreeMismatch(
            f"{standing} with hash {leaf.data.hex()}, but the stored event at position "
            f"{notification.id} is {event.event_id} ({event.stream} "
            f"v{event.originator_version}) with hash {event.hash}"
        )
    raise TreeMismatch(f"{standing}, which is no longer stored")
