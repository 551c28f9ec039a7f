"""The Merkle tree over the log, exactly as RFC 9162 §2.1 defines it.

Leaf *i* is the *i*-th event in position order; its data is the event's 32-byte hash.
Leaf hash `SHA-256(0x00 ‖ data)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, and the
root of the empty tree is `SHA-256()`.

A stored tree keeps one hash per *complete* subtree: node (level, index) covers leaves
`index·2^level … (index+1)·2^level - 1`. Any range the RFC's proofs need is either such
a node or splits into O(log n) of them, so a proof costs O(log n) look-ups however long
the log. This module says which nodes a proof needs and folds them; where the nodes
come from (memory, SQL) is the caller's business. Verification (§2.1.3.2, §2.1.4.2)
needs nothing but hashes, so an auditor runs it anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# Which ranges a proof is made of (RFC 9162 §2.1.3.1 and §2.1.4.1)


def inclusion_ranges(index: int, size: int, offset: int = 0) -> list[Range]:
    """PATH(index, D[size]): the subtrees whose hashes prove leaf `index`, leaf first."""
    if size <= 1:
        return []
    k = split_point(size)
    if index < k:
        return [*inclusion_ranges(index, k, offset), (offset + k, offset + size)]
    return [*inclusion_ranges(index - k, size - k, offset + k), (offset, offset + k)]


def consistency_ranges(old: int, new: int, offset: int = 0, whole: bool = True) -> list[Range]:
    """PROOF(old, D[new]) for 0 < old ≤ new: the subtrees proving D[old] is a prefix."""
    if old == new:
        return [] if whole else [(offset, offset + new)]
    k = split_point(new)
    if old <= k:
        return [*consistency_ranges(old, k, offset, whole), (offset + k, offset + new)]
    return [*consistency_ranges(old - k, new - k, offset + k, False), (offset, offset + k)]


# Ranges as stored nodes


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees whose hashes fold into MTH(D[start:end]), left to right.
    `start` is a multiple of the largest power of two below `end - start` (true of
    every range the RFC's recursion makes)."""
    nodes: list[Node] = []
    while start < end:
        length = end - start
        level = length.bit_length() - 1  # the largest power of two ≤ length
        if start % (1 << level):
            raise ValueError(f"range [{start}, {end}) is not aligned")
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees (largest first), as `range_nodes`
    lists them: the right edge of a tree folds from the right."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


NodeLookup = Callable[[Iterable[Node]], Mapping[Node, bytes]]


def range_hashes(ranges: Sequence[Range], lookup: NodeLookup) -> list[bytes]:
    """Each range's MTH, fetching every node they need with one `lookup` call."""
    per_range = [range_nodes(start, end) for start, end in ranges]
    found = lookup({node for nodes in per_range for node in nodes})
    return [fold([found[node] for node in nodes]) for nodes in per_range]


def root(size: int, lookup: NodeLookup) -> bytes:
    return range_hashes([(0, size)], lookup)[0] if size else EMPTY_ROOT


def frontier(size: int) -> list[Node]:
    """The complete subtrees of a tree of `size` leaves, largest first: its right edge,
    all that appending needs."""
    return range_nodes(0, size)


def appended(size: int, edge: Mapping[Node, bytes], data: Iterable[bytes]) -> dict[Node, bytes]:
    """Every node that appending leaves `data` to a tree of `size` leaves creates, given
    that tree's frontier hashes `edge`."""
    known = dict(edge)
    created: dict[Node, bytes] = {}
    for item in data:
        level, index, value = 0, size, leaf_hash(item)
        created[(0, index)] = known[(0, index)] = value
        while index & 1:
            value = node_hash(known[(level, index - 1)], value)
            level, index = level + 1, index >> 1
            created[(level, index)] = known[(level, index)] = value
        size += 1
    return created


def combined_edge(size: int, count: int) -> list[Node]:
    """The nodes of a tree of `size` leaves that appending `count` leaves combines with
    (a subset of its frontier: none when `size` is even and one leaf is appended)."""
    needed = []
    for index in range(size, size + count):
        level = 0
        while index & 1:
            if index << level <= size:  # the left sibling ends at or before `size`
                needed.append((level, index - 1))
            level, index = level + 1, index >> 1
    return needed


class CompactRange:
    """A tree of any size held as its frontier: append leaves, read the root. O(log n)
    memory, for recomputing a whole log's root in one pass."""

    def __init__(self) -> None:
        self.size = 0
        self.edge: dict[Node, bytes] = {}

    def append(self, data: bytes) -> None:
        created = appended(self.size, self.edge, [data])
        self.size += 1
        self.edge = {node: created.get(node) or self.edge[node] for node in frontier(self.size)}

    def root(self) -> bytes:
        return fold([self.edge[node] for node in frontier(self.size)])


# Verification (RFC 9162 §2.1.3.2 and §2.1.4.2): hashes only, no tree needed


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether `proof` shows the leaf hash `leaf` at `index` in the tree with that root."""
    if index >= size or index < 0:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == expected_root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree of `old` leaves is a prefix of the one of `new`."""
    if old < 0 or old > new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first, second = node_hash(sibling, first), node_hash(sibling, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and first == old_root and second == new_root


def memory_lookup(leaves: Sequence[bytes]) -> NodeLookup:
    """A lookup over leaf data held in memory (for exports and tests of small trees)."""
    levels: list[list[bytes]] = [[leaf_hash(item) for item in leaves]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def lookup(nodes: Iterable[Node]) -> Mapping[Node, bytes]:
        return {(level, index): levels[level][index] for level, index in nodes}

    return lookup
