"""The `sanctions` command line: the same service as the REST API, in a terminal.

Reading commands are here; those that run the service or move data are in
`api.cli_ops`, and what they share is in `api.cli_support`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from api import cli_ops
from api.cli_support import (
    AuthorityOpt,
    CommodityArg,
    CountryArg,
    JsonOpt,
    KnownAtOpt,
    console,
    service,
    styled,
)

app = typer.Typer(help="sanctions-timeline: sanctions policy as a verifiable event log.")
cli_ops.register(app)


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
    with service() as svc:
        answer = svc.status(authority, country, commodity, as_of, known_at)
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    table = Table(title=f"as of {answer.as_of}, known at {answer.known_at}")
    for column in ("stream", "status", "measures", "since"):
        table.add_column(column)
    for row in answer.results:
        table.add_row(row.stream, styled(row.status), ", ".join(row.measures), str(row.since or ""))
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
    with service() as svc:
        answer = svc.timeline(authority, country, commodity, known_at)
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
            styled(row.status),
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
    with service() as svc:
        steps = svc.replay(authority, country, commodity, known_at)
        if as_json:
            for step in steps:
                typer.echo(step.model_dump_json())
            return
        table = Table()
        for column in ("position", "stream", "v", "event", "effective", "recorded_at", "after"):
            table.add_column(column)
        for step in steps:
            event, after = step.event, step.stream_status
            table.add_row(
                str(event.position),
                event.stream,
                str(event.version),
                " ".join([event.type.value, ", ".join(event.measures)]).strip(),
                str(event.effective_date or ""),
                event.recorded_at,
                f"{styled(after.status)} {', '.join(after.measures)}",
            )
        console.print(table)


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every hash chain and compare every read model with a fresh replay.

    Exits 1 when anything is wrong."""
    with service() as svc:
        report = svc.verify()
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
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


if __name__ == "__main__":  # pragma: no cover
    app()
