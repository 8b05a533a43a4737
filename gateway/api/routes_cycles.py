"""Cycle / batch summaries (docs/production_rules.md): the record each production run leaves,
read from the `cycles` table of the alert store. Read-only, like the alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi import status as http

from alert_rules.cycles import CycleStore
from gateway.api.deps import Principal, get_ctx, require
from gateway.api.models import INT64_MAX, CycleDetailOut, CycleOut, dt_to_ns
from gateway.pipeline.chain import head_line
from gateway.records.users import Perm

router = APIRouter(prefix="/api/v1/cycles", tags=["cycles"])

CycleId = Annotated[int, Path(ge=1, le=INT64_MAX, description="cycle id")]


def cycle_store(request: Request) -> CycleStore | None:
    """The engine's CycleStore, else one on the alert store's connection, made once per app:
    CycleStore() runs its schema script, which commits whatever the connection has pending."""
    ctx = get_ctx(request)
    store = ctx.alert_store
    if store is None:
        return None
    engine = ctx.engine
    if engine is not None and engine.store is store:
        return engine.cycles
    cached: CycleStore | None = getattr(request.app.state, "cycle_store", None)
    if cached is None or cached.db is not store.db:
        cached = CycleStore.of(store)
        request.app.state.cycle_store = cached
    return cached


@router.get("", response_model=list[CycleOut], summary="List cycle / batch summaries, newest first")
async def list_cycles(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    device: Annotated[str | None, Query(max_length=200)] = None,
    batch: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="started at or after (event time)")] = None,
    verdict: Annotated[Literal["pass", "fail"] | None, Query()] = None,
    status: Annotated[Literal["running", "complete"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CycleOut]:
    store = cycle_store(request)
    if store is None:
        return []
    cycles = store.list_cycles(
        device=device,
        batch=batch,
        since_ns=dt_to_ns(since) if since is not None else None,
        verdict=verdict,
        status=status,
        limit=limit,
    )
    return [CycleOut.of(c) for c in cycles]


@router.get(
    "/{cycle_id}",
    response_model=CycleDetailOut,
    summary="One cycle summary with the results of the rules that judged it",
)
async def get_cycle(
    request: Request,
    cycle_id: CycleId,
    _: Annotated[Principal, Depends(require(Perm.READ))],
) -> CycleDetailOut:
    store = cycle_store(request)
    c = store.get_cycle(cycle_id) if store is not None else None
    if c is None:
        raise HTTPException(http.HTTP_404_NOT_FOUND, f"no cycle {cycle_id}")
    return CycleDetailOut.of(c, head_line(*get_ctx(request).journal.head()))
