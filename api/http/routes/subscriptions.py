"""Webhook subscriptions (admin): subscribe, list, unsubscribe, and the delivery attempts."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BeforeValidator

from api.http.deps import Admin, ServiceDep, in_worker_thread
from api.http.problem_types import problems
from api.schemas.requests import uuid_text
from api.schemas.webhooks import (
    DeliveriesOut,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionsOut,
)


class EveryFieldRoute(APIRoute):
    """A body refused by its schema is refused with its `url` checked against the allow-list
    too, so that one answer lists every invalid field."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def every_field(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as invalid:
                errors = list(invalid.errors())
                if request.method == "POST" and not any(
                    tuple(error.get("loc", ())) == ("body", "url") for error in errors
                ):
                    url = _posted_url(await request.body())
                    svc = request.app.state.service
                    refused = (
                        None if url is None else await run_in_threadpool(svc.webhooks.refusal, url)
                    )
                    if refused is not None:
                        errors.append(
                            {"loc": ("body", "url"), "msg": refused, "type": "value_error"}
                        )
                raise RequestValidationError(errors) from None

        return every_field


def _posted_url(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    url = document.get("url") if isinstance(document, dict) else None
    return url if isinstance(url, str) else None


router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"], route_class=EveryFieldRoute)

SubscriptionId = Annotated[
    UUID, Path(description="The subscription's id"), BeforeValidator(uuid_text)
]
NOT_FOUND = "No such subscription (never created, or deleted)"


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    responses={
        201: {"description": "Subscribed: the signing secret is in this answer only"},
        **problems(
            413,
            415,
            422,
            503,
            _422="Invalid input, every invalid field listed in `errors`: an unknown key, "
            "or a `url` that is not http(s) or whose host (or an address it resolves to) "
            "SANCTIONS_WEBHOOK_ALLOW_HOSTS does not allow",
        ),
    },
    summary="Subscribe a URL to the events matching a filter (Standard Webhooks)",
)
@in_worker_thread
def subscribe(body: SubscriptionIn, svc: ServiceDep, caller: Admin) -> SubscriptionCreated:
    return svc.webhooks.subscribe(body, caller.name)


@router.get(
    "",
    response_model=SubscriptionsOut,
    responses=problems(422, 503),
    summary="Every subscription (never a secret)",
)
@in_worker_thread
def list_subscriptions(svc: ServiceDep, _: Admin) -> SubscriptionsOut:
    return svc.webhooks.subscriptions()


@router.delete(
    "/{subscription_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Deleted: nothing more is sent to it"},
        **problems(404, 422, 503, _404=NOT_FOUND),
    },
    summary="Delete a subscription",
)
@in_worker_thread
def unsubscribe(subscription_id: SubscriptionId, svc: ServiceDep, _: Admin) -> Response:
    svc.webhooks.unsubscribe(subscription_id)
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveriesOut,
    responses=problems(404, 422, 503, _404=NOT_FOUND),
    summary="The latest delivery attempts, newest first, with the receiver's status codes",
)
@in_worker_thread
def list_deliveries(subscription_id: SubscriptionId, svc: ServiceDep, _: Admin) -> DeliveriesOut:
    return svc.webhooks.attempts(subscription_id)
