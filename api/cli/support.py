"""What every `sanctions` command shares: the global options, consoles and errors, and
what answers a command — the service on a database, or a running server over HTTP.

Only typer and rich's console are imported when the program starts; the service, the
event store, FastAPI and httpx are imported by the function that needs them, so
`sanctions --help` answers at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.table import Table

    from api.app.service import Service
    from api.app.settings import Settings
    from api.schemas.answers import ReplayStepOut, StatusOut, TimelineOut, VerifyOut
    from api.schemas.changes import DiffOut, ExpiringOut, ScreenOut
    from api.schemas.queries import (
        DiffQuery,
        ExpiringQuery,
        ReplayQuery,
        ScreenQuery,
        StatusQuery,
        TimelineQuery,
    )

CountryArg = Annotated[str, typer.Argument(help="Target country, ISO 3166-1 alpha-2.")]
CommodityArg = Annotated[str | None, typer.Argument(help="Commodity slug.")]
AuthorityOpt = Annotated[str | None, typer.Option(help="Sanctioning authority.")]
KnownAtOpt = Annotated[str | None, typer.Option(help="Transaction time, RFC 3339 (default now).")]
# metavar="": Typer would otherwise print `<bool>` beside a flag, as if it took a value.
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")]

console = Console()
errors = Console(stderr=True)

CLI_NAMES = {
    "query.as_of": "--as-of",
    "query.known_at": "--known-at",
    "query.authority": "--authority",
    "query.country": "COUNTRY",
    "query.commodity": "COMMODITY",
    "query.from_as_of": "--from-as-of",
    "query.to_as_of": "--to-as-of",
    "query.from_known_at": "--from-known-at",
    "query.to_known_at": "--to-known-at",
    "query.hs": "HS",
    "query.origin": "ORIGIN",
    "query.date": "--date",
    "query.from": "--from",
    "query.to": "--to",
}
"""The service names its inputs as the REST API takes them; a command names its own."""

CREATE_HINT = (
    "Create one with `sanctions seed --create` (records the bundled timeline) or `sanctions "
    "serve --seed`; or name another with `sanctions --database URL …` (or "
    "SANCTIONS_DATABASE_URL), or ask a running server with `sanctions --url http://HOST:PORT …`."
)
CreateOpt = Annotated[
    bool,
    typer.Option(
        "--create",
        metavar="",
        help="Create the database if it does not exist yet (without it, a missing database "
        "is an error: nothing is created by surprise).",
    ),
]


def flag(name: str, help: str) -> Any:
    """A plain on/off option, shown in `--help` without a value."""
    return typer.Option(name, metavar="", help=help)


def cli_name(field: str) -> str:
    return CLI_NAMES.get(field, field)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error; the exit to raise (2: the command was given something
    wrong; 1: what it looked at is missing, unreachable or failed)."""
    errors.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def fail_fields(found: list[tuple[str, str]], code: int = 2) -> typer.Exit:
    """Print every invalid input, each under the command's own name for it."""
    for field, message in found:
        fail(f"{cli_name(field)}: {message}")
    return typer.Exit(code)


@dataclass(frozen=True)
class Options:
    """The global options: `sanctions [--database URL | --url http://HOST:PORT] COMMAND`."""

    database: str | None = None
    """Overrides SANCTIONS_DATABASE_URL."""
    url: str | None = None
    """A running server to ask instead of a database (reading commands only)."""

    def settings(self, **overrides: Any) -> Settings:
        """The service's settings (SANCTIONS_* from the environment), `--database` applied."""
        from api.app.settings import Settings

        if self.database is not None:
            overrides.setdefault("database_url", self.database)
        return Settings(**overrides)


def options(ctx: typer.Context) -> Options:
    found = ctx.find_root().obj
    return found if isinstance(found, Options) else Options()


def command_name(ctx: typer.Context) -> str:
    """`sanctions token list`, however the program was started."""
    names: list[str] = []
    at: Any = ctx
    while at.parent is not None:
        names.append(at.info_name or "")
        at = at.parent
    return " ".join(["sanctions", *reversed(names)])


def database_named_by(ctx: typer.Context) -> str:
    """Where the database URL came from, for an error about it: the `--database` option,
    else SANCTIONS_DATABASE_URL (or its default, which names the same setting)."""
    return "--database" if options(ctx).database is not None else "SANCTIONS_DATABASE_URL"


def blaming(ctx: typer.Context, message: str) -> str:
    """An error about the database URL, naming where the URL was given."""
    named_by = database_named_by(ctx)
    prefix = "SANCTIONS_DATABASE_URL: "
    if message.startswith(prefix):
        return f"{named_by}: {message.removeprefix(prefix)}"
    return f"{named_by}: {message}"


@contextmanager
def service(
    ctx: typer.Context,
    *,
    catch_up: bool = True,
    must_exist: bool = False,
    writes: bool = False,
    create: bool = False,
    **overrides: Any,
) -> Iterator[Service]:
    """The service for one command on the chosen database, its read models caught up with
    the log (unless `catch_up` is false). With `must_exist`, a database with no event store
    yet is not created: the command says where it looked and exits 1. A command that
    `writes` says on standard error which database it writes, and creates a missing one
    only if told to (`create`, its `--create` flag); else it exits 1, saying where it
    looked. Input, token and configuration errors end the command with a message and
    exit code 2."""
    if options(ctx).url is not None:
        raise fail(
            f"`{command_name(ctx)}` works on a database, not over --url (only status, timeline, "
            "replay, verify, diff, screen and expiring ask a server); leave out --url, or give "
            "--database URL"
        )
    from pydantic import ValidationError

    from api.app.bootstrap import build_service
    from api.app.identity import TokenError
    from domain.errors import DomainError, InvalidInput
    from domain.store.config import DatabaseURLError
    from domain.store.keyfile import SigningKeyError

    try:
        settings = options(ctx).settings(**overrides)
        if writes:
            announce_writes(ctx, settings.database_url, create=create)
        elif must_exist:
            require_event_store(ctx, settings.database_url)
        svc = build_service(settings)
    except DatabaseURLError as error:
        raise fail(blaming(ctx, str(error))) from None
    except TokenError as error:
        raise fail(str(error)) from None
    except ValidationError as error:
        raise fail(f"configuration: {error}") from None
    except Exception as error:
        if not unreachable(error):
            raise
        raise fail(
            blaming(ctx, f"cannot open {where(settings.database_url)}: {error}"), 1
        ) from None
    try:
        if catch_up:
            svc.projector.catch_up()
        yield svc
    except InvalidInput as error:
        raise fail_fields([(e.field, e.message) for e in error.every]) from None
    except (DomainError, TokenError, SigningKeyError) as error:
        raise fail(str(error)) from None
    finally:
        svc.close()


def where(database_url: str) -> str:
    """The database a URL names, for people: a SQLite file's absolute path, a URL without
    its password."""
    from domain.store.config import database_location

    return database_location(database_url)


def unreachable(error: Exception) -> bool:
    """Whether an error opening the database says it cannot be reached (PostgreSQL down,
    a file that cannot be opened) rather than a bug."""
    import sqlite3

    return type(error).__module__.startswith("psycopg") or isinstance(
        error, (sqlite3.OperationalError, OSError)
    )


def missing_store(ctx: typer.Context, database_url: str) -> str | None:
    """Why the database has no event store yet (None if it has one); exit 1, naming where
    the URL was given, if it cannot be looked at. Nothing is created."""
    from domain.store.config import DatabaseUnreachable, missing_event_store

    try:
        return missing_event_store(database_url)
    except DatabaseUnreachable as error:
        raise fail(blaming(ctx, str(error)), 1) from None


def require_event_store(ctx: typer.Context, database_url: str) -> None:
    """Exit 1, saying where it looked and how to create one, unless the database has an
    event store; nothing is created either way."""
    missing = missing_store(ctx, database_url)
    if missing is not None:
        raise fail(f"no database at {where(database_url)}: {missing}.\n{CREATE_HINT}", 1)


def announce_writes(ctx: typer.Context, database_url: str, *, create: bool) -> None:
    """Say on standard error which database a writing command writes; exit 1 if it does
    not exist yet, unless `create`."""
    missing = missing_store(ctx, database_url)
    if missing is None:
        errors.print(f"writing to {where(database_url)}", markup=False, highlight=False)
        return
    if not create:
        raise fail(
            f"no database at {where(database_url)}: {missing}.\n`{command_name(ctx)}` writes "
            "only to a database that exists: add --create to create this one, or name another "
            "with `sanctions --database URL …` (or SANCTIONS_DATABASE_URL).",
            1,
        )
    errors.print(f"creating a new database at {where(database_url)}", markup=False, highlight=False)


class Answers(Protocol):
    """What the reading commands ask: the service (`api.app.service.Service`) or a running
    server (`api.cli.remote.Remote`), with the same arguments and the same answers."""

    def status(self, query: StatusQuery) -> StatusOut: ...

    def timeline(self, query: TimelineQuery) -> TimelineOut: ...

    def replay(self, query: ReplayQuery) -> Iterator[ReplayStepOut]: ...

    def verify(self) -> VerifyOut: ...

    def diff(self, query: DiffQuery) -> DiffOut: ...

    def screen(self, query: ScreenQuery) -> ScreenOut: ...

    def expiring(self, query: ExpiringQuery) -> ExpiringOut: ...


@dataclass(frozen=True)
class Source:
    answers: Answers
    origin: str
    """Who answers, for the tables' titles: a database (no password) or a server URL."""


def known_at_note(option: str, day: str) -> Text:
    """What a bare date given as a `--known-at` means: the moment that day began (UTC)."""
    return Text.assemble(
        ("note:", "yellow"),
        f" {option} {day} is read as {day}T00:00:00Z, the start of that day (UTC): only what "
        f"was recorded by then counts. {option} is a moment of the record (transaction time), "
        f"e.g. {day}T23:59:59Z for the end of that day; the date a law is read on is --as-of.",
    )


def note_nothing_recorded(known_at: str, *, given: bool) -> None:
    """Below an empty table: that no event the question matches was recorded by `known_at`, so
    an empty answer is not read as "nothing in force" by one who meant a valid date."""
    note = f" no event matching this question had been recorded by {known_at}"
    if given:
        note += (
            ": --known-at is a moment of the record (when events were recorded); the date a "
            "law is read on is --as-of"
        )
    errors.print(Text.assemble(("note:", "yellow"), note + "."), highlight=False)


def note_bare_days(ctx: typer.Context) -> None:
    """Once a command has its answer: a note for each `--known-at` given as a real day."""
    from datetime import date

    for name in ("known_at", "from_known_at", "to_known_at"):
        value = ctx.params.get(name)
        day = value.strip() if isinstance(value, str) else ""
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", day):
            try:
                date.fromisoformat(day)
            except ValueError:
                continue  # refused already, saying why
            errors.print(known_at_note(cli_name(f"query.{name}"), day), highlight=False)


@contextmanager
def answering(ctx: typer.Context) -> Iterator[Source]:
    """What answers a reading command: the server given with --url (token from
    SANCTIONS_TOKEN), or else the service on the database, which must already exist."""
    url = options(ctx).url
    if url is None:
        from domain.store.config import database_location

        with service(ctx, must_exist=True) as svc:
            yield Source(svc, database_location(svc.settings.database_url))
        note_bare_days(ctx)
        return
    from api.cli.remote import Remote, RemoteError

    try:
        with Remote(url, os.environ.get("SANCTIONS_TOKEN") or None) as remote:
            yield Source(remote, remote.base_url)
        note_bare_days(ctx)
    except RemoteError as error:
        if error.fields:
            raise fail_fields(error.fields, error.exit_code) from None
        raise fail(error.message, error.exit_code) from None


@contextmanager
def progress_bar(
    label: str, total: int, *, visible: bool = True
) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on standard error; yields a function taking the count done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


def printed_as_json(answer: BaseModel, wanted: bool, *, by_alias: bool = False) -> bool:
    """Print the answer as indented JSON if `--json` asked for it; whether it did."""
    if wanted:
        typer.echo(answer.model_dump_json(indent=2, by_alias=by_alias))
    return wanted


def columns_table(title: str, *columns: str) -> Table:
    """A Rich table with this title and these plain columns."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    return table


def styled(status: str) -> str:
    colour = {"active": "red", "lifted": "green"}.get(status, "dim")
    return f"[{colour}]{status}[/{colour}]"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 batch`, `2 batches`."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
