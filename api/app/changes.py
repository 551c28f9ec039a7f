"""The service's questions about change: what differs between two bitemporal points, which
measures a shipment falls under, and which terms run out in a window of dates. Part of
`api.app.service.Service`, kept apart to keep each module one concern."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from api.schemas.answers import StatusOut, StatusResult, StreamStatusOut, key_fields
from api.schemas.changes import ChangeOut, DiffOut, ExpiringOut, ExpiryOut, PointOut, ScreenOut
from api.schemas.inputs import collect, optional, parse_as_of, parse_known_at, renamed
from api.schemas.queries import DiffQuery, ExpiringQuery, ScreenQuery, StatusQuery
from domain.application import SanctionsLog
from domain.catalogue import commodity_for_hs
from domain.errors import InvalidInput
from domain.hashing import format_timestamp, parse_timestamp
from domain.keys import EventFilter, parse_authority, parse_country
from domain.stream import SanctionsStream
from projections.diff import Point, accounting_events, changed_streams
from projections.expiring import expiries
from projections.projector import Projector
from projections.rows import StatusRow

STREAMS_PER_QUERY = 500
WINDOW = timedelta(days=90)
"""The window `GET /v1/expiring` looks ahead by default."""


def stream_status(row: StatusRow | None) -> StreamStatusOut:
    if row is None:
        return StreamStatusOut(status="none", measures=[], since=None)
    return StreamStatusOut(
        status=row.status, measures=row.measures, since=row.since, expires=row.expires
    )


class ChangeQuestions:
    """`Service.diff` and `Service.screen`, on the service's log and read models."""

    log: SanctionsLog
    projector: Projector

    def settled(self, known_at: datetime) -> datetime:
        raise NotImplementedError  # Service's

    def status(self, query: StatusQuery) -> StatusOut:
        raise NotImplementedError  # Service's

    def diff(self, query: DiffQuery) -> DiffOut:
        """Every matching stream whose status or measures differ between two bitemporal
        points, with the events that account for each difference. `to_as_of` defaults to
        today, `from_as_of` to `to_as_of`, and both `known_at` to now."""
        errors: list[InvalidInput] = []
        where = collect(errors, query.where)
        today = datetime.now(UTC).date()
        to_day = collect(
            errors, lambda: renamed("to_as_of", lambda: parse_as_of(query.to_as_of, today))
        )
        from_day = collect(
            errors,
            lambda: renamed("from_as_of", lambda: parse_as_of(query.from_as_of, to_day or today)),
        )
        now = datetime.now(UTC)  # one "now" for both points when neither gives a moment
        to_moment = collect(
            errors, lambda: renamed("to_known_at", lambda: parse_known_at(query.to_known_at, now))
        )
        from_moment = collect(
            errors,
            lambda: renamed("from_known_at", lambda: parse_known_at(query.from_known_at, now)),
        )
        InvalidInput.raise_all(errors)
        assert where is not None and to_day is not None and from_day is not None
        assert to_moment is not None and from_moment is not None
        before = Point(from_day, self.settled(from_moment))
        after = Point(to_day, self.settled(to_moment))
        changes = changed_streams(self.projector.view, where, before, after)
        events = self.events_of([change.stream for change in changes])
        return DiffOut.model_validate(
            {
                "from": point_out(before),
                "to": point_out(after),
                "changes": [
                    ChangeOut(
                        **key_fields(change.stream),
                        before=stream_status(change.before),
                        after=stream_status(change.after),
                        event_ids=accounting_events(events[change.stream], before, after),
                    )
                    for change in changes
                ],
            }
        )

    def expiring(self, query: ExpiringQuery) -> ExpiringOut:
        """Every term of the matching streams that runs out in `[from, to)`, as recorded by
        `known_at`; `from` defaults to today, `to` to 90 days after `from`, `known_at` to now."""
        errors: list[InvalidInput] = []
        where = collect(errors, query.where)
        today = datetime.now(UTC).date()
        start = collect(errors, lambda: renamed("from", lambda: parse_as_of(query.from_, today)))
        end = collect(
            errors,
            lambda: renamed("to", lambda: parse_as_of(query.to, window_end(start or today))),
        )
        moment = collect(
            errors,
            lambda: renamed("known_at", lambda: parse_known_at(query.known_at, datetime.now(UTC))),
        )
        if start is not None and end is not None and start > end:
            errors.append(InvalidInput("query.from", f"{start} is after the window's end, {end}"))
            errors.append(InvalidInput("query.to", f"{end} is before the window's start, {start}"))
        InvalidInput.raise_all(errors)
        assert where is not None and start is not None and end is not None and moment is not None
        known_at = self.settled(moment)
        found = expiries(self.projector.view, self.events_of, where, (start, end), known_at)
        return ExpiringOut.model_validate(
            {
                "from": start,
                "to": end,
                "known_at": format_timestamp(known_at),
                "expiries": [
                    ExpiryOut(
                        **key_fields(expiry.stream),
                        date=expiry.date,
                        event_id=expiry.event_id,
                        ends=expiry.ends,
                        measures=expiry.measures,
                    )
                    for expiry in found
                ],
            }
        )

    def events_of(self, streams: list[str]) -> dict[str, list[SanctionsStream.Event]]:
        """Every event of these streams, by stream, in log order: a query per 500 streams."""
        found: dict[str, list[SanctionsStream.Event]] = {stream: [] for stream in streams}
        for start in range(0, len(streams), STREAMS_PER_QUERY):
            chunk = streams[start : start + STREAMS_PER_QUERY]
            for recorded in self.log.page(streams=chunk).events:
                found[recorded.event.stream].append(recorded.event)
        return found

    def screen(self, query: ScreenQuery) -> ScreenOut:
        """A shipment check: the commodity an HS code falls under, and for each authority
        with any event for that origin and commodity, its status on `day` (default today)."""
        return self.screened(query)[0]

    def screened(self, query: ScreenQuery, known_at: str | None = None) -> tuple[ScreenOut, str]:
        """`screen`'s answer as recorded by `known_at` (default now), and the settled moment
        it is for."""
        errors: list[InvalidInput] = []
        commodity = collect(errors, lambda: renamed("hs", lambda: commodity_for_hs(query.hs)))
        country = collect(errors, lambda: renamed("origin", lambda: parse_country(query.origin)))
        on = collect(
            errors,
            lambda: renamed("date", lambda: parse_as_of(query.date, datetime.now(UTC).date())),
        )
        by = collect(errors, lambda: optional(parse_authority, query.authority, "authority"))
        InvalidInput.raise_all(errors)
        assert commodity is not None and country is not None and on is not None
        where = EventFilter(authority=by, country=country, commodity=commodity.slug)
        asked = StatusQuery.of(
            authority=by,
            country=country,
            commodity=commodity.slug,
            as_of=on.isoformat(),
            known_at=known_at,
        )
        status = self.status(asked)
        answered = status.results
        found = {row.stream: row for row in answered}
        results = [
            found.get(stream) or StatusResult.nothing_in_force(stream)
            # the streams with an event recorded by then: none first recorded later
            for stream in sorted(
                {*self.projector.view.streams(where, parse_timestamp(status.known_at)), *found}
            )
        ]
        answer = ScreenOut(
            hs=query.hs.strip(), commodity=commodity.slug, origin=country, date=on, results=results
        )
        return answer, status.known_at


def point_out(point: Point) -> PointOut:
    return PointOut(as_of=point.as_of, known_at=format_timestamp(point.known_at))


def window_end(start: date) -> date:
    """The default end of a window beginning on `start`: 90 days on (the last date there is,
    near the end of the calendar)."""
    try:
        return start + WINDOW
    except OverflowError:
        return date.max
