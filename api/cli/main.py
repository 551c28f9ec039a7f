"""The `sanctions` command line: the same service as the REST API, in a terminal.

Reading commands are here; those that run the service or move data are in
`api.cli.ops`, and what they share is in `api.cli.support`. Every reading command
answers from the database (`--database URL`, else SANCTIONS_DATABASE_URL), or, given
`--url`, from a running server's REST API. Heavy modules are imported inside the
commands, so `sanctions --help` starts at once.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from api.cli import changes as cli_changes
from api.cli import ops as cli_ops
from api.cli.group import SanctionsGroup
from api.cli.support import (
    AuthorityOpt,
    CommodityArg,
    CountryArg,
    JsonOpt,
    KnownAtOpt,
    Options,
    answering,
    columns_table,
    console,
    fail,
    flag,
    note_nothing_recorded,
    printed_as_json,
    styled,
)

WIDE = 1000
"""Columns a `--wide` table may take (it takes no more than its rows need)."""


app = typer.Typer(
    cls=SanctionsGroup, help="sanctions-timeline: sanctions policy as a verifiable event log."
)
cli_ops.register(app)
cli_changes.register(app)


@app.callback()
def main(
    ctx: typer.Context,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="The database, overriding SANCTIONS_DATABASE_URL: sqlite:///FILE or "
            "postgresql://USER@HOST/DB (add ?schema=NAME for a schema of its own).",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="http://HOST:PORT",
            help="Ask a running server over its REST API instead of opening a database "
            "(status, timeline, replay, verify, diff, screen, expiring); a token, if reads need "
            "one, from SANCTIONS_TOKEN.",
        ),
    ] = None,
) -> None:
    """sanctions-timeline: sanctions policy as a verifiable event log."""
    if database is not None and url is not None:
        raise fail("give --database or --url, not both")
    if url is not None and not url.startswith(("http://", "https://")):
        raise fail(f"--url {url!r}: give the server's address as http://HOST:PORT")
    ctx.obj = Options(database=database, url=url)


@app.command()
def status(
    ctx: typer.Context,
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

    from api.schemas.queries import StatusQuery

    with answering(ctx) as source:
        answer = source.answers.status(StatusQuery.from_options(locals()))
    if printed_as_json(answer, as_json):
        return
    table = columns_table(
        f"as of {answer.as_of}, known at {answer.known_at} — from {escape(source.origin)}",
        *("stream", "status", "measures", "since"),
    )
    for row in answer.results:
        table.add_row(row.stream, styled(row.status), ", ".join(row.measures), str(row.since or ""))
    console.print(table)
    if not answer.results:
        note_nothing_recorded(answer.known_at, given=known_at is not None)


@app.command()
def timeline(
    ctx: typer.Context,
    country: CountryArg,
    commodity: CommodityArg = None,
    authority: AuthorityOpt = None,
    known_at: KnownAtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The validity intervals of each stream, as known at a moment."""

    from api.schemas.queries import TimelineQuery

    with answering(ctx) as source:
        answer = source.answers.timeline(TimelineQuery.from_options(locals()))
    if printed_as_json(answer, as_json):
        return
    table = columns_table(
        f"known at {answer.known_at} — from {escape(source.origin)}",
        *("stream", "from", "to", "status", "measures"),
    )
    for row in answer.intervals:
        table.add_row(
            row.stream,
            str(row.valid_from),
            str(row.valid_to or "…"),
            styled(row.status),
            ", ".join(row.measures),
        )
    console.print(table)
    if not answer.intervals:
        note_nothing_recorded(answer.known_at, given=known_at is not None)


@app.command()
def replay(
    ctx: typer.Context,
    country: Annotated[str | None, typer.Argument(help="Target country.")] = None,
    commodity: Annotated[str | None, typer.Argument(help="Commodity slug.")] = None,
    authority: Annotated[str | None, typer.Option(help="Sanctioning authority.")] = None,
    known_at: Annotated[
        str | None, typer.Option(help="Only what was recorded by then (RFC 3339).")
    ] = None,
    as_json: Annotated[bool, flag("--json", "JSON Lines, one step a line.")] = False,
    wide: Annotated[
        bool, flag("--wide", "Every column, recorded_at and recorded_by too, at full width.")
    ] = False,
) -> None:
    """The log event by event, each with its stream's status after it (streamed)."""
    from rich.table import Table

    from api.schemas.queries import ReplayQuery

    with answering(ctx) as source:
        steps = source.answers.replay(ReplayQuery.from_options(locals()))
        if as_json:
            for step in steps:
                typer.echo(step.model_dump_json())
            return
        table = Table(title=f"replay — from {escape(source.origin)}")
        table.add_column("position", justify="right")
        table.add_column("stream", overflow="fold")
        table.add_column("v", justify="right")
        table.add_column("event", overflow="fold")
        table.add_column("effective", no_wrap=wide)
        if wide:
            table.add_column("recorded_at", no_wrap=True)
            table.add_column("recorded_by", no_wrap=True)
        table.add_column("status after", overflow="fold")
        for step in steps:
            event, after = step.event, step.stream_status
            cells = [
                str(event.position),
                event.stream,
                str(event.version),
                " ".join([event.type.value, ", ".join(event.measures)]).strip(),
                str(event.effective_date or ""),
            ]
            if wide:
                cells += [event.recorded_at, event.recorded_by]
            table.add_row(*cells, f"{styled(after.status)} {', '.join(after.measures)}")
    if wide:  # as wide as the rows need, whatever the terminal's width
        from rich.console import Console

        Console(width=WIDE).print(table, crop=False)
    else:
        console.print(table)


@app.command()
def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, flag("--json", "Print the report as JSON.")] = False,
) -> None:
    """Recompute every hash chain, the Merkle tree against every signed checkpoint, and
    compare every read model with a fresh replay.

    Exits 1 when anything is wrong."""
    with answering(ctx) as source:
        report = source.answers.verify()
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
    else:
        console.print(
            f"{report.events_checked} events in {report.streams_checked} streams checked: "
            f"chain {'[green]ok[/green]' if report.chain_ok else '[red]BROKEN[/red]'}, "
            f"read models {'[green]ok[/green]' if report.projections_ok else '[red]DIFFER[/red]'}, "
            f"log {'[green]ok[/green]' if report.log_ok else '[red]MISMATCH[/red]'}"
            f" — from {escape(source.origin)}",
            highlight=False,
        )
        for problem in report.problems:
            where = "" if problem.stream is None else f"{problem.stream}: "
            if problem.stream is not None and problem.version is not None:
                where = f"{problem.stream} v{problem.version}: "
            console.print(
                f"  {problem.kind}: {where}{problem.detail}",
                highlight=False,
                markup=False,
            )
    if report.problems:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
