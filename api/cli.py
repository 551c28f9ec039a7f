"""The `sanctions` command line: the same core as the REST API, in a terminal."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.answers import event_filter, key_filter, status_answer, timeline_answer
from api.bootstrap import build_services, create_app
from api.deps import Services
from api.identity import Role
from api.inputs import parse_as_of, parse_known_at
from api.routes.audit import step_out
from api.seed import seed as seed_timeline
from api.settings import Settings
from api.transfer import count_lines, exported, import_events, write_csv, write_jsonl
from domain.errors import DomainError, InvalidInput
from domain.hashing import format_timestamp
from projections.replay import replay_steps
from projections.verify import verify as verify_store

CountryArg = Annotated[str, typer.Argument(help="Target country, ISO 3166-1 alpha-2.")]
CommodityArg = Annotated[str | None, typer.Argument(help="Commodity slug.")]
AuthorityOpt = Annotated[str | None, typer.Option(help="Sanctioning authority.")]
KnownAtOpt = Annotated[str | None, typer.Option(help="Transaction time, RFC 3339 (default now).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

app = typer.Typer(help="sanctions-timeline: sanctions policy as a verifiable event log.")
token_app = typer.Typer(help="Manage API tokens.")
app.add_typer(token_app, name="token")
console = Console()
errors = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    seed: Annotated[bool, typer.Option("--seed", help="Load the bundled timeline first.")] = False,
) -> None:
    """Run the API (on SANCTIONS_DATABASE_URL, SQLite under ./data/ by default)."""
    svc = build_services(Settings())
    if seed:
        report = seed_timeline(svc.log)
        console.print(
            f"seeded: {report.recorded} events recorded, {report.already_there} already there"
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
    uvicorn.run(
        create_app(svc),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
    )


def configure_logging() -> None:
    """The service's own log lines (JSON, one per request) to standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("sanctions")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@app.command("export")
def export_events(
    country: Annotated[str | None, typer.Option(help="Target country.")] = None,
    commodity: Annotated[str | None, typer.Option(help="Commodity slug.")] = None,
    authority: Annotated[str | None, typer.Option(help="Sanctioning authority.")] = None,
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
) -> None:
    """Write the log (or the matching part) as JSON Lines or CSV, in position order."""
    if format not in ("jsonl", "csv"):
        errors.print("[red]error:[/red] --format is jsonl or csv")
        raise typer.Exit(2)
    with services() as svc:
        where = event_filter(authority, country, commodity)
        total = svc.log.store.count(where)
        out = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
        try:
            with progress_bar("exporting", total, visible=output is not None) as advance:
                write = write_jsonl if format == "jsonl" else write_csv
                count = write(exported(svc.log, where), out, advance)
        finally:
            if output is not None:
                out.close()
    errors.print(f"{count} events exported")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="JSON Lines of events, as the API takes them.")],
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 500,
) -> None:
    """Record a file of events, all or nothing per batch; safe to re-run (idempotent)."""
    if not file.is_file():
        errors.print(f"[red]error:[/red] no file {file}")
        raise typer.Exit(2)
    with services() as svc, progress_bar("importing", count_lines(file)) as advance:
        report = import_events(svc.log, file, batch_size=batch, progress=advance)
        svc.projector.catch_up()
    console.print(
        f"{report.recorded} events recorded, {report.already_there} already there "
        f"({report.batches} batches)"
    )


@contextmanager
def progress_bar(
    label: str, total: int, *, visible: bool = True
) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on standard error; yields a function taking the count done."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=not visible,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


@app.command()
def seed() -> None:
    """Record the bundled real timeline (idempotent: a second run records nothing)."""
    svc = build_services(Settings())
    try:
        report = seed_timeline(svc.log)
    except DomainError as error:
        errors.print(f"[red]seed failed:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        svc.log.close()
    console.print(f"{report.recorded} events recorded, {report.already_there} already there")


@token_app.command("list")
def token_list() -> None:
    """List tokens: names, roles, dates (never a token or its hash)."""
    with services() as svc:
        entries = svc.tokens.listing()
    table = Table()
    for column in ("name", "role", "created_at", "revoked_at", "source"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            *(entry[c] or "" for c in ("name", "role", "created_at", "revoked_at", "source"))
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a stored token: it stops working at once."""
    with services() as svc:
        svc.tokens.revoke(name)
    console.print(f"revoked {name}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who holds it; recorded as `recorded_by`.")],
    role: Annotated[str, typer.Option(help="reader, writer or admin.")] = "reader",
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    svc = build_services(Settings())
    try:
        token = svc.tokens.create(name, Role.parse(role))
    except DomainError as error:
        errors.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    finally:
        svc.log.close()
    typer.echo(token)


@contextmanager
def services(**overrides: Any) -> Iterator[Services]:
    """Services for one command; domain errors end it with a message and exit code 2."""
    svc = build_services(Settings(**overrides))
    try:
        yield svc
    except DomainError as error:
        where = f"{error.field}: " if isinstance(error, InvalidInput) else ""
        errors.print(f"[red]error:[/red] {where}{error}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        svc.close()


@app.command()
def project(
    poll: Annotated[float, typer.Option(help="Seconds between looks for new events.")] = 0.25,
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 1000,
) -> None:
    """Run the projector alone (for API processes sharing one PostgreSQL)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with services(embedded_projector=False) as svc:
        svc.projector.batch_size = batch
        console.print(f"projecting from position {svc.projector.position()}")
        svc.projector.start(poll)
        while not stop.wait(1.0):
            pass
        console.print(f"stopped at position {svc.projector.position()}")


@app.command()
def rebuild(
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 5000,
) -> None:
    """Drop every read model and rebuild it from the log, with a progress bar."""
    with services() as svc:
        total = svc.log.recorder.max_notification_id() or 0
        with Progress(
            TextColumn("rebuilding"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("rebuild", total=total)
            report = svc.projector.rebuild(
                batch_size=batch,
                progress=lambda _done, position: bar.update(task, completed=position),
            )
        rate = report.events / report.seconds if report.seconds else 0.0
        console.print(
            f"{report.events} events projected in {report.seconds:.2f} s ({rate:,.0f} events/s); "
            + ", ".join(f"{table}: {n} rows" for table, n in report.rows.items())
        )


@app.command()
def status(
    country: CountryArg,
    commodity: CommodityArg = None,
    authority: AuthorityOpt = None,
    as_of: Annotated[
        str | None, typer.Option(help="Valid time, YYYY-MM-DD (default today).")
    ] = None,
    known_at: KnownAtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What was in force on a date, as known at a moment."""
    with services() as svc:
        svc.projector.catch_up()
        now = datetime.now(UTC)
        answer = status_answer(
            svc.projector.view,
            key_filter(authority, country, commodity),
            parse_as_of(as_of, now.date()),
            svc.settled(parse_known_at(known_at, now)),
        )
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    table = Table(title=f"as of {answer.as_of}, known at {answer.known_at}")
    for column in ("stream", "status", "measures", "since"):
        table.add_column(column)
    for row in answer.results:
        table.add_row(
            row.stream, _styled(row.status), ", ".join(row.measures), str(row.since or "")
        )
    console.print(table)


@app.command()
def timeline(
    country: CountryArg,
    commodity: CommodityArg = None,
    authority: AuthorityOpt = None,
    known_at: KnownAtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The validity intervals of each stream, as known at a moment."""
    with services() as svc:
        svc.projector.catch_up()
        answer = timeline_answer(
            svc.projector.view,
            key_filter(authority, country, commodity),
            svc.settled(parse_known_at(known_at, datetime.now(UTC))),
        )
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    table = Table(title=f"known at {answer.known_at}")
    for column in ("stream", "from", "to", "status", "measures"):
        table.add_column(column)
    for row in answer.intervals:
        table.add_row(
            row.stream,
            str(row.valid_from),
            str(row.valid_to or "…"),
            _styled(row.status),
            ", ".join(row.measures),
        )
    console.print(table)


@app.command()
def replay(
    country: Annotated[str | None, typer.Argument(help="Target country.")] = None,
    commodity: Annotated[str | None, typer.Argument(help="Commodity slug.")] = None,
    authority: Annotated[str | None, typer.Option(help="Sanctioning authority.")] = None,
    known_at: Annotated[
        str | None, typer.Option(help="Only what was recorded by then (RFC 3339).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines, one step a line.")] = False,
) -> None:
    """The log event by event, each with its stream's status after it (streamed)."""
    with services() as svc:
        svc.projector.catch_up()
        where = event_filter(authority, country, commodity)
        moment = None if known_at is None else parse_known_at(known_at, datetime.now(UTC))
        steps = replay_steps(svc.log, svc.projector.view, where, moment)
        if as_json:
            for step in steps:
                typer.echo(step_out(step).model_dump_json())
            return
        table = Table()
        for column in (
            "position",
            "stream",
            "v",
            "event",
            "effective",
            "recorded_at",
            "status after",
        ):
            table.add_column(column)
        for step in steps:
            event = step.event
            what = event.TYPE.value + (
                f" {', '.join(event.measure_list or [])}" if event.measure_list else ""
            )
            table.add_row(
                str(step.position),
                event.stream,
                str(event.originator_version),
                what,
                str(event.effective or ""),
                format_timestamp(event.recorded_at),
                f"{_styled(step.status)} {', '.join(step.measures)}",
            )
        console.print(table)


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every hash chain and compare every read model with a fresh replay.

    Exits 1 when anything is wrong."""
    with services() as svc:
        svc.projector.catch_up()
        report = verify_store(svc.log, svc.projector.view)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(
            f"{report.events_checked} events in {report.streams_checked} streams checked: "
            f"chain {'[green]ok[/green]' if report.chain_ok else '[red]BROKEN[/red]'}, "
            f"read models {'[green]ok[/green]' if report.projections_ok else '[red]DIFFER[/red]'}"
        )
        for problem in report.problems:
            console.print(
                f"  {problem.kind}: {problem.stream or '?'}"
                f"{'' if problem.version is None else f' v{problem.version}'}: {problem.detail}",
                highlight=False,
                markup=False,
            )
    if report.problems:
        raise typer.Exit(1)


def _styled(status: str) -> str:
    colour = {"active": "red", "lifted": "green"}.get(status, "dim")
    return f"[{colour}]{status}[/{colour}]"


if __name__ == "__main__":  # pragma: no cover
    app()
