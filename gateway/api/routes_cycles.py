"""Cycle / batch summaries (docs/production_rules.md): the record each production run leaves,
read from the `cycles` table of the alert store. Read-only, like the alerts."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi import status as http
from fastapi.responses import Response

from alert_rules.cycles import Cycle, CycleStore
from gateway.api.deps import LangQuery, Principal, display_of, get_ctx, report_download, require
from gateway.api.models import INT64_MAX, CycleDetailOut, CycleOut, SeriesOut, dt_to_ns
from gateway.api.routes_devices import history_series
from gateway.pipeline.chain import head_line
from gateway.records.reports import ReportAlert, actions_of, with_signatures
from gateway.records.reports.cycle import build_cycle_report, cycle_csv, cycle_pdf
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
    p: Annotated[Principal, Depends(require(Perm.READ))],
    device: Annotated[str | None, Query(max_length=200)] = None,
    batch: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="started at or after (event time)")] = None,
    verdict: Annotated[Literal["pass", "fail"] | None, Query()] = None,
    status: Annotated[Literal["running", "complete"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    lang: LangQuery = None,
) -> list[CycleOut]:
    d = display_of(request, p, lang)
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
    return [CycleOut.of(c, d.lang, d.tz) for c in cycles]


@router.get(
    "/{cycle_id}",
    response_model=CycleDetailOut,
    summary="One cycle summary with the results of the rules that judged it",
)
async def get_cycle(
    request: Request,
    cycle_id: CycleId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    lang: LangQuery = None,
) -> CycleDetailOut:
    d = display_of(request, p, lang)
    chain = head_line(*get_ctx(request).journal.head())
    return CycleDetailOut.of(_get(request, cycle_id), d.lang, d.tz, chain)


def _get(request: Request, cycle_id: int) -> Cycle:
    store = cycle_store(request)
    c = store.get_cycle(cycle_id) if store is not None else None
    if c is None:
        raise HTTPException(http.HTTP_404_NOT_FOUND, f"no cycle {cycle_id}")
    return c


@router.get(
    "/{cycle_id}/readings",
    response_model=list[SeriesOut],
    summary="The device's readings during the cycle (while the gateway still holds them)",
)
async def cycle_readings(
    request: Request,
    cycle_id: CycleId,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    points: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> list[SeriesOut]:
    c = _get(request, cycle_id)
    end = c.end_ns if c.end_ns is not None else time.time_ns()
    return history_series(request, c.device, c.start_ns, end, points)


@router.get(
    "/{cycle_id}/report",
    summary="Batch / cycle report as PDF or CSV",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "text/csv": {}}, "description": "report"}},
)
async def cycle_report(
    request: Request,
    cycle_id: CycleId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    format: Annotated[Literal["pdf", "csv"], Query()] = "pdf",
    lang: LangQuery = None,
) -> Response:
    ctx = get_ctx(request)
    d = display_of(request, p, lang)
    c = _get(request, cycle_id)
    store = ctx.alert_store
    found = [store.get_alert(i) for i in c.alert_ids] if store is not None else []
    alerts = [
        ReportAlert(a.to_dict(), tuple(actions_of(store, a.id)))
        for a in found
        if a is not None and store is not None
    ]
    report = await asyncio.to_thread(
        build_cycle_report, c, with_signatures(alerts, ctx.audit), time.time_ns()
    )
    return await report_download(
        f"cycle-{c.id}.{format}",
        format,
        lambda: cycle_csv(report, d.lang, d.tz),
        lambda: cycle_pdf(report, d.lang, d.tz),
    )
