"""`sanctions` commands that run the service or move data: serve, project, seed, import,
export, rebuild, and API tokens."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from api.cli.audit import audit_app
from api.cli.group import SanctionsGroup
from api.cli.support import (
    CreateOpt,
    console,
    errors,
    fail,
    flag,
    options,
    plural,
    progress_bar,
    service,
)

token_app = typer.Typer(cls=SanctionsGroup, help="Manage API tokens.")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    seed: Annotated[bool, flag("--seed", "Load the bundled timeline first.")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes on one port (PostgreSQL only).")
    ] = 1,
) -> None:
    """Run the API (on SANCTIONS_DATABASE_URL, SQLite under ./data/ by default)."""
    import uvicorn

    from api.app.observability import configure_logging
    from api.app.seed import seed as seed_timeline
    from api.http.app import create_app
    from api.http.limits import BoundedHeadersProtocol

    database_url = options(ctx).settings().database_url
    if workers > 1 and not database_url.startswith(("postgresql", "postgres")):
        raise fail(
            "--workers above 1 needs PostgreSQL: SQLite has one writer and cannot "
            "notify other processes, so worker processes could not keep known_at "
            "answers and read-your-writes; run one process, or use PostgreSQL"
        )
    # With --url, `service` below refuses the command (exit 2), whatever the port.
    taken = port_taken(host, port) if options(ctx).url is None else None
    if taken is not None:
        raise fail(
            f"cannot listen on {host}:{port}: {taken}. Is another server running there? "
            "Give another port with --port N (make serve PORT=N)",
            1,
        )
    # Says which database it serves (and whether it creates it), as writing commands do.
    with service(ctx, catch_up=False, writes=True, create=True) as svc:
        svc.notary.signer  # noqa: B018 -- the log's key, or the start is refused, saying which
        if seed:
            report = seed_timeline(svc)
            console.print(
                f"seeded: {report.recorded} events recorded, {report.already_there} already there"
            )
            if report.retracted:
                console.print(
                    f"seeded: {report.retracted} earlier bundled events retracted as superseded"
                )
        first = svc.tokens.create_first_admin()
        if first is not None:
            # Plain echo, not Rich: a wrapped token could not be copied whole.
            typer.echo(
                "No API tokens were configured, so an admin token was created; "
                "it is shown this once only:\n"
                f"  name: admin  role: admin  token: {first}"
            )
        configure_logging()
        # uvicorn's own access log is off: it would print query strings; ours prints routes.
        run = {
            "host": host,
            "port": port,
            "log_level": "info",
            "access_log": False,
            "timeout_graceful_shutdown": 30,
            # httptools, refusing a request line and headers over 64 KiB (431)
            "http": BoundedHeadersProtocol,
        }
        if workers == 1:
            uvicorn.run(create_app(svc), **run)  # type: ignore[arg-type]
            return
    # Each worker builds its own service from the environment, on the same database.
    os.environ["SANCTIONS_DATABASE_URL"] = database_url
    with_tcp_nodelay()
    uvicorn.run(
        "api.http.app:app_from_environment",
        factory=True,
        workers=workers,
        **run,  # type: ignore[arg-type]
    )


def port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on (another server holds it, say), or None. The
    same bind uvicorn makes, tried before the database is opened or seeded."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"no such address ({error.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return error.strerror or str(error)
    return None


def project(
    ctx: typer.Context,
    poll: Annotated[float, typer.Option(help="Seconds between looks for new events.")] = 0.25,
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 1000,
) -> None:
    """Run the projector alone (for API processes sharing one PostgreSQL)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with service(ctx, catch_up=False, embedded_projector=False) as svc:
        svc.projector.batch_size = batch
        console.print(f"projecting from position {svc.projector.position()}")
        svc.projector.start(poll)
        while not stop.wait(1.0):
            pass
        console.print(f"stopped at position {svc.projector.position()}")


def seed(ctx: typer.Context, create: CreateOpt = False) -> None:
    """Record the bundled real timeline (idempotent: a second run records nothing)."""
    from api.app.seed import seed as seed_timeline

    with service(ctx, catch_up=False, writes=True, create=create) as svc:
        report = seed_timeline(svc)
    console.print(f"{report.recorded} events recorded, {report.already_there} already there")
    if report.retracted:
        console.print(f"{report.retracted} earlier bundled events retracted as superseded")


def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON Lines of events, as the API takes them.")],
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 500,
    create: CreateOpt = False,
) -> None:
    """Record a file of events, all or nothing per batch; safe to re-run (idempotent)."""
    from api.app.transfer import count_lines, import_events

    if not file.is_file():
        raise fail(f"no file {file}")
    if batch < 1:
        raise fail("--batch: must be at least 1")
    done: list[int] = []  # the count recorded or found after each batch

    def batch_done(count: int) -> None:
        done.append(count)
        advance(count)

    with (
        service(ctx, catch_up=False, writes=True, create=create) as svc,
        progress_bar("importing", count_lines(file)) as advance,
    ):
        report = import_events(svc, file, batch_size=batch, progress=batch_done)
    console.print(
        f"{report.recorded} events recorded, {report.already_there} already there "
        f"({plural(report.batches, 'batch', 'batches')})"
        # `progress` is called once a batch; should that change, say no more than the count.
        + (why_batches(done, batch) if len(done) == report.batches else "")
    )


def why_batches(done: list[int], batch_size: int) -> str:
    """Why an import took more than one batch, from the count done after each batch: a
    full batch ends at `batch_size` events; one that ends short before the last was cut
    by a retraction of an event in the same batch (its target needs its new id first)."""
    sizes = [after - before for before, after in zip([0, *done], done, strict=False)]
    if len(sizes) < 2:
        return ""
    cut = sum(1 for size in sizes[:-1] if size < batch_size)
    reasons = []
    if any(size == batch_size for size in sizes[:-1]):
        reasons.append(f"{plural(batch_size, 'event')} per batch")
    if cut:
        reasons.append(
            "a retraction of an event in the same batch starts a new batch"
            + (f" ({plural(cut, 'time')})" if cut > 1 else "")
        )
    return ": " + ", and ".join(reasons) if reasons else ""


def export_events(
    ctx: typer.Context,
    country: Annotated[str | None, typer.Option(help="Target country.")] = None,
    commodity: Annotated[str | None, typer.Option(help="Commodity slug.")] = None,
    authority: Annotated[str | None, typer.Option(help="Sanctioning authority.")] = None,
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    with_proofs: Annotated[
        bool,
        typer.Option(
            "--with-proofs",
            help="JSON Lines headed by the latest signed checkpoint, each event with its "
            "inclusion proof (check with `sanctions audit verify-export`).",
        ),
    ] = False,
) -> None:
    """Write the log (or the matching part) as JSON Lines or CSV, in position order."""
    from functools import partial

    from api.app.transfer import exported, write_csv, write_jsonl, write_jsonl_with_proofs
    from api.schemas.inputs import event_filter

    if format not in ("jsonl", "csv"):
        raise fail("--format is jsonl or csv")
    if with_proofs and format != "jsonl":
        raise fail("--with-proofs writes JSON Lines: leave out --format csv")
    with service(ctx, catch_up=False, must_exist=True) as svc:
        where = event_filter(authority, country, commodity)
        total = svc.log.store.count(where)
        out = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
        try:
            with progress_bar("exporting", total, visible=output is not None) as advance:
                write = write_jsonl if format == "jsonl" else write_csv
                if with_proofs:
                    write = partial(write_jsonl_with_proofs, svc)
                count = write(exported(svc, where), out, advance)
        finally:
            if output is not None:
                out.close()
    errors.print(f"{plural(count, 'event')} exported")


def rebuild(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 5000,
) -> None:
    """Drop every read model and rebuild it from the log, with a progress bar."""
    with service(ctx, catch_up=False, writes=True) as svc:
        total = svc.log.recorder.max_notification_id() or 0
        with progress_bar("rebuilding", total) as advance:
            report = svc.rebuild(batch, progress=lambda _done, position: advance(position))
    rate = report.events / report.seconds if report.seconds else 0.0
    console.print(
        f"{report.events} events projected in {report.seconds:.2f} s ({rate:,.0f} events/s); "
        + ", ".join(f"{table}: {n} rows" for table, n in report.read_models.items())
    )


def with_tcp_nodelay() -> None:
    """Make uvicorn's shared socket (used with --workers) say it is TCP, so that asyncio
    turns Nagle's algorithm off on its connections: without it each keep-alive request
    after the first waits ~40 ms for a delayed ACK (uvicorn issue #3149)."""
    import socket

    from uvicorn.config import Config

    bind = Config.bind_socket
    if getattr(bind, "tcp_nodelay", False):
        return

    def bind_socket(config: Config) -> socket.socket:
        sock = bind(config)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            sock.set_inheritable(True)
        return sock

    bind_socket.tcp_nodelay = True  # type: ignore[attr-defined]
    Config.bind_socket = bind_socket  # type: ignore[method-assign, assignment]


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List tokens: names, roles, dates (never a token or its hash)."""
    from rich.table import Table

    with service(ctx, catch_up=False, must_exist=True) as svc:
        entries = svc.tokens.listing()
    table = Table()
    columns = ("name", "role", "created_at", "revoked_at", "source")
    for column in columns:
        table.add_column(column)
    for entry in entries:
        table.add_row(*(entry[c] or "" for c in columns))
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke a stored token: it stops working at once."""
    with service(ctx, catch_up=False, writes=True) as svc:
        svc.tokens.revoke(name)
    console.print(f"revoked {name}")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who holds it; recorded as `recorded_by`.")],
    role: Annotated[str, typer.Option(help="reader, writer or admin.")] = "reader",
    create: CreateOpt = False,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from api.app.identity import Role

    with service(ctx, catch_up=False, writes=True, create=create) as svc:
        token = svc.tokens.create(name, Role.parse(role))
    typer.echo(token)


def register(app: typer.Typer) -> None:
    """Add these commands to the `sanctions` app."""
    app.command()(serve)
    app.command()(project)
    app.command()(seed)
    app.command("import")(import_file)
    app.command("export")(export_events)
    app.command()(rebuild)
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
