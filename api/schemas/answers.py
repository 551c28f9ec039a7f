"""Request and response models: the JSON shapes of the REST contract (request bodies in
`api.schemas.requests`, problem documents in `api.http.problem_types`)."""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from api.schemas.requests import BatchIn as BatchIn
from api.schemas.requests import EventIn as EventIn
from api.schemas.requests import SourceIn as SourceIn
from domain.hashing import format_timestamp
from domain.keys import StreamKey
from domain.recorded import Undecodable
from domain.rules import EventType, IntervalStatus, Status
from domain.stream import SanctionsStream
from projections.audit_trail import ReplayStep
from projections.verify import VerifyReport

Answer = TypeVar("Answer", bound=BaseModel)


class SourceOut(BaseModel):
    url: str
    title: str | None = None
    published: str | None = None


class EventOut(BaseModel):
    """A stored event: the posted fields plus the service's own."""

    event_id: UUID
    type: EventType
    stream: str
    authority: str
    country: str
    commodity: str
    effective_date: date | None
    measures: list[str]
    retracts: UUID | None
    expires: date | None = Field(
        default=None, description="The end of the event's term (exclusive), if it has one"
    )
    renews: UUID | None = Field(
        default=None, description="A renewal's target, if named (else the run's imposition)"
    )
    legal_basis: str | None
    source: SourceOut | None
    note: str | None
    version: int
    position: int
    recorded_at: str
    recorded_by: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, position: int, event: SanctionsStream.Event) -> EventOut:
        key = event.key
        return cls(
            event_id=event.event_id,
            type=event.TYPE,
            stream=key.name,
            authority=key.authority,
            country=key.country,
            commodity=key.commodity,
            effective_date=event.effective,
            measures=event.measure_list or [],
            retracts=event.retracted_id,
            expires=getattr(event, "expires", None),
            renews=getattr(event, "renews", None),
            legal_basis=event.legal_basis,
            source=None if event.source is None else SourceOut(**event.source),
            note=event.note,
            version=event.originator_version,
            position=position,
            recorded_at=format_timestamp(event.recorded_at),
            recorded_by=event.recorded_by,
            prev_hash=event.prev_hash,
            hash=event.hash,
        )


class EventsOut(BaseModel):
    events: list[EventOut]


class SkippedEvent(BaseModel):
    """A stored event passed over because it cannot be decoded (see `GET /v1/audit/verify`)."""

    position: int | None
    stream: str | None
    version: int
    detail: str

    @classmethod
    def of(cls, found: Undecodable) -> SkippedEvent:
        return cls(
            position=found.position,
            stream=found.stream,
            version=found.version,
            detail=found.describe(),
        )


class ReportsSkipped(BaseModel):
    """An answer that names the stored events it passed over, only when there are any."""

    problems: list[SkippedEvent] = Field(
        default_factory=list,
        description="Stored events that could not be decoded and were passed over "
        "(present only when there are any)",
    )

    @model_serializer(mode="wrap")
    def _omit_no_problems(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("problems"):
            data.pop("problems", None)
        return data


class EventPage(ReportsSkipped):
    events: list[EventOut]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null when this page is the last."
    )


class StreamOut(ReportsSkipped):
    stream: str
    version: int
    events: list[EventOut]


class CommodityOut(BaseModel):
    slug: str
    hs_code: str
    name: str
    hs_prefixes: list[str] = Field(
        description="The HS headings and subheadings it covers (`hs_code` first): a shipment's "
        "code is screened as the commodity with the longest matching prefix"
    )


class CommoditiesOut(BaseModel):
    commodities: list[CommodityOut]


class Health(BaseModel):
    status: str


class StatusResult(BaseModel):
    authority: str
    country: str
    commodity: str
    stream: str
    status: Status
    measures: list[str]
    since: date | None = Field(description="Effective date of the last change")
    in_force_since: date | None = Field(
        description="Date the current run of `active` began (null unless active)"
    )
    event_ids: list[str] = Field(description="The events that built this state")
    expires: date | None = Field(
        default=None,
        description="The next date on which this answer changes by itself: the earliest "
        "end of a pending term (exclusive); null if none",
    )

    @classmethod
    def nothing_in_force(cls, stream: str) -> StatusResult:
        """The row of a stream with nothing effective yet: status `none`."""
        return cls(
            **key_fields(stream),
            status="none",
            measures=[],
            since=None,
            in_force_since=None,
            event_ids=[],
            expires=None,
        )


class StatusOut(BaseModel):
    as_of: date
    known_at: str
    results: list[StatusResult]


class IntervalOut(BaseModel):
    stream: str
    authority: str
    country: str
    commodity: str
    valid_from: date
    valid_to: date | None = Field(description="Exclusive; null while open")
    status: IntervalStatus
    measures: list[str]
    event_id: str = Field(
        description="The event that began this interval, or whose term ended where it begins"
    )


class TimelineOut(BaseModel):
    known_at: str
    intervals: list[IntervalOut]


class RebuildOut(BaseModel):
    events: int
    seconds: float
    read_models: dict[str, int]


class StreamStatusOut(BaseModel):
    status: Status
    measures: list[str]
    since: date | None
    expires: date | None = Field(
        default=None,
        description="The next date on which this status changes by itself, or null",
    )


class ReplayStepOut(BaseModel):
    event: EventOut
    stream_status: StreamStatusOut

    @classmethod
    def of(cls, step: ReplayStep) -> ReplayStepOut:
        return cls(
            event=EventOut.of(step.position, step.event),
            stream_status=StreamStatusOut(
                status=step.status, measures=step.measures, since=step.since, expires=step.expires
            ),
        )


class ReplayOut(BaseModel):
    steps: list[ReplayStepOut]


class ProblemOut(BaseModel):
    kind: str
    stream: str | None
    version: int | None
    detail: str


class VerifyOut(BaseModel):
    events_checked: int
    streams_checked: int
    chain_ok: bool
    projections_ok: bool
    log_ok: bool
    problems: list[ProblemOut]

    @classmethod
    def of(cls, report: VerifyReport) -> VerifyOut:
        return cls(
            events_checked=report.events_checked,
            streams_checked=report.streams_checked,
            chain_ok=report.chain_ok,
            projections_ok=report.projections_ok,
            log_ok=report.log_ok,
            problems=[ProblemOut(**vars(problem)) for problem in report.problems],
        )


class Readiness(BaseModel):
    status: str
    projection_lag_events: int
    standby_replay_lag_bytes: int | None = Field(
        default=None,
        description="Only with reads from a standby (SANCTIONS_READ_DATABASE_URL): bytes of "
        "the primary's WAL the standby has yet to replay (absent when it cannot say)",
    )


def keyed(model: type[Answer], row: Any) -> Answer:
    """`model` filled from a read model's row with the same field names, its stream's key
    spelled out (authority, country, commodity)."""
    fields = {name: getattr(row, name) for name in model.model_fields if hasattr(row, name)}
    return model.model_validate({**fields, **key_fields(row.stream)})


def key_fields(stream: str) -> dict[str, str]:
    key = StreamKey.from_name(stream)
    return {
        "stream": key.name,
        "authority": key.authority,
        "country": key.country,
        "commodity": key.commodity,
    }
