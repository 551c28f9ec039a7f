"""The JSON shapes of webhook subscriptions: what is posted, what is answered, what a
receiver gets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.answers import EventOut, StreamStatusOut
from api.schemas.requests import Authority, Commodity, Country, HttpUrl
from domain.store.webhooks import Attempt, Subscription


class FilterIn(BaseModel):
    """Which events to send: those of streams matching every key given (none: all)."""

    model_config = ConfigDict(extra="forbid")

    authority: Authority | None = None
    country: Country | None = None
    commodity: Commodity | None = None


class SubscriptionIn(BaseModel):
    """A new subscription (admin)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://hooks.example.com/sanctions", "filter": {"country": "BY"}}
            ]
        },
    )

    url: HttpUrl = Field(
        description="Where events are POSTed: http(s), its host allowed by "
        "SANCTIONS_WEBHOOK_ALLOW_HOSTS (and every address it resolves to)"
    )
    filter: FilterIn = Field(default_factory=FilterIn)


class FilterOut(BaseModel):
    authority: str | None
    country: str | None
    commodity: str | None


class SubscriptionOut(BaseModel):
    """A subscription as listed: never its secret."""

    id: UUID
    url: str
    filter: FilterOut
    created_at: str
    created_by: str
    delivered_position: int = Field(
        description="The position of the last event the receiver acknowledged (or, before "
        "any, of the last event recorded when it was created)"
    )

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionOut:
        return cls(
            id=UUID(subscription.id),
            url=subscription.url,
            filter=FilterOut(
                authority=subscription.authority,
                country=subscription.country,
                commodity=subscription.commodity,
            ),
            created_at=subscription.created_at,
            created_by=subscription.created_by,
            delivered_position=subscription.delivered_position,
        )


class SubscriptionCreated(SubscriptionOut):
    """The new subscription and its signing secret, shown this once."""

    secret: str = Field(
        description="The Standard Webhooks signing secret (`whsec_` + base64): verify each "
        "delivery with it. It is never shown again"
    )


class SubscriptionsOut(BaseModel):
    subscriptions: list[SubscriptionOut]


class AttemptOut(BaseModel):
    """One delivery attempt."""

    event_id: str
    position: int
    attempt: int = Field(description="1 for the first attempt at this event, then 2, 3, …")
    attempted_at: str
    outcome: Literal["delivered", "failed", "refused", "skipped"] = Field(
        description="`delivered`: a 2xx answer; `failed`: another status, a timeout or no "
        "connection (retried); `refused`: the target is not allowed now (retried); "
        "`skipped`: the stored event could not be decoded"
    )
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered")
    error: str | None
    duration_ms: int

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(**asdict(attempt))


class DeliveriesOut(BaseModel):
    """The latest attempts, newest first (the last 100 are kept)."""

    subscription_id: UUID
    delivered_position: int
    attempts: list[AttemptOut]


class WebhookBody(BaseModel):
    """What a receiver is POSTed, signed as Standard Webhooks says (`webhook-id` is the
    event id)."""

    subscription_id: UUID
    event: EventOut
    stream_status: StreamStatusOut
