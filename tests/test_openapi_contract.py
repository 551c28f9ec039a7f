"""The OpenAPI document tells the truth: schemathesis, with every check in every phase, finds
no request the server answers otherwise than the document says, on SQLite and PostgreSQL.

`schemathesis run …/openapi.json --checks all` is run as a user runs it, against the real app
served by uvicorn on a seeded store, with a writer token: examples, coverage, fuzzing and
stateful phases. The live event stream, endless by design (tests/test_live_stream.py), is run
apart, each request cut short after a while: its events are checked against the schema the
document gives each one. The rest checks what the run relies on: who the document says may
call each route, every refusal as a problem document, a short operationId for each operation,
and the patterns of the codes and dates read exactly as the service parses them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.bootstrap import build_service
from api.app.seed import seed
from api.app.service import Service
from api.app.settings import Settings
from api.http.app import create_app
from api.schemas import patterns
from api.schemas.inputs import iso_date, parse_known_at
from domain.catalogue import CATALOGUE, commodity_for_hs
from domain.errors import InvalidInput
from domain.keys import parse_authority, parse_commodity, parse_country
from tests.conftest import TOKENS, WRITER

pytestmark = pytest.mark.e2e  # the schemathesis command against a served app

ROOT = Path(__file__).resolve().parents[1]
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
SEED = os.environ.get("SANCTIONS_CONTRACT_SEED", "20260115")
"""Fixed, so a run is repeatable; set SANCTIONS_CONTRACT_SEED to explore others."""
MAX_EXAMPLES = os.environ.get("SANCTIONS_CONTRACT_EXAMPLES", "10")
PHASES = ("Examples", "Coverage", "Fuzzing", "Stateful")
REFERENCE = (ROOT / "docs" / "reference" / "rest.md").read_text(encoding="utf-8")


STREAM = "/v1/events/stream"


def schemathesis(
    base_url: str, cwd: Path, *args: str, stream: bool = False
) -> subprocess.CompletedProcess[str]:
    """Every operation but the live stream; or (`stream`) the live stream alone, each of its
    answers read for 2 seconds."""
    which = ("--include-path", STREAM, "--request-timeout", "2") if stream else (
        "--exclude-path", STREAM,
    )  # fmt: skip
    return subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(ROOT / "schemathesis.toml"),  # 413: a size limit JSON Schema cannot state
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: {WRITER['Authorization']}",
            *which,
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            *args,
        ],
        cwd=cwd,  # its own state (.hypothesis, .schemathesis) stays out of the checkout
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_no_failure(
    run: subprocess.CompletedProcess[str], phases: tuple[str, ...] = PHASES, tested: int = 26
) -> None:
    report = run.stdout[-12000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert re.search(rf"Tested: +{tested}\b", run.stdout), report
    for phase in phases:
        assert re.search(rf"✅ +{phase}", run.stdout), f"{phase} did not pass:\n{report}"
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), report


@pytest.mark.slow  # schemathesis's every phase: most of a minute
def test_schemathesis_with_every_check_finds_no_failure(
    make_services: Callable[..., Service],
    live_server: Callable[..., str],
    tmp_path: Path,
) -> None:
    seed(make_services())
    assert_no_failure(schemathesis(live_server(), tmp_path))


@pytest.mark.slow  # schemathesis's every phase, each stream read for 2 s: most of a minute
def test_the_live_stream_sends_the_events_its_schema_declares(
    make_services: Callable[..., Service],
    live_server: Callable[..., str],
    tmp_path: Path,
) -> None:
    """Each Server-Sent Event is checked (ST108) against the document's schema for one event:
    its `event` name, its position as `id`, and its `data`, a JSON `EventOut` (or, for a
    `problem` event, a `SkippedEvent`)."""
    seed(make_services())
    run = schemathesis(live_server(), tmp_path, "--max-examples", "5", stream=True)
    assert_no_failure(run, ("Examples", "Coverage", "Fuzzing"), tested=1)


@pytest.mark.slow  # schemathesis's every phase: most of a minute
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_with_reads_behind_a_token_schemathesis_finds_no_failure(
    make_services: Callable[..., Service],
    live_server: Callable[..., str],
    tmp_path: Path,
) -> None:
    """The document then requires the token on reads too: coverage drops it, fuzzing probes
    each read without it and with a wrong one, and each must be refused (401)."""
    seed(make_services())
    served = live_server(reads_require_token=True)
    run = schemathesis(served, tmp_path, "--phases", "coverage,fuzzing", "--max-examples", "5")
    assert_no_failure(run, ("Coverage", "Fuzzing"))


# What the run relies on, checked directly


@pytest.fixture
def documents(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """The OpenAPI document of an app built with the given settings (on SQLite)."""
    built: list[Service] = []

    def document(**settings: Any) -> dict[str, Any]:
        svc = build_service(
            Settings(
                database_url=f"sqlite:///{tmp_path}/{len(built)}.db", api_tokens=TOKENS, **settings
            )
        )
        built.append(svc)
        return create_app(svc).openapi()

    yield document
    for svc in built:
        svc.log.close()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


BEARER: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
OPTIONAL: list[dict[str, list[str]]] = [{}, {"HTTPBearer": []}]
READS = {
    "GET /v1/status",
    "GET /v1/status/diff",
    "GET /v1/expiring",
    "GET /v1/screen",
    "GET /v1/screen/receipt",
    "GET /v1/timeline",
    "GET /v1/events",
    "GET /v1/events/{event_id}",
    "GET /v1/events/stream",
    "GET /v1/streams/{authority}/{country}/{commodity}",
    "GET /v1/commodities",
    "GET /v1/audit/replay",
    "GET /v1/audit/checkpoint",
    "GET /v1/audit/key",
    "GET /v1/audit/proof/inclusion",
    "GET /v1/audit/proof/consistency",
}
ROLES = {  # the routes that always need a token, and whether a role can be too low (403)
    "POST /v1/events": True,
    "POST /v1/events:batch": True,
    "POST /v1/admin/projections/rebuild": True,
    "POST /v1/subscriptions": True,
    "GET /v1/subscriptions": True,
    "DELETE /v1/subscriptions/{subscription_id}": True,
    "GET /v1/subscriptions/{subscription_id}/deliveries": True,
    "GET /v1/audit/verify": False,
}
OPEN = {"GET /healthz", "GET /readyz", "GET /metrics"}


@pytest.mark.parametrize("reads_require_token", [False, True])
def test_the_bearer_scheme_is_required_exactly_where_a_token_is(
    documents: Callable[..., dict[str, Any]], reads_require_token: bool
) -> None:
    found = dict(operations(documents(reads_require_token=reads_require_token)))
    assert set(found) == READS | set(ROLES) | OPEN
    for name in READS:
        responses = found[name]["responses"]
        if reads_require_token:
            assert found[name]["security"] == BEARER, name
            assert "401" in responses and "403" not in responses, name
        else:
            assert found[name]["security"] == OPTIONAL, name
            assert "401" not in responses and "403" not in responses, name
    for name, role_can_be_too_low in ROLES.items():
        assert found[name]["security"] == BEARER, name
        assert "401" in found[name]["responses"], name
        assert ("403" in found[name]["responses"]) is role_can_be_too_low, name
    for name in OPEN:
        assert "security" not in found[name] and "401" not in found[name]["responses"], name


def test_every_operation_has_a_short_unique_operation_id(
    documents: Callable[..., dict[str, Any]],
) -> None:
    """A generated client names its functions after them: `record_event`, not FastAPI's
    default `record_event_v1_events_post`."""
    found = {name: operation.get("operationId") for name, operation in operations(documents())}
    assert found["POST /v1/events"] == "record_event"
    assert found["GET /v1/status"] == "get_status"
    assert found["GET /v1/screen"] == "screen"
    assert len(set(found.values())) == len(found), found
    for name, operation_id in found.items():
        assert isinstance(operation_id, str), name
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", operation_id), name
        method, path = name.split(" ")
        assert not operation_id.endswith(f"_{method.lower()}"), name
        assert "_v1_" not in operation_id and not operation_id.startswith("v1_"), name
        slug = re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")  # FastAPI's default suffix
        assert f"{slug}_{method.lower()}" not in operation_id, name
        assert len(operation_id) <= 30, name
        heading = f"### `{name}`\n\nOperation id: `{operation_id}`.\n"
        assert heading in REFERENCE, f"docs/reference/rest.md does not give {name} its id"


def test_every_refusal_is_documented_as_a_problem_document(
    documents: Callable[..., dict[str, Any]],
) -> None:
    document = documents()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for name, operation in operations(document):
        responses = operation["responses"]
        assert "422" in responses, f"{name}: every route refuses unknown query parameters"
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == problem, (name, status)
    writes = dict(operations(document))
    for name in ("POST /v1/events", "POST /v1/events:batch"):
        assert {"409", "413", "415", "422", "503"} <= set(writes[name]["responses"]), name
    assert "404" in writes["GET /v1/events/{event_id}"]["responses"]
    schemas = document["components"]["schemas"]
    assert {"type", "title", "status", "detail", "errors", "index", "stream"} <= set(
        schemas["Problem"]["properties"]
    )
    assert "HTTPValidationError" not in schemas


def test_the_receipt_route_documents_its_envelope_and_when_it_is_not_ready(
    documents: Callable[..., dict[str, Any]],
) -> None:
    """A DSSE envelope of the in-toto payload type; a 503 that may be a receipt not ready yet,
    to be asked again after Retry-After (SPEC: "Screening receipts")."""
    document = documents()
    operation = document["paths"]["/v1/screen/receipt"]["get"]
    assert [p["name"] for p in operation["parameters"]] == [
        "hs", "origin", "date", "authority", "known_at",
    ]  # fmt: skip
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    envelope = document["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert set(envelope["required"]) == {"payload", "payloadType", "signatures"}
    assert envelope["properties"]["payloadType"]["const"] == "application/vnd.in-toto+json"
    unavailable = operation["responses"]["503"]["description"]
    assert "receipt-not-ready" in unavailable and "Retry-After" in unavailable, unavailable
    assert {"409", "422"} <= set(operation["responses"])


def test_the_event_body_is_documented_as_a_union_on_its_type(
    documents: Callable[..., dict[str, Any]],
) -> None:
    schemas = documents()["components"]["schemas"]
    event = schemas["EventIn"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == {
        "imposed", "expanded", "eased", "lifted", "retracted", "renewed",
    }  # fmt: skip
    for variant in ("MeasuresEventIn", "LiftedEventIn", "RenewedEventIn", "RetractedEventIn"):
        fields = schemas[variant]["properties"]
        assert list(fields) == [
            "type", "authority", "country", "commodity", "effective_date", "measures",
            "retracts", "legal_basis", "source", "note", "expected_version", "expires", "renews",
        ]  # fmt: skip
        assert schemas[variant]["additionalProperties"] is False
    assert set(schemas["RetractedEventIn"]["required"]) >= {"retracts", "note"}
    assert "effective_date" not in schemas["RetractedEventIn"]["required"]
    assert schemas["MeasuresEventIn"]["properties"]["measures"]["minItems"] == 1
    assert "expires" in schemas["RenewedEventIn"]["required"]


def test_a_wrong_method_is_answered_with_every_method_the_path_takes(
    client: TestClient,
) -> None:
    answer = client.request("OPTIONS", "/v1/events")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.headers["content-type"].startswith("application/problem+json")


# The patterns say exactly what the service takes


def accepts(parse: Callable[[str], str], value: str) -> bool:
    try:
        parse(value)
    except InvalidInput:
        return False
    return True


def test_the_whitespace_class_is_what_strip_removes() -> None:
    space = re.compile(patterns.SPACE)
    for point in range(0x110000):
        assert bool(space.fullmatch(chr(point))) is chr(point).isspace(), hex(point)


@pytest.mark.parametrize(
    ("fragment", "parse"),
    [
        (patterns.AUTHORITY, parse_authority),
        (patterns.COUNTRY, parse_country),
    ],
)
def test_a_code_pattern_takes_exactly_the_codes_the_service_takes(
    fragment: str, parse: Callable[[str], str]
) -> None:
    written = patterns.compiled(patterns.padded(fragment))
    letters = "AaBbCcDdEeFfGgHhIiJjKkLlMmNnOoPpQqRrSsTtUuVvWwXxYyZz"
    for first in letters:
        for second in letters:
            for value in (first + second, f" {first}{second}\u3000", f"\t{first}{second}"):
                assert bool(written.fullmatch(value)) is accepts(parse, value), repr(value)
    for value in ("", " ", "B", "BYE", "B Y", "ß", "\u212aZ"):
        assert not written.fullmatch(value), repr(value)


def test_the_commodity_pattern_takes_every_slug_in_any_case_and_nothing_else() -> None:
    written = patterns.compiled(patterns.padded(patterns.COMMODITY))
    for commodity in CATALOGUE:
        for value in (commodity.slug, commodity.slug.upper(), f" {commodity.slug.title()}\n"):
            assert written.fullmatch(value) and accepts(parse_commodity, value), value
    for value in ("", "crude_oil", "potassium", "nic\u212ael", "potash-"):
        assert not written.fullmatch(value), value


def test_the_hs_pattern_takes_exactly_the_codes_screening_takes() -> None:
    written = patterns.compiled(patterns.padded(patterns.HS_CODE))
    prefixes = sorted({p for commodity in CATALOGUE for p in commodity.hs_prefixes})
    values = ["", " ", "3", "27", "99", "9999", "3104.", ".3104", "31..04", "31 04", "31a4"]
    for prefix in prefixes:
        for tail in ("", "0", "20", "2050", "20501", "205011", "2050111", "205011199"):
            digits = prefix + tail
            values += [digits, f" {digits}\t", ".".join(digits), f"{digits[:4]}.{digits[4:]}"]
    for value in values:
        assert bool(written.fullmatch(value)) is accepts(
            lambda v: commodity_for_hs(v).slug, value
        ), repr(value)


def test_the_date_pattern_takes_exactly_the_days_that_exist() -> None:
    written = patterns.compiled(f"^{patterns.DATE}$")
    years = [0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 9996, 9999]
    for year in years:
        for month in range(0, 14):
            for day in range(0, 33):
                value = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    iso_date(value)
                    exists = True
                except ValueError:
                    exists = False
                assert bool(written.fullmatch(value)) is exists, value


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-15",
        "2026-01-15T12:00:00Z",
        "2026-01-15t12:00:00.123456z",
        "2026-01-15T12:00:00+14:00",
        "2026-01-15T12:00:00 01:00",  # an unencoded `+`
        " 2026-01-15T12:00:00-23:59\n",
        "0001-01-01T00:00:00-01:00",
        "9999-12-31T23:59:59+01:00",
    ],
)
def test_every_documented_moment_is_taken(value: str) -> None:
    assert patterns.compiled(patterns.padded(patterns.MOMENT)).fullmatch(value)
    assert not re.match(patterns.MOMENT_AT_THE_EDGE, value)
    parse_known_at(value, datetime.now(UTC))


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "0001-01-01T23:00:00 14:00"],
)
def test_a_moment_at_the_edge_of_the_calendar_is_documented_as_refused(
    client: TestClient, value: str
) -> None:
    assert re.match(patterns.MOMENT_AT_THE_EDGE, value)
    answer = client.get("/v1/status", params={"known_at": value})
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["query.known_at"]


def test_the_number_pattern_stops_at_its_limit() -> None:
    for limit in (0, 7, 10, 255, 1000, 2**63 - 1):
        written = re.compile(patterns.at_most(limit))
        for number in {0, 1, limit - 1, limit, limit + 1, limit * 10, *range(0, 300)}:
            if number >= 0:
                assert bool(written.fullmatch(str(number))) is (number <= limit), (limit, number)


def test_values_outside_the_documented_forms_are_refused(client: TestClient) -> None:
    """Forms Python would read but the document does not state are refused, and said so."""
    base = {"type": "lifted", "authority": "US", "country": "BY", "commodity": "potash"}
    odd = {
        "authority": "ß",  # upper-cases to SS
        "effective_date": "2021-01-01",
        "retracts": "{6f1c1a8e-2d1b-4a8e-9c7a-1f2e3d4c5b6a}",
        "source": {"url": "http://exa mple.org/"},
    }
    answer = client.post("/v1/events", json={**base, **odd}, headers=WRITER)
    assert answer.status_code == 422
    assert sorted(e["field"] for e in answer.json()["errors"]) == [
        "body.authority", "body.retracts", "body.source.url",
    ]  # fmt: skip
    day = date(2026, 1, 15) - timedelta(days=1)
    for params in ({"country": "ß"}, {"known_at": f"{day}T12:00"}, {"as_of": f"{day}x"}):
        answer = client.get("/v1/status", params=params)
        assert answer.status_code == 422, params
    assert client.get("/v1/status", params={"country": " by ", "as_of": ""}).status_code == 200
