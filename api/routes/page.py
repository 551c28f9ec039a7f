"""The timeline page: the status table rendered on the server, enhanced by a script
that reads the JSON API (chart, sliders, events, verification)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pycountry
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.inputs import check_query_names, optional, parse_as_of, parse_known_at
from api.schemas import StatusOut
from api.service import Service
from domain.catalogue import CATALOGUE
from domain.errors import InvalidInput
from domain.hashing import format_timestamp
from domain.keys import parse_commodity, parse_country

WEB = Path(__file__).resolve().parents[1] / "web"
templates = Jinja2Templates(directory=WEB / "templates")
router = APIRouter(include_in_schema=False)
COUNTRIES = sorted((c.alpha_2, c.name) for c in pycountry.countries)
PARAMETERS = frozenset({"country", "commodity", "as_of", "known_at"})
"""The page's query parameters: any other is refused (422), never silently ignored."""
DEFAULT_COUNTRY = "BY"
T = TypeVar("T")


@router.get("/", response_class=HTMLResponse)
def timeline_page(
    request: Request,
    country: str | None = None,
    commodity: str | None = None,
    as_of: str | None = None,
    known_at: str | None = None,
) -> HTMLResponse:
    """`/?country=BY&commodity=potash&as_of=2023-06-01&known_at=…`: a shareable view.

    Any unknown parameter or invalid value answers 422 with a page naming every
    problem (and the intended name of a misspelt parameter), not a default view."""
    now = datetime.now(UTC)
    errors: list[InvalidInput] = []

    def checked(build: Callable[[], T], fallback: T) -> T:
        try:
            return build()
        except InvalidInput as error:
            errors.extend(error.every)
            return fallback

    checked(lambda: check_query_names(request.query_params.keys(), PARAMETERS), None)
    chosen_country = checked(lambda: optional(parse_country, country, "country"), None)
    chosen_commodity = checked(lambda: optional(parse_commodity, commodity, "commodity"), None)
    day = checked(lambda: parse_as_of(as_of, now.date()), None)
    moment = checked(lambda: parse_known_at(known_at, now) if known_at else None, None)
    context: dict[str, Any] = {
        "country": chosen_country or DEFAULT_COUNTRY,
        "commodity": chosen_commodity or "",
        "today": now.date().isoformat(),
        "countries": COUNTRIES,
        "commodities": CATALOGUE,
    }
    if errors or day is None:
        problems = [(e.field.removeprefix("query."), e.message) for e in errors]
        context |= {"problems": problems, "as_of": "" if day is None else day.isoformat()}
        return templates.TemplateResponse(request, "problem.html", context, status_code=422)
    svc: Service = request.app.state.service
    status: StatusOut | None = None
    if not svc.settings.reads_require_token:  # the page itself holds no token
        status = svc.status(None, context["country"], chosen_commodity, day.isoformat(), known_at)
    context |= {
        "as_of": day.isoformat(),
        "known_at": "" if moment is None else format_timestamp(moment),
        "status": status,
    }
    return templates.TemplateResponse(request, "index.html", context)
