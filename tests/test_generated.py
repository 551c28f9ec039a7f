"""Generated requests from the OpenAPI document (schemathesis): no input causes a 500.

Valid and deliberately invalid requests for every operation, against a seeded store;
every answer must be below 500, and every refusal a problem document.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode

from api.app.seed import seed
from api.app.service import Service
from api.http.app import create_app
from tests.conftest import ADMIN

pytestmark = pytest.mark.integration  # generated requests to the app in process, on a real store

SKIPPED = {"/v1/events/stream"}  # endless by design: tests/test_live_stream.py
TAKE_NO_INPUT = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/audit/checkpoint",
    "/v1/audit/key",
    "/v1/commodities",
}
"""No parameter, no body: nothing in a request to them can be made invalid."""


def takes_input(operation: Any) -> bool:
    return any(True for _ in operation.iter_parameters()) or bool(operation.body)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_causes_a_server_error(
    services: Service, mode: GenerationMode
) -> None:
    seed(services)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(services))
    operations = [op.ok() for op in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in SKIPPED]
    assert len(operations) >= 15
    # An operation whose inputs went missing from the document would have no invalid
    # request either, and so would go untested below: the list is checked.
    assert {op.path for op in operations if not takes_input(op)} == TAKE_NO_INPUT
    if mode is GenerationMode.NEGATIVE:
        operations = [op for op in operations if op.path not in TAKE_NO_INPUT]
    for operation in operations:
        calls = 0

        # Every health check on: any operation's strategy that generates nothing fails the
        # test (Hypothesis raises Unsatisfiable or FailedHealthCheck).
        @settings(max_examples=15, deadline=None, database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            headers = {**(case.headers or {})}
            headers.setdefault("Authorization", ADMIN["Authorization"])
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.method, case.path, response.text)
            if response.status_code >= 400:
                kind = response.headers.get("content-type") or [""]
                kind = kind[0] if isinstance(kind, list) else kind
                assert kind.startswith("application/problem+json"), (case.path, kind)

        check()
        assert calls > 0, (mode, operation.path)
