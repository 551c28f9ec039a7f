"""Verification of the log as a whole: its Merkle tree recomputed from the events, against
the stored tree and every signed checkpoint.

A rewrite of history that recomputes every hash chain and rebuilds every read model
still changes the leaves of the tree, so the roots the service signed before no longer
match: each kept checkpoint must verify with the service's key (whichever of the log's
keys signed it) and have the root of the tree recomputed, in position order, from the
log as it stands now (which also makes each one consistent with the next).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from domain.application import SanctionsLog
from domain.checkpoints import Checkpoint, NoteError, Verifier, split_note
from domain.merkle import CompactRange
from projections.log.tree import StoredCheckpoint, leaf_data
from projections.view import StatusView

LOG_KINDS = {
    "checkpoint_signature",
    "checkpoint_mismatch",
    "checkpoint_beyond_log",
    "tree_differs",
    "tree_incomplete",
}
PAGE = 5000


def leaves(log: SanctionsLog, problems: list[tuple[str, str]]) -> Iterator[bytes]:
    """Every event's leaf data in position order (stopping, with a problem, at an event
    that cannot be decoded: the tree past it cannot be recomputed)."""
    for notifications in log.notification_pages(page=PAGE):
        for notification in notifications:
            event = log.decode_tolerantly(notification)
            if event is None:
                problems.append(
                    (
                        "tree_incomplete",
                        f"the event at position {notification.id} cannot be decoded, so the "
                        "tree cannot be recomputed past it",
                    )
                )
                return
            yield leaf_data(event.hash)


def check_log(
    log: SanctionsLog, view: StatusView, verifier: Verifier | Sequence[Verifier]
) -> list[tuple[str, str]]:
    """(kind, detail) for each way the log fails to match its tree or its checkpoints.
    Given the log's keys (the current one last), each checkpoint is verified with the
    key its signature names, or with the current key when it names none of them."""
    problems: list[tuple[str, str]] = []
    keys = [verifier] if isinstance(verifier, Verifier) else list(verifier)
    kept = view.tree.checkpoints()
    for stored in kept:
        check_signature(stored, key_of(stored.note, keys), problems)
    tree_size = view.tree.tree_size()
    wanted = sorted({stored.size for stored in kept} | {tree_size})
    roots: dict[int, bytes] = {}
    tree = CompactRange()
    for data in leaves(log, problems):
        if tree.size in wanted:
            roots[tree.size] = tree.root()
        tree.append(data)
    roots[tree.size] = tree.root()
    if any(kind == "tree_incomplete" for kind, _ in problems):
        return problems
    if tree_size in roots and view.tree.tree_root(tree_size, stored_only=True) != roots[tree_size]:
        problems.append(
            (
                "tree_differs",
                f"the stored Merkle tree of {tree_size} leaves differs from the one "
                "recomputed from the log",
            )
        )
    for stored in kept:
        if stored.size not in roots:
            problems.append(
                (
                    "checkpoint_beyond_log",
                    f"the checkpoint of size {stored.size} covers more events than the log "
                    f"holds ({tree.size}): events were removed",
                )
            )
        elif roots[stored.size].hex() != stored.root:
            problems.append(
                (
                    "checkpoint_mismatch",
                    f"the signed checkpoint of size {stored.size} (signed {stored.signed_at}) "
                    "does not match the log as it stands: history was rewritten after it "
                    "was signed",
                )
            )
    return problems


def key_of(note: str, keys: Sequence[Verifier]) -> Verifier:
    """The key among `keys` that a note's signature names (the last key if none)."""
    try:
        _, signatures = split_note(note)
    except NoteError:
        return keys[-1]
    named = {(name, signature[:4]) for name, signature in signatures}
    return next((key for key in keys if (key.name, key.key_id) in named), keys[-1])


def check_signature(
    stored: StoredCheckpoint, verifier: Verifier, problems: list[tuple[str, str]]
) -> None:
    try:
        opened = Checkpoint.open(stored.note, verifier)
    except NoteError as error:
        problems.append(("checkpoint_signature", f"checkpoint of size {stored.size}: {error}"))
        return
    if (opened.size, opened.root.hex()) != (stored.size, stored.root):
        problems.append(
            (
                "checkpoint_signature",
                f"checkpoint of size {stored.size}: the signed note says size {opened.size} "
                f"and another root",
            )
        )
