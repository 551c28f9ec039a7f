"""The interactive API documentation at `/docs`, served with no other origin involved.

FastAPI's default `/docs` loads Swagger UI from a CDN, which fails on a network
without one and lets a third party run script on our origin. Here Swagger UI's
files come from the `fastapi-offline` package (a maintained copy of the
swagger-ui-dist 5 bundle, which renders the OpenAPI 3.1 FastAPI writes) and are
served under `/docs-static`. The page's one inline script (Swagger UI's start-up
call) is allowed by its hash, so its Content-Security-Policy still names no
origin but our own. ReDoc is not served (the app is built with `redoc_url=None`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-static"
DOCS_URL = "/docs"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_page(title: str, openapi_url: str) -> tuple[bytes, str]:
    """Swagger UI's HTML on our own assets, and the Content-Security-Policy for it."""
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} — API documentation",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=None,
        # No validator badge: it would send the spec's address to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    body = bytes(html.body)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(body)
    )
    policy = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        f"script-src 'self' {hashes}; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )
    return body, policy


def install(app: FastAPI) -> None:
    """Add `/docs` and its assets to an app built with `docs_url=None, redoc_url=None`."""
    body, policy = docs_page(app.title, app.openapi_url or "/openapi.json")
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(body, headers={"Content-Security-Policy": policy})
