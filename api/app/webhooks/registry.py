"""Webhook subscriptions, the use cases: subscribe, list, unsubscribe, see the attempts.

The deliveries themselves run behind the projector (`api.app.webhooks.delivery`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from api.app.settings import Settings
from api.app.webhooks.delivery import Deliveries, DeliveryPolicy
from api.app.webhooks.sender import new_secret
from api.app.webhooks.targets import AllowList, TargetRefused
from api.schemas.webhooks import (
    AttemptOut,
    DeliveriesOut,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionsOut,
)
from domain.application import SanctionsLog
from domain.errors import DomainError, InvalidInput
from domain.hashing import format_timestamp
from domain.store.webhooks import Subscription, SubscriptionTable
from projections.projector import Projector


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout=settings.webhook_timeout_seconds,
        backoff_base=settings.webhook_backoff_base_seconds,
        backoff_cap=settings.webhook_backoff_cap_seconds,
        lease=settings.webhook_lease_seconds,
    )


class Webhooks:
    """Subscriptions (admin) and their deliveries."""

    def __init__(self, settings: Settings, log: SanctionsLog, projector: Projector) -> None:
        self.log = log
        self.table = SubscriptionTable(log.store.database())
        self.allow = AllowList(settings.webhook_allow_hosts)
        self.deliveries = Deliveries(
            log, projector, self.table, self.allow, delivery_policy(settings)
        )
        projector.companions.append(self.deliveries)  # delivered wherever the projector runs

    def subscribe(self, request: SubscriptionIn, created_by: str) -> SubscriptionCreated:
        """A new subscription, delivering the events recorded from now on; its secret is
        in this answer only."""
        url = str(request.url)
        refused = self.refusal(url)
        if refused is not None:
            raise InvalidInput("body.url", refused)
        subscription = Subscription(
            id=str(uuid.uuid4()),
            url=url,
            authority=request.filter.authority,
            country=request.filter.country,
            commodity=request.filter.commodity,
            secret=new_secret(),
            created_at=format_timestamp(datetime.now(UTC)),
            created_by=created_by,
            delivered_position=self.log.recorder.max_notification_id() or 0,
        )
        self.table.insert(subscription)
        return SubscriptionCreated(
            **SubscriptionOut.of(subscription).model_dump(), secret=subscription.secret
        )

    def refusal(self, url: str) -> str | None:
        """Why the URL may not be a target, or None when it may."""
        try:
            self.allow.check(url)
        except TargetRefused as refused:
            return str(refused)
        return None

    def subscriptions(self) -> SubscriptionsOut:
        return SubscriptionsOut(
            subscriptions=[SubscriptionOut.of(found) for found in self.table.active()]
        )

    def unsubscribe(self, subscription_id: uuid.UUID) -> None:
        """Delete the subscription: nothing more is sent to it."""
        if not self.table.mark_deleted(str(subscription_id), format_timestamp(datetime.now(UTC))):
            raise SubscriptionNotFound(subscription_id)
        self.deliveries.forget(str(subscription_id))

    def attempts(self, subscription_id: uuid.UUID) -> DeliveriesOut:
        found = self.table.find(str(subscription_id))
        if found is None:
            raise SubscriptionNotFound(subscription_id)
        return DeliveriesOut(
            subscription_id=subscription_id,
            delivered_position=found.delivered_position,
            attempts=[AttemptOut.of(attempt) for attempt in self.table.latest_attempts(found.id)],
        )


class SubscriptionNotFound(DomainError):
    """No live subscription has the given id (HTTP 404)."""

    def __init__(self, subscription_id: uuid.UUID) -> None:
        self.message = f"no subscription {subscription_id}"
        super().__init__(self.message)
