"""`sanctions diff`, `sanctions screen` and `sanctions expiring`: what changed between two
bitemporal points, whether a shipment falls under a measure, and which terms run out in a
window of dates, answered like the other reading commands (from the database, or with
`--url` from a running server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol, cast

import typer
from rich.markup import escape

from api.cli.support import (
    AuthorityOpt,
    JsonOpt,
    KnownAtOpt,
    answering,
    columns_table,
    console,
    printed_as_json,
    styled,
)

if TYPE_CHECKING:
    from api.schemas.answers import StreamStatusOut
    from api.schemas.queries import ReceiptQuery
    from api.schemas.receipts import EnvelopeOut


class Receipting(Protocol):
    """What issues screening receipts: the service, or a server (`api.cli.remote.Remote`)."""

    def receipt(self, query: ReceiptQuery) -> EnvelopeOut: ...


def described(state: StreamStatusOut) -> str:
    """`active: import_ban, transit_ban (since 2022-02-01)`, `lifted (since …)`, `none`."""
    text = styled(state.status)
    if state.measures:
        text += ": " + ", ".join(state.measures)
    if state.since is not None:
        text += f" (since {state.since})"
    return text


def diff(
    ctx: typer.Context,
    country: Annotated[str | None, typer.Argument(help="Target country.")] = None,
    commodity: Annotated[str | None, typer.Argument(help="Commodity slug.")] = None,
    authority: AuthorityOpt = None,
    from_as_of: Annotated[
        str | None,
        typer.Option(help="Valid time of the first point, YYYY-MM-DD (default: --to-as-of)."),
    ] = None,
    to_as_of: Annotated[
        str | None,
        typer.Option(help="Valid time of the second point, YYYY-MM-DD (default today)."),
    ] = None,
    from_known_at: Annotated[
        str | None,
        typer.Option(help="Transaction time of the first point, RFC 3339 (default now)."),
    ] = None,
    to_known_at: Annotated[
        str | None,
        typer.Option(help="Transaction time of the second point, RFC 3339 (default now)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two points: in force between two dates, or in what was known
    between two moments. Each changed stream, before and after, and the events that account
    for the difference."""
    from rich.table import Table

    from api.schemas.queries import DiffQuery

    with answering(ctx) as source:
        answer = source.answers.diff(DiffQuery.from_options(locals()))
    if printed_as_json(answer, as_json, by_alias=True):
        return
    before, after = answer.from_, answer.to
    if not answer.changes:
        console.print(
            f"no stream changed from as of {before.as_of}, known at {before.known_at}, "
            f"to as of {after.as_of}, known at {after.known_at} — from {escape(source.origin)}",
            highlight=False,
        )
        return
    table = Table(
        title=f"from as of {before.as_of}, known at {before.known_at}\n"
        f"to as of {after.as_of}, known at {after.known_at} — from {escape(source.origin)}"
    )
    table.add_column("stream", no_wrap=True)
    table.add_column("before")
    table.add_column("after")
    table.add_column("events", justify="right")
    for change in answer.changes:
        table.add_row(
            change.stream,
            described(change.before),
            described(change.after),
            str(len(change.event_ids)),
        )
    console.print(table)
    console.print("The events that account for each change:", highlight=False)
    for change in answer.changes:
        for event_id in change.event_ids:
            console.print(f"  {change.stream}  {event_id}", highlight=False)


def screen(
    ctx: typer.Context,
    hs: Annotated[str, typer.Argument(help="HS code, 2 to 10 digits, dots allowed (3104.20).")],
    origin: Annotated[str, typer.Argument(help="Country of origin, ISO 3166-1 alpha-2.")],
    date: Annotated[
        str | None, typer.Option(help="The shipment's date, YYYY-MM-DD (default today).")
    ] = None,
    authority: AuthorityOpt = None,
    receipt: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Save a signed receipt of the question and the answer here (check it with "
            "`sanctions audit receipt FILE --url URL` or `--key KEY`).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Does a shipment fall under sanctions? The commodity its HS code maps to, and the
    status of each authority's measures on that origin and commodity on the date."""

    from api.schemas.queries import ReceiptQuery, ScreenQuery

    with answering(ctx) as source:
        if receipt is None:
            answer = source.answers.screen(ScreenQuery.from_options(locals()))
        else:
            asked = ReceiptQuery.from_options(locals())
            envelope = cast("Receipting", source.answers).receipt(asked)
            receipt.write_text(envelope.model_dump_json(by_alias=True, indent=2) + "\n")
            answer = envelope.statement().predicate.answer
    if printed_as_json(answer, as_json):
        return
    table = columns_table(
        f"HS {escape(answer.hs)} → {answer.commodity}, from {answer.origin}, "
        f"on {answer.date} — from {escape(source.origin)}",
        *("authority", "status", "measures", "since"),
    )
    for row in answer.results:
        table.add_row(
            row.authority, styled(row.status), ", ".join(row.measures), str(row.since or "")
        )
    console.print(table)
    if not answer.results:
        console.print(
            f"no authority has recorded measures on {answer.commodity} from {answer.origin}",
            highlight=False,
        )
    if receipt is not None:
        console.print(
            f"a signed receipt of this answer is in {receipt} (`sanctions audit receipt "
            f"{receipt} {receipt_key_option(source.answers)}` checks it)",
            markup=False,
            highlight=False,
        )


WHAT_ENDS = {
    "run": "run ends: expired",
    "measures": "measures end",
    "easing": "easing ends: measures return",
}


def expiring(
    ctx: typer.Context,
    country: Annotated[str | None, typer.Argument(help="Target country.")] = None,
    commodity: Annotated[str | None, typer.Argument(help="Commodity slug.")] = None,
    authority: AuthorityOpt = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="First date of the window, YYYY-MM-DD (default today)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(help="The date after the window, YYYY-MM-DD (default: 90 days after --from)."),
    ] = None,
    known_at: KnownAtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What ends by itself: every term that runs out from --from up to (not including) --to,
    as known at a moment — the run of an imposition (the stream expires), the measures an
    expansion added, or an easing (its measures return). Renewed terms at their new end."""

    from api.schemas.queries import ExpiringQuery

    with answering(ctx) as source:
        answer = source.answers.expiring(ExpiringQuery.from_options(locals()))
    if printed_as_json(answer, as_json, by_alias=True):
        return
    window = f"from {answer.from_} to {answer.to}, known at {answer.known_at}"
    if not answer.expiries:
        console.print(f"nothing ends {window} — from {escape(source.origin)}", highlight=False)
        return
    table = columns_table(
        f"what ends {window} — from {escape(source.origin)}",
        *("date", "stream", "what ends", "measures"),
    )
    for expiry in answer.expiries:
        table.add_row(
            str(expiry.date), expiry.stream, WHAT_ENDS[expiry.ends], ", ".join(expiry.measures)
        )
    console.print(table)
    console.print("The events whose term ends:", highlight=False)
    for expiry in answer.expiries:
        console.print(f"  {expiry.date}  {expiry.stream}  {expiry.event_id}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the `sanctions` app."""
    app.command()(diff)
    app.command()(screen)
    app.command()(expiring)


def receipt_key_option(answers: object) -> str:
    """How `audit receipt` gets the key a receipt was signed with: from the server, or the
    verifier key itself when the receipt came from the database."""
    base_url = getattr(answers, "base_url", None)
    if base_url is not None:
        return f"--url {base_url}"
    notary = getattr(answers, "notary", None)
    return f"--key {notary.verifier_key}" if notary is not None else "--key KEY"
