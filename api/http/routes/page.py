"""The timeline page: the status table (and a shipment screen, when one is asked for) rendered
on the server, enhanced by scripts that read the JSON API (chart, sliders, events,
verification, screening)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pycountry
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.app.service import Service
from api.schemas.answers import StatusOut
from api.schemas.inputs import check_query_names, optional, parse_as_of, parse_known_at
from domain.catalogue import CATALOGUE, find_commodity
from domain.errors import InvalidInput
from domain.hashing import format_timestamp
from domain.keys import parse_commodity, parse_country

if TYPE_CHECKING:
    from api.schemas.changes import ExpiringOut, ScreenOut
from api.schemas.queries import ExpiringQuery, ScreenQuery, StatusQuery

WEB = Path(__file__).resolve().parents[1] / "web"
templates = Jinja2Templates(directory=WEB / "templates")
router = APIRouter(include_in_schema=False)
COUNTRIES = sorted((c.alpha_2, c.name) for c in pycountry.countries)
SCREEN_PARAMETERS = frozenset({"hs", "origin", "date"})
"""The shipment screen's parameters, as `GET /v1/screen` names them."""
REQUIRED = {
    "hs": "required: the shipment's HS code, 2 to 10 digits (dots allowed), e.g. 3104.20",
    "origin": "required: the ISO 3166-1 alpha-2 code of the country the goods come from",
}
"""What the box says when a screen is asked for without one of its required fields."""
PARAMETERS = frozenset({"country", "commodity", "as_of", "known_at"}) | SCREEN_PARAMETERS
"""The page's query parameters: any other is refused (422), never silently ignored."""
DEFAULT_COUNTRY = "BY"
ENDS_TEXT = {
    "run": "the run ends (expired)",
    "measures": "measures end",
    "easing": "the easing ends: measures return",
}
"""What happens when a term runs out, as the upcoming ends say it (timeline.js too)."""
T = TypeVar("T")


@router.get("/", response_class=HTMLResponse)
def timeline_page(
    request: Request,
    country: str | None = None,
    commodity: str | None = None,
    as_of: str | None = None,
    known_at: str | None = None,
    hs: str | None = None,
    origin: str | None = None,
    date: str | None = None,
) -> HTMLResponse:
    """`/?country=BY&commodity=potash&as_of=2023-06-01&known_at=…`: a shareable view.

    Any unknown parameter or invalid value answers 422 with a page naming every
    problem (and the intended name of a misspelt parameter), not a default view.
    `hs`, `origin` and `date` screen a shipment (`GET /v1/screen`) in the page's box;
    a code the service refuses answers 422 with the view and the box naming why."""
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
    svc: Service = request.app.state.service
    readable = not svc.settings.reads_require_token  # the page itself holds no token
    screen = screened(svc, readable, hs, origin, date, default_origin=context["country"])
    if errors or day is None:
        problems = [(e.field.removeprefix("query."), e.message) for e in errors]
        context |= {
            "problems": problems + screen.problems,
            "as_of": "" if day is None else day.isoformat(),
        }
        return templates.TemplateResponse(request, "problem.html", context, status_code=422)
    status: StatusOut | None = None
    upcoming: ExpiringOut | None = None
    if readable:
        asked = StatusQuery.of(
            country=context["country"],
            commodity=chosen_commodity,
            as_of=day.isoformat(),
            known_at=known_at,
        )
        status = svc.status(asked)
        upcoming = svc.expiring(
            ExpiringQuery.of(
                country=context["country"], commodity=chosen_commodity, known_at=known_at
            )
        )
    context |= {
        "as_of": day.isoformat(),
        "as_of_given": bool(as_of and as_of.strip()),
        "known_at": "" if moment is None else format_timestamp(moment),
        "status": status,
        "upcoming": upcoming,
        "ends_text": ENDS_TEXT,
        "screen": screen,
    }
    code = 422 if screen.problems else 200
    return templates.TemplateResponse(request, "index.html", context, status_code=code)


@dataclass
class Screen:
    """The screening box as the page shows it: what was asked, and the answer or why not."""

    hs: str = ""
    origin: str = ""
    date: str = ""
    result: ScreenOut | None = None
    commodity_name: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    needs_token: bool = False

    @property
    def invalid(self) -> set[str]:
        """The fields named in a problem (marked `aria-invalid` on the page)."""
        return {name for name, _ in self.problems}


def screened(
    svc: Service,
    readable: bool,
    hs: str | None,
    origin: str | None,
    date: str | None,
    *,
    default_origin: str,
) -> Screen:
    """The box for `hs`, `origin`, `date`: empty (origin prefilled with the page's country)
    when none is given, else the service's answer or its problems, as `/v1/screen` has them."""
    if hs is None and origin is None and date is None:
        return Screen(origin=default_origin)
    box = Screen(hs=hs or "", origin=origin or "", date=date or "")
    missing = [
        InvalidInput(name, REQUIRED[name])
        for name, value in (("hs", hs), ("origin", origin))
        if value is None or not value.strip()
    ]
    try:
        InvalidInput.raise_all(missing)
        if not readable:  # the script asks for a token and screens with it
            box.needs_token = True
            return box
        box.result = svc.screen(ScreenQuery.of(hs=hs or "", origin=origin or "", date=date or None))
    except InvalidInput as error:
        box.problems = [(e.field.removeprefix("query."), e.message) for e in error.every]
        return box
    box.commodity_name = find_commodity(box.result.commodity).name
    return box
