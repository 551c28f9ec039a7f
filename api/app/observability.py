"""Operations: Prometheus metrics and one structured log line per request.

The log line names the route, status, duration and the caller's token *name* (when
known): never a token, never a query string.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_log = logging.getLogger("sanctions.requests")

CLIENT_CLOSED_REQUEST = 499
"""The status counted and logged for a request whose client hung up (mid-body, say) before
any answer was sent: nginx's "client closed request". It is never sent."""


class Metrics:
    """The service's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sanctions_http_requests",
            "HTTP requests answered, by method, route and status (499: the client hung up "
            "before the answer)",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sanctions_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            ["method", "route"],
            registry=self.registry,
        )
        self.recorded = Counter(
            "sanctions_events_recorded",
            "Events recorded through this process, by type",
            ["type"],
            registry=self.registry,
        )
        self.lag_events = Gauge(
            "sanctions_projection_lag_events",
            "Events recorded but not yet in the read models",
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "sanctions_projection_lag_seconds",
            "Age of the oldest event not yet in the read models (0 when caught up)",
            registry=self.registry,
        )
        self.reads_placed = Counter(
            "sanctions_reads_placed",
            "Reads with a standby configured, by where they were answered: standby, "
            "primary_away (the standby alone), standby_behind or standby_away (the primary)",
            ["place"],
            registry=self.registry,
        )
        self.standby_lag_bytes = Gauge(
            "sanctions_standby_replay_lag_bytes",
            "Bytes of the primary's WAL the standby reads are answered from has yet to replay",
            registry=self.registry,
        )


def route_of(scope: Scope, received: Scope) -> str:
    """The route template a request matched (`/v1/status/{stream}`, `/static/{path}`, …),
    never its raw path: metrics labels stay few. A request that never reached its route
    (its client hung up while the write guard read the body, say) is matched again, as it
    was `received`, against the templates the app publishes in its OpenAPI document, then
    against its other routes (the static mounts, `/docs`)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path + "/{path}" if isinstance(route, Mount) else path
    app = scope.get("app")
    for template in published_templates(app):
        if template.matches(received)[0] is Match.FULL:
            return template.path
    for candidate in getattr(app, "routes", ()):
        path = getattr(candidate, "path", None)
        if isinstance(path, str) and candidate.matches(received)[0] is Match.FULL:
            return path + "/{path}" if isinstance(candidate, Mount) else path
    return "unmatched"


def published_templates(app: Any) -> list[Route]:
    """The app's operations as plain routes (template and methods), from its OpenAPI
    document: public, where the framework's own route objects nest privately."""
    templates: list[Route] | None = getattr(app, "_observed_templates", None)
    if templates is None:
        openapi = getattr(app, "openapi", None)
        paths = openapi().get("paths", {}) if callable(openapi) else {}
        templates = [
            Route(path, endpoint=unreachable, methods=[m.upper() for m in operations])
            for path, operations in paths.items()
        ]
        app._observed_templates = templates
    return templates


def unreachable(*_: Any) -> None:  # pragma: no cover -- a template is matched, never called
    raise AssertionError("a route template of the metrics is never called")


class RequestObserver:
    """Counts, times and logs every HTTP request (pure ASGI, so streams are not held)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = dict(scope)  # routing rewrites path and root_path in place
        status = 500
        answered = hung_up = False

        async def listen() -> Message:
            nonlocal hung_up
            message = await receive()
            if message["type"] == "http.disconnect":
                hung_up = True
            return message

        async def observe(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answered = True
            await send(message)

        try:
            await self.app(scope, listen, observe)
        except ClientDisconnect:
            if answered:
                raise
        finally:
            if hung_up and not answered:
                status = CLIENT_CLOSED_REQUEST  # no answer was sent, so none was a 500
            elapsed = time.perf_counter() - started
            route = route_of(scope, received)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            line: dict[str, Any] = {
                "at": datetime.now(UTC).isoformat(),
                "method": method,
                "path": scope["path"],
                "route": route,
                "status": status,
                "ms": round(elapsed * 1000, 2),
                "caller": scope.get("state", {}).get("caller"),
            }
            if status == CLIENT_CLOSED_REQUEST:
                line["outcome"] = "client disconnected before the answer"
            request_log.info(json.dumps(line))


def configure_logging() -> None:
    """The service's own log lines (JSON, one per request) to standard error."""
    logger = logging.getLogger("sanctions")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
