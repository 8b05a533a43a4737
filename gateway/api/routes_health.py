"""Open routes: /health, /ready, /metrics (DESIGN §3: no token)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import get_ctx
from gateway.api.models import HealthOut, ReadyOut

router = APIRouter(tags=["health"])

try:
    VERSION = version("vigil-gateway")
except PackageNotFoundError:  # running from a source tree without installing
    VERSION = "0+unknown"


@router.get("/health", response_model=HealthOut, summary="The API process is up")
async def health(request: Request) -> HealthOut:
    return HealthOut(status="ok", gateway=get_ctx(request).gateway_name, version=VERSION)


@router.get(
    "/ready",
    response_model=ReadyOut,
    summary="The gateway accepts readings (503 while the journal is full)",
    responses={503: {"model": ReadyOut}},
)
async def ready(request: Request) -> JSONResponse:
    ctx = get_ctx(request)
    reasons = []
    if ctx.counters.journal_full:
        reasons.append("journal full: readings are not being acknowledged")
    body = ReadyOut(ready=not reasons, reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "exposition format"}},
)
async def metrics(request: Request) -> Response:
    data = generate_latest(request.app.state.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
