"""The OpenAPI document as this server answers: who may call each route, and every refusal.

FastAPI writes the routes' own statuses and schemas; this adds what depends on the app and its
settings: the bearer scheme required where a token is needed and optional where reads are open
(`SANCTIONS_READS_REQUIRE_TOKEN` unset), 401/403 where they can be answered, the 422 every route
gives for an unknown query parameter, and every refusal as a `Problem` under
`application/problem+json`, the media type it is sent with.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from api.app.identity import Role
from api.http.deps import access
from api.http.problem_types import MEANINGS, PROBLEM_CONTENT, Problem

SCHEME = "HTTPBearer"


def install(app: FastAPI) -> None:
    """Make `app.openapi()` (and so `/openapi.json` and `/docs`) answer the amended document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            amend(generate(), app)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def amend(document: dict[str, Any], app: FastAPI) -> None:
    reads_open = not app.state.service.settings.reads_require_token
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for route in iter_route_contexts(app.routes):  # through included routers
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _amend_operation(operation, access(route.dependant), reads_open)


def _amend_operation(
    operation: dict[str, Any], needs: tuple[Role, bool] | None, reads_open: bool
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if needs is None:
        operation.pop("security", None)
    else:
        role, always = needs
        if not always and reads_open:
            operation["security"] = [{}, {SCHEME: []}]  # a token may be sent; none is needed
        else:
            operation["security"] = [{SCHEME: []}]
            responses["401"] = _problem(
                401, headers={"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}}
            )
            if role > Role.READER:
                responses["403"] = _problem(403, f"The token's role is below {role.label}")
    responses["422"] = _problem(422, responses.get("422", {}).get("description"))
    for status, response in responses.items():
        if status[0] in "45":
            response["content"] = PROBLEM_CONTENT
    operation["responses"] = dict(sorted(responses.items()))


def _problem(status: int, description: str | None = None, **extra: Any) -> dict[str, Any]:
    if not description or description == "Validation Error":
        description = MEANINGS[status]
    return {"description": description, "content": PROBLEM_CONTENT, **extra}
