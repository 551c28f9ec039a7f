"""The checkpoint signing key: a file of its own, never the database.

An insider who can rewrite the database must not be able to sign a rewritten history,
so the private key lives apart from the data: `SANCTIONS_SIGNING_KEY_FILE`, created
with mode 0600 on first start if absent (beside the SQLite file by default; for
PostgreSQL deployments a mounted secret). It holds the signer key in the signed-note
format, `PRIVATE+KEY+<name>+<hex key id>+<base64 key>`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from domain.checkpoints import NoteError, Signer
from domain.store.config import sqlite_path

DEFAULT_KEY_NAME = "sanctions-timeline"
POSTGRES_DEFAULT_KEY_FILE = Path("data/signing.key")


class SigningKeyError(ValueError):
    """The signing key file cannot be used: a configuration error, not a request's."""


def default_key_file(database_url: str) -> Path:
    """Beside the SQLite file (`data/sanctions.db` → `data/sanctions.signing.key`);
    `data/signing.key` under the working directory for PostgreSQL, where a deployment
    mounts a secret instead."""
    if urlparse(database_url).scheme.split("+")[0] == "sqlite":
        return Path(sqlite_path(database_url)).with_suffix(".signing.key")
    return POSTGRES_DEFAULT_KEY_FILE


def load_or_create(path: Path, name: str = DEFAULT_KEY_NAME) -> Signer:
    """The signer in `path`; a new key written there first (mode 0600) if there is no
    file. Processes starting at once agree on one key: the file appears whole or not
    at all (written aside, then linked into place)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate(name)
        descriptor, aside = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as out:
                out.write(signer.text() + "\n")
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(aside, path)
        finally:
            os.unlink(aside)
    return read(path)


def read(path: Path) -> Signer:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise SigningKeyError(f"SANCTIONS_SIGNING_KEY_FILE: cannot read {path}: {error}") from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:  # read-only secret mounts (0444, 0400) are fine; writable ones are not
        raise SigningKeyError(
            f"SANCTIONS_SIGNING_KEY_FILE: {path} can be written by others (mode {mode:o}); "
            f"`chmod 600 {path}`"
        )
    try:
        return Signer.parse(text)
    except NoteError as error:
        raise SigningKeyError(f"SANCTIONS_SIGNING_KEY_FILE: {path}: {error}") from None
