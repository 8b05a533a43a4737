"""Lots, their legs and chain, QA's release decision (e-signed), and the chain report."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import Response

from gateway.api.deps import LangQuery, Principal, display_of, get_ctx, report_download, require
from gateway.api.lot_models import (
    BudgetOut,
    ChainOut,
    DecisionActionOut,
    DecisionIn,
    DecisionOut,
    LegActionOut,
    LegDetailOut,
    LegIn,
    LegOut,
    LotActionOut,
    LotDetailOut,
    LotIn,
    LotListOut,
    LotOut,
    StageOut,
    TimeIn,
    decision_out,
)
from gateway.api.models import dt_to_ns
from gateway.api.signing import verify_signature
from gateway.records.audit import Signature
from gateway.records.lots import LegChange, Lot, LotConflict, LotError, LotNotFound
from gateway.records.reports.chain import ChainReport, chain_for, gather_chain_alerts
from gateway.records.reports.chain_csv import to_csv, zone_problem
from gateway.records.reports.chain_pdf import to_pdf
from gateway.records.users import Perm

router = APIRouter(prefix="/api/v1", tags=["lots"])

LotId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
LegId = LotId


def _http(e: Exception) -> HTTPException:
    if isinstance(e, LotNotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, f"not found: {e.args[0]}")
    if isinstance(e, LotConflict):
        return HTTPException(status.HTTP_409_CONFLICT, str(e))
    return HTTPException(422, str(e))


def _lot_out(request: Request, lot: Lot) -> LotOut:
    return LotOut.of(lot, get_ctx(request).lots.retention_until(lot))


async def _chain(request: Request, lot_id: str, as_of_ns: int | None = None) -> ChainReport:
    """The chain with its alerts (gathered on the loop: the alert store belongs to it)."""
    ctx = get_ctx(request)
    lots = ctx.lots
    if lots.get_lot(lot_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lot {lot_id}")
    per_leg, own = gather_chain_alerts(ctx.alert_store, lot_id, lots.legs_of(lot_id))
    return await asyncio.to_thread(
        chain_for, lots, lot_id, ctx.rule_library(), per_leg, own, None, as_of_ns
    )


async def _audit_change(request: Request, p: Principal, action: str, c: LegChange) -> int:
    """Audit rows for a leg change: legs it closed, its shipment, the leg itself (last)."""
    ctx = get_ctx(request)
    for old, new in c.closed:
        await asyncio.to_thread(
            ctx.audit.record,
            p.user.username,
            "leg.close",
            "leg",
            old.id,
            old.to_dict(),
            new.to_dict(),
            new.stop_reason,
            None,
            p.client,
        )
    reason = c.new.stop_reason if action == "leg.close" else c.new.start_reason
    if c.shipment is not None:
        old_s, new_s = c.shipment
        await asyncio.to_thread(
            ctx.audit.record,
            p.user.username,
            "shipment.stop" if action == "leg.close" else "shipment.start",
            "shipment",
            new_s.id,
            old_s.to_dict() if old_s else None,
            new_s.to_dict(),
            reason,
            None,
            p.client,
        )
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        action,
        "leg",
        c.new.id,
        c.old.to_dict() if c.old else None,
        c.new.to_dict(),
        reason,
        None,
        p.client,
    )
    return row.seq


async def _backfill(request: Request) -> None:
    """A leg opened or closed at a past time: its readings already in the journal."""
    ctx = get_ctx(request)
    for leg in ctx.lots.take_backfills():
        await asyncio.to_thread(ctx.lots.backfill, leg, ctx.journal)


# -- lots -------------------------------------------------------------------------------------
@router.get(
    "/lots", response_model=list[LotListOut], summary="List lots (newest first), with decisions"
)
async def list_lots(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    code: Annotated[str | None, Query(max_length=200, description="a traceability code")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[LotListOut]:
    registry = get_ctx(request).lots

    def listed() -> list[LotListOut]:
        return [
            LotListOut.listed(lot, registry.retention_until(lot), registry.decision(lot.id))
            for lot in registry.list_lots(limit, code)
        ]

    return await asyncio.to_thread(listed)


@router.post("/lots", response_model=LotActionOut, status_code=201, summary="Create a lot")
async def create_lot(
    request: Request,
    body: LotIn,
    p: Annotated[Principal, Depends(require(Perm.SHIPMENT_WRITE))],
) -> LotActionOut:
    ctx = get_ctx(request)
    profiles = ctx.profile_names()
    if profiles and body.profile not in profiles:
        raise HTTPException(
            422, f"unknown product profile {body.profile!r} (known: {', '.join(profiles)})"
        )
    try:
        lot = ctx.lots.create_lot(
            body.id,
            body.product,
            body.profile,
            body.expiry,
            p.user.username,
            codes=body.codes,
            note=body.note,
        )
    except (LotError, LotNotFound) as e:
        raise _http(e) from None
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "lot.create",
        "lot",
        lot.id,
        None,
        lot.to_dict(),
        body.note or None,
        None,
        p.client,
    )
    return LotActionOut(lot=_lot_out(request, lot), audit_seq=row.seq)


@router.get("/lots/{lot_id}", response_model=LotDetailOut, summary="A lot: legs, budget")
async def get_lot(
    request: Request,
    lot_id: LotId,
    _: Annotated[Principal, Depends(require(Perm.READ))],
) -> LotDetailOut:
    ctx = get_ctx(request)
    lot = ctx.lots.get_lot(lot_id)
    if lot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lot {lot_id}")
    report = await _chain(request, lot_id)
    return LotDetailOut(
        lot=_lot_out(request, lot),
        legs=[LegOut.of(g) for g in ctx.lots.legs_of(lot_id)],
        verdict=report.verdict,
        budget=None if report.use is None else BudgetOut.of(report.use),
        decision=decision_out(report),
    )


@router.get(
    "/lots/{lot_id}/chain",
    response_model=ChainOut,
    summary="The lot's chain: every leg with its statistics, and the totals",
)
async def get_chain(
    request: Request,
    lot_id: LotId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    lang: LangQuery = None,
) -> ChainOut:
    """The verdict's reasons in the reader's language (`lang`, else the user's,
    Accept-Language, gateway.language), their times in gateway.timezone."""
    d = display_of(request, p, lang)
    return ChainOut.of(await _chain(request, lot_id), d.lang, d.tz)


@router.post(
    "/lots/{lot_id}/decision",
    response_model=DecisionActionOut,
    summary="Release, quarantine or reject the lot (QA, electronically signed)",
)
async def decide(
    request: Request,
    lot_id: LotId,
    body: DecisionIn,
    p: Annotated[Principal, Depends(require(Perm.REPORT_SIGN))],
) -> DecisionActionOut:
    ctx = get_ctx(request)
    if ctx.lots.get_lot(lot_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lot {lot_id}")
    await verify_signature(request, p, body.password, "lot", lot_id)
    now = time.time_ns()
    report = await _chain(request, lot_id, as_of_ns=now)
    try:
        old, new = ctx.lots.decide(
            lot_id,
            body.decision,
            p.user.username,
            p.user.name,
            body.meaning,
            report.evidence_sha256,
            body.comment,
            now_ns=now,
        )
    except (LotError, LotNotFound) as e:
        raise _http(e) from None
    sig = Signature(p.user.name, p.user.username, body.meaning, now)
    after = new.to_dict() | {"verdict": report.verdict, "reasons": [str(x) for x in report.reasons]}
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        f"lot.{body.decision}",
        "lot",
        lot_id,
        old.to_dict() if old else None,
        after,
        body.comment,
        sig,
        p.client,
    )
    return DecisionActionOut(lot=lot_id, decision=DecisionOut.of(new, True), audit_seq=row.seq)


# -- legs -------------------------------------------------------------------------------------
@router.get("/legs", response_model=list[LegOut], summary="List legs")
async def list_legs(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    status_: Annotated[
        Literal["planned", "active", "closed", "cancelled"] | None, Query(alias="status")
    ] = None,
    asset: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[LegOut]:
    legs = await asyncio.to_thread(get_ctx(request).lots.list_legs, status_, asset, limit)
    return [LegOut.of(g) for g in legs]


@router.post(
    "/legs",
    response_model=LegActionOut,
    status_code=201,
    summary="Open a leg for lots (now, at a past time with a reason, or planned on geofences)",
)
async def open_leg(
    request: Request,
    body: LegIn,
    p: Annotated[Principal, Depends(require(Perm.SHIPMENT_WRITE))],
) -> LegActionOut:
    ctx = get_ctx(request)
    if body.profile is not None:
        profiles = ctx.profile_names()
        if profiles and body.profile not in profiles:
            raise HTTPException(422, f"unknown product profile {body.profile!r}")
    try:
        c = ctx.lots.open_leg(
            body.lots,
            body.kind,
            body.asset,
            p.user.username,
            leg_id=body.id,
            site=body.site,
            devices=body.devices,
            profile=body.profile or "",
            origin=body.origin or "",
            destination=body.destination or "",
            geofence=body.geofence,
            planned=body.planned,
            interval_s=body.interval_s,
            note=body.note,
            reason=body.reason,
            started_at_ns=None if body.started_at is None else dt_to_ns(body.started_at),
        )
    except (LotError, LotNotFound) as e:
        raise _http(e) from None
    seq = await _audit_change(request, p, "leg.open", c)
    await _backfill(request)
    return LegActionOut(
        leg=LegOut.of(c.new),
        closed=[LegOut.of(new) for _old, new in c.closed],
        shipment=c.shipment[1].id if c.shipment else None,
        audit_seq=seq,
    )


@router.get("/legs/{leg_id}", response_model=LegDetailOut, summary="One leg with its stages")
async def get_leg(
    request: Request,
    leg_id: LegId,
    _: Annotated[Principal, Depends(require(Perm.READ))],
) -> LegDetailOut:
    lots = get_ctx(request).lots
    g = lots.get_leg(leg_id)
    if g is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no leg {leg_id}")
    return LegDetailOut(
        **LegOut.of(g).model_dump(), stages=[StageOut.of(st) for st in lots.stages(leg_id)]
    )


@router.post("/legs/{leg_id}/start", response_model=LegActionOut, summary="Start a planned leg")
async def start_leg(
    request: Request,
    leg_id: LegId,
    p: Annotated[Principal, Depends(require(Perm.SHIPMENT_WRITE))],
    body: TimeIn | None = None,
) -> LegActionOut:
    ctx = get_ctx(request)
    body = body or TimeIn()
    try:
        c = ctx.lots.start_leg(
            leg_id,
            p.user.username,
            reason=body.reason,
            started_at_ns=None if body.at is None else dt_to_ns(body.at),
        )
    except (LotError, LotNotFound) as e:
        raise _http(e) from None
    seq = await _audit_change(request, p, "leg.start", c)
    await _backfill(request)
    return LegActionOut(
        leg=LegOut.of(c.new),
        closed=[LegOut.of(new) for _old, new in c.closed],
        shipment=c.shipment[1].id if c.shipment else None,
        audit_seq=seq,
    )


@router.post(
    "/legs/{leg_id}/close",
    response_model=LegActionOut,
    summary="Close a leg (its shipment stops with it); a planned leg is cancelled",
)
async def close_leg(
    request: Request,
    leg_id: LegId,
    p: Annotated[Principal, Depends(require(Perm.SHIPMENT_WRITE))],
    body: TimeIn | None = None,
) -> LegActionOut:
    ctx = get_ctx(request)
    body = body or TimeIn()
    try:
        c = ctx.lots.close_leg(
            leg_id,
            p.user.username,
            reason=body.reason,
            stopped_at_ns=None if body.at is None else dt_to_ns(body.at),
        )
    except (LotError, LotNotFound) as e:
        raise _http(e) from None
    seq = await _audit_change(request, p, "leg.close", c)
    return LegActionOut(
        leg=LegOut.of(c.new),
        closed=[],
        shipment=c.shipment[1].id if c.shipment else None,
        audit_seq=seq,
    )


# -- the chain report -------------------------------------------------------------------------
@router.get(
    "/reports/lots/{lot_id}",
    summary="Chain report of a lot as PDF or CSV",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}, "text/csv": {}}, "description": "the report"}
    },
)
async def chain_report(
    request: Request,
    lot_id: LotId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    format: Annotated[Literal["pdf", "csv"], Query()] = "pdf",
    lang: LangQuery = None,
    tz: Annotated[
        str | None,
        Query(max_length=64, description="display time zone (default gateway.timezone)"),
    ] = None,
) -> Response:
    """In the language of `lang`, else the user's, Accept-Language or gateway.language; times
    in `tz`, else gateway.timezone."""
    d = display_of(request, p, lang)
    zone = tz or d.tz
    why = zone_problem(zone)
    if why:
        raise HTTPException(422, why)
    report = await _chain(request, lot_id)
    return await report_download(
        f"chain-{lot_id}.{format}",
        format,
        lambda: to_csv(report, d.lang, zone),
        lambda: to_pdf(report, d.lang, zone),
    )
