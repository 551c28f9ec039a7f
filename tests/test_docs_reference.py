"""docs/reference/rest.md, the project's REST reference, is complete and agrees with the code.

The app is built on a SQLite file of its own and its OpenAPI document read, as `/openapi.json`
answers it. Every operation there has a section in the page (a heading `METHOD /path`) that
names each of its parameters, body fields, JSON answer fields and status codes, and the role
it needs; every route the page documents exists; every problem type the code can send is in
the page with its status and title, and the page names no other. The page's links stay
inside the page (`mkdocs build --strict` fails on a broken one), and it has no `console`
blocks (the README's test runs those).
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

import api
from api.app.bootstrap import build_service
from api.app.settings import Settings
from api.http.app import create_app
from api.http.problems import ANSWERED, PROBLEM_TYPE_BASE, TITLES

pytestmark = pytest.mark.integration  # a real store: the app is built on a SQLite file

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "rest.md"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
ROUTE = re.compile(r"^`?(GET|POST|PUT|PATCH|DELETE)\s+(/\S*?)`?$")
LINK = re.compile(r"\]\(([^)\s]*)\)")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ROLES = ("reader", "writer", "admin")

Section = tuple[int, str, str]
"""A heading's level, its text, and the section under it."""


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def headed_sections(text: str) -> list[Section]:
    """Every heading outside code blocks, with the text up to the next heading of its level
    or above."""
    headings: list[tuple[int, int, str]] = []
    lines = text.splitlines()
    fenced = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (found := HEADING.match(line)):
            headings.append((number, len(found.group(1)), found.group(2)))
    sections = []
    for index, (start, level, title) in enumerate(headings):
        end = next((n for n, lv, _ in headings[index + 1 :] if lv <= level), len(lines))
        sections.append((level, title, "\n".join(lines[start + 1 : end])))
    return sections


def slug(title: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    plain = title.replace("`", "")
    plain = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode("ascii")
    plain = re.sub(r"[^\w\s-]", "", plain).strip().lower()
    return re.sub(r"[-\s]+", "-", plain)


def documented_routes(text: str) -> list[tuple[str, str, str]]:
    """(method, path, section) for each route heading, in page order."""
    return [
        (found.group(1), found.group(2), body)
        for _, title, body in headed_sections(text)
        if (found := ROUTE.match(title))
    ]


def route_sections(text: str) -> dict[tuple[str, str], str]:
    """Each route's section, with the sections it links to within the page (a shared shape
    such as the stored event is described once and linked)."""
    by_slug = {slug(title): body for _, title, body in headed_sections(text)}
    sections = {}
    for method, path, body in documented_routes(text):
        linked = [by_slug.get(target[1:], "") for target in LINK.findall(body)]
        sections[(method, path)] = "\n".join([body, *linked])
    return sections


def named(name: str, section: str) -> bool:
    """`name` appears as code (`name`) or as a JSON key ("name") in the section."""
    return f"`{name}`" in section or f'"{name}"' in section


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    folder = tmp_path_factory.mktemp("reference")
    svc = build_service(Settings(database_url=f"sqlite:///{folder}/reference.db"))
    try:
        yield create_app(svc)
    finally:
        svc.close()


@pytest.fixture(scope="module")
def openapi(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def resolve(schema: dict[str, Any], openapi: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def field_names(schema: dict[str, Any], openapi: dict[str, Any]) -> set[str]:
    """The top-level fields of a JSON object schema (of every variant of a union)."""
    schema = resolve(schema, openapi)
    names = set(schema.get("properties", {}))
    for variant in schema.get("oneOf", []) + schema.get("anyOf", []):
        names |= field_names(variant, openapi)
    return names


def test_every_operation_has_a_section(openapi: dict[str, Any]) -> None:
    sections = route_sections(page())
    missing = [
        f"{method} {path}"
        for method, path, _ in operations(openapi)
        if (method, path) not in sections
    ]
    assert not missing, f"operations of /openapi.json with no section in {PAGE.name}: {missing}"


def test_every_documented_route_exists_and_once(app: FastAPI, openapi: dict[str, Any]) -> None:
    """A route the page documents is in the OpenAPI document, or is one of the app's routes
    left out of it (the page, /docs, /openapi.json)."""
    known = {(method, path) for method, path, _ in operations(openapi)}
    for route in iter_route_contexts(app.routes):  # through included routers
        if not getattr(route.original_route, "include_in_schema", True):  # not a Mount
            known |= {(method, route.path_format) for method in route.methods or ()}
    documented = [(method, path) for method, path, _ in documented_routes(page())]
    unknown = [f"{method} {path}" for method, path in documented if (method, path) not in known]
    assert not unknown, f"{PAGE.name} documents routes the app does not have: {unknown}"
    twice = sorted({f"{m} {p}" for m, p in documented if documented.count((m, p)) > 1})
    assert not twice, f"{PAGE.name} documents these routes more than once: {twice}"


def test_every_parameter_and_field_is_named_in_its_section(
    app: FastAPI, openapi: dict[str, Any]
) -> None:
    sections = route_sections(page())
    missing = []
    for method, path, operation in operations(openapi):
        section = sections.get((method, path), "")
        names = {parameter["name"] for parameter in operation.get("parameters", [])}
        for content in operation.get("requestBody", {}).get("content", {}).values():
            names |= field_names(content["schema"], openapi)
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                json = response.get("content", {}).get("application/json", {})
                names |= field_names(json.get("schema", {}), openapi)
        missing += [
            f"{method} {path}: {name}" for name in sorted(names) if not named(name, section)
        ]
    for route in iter_route_contexts(app.routes):  # those left out of the document: the page
        dependant = getattr(route.original_route, "dependant", None)
        if dependant is None or route.original_route.include_in_schema:
            continue
        for method in route.methods or ():
            section = sections.get((method, route.path_format))
            if section is not None:
                params = [*dependant.query_params, *dependant.path_params]
                missing += [
                    f"{method} {route.path_format}: {param.alias}"
                    for param in params
                    if not named(param.alias, section)
                ]
    assert not missing, f"not named in the route's section of {PAGE.name}: {missing}"


def test_every_answer_and_role_is_in_its_section(openapi: dict[str, Any]) -> None:
    """Each status code the document gives an operation, and the role that may call it."""
    sections = route_sections(page())
    missing = []
    for method, path, operation in operations(openapi):
        section = sections.get((method, path), "")
        missing += [
            f"{method} {path}: status {status}"
            for status in operation["responses"]
            if not re.search(rf"\b{status}\b", section)
        ]
        security = operation.get("security")
        if security is None:
            continue
        if {} in security:  # open unless reads require a token
            needs = ["reader"]
            if "anyone" not in section:
                missing.append(f"{method} {path}: that anyone may call it")
        else:
            refused = operation["responses"].get("403", {}).get("description", "")
            needs = [role for role in ROLES if re.search(rf"\b{role}\b", refused)] or ["reader"]
        missing += [f"{method} {path}: role {r}" for r in needs if f"`{r}`" not in section]
    assert not missing, f"missing from the route's section of {PAGE.name}: {missing}"


def problem_kinds() -> dict[str, set[int]]:
    """Every problem kind named in the code (`kind="…"`, or a slug handed to the write guard's
    `refuse`), with the statuses it is sent with (the integer arguments of the same call)."""
    kinds: dict[str, set[int]] = {}
    for source in Path(api.__file__).resolve().parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            args = list(node.args)
            callee = _name(node.func)
            if callee == "partial" and args:
                callee, args = _name(args[0]), args[1:]
            found = {
                k.value.value
                for k in node.keywords
                if k.arg == "kind"
                and isinstance(k.value, ast.Constant)
                and isinstance(k.value.value, str)
            }
            if callee == "refuse":
                found |= {
                    a.value
                    for a in args
                    if isinstance(a, ast.Constant)
                    and isinstance(a.value, str)
                    and SLUG.match(a.value)
                }
            statuses = {
                a.value
                for a in args
                if isinstance(a, ast.Constant) and isinstance(a.value, int) and 400 <= a.value < 600
            }
            for kind in found:
                kinds.setdefault(kind, set()).update(statuses)
    return kinds


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def sent_problem_types(app: FastAPI) -> dict[str, set[int]]:
    """Every problem type the code can send: its kinds, and the types named by status that
    routing itself answers (no such route, a method the route does not take)."""
    types = {PROBLEM_TYPE_BASE + kind: statuses for kind, statuses in problem_kinds().items()}
    for status, kind, _ in ANSWERED.values():  # each service error's status and kind
        types.setdefault(PROBLEM_TYPE_BASE + kind, set()).add(status)
    client = TestClient(app, raise_server_exceptions=False)
    for answer in (client.get("/no/such/route"), client.request("PUT", "/healthz")):
        problem = answer.json()
        types.setdefault(problem["type"], set()).add(problem["status"])
    return types


def test_every_problem_type_is_documented(app: FastAPI) -> None:
    text = page()
    rows = {
        cells[0].strip("` "): cells[1:3]
        for line in text.splitlines()
        if line.startswith("| `" + PROBLEM_TYPE_BASE)
        and len(cells := [cell.strip() for cell in line.strip("|").split("|")]) >= 3
    }
    types = sent_problem_types(app)
    assert len(types) >= 10, f"too few problem kinds found in the code: {sorted(types)}"
    missing = sorted(set(types) - set(rows))
    assert not missing, f"problem types the code sends, not in {PAGE.name}'s table: {missing}"
    wrong = [
        f"{type_}: {status} {title!r}"
        for type_, (status, title) in rows.items()
        if type_ in types
        and (
            not status.isdigit()
            or int(status) not in (types[type_] or {int(status)})
            or title != TITLES.get(int(status))
        )
    ]
    assert not wrong, f"problem types given the wrong status or title: {wrong}"
    named_types = set(re.findall(re.escape(PROBLEM_TYPE_BASE) + r"[\w-]+", text))
    unknown = sorted(named_types - set(types))
    assert not unknown, f"{PAGE.name} names problem types the code never sends: {unknown}"


def test_links_stay_in_the_page_and_no_console_blocks() -> None:
    text = page()
    anchors = {slug(title) for _, title, _ in headed_sections(text)}
    broken = [t for t in LINK.findall(text) if not t.startswith("#") or t[1:] not in anchors]
    assert not broken, f"links that are not anchors of {PAGE.name}'s own headings: {broken}"
    assert "```console" not in text, "console blocks are run by tests/test_readme.py: use text"
