"""What every `sanctions` command shares: consoles, the service for one command, progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.bootstrap import build_service
from api.identity import TokenError
from api.service import Service
from api.settings import Settings
from domain.errors import DomainError, InvalidInput
from domain.store.config import DatabaseURLError

CountryArg = Annotated[str, typer.Argument(help="Target country, ISO 3166-1 alpha-2.")]
CommodityArg = Annotated[str | None, typer.Argument(help="Commodity slug.")]
AuthorityOpt = Annotated[str | None, typer.Option(help="Sanctioning authority.")]
KnownAtOpt = Annotated[str | None, typer.Option(help="Transaction time, RFC 3339 (default now).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error; the exit to raise."""
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def service(*, catch_up: bool = True, **overrides: Any) -> Iterator[Service]:
    """The service for one command, its read models caught up with the log (unless
    `catch_up` is false); input, token and configuration errors end the command with
    a message and exit code 2."""
    try:
        svc = build_service(Settings(**overrides))
    except (TokenError, DatabaseURLError) as error:
        raise fail(str(error)) from None
    try:
        if catch_up:
            svc.projector.catch_up()
        yield svc
    except InvalidInput as error:
        raise fail(f"{error.field}: {error}") from None
    except (DomainError, TokenError) as error:
        raise fail(str(error)) from None
    finally:
        svc.close()


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


def styled(status: str) -> str:
    colour = {"active": "red", "lifted": "green"}.get(status, "dim")
    return f"[{colour}]{status}[/{colour}]"
