"""`sanctions audit …`: the auditor's commands. They use only the REST API (or a file)
and their own verification code, so an auditor runs them anywhere, against any server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from api.cli.group import SanctionsGroup
from api.cli.support import console, errors

audit_app = typer.Typer(
    cls=SanctionsGroup,
    help="Check the service as an auditor: signed checkpoints and Merkle proofs.",
    no_args_is_help=True,
)


def read_key(key: str) -> str:
    """A verifier key given as itself or as a file holding it."""
    path = Path(key)
    if "+" not in key and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    return key.strip()


@audit_app.command("check")
def check(
    ctx: typer.Context,
    checkpoint_file: Annotated[
        Path, typer.Argument(help="Where the last checked checkpoint is kept.")
    ],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="http://HOST:PORT",
            help="The server to check (else the global --url).",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Pin the verifier key (the key itself, or a file holding it) instead of "
            "taking the one the server serves.",
        ),
    ] = None,
    kept_key: Annotated[
        str | None,
        typer.Option(
            "--kept-key",
            help="After a key rotation: the old verifier key (itself, or a file holding "
            "it) that signed the kept checkpoint.",
        ),
    ] = None,
) -> None:
    """Fetch the server's current signed checkpoint, verify its signature and a
    consistency proof from the kept one, then keep the new one.

    Exits 1, saying why, when the log does not extend the kept checkpoint unchanged."""
    from api.cli.auditor import AuditFailure, check_service  # httpx: loaded only when used

    base = url or (ctx.obj.url if ctx.obj is not None else None)
    if base is None:
        errors.print("audit check: give the server with --url http://HOST:PORT")
        raise typer.Exit(2)
    pinned = None if key is None else read_key(key)
    try:
        outcome = check_service(
            checkpoint_file,
            base,
            pinned_key=pinned,
            kept_key=None if kept_key is None else read_key(kept_key),
            token=os.environ.get("SANCTIONS_TOKEN"),
        )
    except AuditFailure as failure:
        console.print(f"audit check FAILED: {failure}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    new = outcome.new
    if outcome.old is None:
        message = (
            f"no checkpoint kept yet: kept the service's, {new.size} events, "
            f"signed by {outcome.key.split('+')[0]}, in {checkpoint_file}"
        )
    elif outcome.old.size == new.size:
        message = f"ok: the log still has {new.size} events, unchanged since the kept checkpoint"
    else:
        message = (
            f"ok: the log grew from {outcome.old.size} to {new.size} events and extends "
            f"the kept checkpoint unchanged; kept the new one in {checkpoint_file}"
        )
    console.print(message, markup=False, highlight=False)


@audit_app.command("receipt")
def receipt(
    file: Annotated[Path, typer.Argument(help="A receipt saved by `sanctions screen --receipt`.")],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="http://HOST:PORT",
            help="The server: its key (unless --key is given), and a consistency proof from "
            "the receipt's checkpoint to its current one.",
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="The verifier key (itself, or a file holding it).")
    ] = None,
) -> None:
    """Check a screening receipt offline: its signature, its checkpoint, every event's hash
    and inclusion proof, each stream's chain, and that the events fold to the answer. With
    --url, also that the live log still extends the receipt's checkpoint. Exits 1 naming
    the first thing that does not hold."""
    from api.cli.auditor import AuditFailure
    from api.cli.receipt import said, verify_receipt

    if key is None and url is None:  # a usage error, not a receipt that fails
        errors.print(
            "give the key to check the receipt with: --key KEY (the verifier key, from "
            "`curl URL/v1/audit/key`) or --url URL (the server that issued it)"
        )
        raise typer.Exit(2)
    try:
        report = verify_receipt(file, None if key is None else read_key(key), url)
    except AuditFailure as failure:
        console.print(f"audit receipt FAILED: {failure}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    console.print(said(report), markup=False, highlight=False, soft_wrap=True)


@audit_app.command("verify-export")
def verify_export_file(
    file: Annotated[Path, typer.Argument(help="An export written with --with-proofs.")],
    key: Annotated[
        str,
        typer.Option("--key", help="The verifier key (itself, or a file holding it)."),
    ],
) -> None:
    """Check an export offline: the checkpoint's signature, each event's hash from its
    fields, its inclusion proof, and the hash chain. Exits 1 on any problem."""
    from api.cli.auditor import AuditFailure, verify_export

    try:
        report = verify_export(file, read_key(key))
    except (AuditFailure, OSError) as failure:
        console.print(f"verify-export FAILED: {failure}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    for problem in report.problems:
        console.print(f"  {problem}", markup=False, highlight=False)
    if report.problems:
        console.print(
            f"verify-export FAILED: {len(report.problems)} problem(s) in {report.events} events",
            markup=False,
        )
        raise typer.Exit(1)
    console.print(
        f"ok: {report.events} events verified against the signed checkpoint of "
        f"{report.checkpoint.size} events ({report.checkpoint.origin})"
        + ("" if report.events == report.checkpoint.size else ": a filtered export"),
        markup=False,
        highlight=False,
    )


@audit_app.command("keygen")
def keygen(
    file: Annotated[Path, typer.Argument(help="The key file to create (mode 0600).")],
    name: Annotated[
        str, typer.Option(help="The key's name: the checkpoints' origin and signer.")
    ] = "sanctions-timeline",
) -> None:
    """Create a checkpoint signing key, for SANCTIONS_SIGNING_KEY_FILE (e.g. a secret
    mounted into every API process sharing one PostgreSQL). Prints the verifier key."""
    from domain.store.keyfile import SigningKeyError, load_or_create

    if file.exists():
        errors.print(f"{file} exists: a signing key is never overwritten")
        raise typer.Exit(1)
    try:
        signer = load_or_create(file, name)
    except (SigningKeyError, ValueError) as error:
        errors.print(str(error))
        raise typer.Exit(1) from None
    console.print(signer.verifier.text(), markup=False, highlight=False)


@audit_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path,
        typer.Argument(help="The new key's file (created, mode 0600, if absent)."),
    ],
    name: Annotated[
        str, typer.Option(help="The new key's name, when the file is created.")
    ] = "sanctions-timeline",
) -> None:
    """Sign the log's checkpoints with another key from now on (on the database, with the
    current key in SANCTIONS_SIGNING_KEY_FILE). The latest checkpoint is signed by both
    keys, and the old key stays listed, so the checkpoints it signed still verify. Then
    point SANCTIONS_SIGNING_KEY_FILE at the new file and restart every server."""
    from api.cli.support import service

    with service(ctx, catch_up=True, writes=True) as svc:
        rotation = svc.rotate_key(new_key_file, name)
    console.print(
        f"the log's checkpoints are signed from now on by {rotation.new.text()}"
        + (
            ""
            if rotation.cosigned is None
            else f"; the checkpoint of {rotation.cosigned} events is signed by both keys"
        )
        + f"; {rotation.old.text()} still verifies the checkpoints signed before. "
        f"Set SANCTIONS_SIGNING_KEY_FILE={new_key_file} and restart every server.",
        markup=False,
        highlight=False,
    )
