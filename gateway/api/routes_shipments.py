"""Shipments (start, stop, QA approval with an electronic signature) and their reports.

A shipment is the transport leg of its lots: starting and stopping go through the lot registry,
which opens and closes both (gateway/records/lots.py); these routes are the transport view.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import Response

from gateway.api.deps import LangQuery, Principal, display_of, get_ctx, report_download, require
from gateway.api.models import (
    ApproveIn,
    RejectIn,
    SeriesOut,
    ShipmentActionOut,
    ShipmentIn,
    ShipmentOut,
    SignatureOut,
    StopIn,
    dt_to_ns,
    ns_to_dt,
)
from gateway.api.routes_devices import series_out
from gateway.api.signing import verify_signature
from gateway.core.i18n import gettext
from gateway.core.lineprotocol import LineProtocolError, parse_line
from gateway.core.reading import FieldValue
from gateway.pipeline.chain import head_line
from gateway.records.audit import Signature
from gateway.records.lots import LotConflict, LotError, LotNotFound
from gateway.records.reports import (
    SeriesStats,
    ShipmentReport,
    band_label,
    content_digest,
    gather_alerts,
    report_for,
    to_csv,
    to_pdf,
)
from gateway.records.shipments import Shipment, ShipmentError
from gateway.records.users import Perm

router = APIRouter(prefix="/api/v1", tags=["shipments"])

ShipmentId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


def shipment_out(s: Shipment, readings: int, lots: list[str]) -> ShipmentOut:
    sig = None
    if s.approved_at_ns is not None:
        sig = SignatureOut(
            name=s.approved_name or "",
            username=s.approved_by or "",
            meaning=s.approval_meaning or "",
            signed_at=ns_to_dt(s.approved_at_ns),
            content_sha256=s.approved_digest,
        )
    rej = None
    if s.rejected_at_ns is not None:
        rej = SignatureOut(
            name=s.rejected_name or "",
            username=s.rejected_by or "",
            meaning=s.rejection_meaning or "",
            signed_at=ns_to_dt(s.rejected_at_ns),
            content_sha256=None,
        )
    return ShipmentOut(
        rejection=rej,
        rejection_reason=s.rejection_reason,
        id=s.id,
        asset=s.asset,
        site=s.site,
        profile=s.profile,
        product=s.product,
        origin=s.origin,
        destination=s.destination,
        note=s.note,
        status=s.status,
        lots=lots,
        started_at=ns_to_dt(s.started_at_ns),
        started_by=s.started_by,
        start_reason=s.start_reason,
        stopped_at=ns_to_dt(s.stopped_at_ns),
        stopped_by=s.stopped_by,
        stop_reason=s.stop_reason,
        readings=readings,
        signature=sig,
    )


def _lots(request: Request, shipment_id: str) -> list[str]:
    leg = get_ctx(request).lots.get_leg(shipment_id)
    return list(leg.lots) if leg is not None else []


def _out(request: Request, s: Shipment) -> ShipmentOut:
    return shipment_out(s, get_ctx(request).shipments.reading_count(s.id), _lots(request, s.id))


def _get(request: Request, shipment_id: str) -> Shipment:
    s = get_ctx(request).shipments.get(shipment_id)
    if s is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no shipment {shipment_id}")
    return s


@router.get("/shipments", response_model=list[ShipmentOut], summary="List shipments")
async def list_shipments(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    status_: Annotated[
        Literal["active", "stopped", "approved", "rejected"] | None, Query(alias="status")
    ] = None,
    asset: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[ShipmentOut]:
    reg = get_ctx(request).shipments
    found = await asyncio.to_thread(reg.list_shipments, status_, asset, limit)
    return [_out(request, s) for s in found]


@router.post(
    "/shipments",
    response_model=ShipmentActionOut,
    status_code=201,
    summary="Start a shipment on an asset with a product profile",
)
async def start_shipment(
    request: Request,
    body: ShipmentIn,
    p: Annotated[Principal, Depends(require(Perm.SHIPMENT_WRITE))],
) -> ShipmentActionOut:
    ctx = get_ctx(request)
    profiles = ctx.profile_names()
    if body.profile is None and not body.lots:
        raise HTTPException(422, "a shipment needs a product profile, or lots that have one")
    if body.profile is not None and profiles and body.profile not in profiles:
        raise HTTPException(
            422,
            f"unknown product profile {body.profile!r} (known: {', '.join(profiles)})",
        )
    try:
        c = ctx.lots.open_leg(
            body.lots,
            "transport",
            body.asset,
            p.user.username,
            leg_id=body.id,
            site=body.site,
            devices=body.devices,
            profile=body.profile or "",
            origin=body.origin,
            destination=body.destination,
            geofence=body.geofence,
            interval_s=body.interval_s,
            note=body.note,
            started_at_ns=None if body.started_at is None else dt_to_ns(body.started_at),
            reason=body.reason,
        )
    except LotNotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lot {e.args[0]}") from None
    except LotConflict as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    except LotError as e:
        raise HTTPException(422, str(e)) from None
    assert c.shipment is not None
    s = c.shipment[1]
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
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "shipment.start",
        "shipment",
        s.id,
        None,
        s.to_dict() | {"lots": list(c.new.lots)},
        body.reason or body.note or None,
        None,
        p.client,
    )
    for leg in ctx.lots.take_backfills():  # started in the past: what the journal holds
        await asyncio.to_thread(ctx.lots.backfill, leg, ctx.journal)
    return ShipmentActionOut(shipment=_out(request, s), audit_seq=row.seq)


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut, summary="One shipment")
async def get_shipment(
    request: Request,
    shipment_id: ShipmentId,
    _: Annotated[Principal, Depends(require(Perm.READ))],
) -> ShipmentOut:
    return _out(request, _get(request, shipment_id))


@router.post(
    "/shipments/{shipment_id}/stop", response_model=ShipmentActionOut, summary="Stop a shipment"
)
async def stop_shipment(
    request: Request,
    shipment_id: ShipmentId,
    p: Annotated[Principal, Depends(require(Perm.SHIPMENT_WRITE))],
    body: StopIn | None = None,
) -> ShipmentActionOut:
    ctx = get_ctx(request)
    reason = body.reason if body else None
    at = body.stopped_at if body else None
    _get(request, shipment_id)
    try:
        c = ctx.lots.close_leg(
            shipment_id,
            p.user.username,
            reason=reason,
            stopped_at_ns=None if at is None else dt_to_ns(at),
        )
    except LotConflict as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    except (LotError, LotNotFound) as e:
        raise HTTPException(422, str(e)) from None
    if c.shipment is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"shipment {shipment_id} was already stopped")
    old, new = c.shipment
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "shipment.stop",
        "shipment",
        shipment_id,
        old.to_dict() if old else None,
        new.to_dict(),
        reason,
        None,
        p.client,
    )
    return ShipmentActionOut(shipment=_out(request, new), audit_seq=row.seq)


@router.post(
    "/shipments/{shipment_id}/approve",
    response_model=ShipmentActionOut,
    summary="Approve the shipment report (QA, electronically signed: password and meaning)",
)
async def approve_shipment(
    request: Request,
    shipment_id: ShipmentId,
    body: ApproveIn,
    p: Annotated[Principal, Depends(require(Perm.REPORT_SIGN))],
) -> ShipmentActionOut:
    ctx = get_ctx(request)
    s = _get(request, shipment_id)
    if s.active:
        raise HTTPException(status.HTTP_409_CONFLICT, f"shipment {s.id} is still active")
    if s.approved_at_ns is not None or s.rejected_at_ns is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"shipment {s.id} is already {s.status}")
    await verify_signature(request, p, body.password, "shipment", s.id)
    alerts = gather_alerts(ctx.alert_store, s)
    report = await asyncio.to_thread(
        report_for, ctx.shipments, s, alerts, ctx.rule_library(), None, ctx.audit
    )
    digest = content_digest(report)
    now = time.time_ns()
    try:
        old, new = ctx.shipments.approve(
            s.id, p.user.username, p.user.name, body.meaning, digest, now_ns=now
        )
    except ShipmentError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    sig = Signature(p.user.name, p.user.username, body.meaning, now)
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "shipment.approve",
        "shipment",
        s.id,
        old.to_dict(),
        new.to_dict(),
        body.comment,
        sig,
        p.client,
    )
    return ShipmentActionOut(shipment=_out(request, new), audit_seq=row.seq)


@router.post(
    "/shipments/{shipment_id}/reject",
    response_model=ShipmentActionOut,
    summary="Reject the shipment report (QA, electronically signed: password, meaning, reason)",
)
async def reject_shipment(
    request: Request,
    shipment_id: ShipmentId,
    body: RejectIn,
    p: Annotated[Principal, Depends(require(Perm.REPORT_SIGN))],
) -> ShipmentActionOut:
    ctx = get_ctx(request)
    s = _get(request, shipment_id)
    if s.active:
        raise HTTPException(status.HTTP_409_CONFLICT, f"shipment {s.id} is still active")
    if s.approved_at_ns is not None or s.rejected_at_ns is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"shipment {s.id} is already {s.status}")
    await verify_signature(request, p, body.password, "shipment", s.id)
    now = time.time_ns()
    try:
        old, new = ctx.shipments.reject(
            s.id, p.user.username, p.user.name, body.meaning, body.reason, now_ns=now
        )
    except ShipmentError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "shipment.reject",
        "shipment",
        s.id,
        old.to_dict(),
        new.to_dict(),
        body.reason,
        Signature(p.user.name, p.user.username, body.meaning, now),
        p.client,
    )
    return ShipmentActionOut(shipment=_out(request, new), audit_seq=row.seq)


@router.get(
    "/reports/shipments/{shipment_id}",
    summary="Shipment report as PDF or CSV",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}, "text/csv": {}}, "description": "the report"}
    },
)
async def shipment_report(
    request: Request,
    shipment_id: ShipmentId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    format: Annotated[Literal["pdf", "csv"], Query()] = "pdf",
    lang: LangQuery = None,
) -> Response:
    """In the language of `lang`, else the user's, Accept-Language or gateway.language; times
    in gateway.timezone."""
    d = display_of(request, p, lang)
    report = await _report(request, _get(request, shipment_id))
    return await report_download(
        f"shipment-{report.shipment.id}.{format}",
        format,
        lambda: to_csv(report, d.lang, d.tz),
        lambda: to_pdf(report, d.lang, d.tz),
    )


async def _report(request: Request, s: Shipment) -> ShipmentReport:
    ctx = get_ctx(request)
    alerts = gather_alerts(ctx.alert_store, s)
    report = await asyncio.to_thread(
        report_for, ctx.shipments, s, alerts, ctx.rule_library(), None, ctx.audit
    )
    report.journal_chain = head_line(*ctx.journal.head())
    return report


@router.get(
    "/shipments/{shipment_id}/review",
    summary="What QA reviews before approving: verdict, loggers, excursions, MKT, completeness",
)
async def shipment_review(
    request: Request,
    shipment_id: ShipmentId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    lang: LangQuery = None,
) -> dict[str, Any]:
    d = display_of(request, p, lang)
    r = await _report(request, _get(request, shipment_id))
    return {
        "verdict": {
            "code": r.verdict.code,
            "title": gettext(r.verdict.title, d.lang),
            "reasons": [t.render(d.lang, d.tz) for t in r.verdict.reasons],
        },
        "limits": {
            "low": r.limits.low,
            "high": r.limits.high,
            "mkt_limit": r.limits.mkt_limit,
            "bands": [
                {"op": b.op, "limit": b.limit, "label": band_label(b)} for b in r.limits.bands
            ],
        },
        "summary": _stats(r.summary, d.lang),
        "devices": [
            {
                **_stats(dv.temp, d.lang),
                "serial": dv.serial,
                "interval_s": dv.interval_s,
                "completeness": dv.completeness.share,
                "slots": dv.completeness.slots,
                "gaps": [
                    {
                        "from": ns_to_dt(g.start_ns),
                        "to": ns_to_dt(g.end_ns),
                        "missed": g.missed_slots,
                    }
                    for g in dv.completeness.gaps
                ],
                "humidity": None if dv.humidity is None else _stats(dv.humidity, d.lang),
            }
            for dv in r.devices
        ],
        "excursions": [
            {
                "device": x.excursion.device,
                "side": x.excursion.side,
                "limit": x.excursion.limit,
                "start": ns_to_dt(x.excursion.start_ns),
                "end": ns_to_dt(x.excursion.end_ns),
                "duration_s": x.excursion.duration_s,
                "peak": x.excursion.peak,
                "alert_ids": [a.alert["id"] for a in x.alerts],
            }
            for x in r.excursions
        ],
        "content_sha256": content_digest(r),
    }


def _stats(st: SeriesStats, lang: str) -> dict[str, Any]:
    return {
        "device": gettext(st.device, lang),
        "readings": st.n,
        "min": st.min,
        "max": st.max,
        "mean": st.mean,
        "mkt": st.mkt,
        "covered_s": st.held_s,
        "out_of_range_s": st.band_s,
    }


@router.get(
    "/shipments/{shipment_id}/readings",
    response_model=list[SeriesOut],
    summary="Every reading of the shipment, per logger (for the review chart)",
)
async def shipment_readings(
    request: Request,
    shipment_id: ShipmentId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    points: Annotated[int, Query(ge=10, le=20_000)] = 3000,
) -> list[SeriesOut]:
    d = display_of(request, p)
    s = _get(request, shipment_id)
    rows = await asyncio.to_thread(get_ctx(request).shipments.readings, s.id)
    by: dict[tuple[str, str], list[tuple[int, dict[str, FieldValue]]]] = {}
    for measurement, device, ts, line in rows:
        try:
            _m, _tags, fields, _ts = parse_line(line)
        except LineProtocolError:
            continue
        by.setdefault((device, measurement), []).append((ts, fields))
    return [
        series_out(dev, meas, pts, True, points, d.lang) for (dev, meas), pts in sorted(by.items())
    ]
