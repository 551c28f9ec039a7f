"""Signed checkpoints of the log's Merkle tree: C2SP signed notes with Ed25519.

A checkpoint (C2SP tlog-checkpoint) is the text `<origin>\\n<tree size>\\n<base64 root>\\n`.
A signed note (C2SP signed-note) is that text, a blank line, and one line per
signature: `— <key name> <base64(4-byte key id ‖ Ed25519 signature of the text)>`,
the key id being the first 4 bytes of SHA-256(key name ‖ "\\n" ‖ 0x01 ‖ public key).
Keys travel in the signed-note formats too: the verifier key
`<name>+<hex key id>+<base64(0x01 ‖ public key)>`, and the signer key (what the key
file holds) `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ private key)>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
DASH = "\u2014"  # the em dash that opens a signature line


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or whose signature does not verify."""


def check_key_name(name: str) -> str:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise NoteError(f"a key name is non-empty, without spaces or '+': {name!r}")
    return name


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise NoteError(f"{what} is not base64") from error


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """Checks notes signed by one named Ed25519 key."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def text(self) -> str:
        """The verifier key: `<name>+<hex key id>+<base64(0x01 ‖ public key)>`."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(ED25519 + self.public)}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # base64 may hold '+' too
        if len(parts) != 3:
            raise NoteError("a verifier key is <name>+<hex key id>+<base64 key>")
        name, hex_id, encoded = parts
        check_key_name(name)
        raw = _unb64(encoded, "the verifier key")
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("the verifier key is not an Ed25519 key (0x01 and 32 bytes)")
        verifier = cls(name, raw[1:])
        if hex_id.lower() != verifier.key_id.hex():
            raise NoteError("the verifier key's id does not match its name and key")
        return verifier

    def open(self, note: str) -> str:
        """The text of `note` if it carries a valid signature by this key, else NoteError."""
        text, signatures = split_note(note)
        wanted = self.key_id
        public = Ed25519PublicKey.from_public_bytes(self.public)
        for name, signature in signatures:
            if name == self.name and signature[:4] == wanted:
                try:
                    public.verify(signature[4:], text.encode("utf-8"))
                except InvalidSignature:
                    raise NoteError(f"the signature by {name} does not verify") from None
                return text
        raise NoteError(f"the note carries no signature by {self.name}+{wanted.hex()}")


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 key that signs notes."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(check_key_name(name), Ed25519PrivateKey.generate())

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, _raw_public(self.private.public_key()))

    def text(self) -> str:
        """The signer key, as the key file holds it (a secret: never logged or served)."""
        seed = self.private.private_bytes_raw()
        key = self.verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{key}+{_b64(ED25519 + seed)}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key is PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
        _, _, name, hex_id, encoded = parts
        raw = _unb64(encoded, "the signer key")
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("the signer key is not an Ed25519 key (0x01 and 32 bytes)")
        signer = cls(check_key_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if hex_id.lower() != signer.verifier.key_id.hex():
            raise NoteError("the signer key's id does not match its name and key")
        return signer

    def sign(self, text: str) -> str:
        """`text` as a signed note."""
        if not text.endswith("\n") or "\n\n" in text:
            raise NoteError("a note's text ends with a newline and has no blank line")
        signature = self.verifier.key_id + self.private.sign(text.encode("utf-8"))
        return f"{text}\n{DASH} {self.name} {_b64(signature)}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """A signed note's text and its (key name, key id ‖ signature) lines."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a signed note is text, a blank line, then signature lines")
    text, lines = note[: cut + 1], note[cut + 2 :].splitlines()
    signatures = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise NoteError(f"not a signature line: {line!r}")
        signatures.append((parts[1], _unb64(parts[2], "a signature")))
    if not signatures:
        raise NoteError("the note carries no signature")
    return text, signatures


@dataclass(frozen=True)
class Checkpoint:
    """A tree size and root hash under a log's origin (the body of a signed checkpoint)."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is origin, tree size and root, one per line")
        origin, size, encoded = lines[:3]
        if not origin or not (size.isascii() and size.isdigit()) or size[:1] == "0" != size:
            raise NoteError("a checkpoint's second line is its tree size in decimal")
        root = _unb64(encoded, "the checkpoint's root")
        if len(root) != 32:
            raise NoteError("a checkpoint's root is a 32-byte SHA-256 hash")
        return cls(origin, int(size), root)

    @classmethod
    def open(cls, note: str, verifier: Verifier) -> Checkpoint:
        """The checkpoint in a signed note, once its signature verifies."""
        return cls.parse(verifier.open(note))
