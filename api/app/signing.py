"""Which key signs the log's checkpoints: checked at start, changed only by a rotation.

A log whose checkpoints were signed by one key must never be signed by another one
picked up by mistake (a mistyped `SANCTIONS_SIGNING_KEY_FILE` used to create a new key
silently, and every later `sanctions verify` failed). So the log lists its verifier keys
(`projections.log.signing_keys`): a process starts only with the key listed last; a log
with checkpoints and no key file at the path given is refused, never given a new key.
A new log (no checkpoint yet) takes the key it is started with, created if absent.
`sanctions audit rotate-key` makes another key the current one, keeping the earlier
ones listed so that the checkpoints they signed still verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from domain.checkpoints import Checkpoint, NoteError, Signer, Verifier, split_note
from domain.hashing import format_timestamp
from domain.store import keyfile
from domain.store.keyfile import SigningKeyError
from projections.log.signing_keys import SigningKeys

ROTATE_HINT = "(`sanctions audit rotate-key` changes the log's key on purpose)"


def short(verifier: Verifier) -> str:
    """A key as `<name>+<hex key id>`, as the checkpoints' signature lines name it."""
    return f"{verifier.name}+{verifier.key_id.hex()}"


def now() -> str:
    return format_timestamp(datetime.now(UTC))


def signer_of(note: str) -> str:
    """The `<name>+<hex key id>` of a signed note's first signature."""
    try:
        _, signatures = split_note(note)
    except NoteError:
        return "an unreadable signature"
    name, signature = signatures[0]
    return f"{name}+{signature[:4].hex()}"


def checked_signer(path: Path, name: str, keys: SigningKeys) -> Signer:
    """The signer in `path`, once it is the log's current key; created there first only
    for a log with no checkpoint yet. SigningKeyError, naming the key expected and the
    file looked at, otherwise."""
    latest = keys.latest_checkpoint_note()
    if latest is None:
        signer = keyfile.load_or_create(path, name)
        keys.make_current(signer.verifier.text(), now())
        return signer
    listed = keys.listed()
    expected = short(Verifier.parse(listed[-1])) if listed else signer_of(latest)
    if not path.exists():
        raise SigningKeyError(
            f"SANCTIONS_SIGNING_KEY_FILE: there is no key file at {path}, but this log's "
            f"checkpoints are signed by the key {expected}: give the file that holds that "
            f"key (a mistyped path?); no new key is created for a log that has checkpoints "
            f"{ROTATE_HINT}"
        )
    signer = keyfile.read(path)
    mine = signer.verifier
    if listed:
        current = listed[-1] == mine.text()
    else:  # checkpoints signed before the log listed its keys: the latest one tells
        try:
            Checkpoint.open(latest, mine)
            current = True
        except NoteError:
            current = False
        if current:
            keys.make_current(mine.text(), now(), unless_listed=True)
    if not current:
        raise SigningKeyError(
            f"SANCTIONS_SIGNING_KEY_FILE: {path} holds the key {short(mine)}, but this log's "
            f"checkpoints are signed by the key {expected}: give the file that holds that "
            f"key {ROTATE_HINT}"
        )
    return signer


def verifiers(keys: SigningKeys, current: Verifier) -> list[Verifier]:
    """Every key the log's checkpoints may be signed with, the current one last."""
    listed = [Verifier.parse(text) for text in keys.listed()]
    return [key for key in listed if key != current] + [current]


@dataclass(frozen=True)
class Rotation:
    old: Verifier
    new: Verifier
    cosigned: int | None
    """The size of the checkpoint signed by both keys (None: the log had none)."""


def rotate(old: Signer, new_path: Path, name: str, keys: SigningKeys) -> Rotation:
    """Make the key in `new_path` (created there, mode 0600, if absent) the log's current
    key. `old` is the current one (the caller read it through `checked_signer`): the
    latest checkpoint gets the new key's signature beside the old one's, so that whoever
    trusts either key can verify it."""
    new = keyfile.load_or_create(new_path, name)
    if new.verifier == old.verifier:
        raise SigningKeyError(f"{new_path} holds the log's current key {short(old.verifier)}")
    if new.verifier.text() in keys.listed():
        raise SigningKeyError(
            f"{new_path} holds the key {short(new.verifier)}, which this log was signed with "
            "before: a rotation takes a new key"
        )
    keys.make_current(old.verifier.text(), now(), unless_listed=True)
    cosigned = None
    latest = keys.latest_checkpoint_note()
    try:
        checkpoint = None if latest is None else Checkpoint.open(latest, old.verifier)
    except NoteError:  # signed since by a server still given an earlier key: left alone
        checkpoint = None
    if latest is not None and checkpoint is not None:
        text, _ = split_note(latest)
        extra = new.sign(text).split("\n\n")[-1]
        keys.replace_note(checkpoint.size, checkpoint.root.hex(), latest + extra)
        cosigned = checkpoint.size
    keys.make_current(new.verifier.text(), now())
    return Rotation(old.verifier, new.verifier, cosigned)
