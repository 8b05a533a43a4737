"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from gateway.api import (
    routes_alerts,
    routes_audit,
    routes_auth,
    routes_config,
    routes_cycles,
    routes_devices,
    routes_health,
    routes_shipments,
)
from gateway.api.context import ApiContext
from gateway.api.prom import make_registry
from gateway.api.routes_health import VERSION
from gateway.core.i18n import catalog, normalize

log = logging.getLogger("vigil.api")

WEB_DIR = Path(__file__).resolve().parent / "web"

DOCS_ASSETS = "/docs/assets"
"""Swagger UI's files, served from the fastapi-offline package (no CDN: gateways are often
air-gapped): swagger-ui-bundle.js, swagger-ui.css, favicon.png. (No /redoc: ReDoc's page loads
its sidebar logo from the vendor's CDN.)"""
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")

DESCRIPTION = """\
vigil's operator, QA and regulator API (DESIGN §3).

`/health`, `/ready`, `/metrics` and `POST /auth/login` are open; everything under `/api/v1/`
needs `Authorization: Bearer <token>`. Roles: **viewer** (read-only, for regulators),
**operator** (acknowledge, shelve, shipments), **qa** (also close alerts and approve shipment
reports with an electronic signature), **admin** (users, config reload; read).
Every change is written to the hash-chained audit trail (`GET /api/v1/audit`).
"""


ROUTERS = (
    routes_health.router,
    routes_auth.router,
    routes_auth.users_router,
    routes_alerts.router,
    routes_cycles.router,
    routes_devices.router,
    routes_shipments.router,
    routes_audit.router,
    routes_config.router,
)


def api_routes() -> Iterator[APIRoute]:
    """Every API route (for the route-walking permission test and docs)."""
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                yield route


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="vigil gateway API",
        version=VERSION,
        description=DESCRIPTION,
        docs_url=None,  # FastAPI's page loads its files from a CDN: served locally below
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.registry = make_registry(ctx)
    for router in ROUTERS:
        app.include_router(router)
    _add_docs(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default handler echoes the input back; bytes or odd floats in it must not
        # turn a 422 into a 500 while being serialised.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    if WEB_DIR.is_dir():
        app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-store"})

        @app.get("/favicon.ico", include_in_schema=False)
        async def favicon() -> FileResponse:
            return FileResponse(WEB_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/i18n/{lang}.json", include_in_schema=False)
    async def messages(lang: str) -> JSONResponse:
        """The web console's translations (gettext catalog of the language, msgid → text);
        open, since the log-in page needs them."""
        code = normalize(lang)
        if code is None:
            return JSONResponse({"detail": f"no language {lang!r}"}, status_code=404)
        return JSONResponse({"language": code, "messages": catalog(code)})

    return app


def _add_docs(app: FastAPI) -> None:
    """/docs: Swagger UI with its JavaScript, CSS and icon from this server."""
    app.mount(DOCS_ASSETS, StaticFiles(packages=[DOCS_ASSETS_PACKAGE]), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # no badge image from the public validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
