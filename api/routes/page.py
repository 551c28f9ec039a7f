"""The timeline page: a server-rendered shell whose script reads the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pycountry
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.inputs import parse_as_of, parse_known_at
from domain.catalogue import CATALOGUE
from domain.errors import InvalidInput
from domain.hashing import format_timestamp
from domain.keys import parse_commodity, parse_country

WEB = Path(__file__).resolve().parents[1] / "web"
templates = Jinja2Templates(directory=WEB / "templates")
router = APIRouter(include_in_schema=False)
COUNTRIES = sorted((c.alpha_2, c.name) for c in pycountry.countries)


@router.get("/", response_class=HTMLResponse)
def timeline_page(
    request: Request,
    country: str | None = None,
    commodity: str | None = None,
    as_of: str | None = None,
    known_at: str | None = None,
) -> HTMLResponse:
    """`/?country=BY&commodity=potash&as_of=2023-06-01&known_at=…`: a shareable view."""
    now = datetime.now(UTC)
    problem = None
    try:
        chosen_country = parse_country(country) if country else "BY"
        chosen_commodity = parse_commodity(commodity) if commodity else ""
        day = parse_as_of(as_of, now.date())
        moment = parse_known_at(known_at, now) if known_at else None
    except InvalidInput as error:
        problem = f"{error.field}: {error.message} — showing the default view instead."
        chosen_country, chosen_commodity, day, moment = "BY", "", now.date(), None
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "country": chosen_country,
            "commodity": chosen_commodity,
            "as_of": day.isoformat(),
            "known_at": "" if moment is None else format_timestamp(moment),
            "today": now.date().isoformat(),
            "countries": COUNTRIES,
            "commodities": CATALOGUE,
            "problem": problem,
        },
        status_code=200 if problem is None else 422,
    )
