"""The `sanctions` command line: the same core as the REST API, in a terminal."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from api.bootstrap import build_services, create_app
from api.identity import Role
from api.seed import seed as seed_timeline
from api.settings import Settings
from domain.errors import DomainError

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
    uvicorn.run(create_app(svc), host=host, port=port, log_level="info")


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


if __name__ == "__main__":  # pragma: no cover
    app()
