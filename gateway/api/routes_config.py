"""Configuration: reload the config file without a restart (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from gateway.api.deps import Principal, get_ctx, require
from gateway.api.models import ReloadOut
from gateway.records.users import Perm

router = APIRouter(prefix="/api/v1/config", tags=["config"])


@router.post(
    "/reload",
    response_model=ReloadOut,
    summary="Re-read the config file: rules, bindings, notifiers and collectors (admin)",
    responses={
        422: {
            "model": ReloadOut,
            "description": "refused: the file does not validate, or a "
            "change needs a restart; the running config is kept",
        },
        409: {"description": "no gateway behind this API: nothing to reload"},
    },
)
async def reload_config(
    request: Request, p: Principal = Depends(require(Perm.CONFIG))
) -> JSONResponse:
    """Like SIGHUP. The journal, rule state and open alerts stay; the change is audited with the
    old and new config (a refusal too)."""
    ctx = get_ctx(request)
    if ctx.reload_config is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no gateway behind this API to reload")
    outcome = await ctx.reload_config(
        f"user:{p.user.username}", "POST /api/v1/config/reload", p.client
    )
    body = ReloadOut(
        ok=outcome.ok,
        changed=outcome.changed,
        rules=outcome.rules,
        started=outcome.started,
        stopped=outcome.stopped,
        problems=outcome.problems,
    )
    return JSONResponse(body.model_dump(), status_code=200 if outcome.ok else 422)
