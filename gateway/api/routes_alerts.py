"""Alerts: list, detail, and the operator and QA actions (each audited with old and new state)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from alert_rules.model import (
    ActionResult,
    Alert,
    AlertActionError,
    AlertNotFound,
    AlertState,
    Priority,
)
from gateway.api.deps import LangQuery, Principal, display_of, get_ctx, require
from gateway.api.models import (
    INT64_MAX,
    AckIn,
    ActionOut,
    AlertDetailOut,
    AlertHistoryOut,
    AlertOut,
    CloseIn,
    NotificationOut,
    ShelveIn,
    UnshelveIn,
    dt_to_ns,
    ns_to_dt,
)
from gateway.api.signing import verify_signature
from gateway.records.audit import Signature
from gateway.records.users import Perm

log = logging.getLogger("vigil.api")
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=INT64_MAX, description="alert id")]


def audit_view(a: Alert) -> dict[str, Any]:
    """The alert fields an action changes: what the audit row keeps as old and new value."""
    return {
        "state": str(a.state),
        "acked_by": a.acked_by,
        "acked_at_ns": a.acked_at,
        "shelved_by": a.shelved_by,
        "shelved_until_ns": a.shelved_until,
        "shelve_reason": a.shelve_reason,
        "closed_by": a.closed_by,
        "closed_at_ns": a.closed_at,
        "close_reason": a.close_reason,
        "rule": a.rule,
        "source": a.source,
    }


@router.get("", response_model=list[AlertOut], summary="List alerts, newest first")
async def list_alerts(
    request: Request,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    state: Annotated[AlertState | None, Query(description="ISA-18.2 state")] = None,
    source: Annotated[
        str | None, Query(max_length=200, description="exact, or a prefix ending in *")
    ] = None,
    since: Annotated[datetime | None, Query(description="raised at or after (event time)")] = None,
    rule: Annotated[str | None, Query(max_length=200)] = None,
    open: Annotated[bool, Query(description="only alerts not in state normal")] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    until: Annotated[datetime | None, Query(description="raised before (event time)")] = None,
    severity: Annotated[Priority | None, Query()] = None,
    active: Annotated[bool | None, Query(description="condition still present, or not")] = None,
    lang: LangQuery = None,
) -> list[AlertOut]:
    store = get_ctx(request).alert_store
    if store is None:
        return []
    d = display_of(request, p, lang)
    alerts = store.list_alerts(
        state=state,
        source=source,
        since_ns=dt_to_ns(since) if since is not None else None,
        rule=rule,
        open_only=open,
        limit=limit,
        severity=None if severity is None else str(severity),
        until_ns=dt_to_ns(until) if until is not None else None,
        active=active,
    )
    return [AlertOut.of(a, d.lang, d.tz) for a in alerts]


@router.get("/{alert_id}", response_model=AlertDetailOut, summary="One alert with its history")
async def get_alert(
    request: Request,
    alert_id: AlertId,
    p: Annotated[Principal, Depends(require(Perm.READ))],
    lang: LangQuery = None,
) -> AlertDetailOut:
    d = display_of(request, p, lang)
    store = get_ctx(request).alert_store
    a = store.get_alert(alert_id) if store is not None else None
    if a is None or store is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    history = [
        AlertHistoryOut(
            kind=h["kind"],
            old_state=h["old_state"],
            new_state=h["new_state"],
            at=ns_to_dt(h["at_ns"]),
            wall=ns_to_dt(h["wall_ns"]),
            by=h["by"],
            reason=h["reason"],
        )
        for h in store.history(alert_id)
    ]
    deliveries = get_ctx(request).notification_history
    notifications = [
        NotificationOut(
            event=n["event"],
            transition=n["transition"],
            channel=n["channel"],
            recipients=n["recipients"],
            key=n["key"],
            outcome=n["outcome"],
            attempts=n["attempts"],
            detail=n["detail"],
            at=ns_to_dt(n["at_ns"]),
        )
        for n in (deliveries(alert_id) if deliveries is not None else [])
    ]
    return AlertDetailOut(
        **AlertOut.of(a, d.lang, d.tz).model_dump(), history=history, notifications=notifications
    )


def _engine(request: Request) -> Any:
    engine = get_ctx(request).engine
    if engine is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no rules engine configured")
    return engine


def _act(fn: Any, alert_id: int, *args: Any) -> ActionResult:
    try:
        return fn(alert_id, *args)
    except AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from None
    except AlertActionError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None


async def _audited(
    request: Request,
    p: Principal,
    action: str,
    res: ActionResult,
    reason: str | None,
    signature: Signature | None = None,
) -> ActionOut:
    ctx = get_ctx(request)
    if ctx.on_alert_events is not None:
        try:
            ctx.on_alert_events([res.event])
        except Exception:  # the action is done and audited below whatever a sink does
            log.exception("alert event sink failed", extra={"alert": res.new.id})
    row = await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        action,
        "alert",
        res.new.id,
        audit_view(res.old),
        audit_view(res.new),
        reason,
        signature,
        p.client,
    )
    d = display_of(request, p)
    return ActionOut(
        alert=AlertOut.of(res.new, d.lang, d.tz),
        old_state=str(res.old.state),
        new_state=str(res.new.state),
        audit_seq=row.seq,
    )


@router.post("/{alert_id}/ack", response_model=ActionOut, summary="Acknowledge (operator)")
async def ack(
    request: Request,
    alert_id: AlertId,
    p: Annotated[Principal, Depends(require(Perm.ALERT_ACK))],
    body: AckIn | None = None,
) -> ActionOut:
    comment = body.comment if body else None
    res = _act(_engine(request).ack, alert_id, p.user.username, comment)
    return await _audited(request, p, "alert.ack", res, comment)


@router.post("/{alert_id}/shelve", response_model=ActionOut, summary="Shelve with a reason")
async def shelve(
    request: Request,
    alert_id: AlertId,
    body: ShelveIn,
    p: Annotated[Principal, Depends(require(Perm.ALERT_SHELVE))],
) -> ActionOut:
    res = _act(_engine(request).shelve, alert_id, p.user.username, body.reason, body.duration_s)
    return await _audited(request, p, "alert.shelve", res, body.reason)


@router.post("/{alert_id}/unshelve", response_model=ActionOut, summary="Unshelve")
async def unshelve(
    request: Request,
    alert_id: AlertId,
    p: Annotated[Principal, Depends(require(Perm.ALERT_SHELVE))],
    body: UnshelveIn | None = None,
) -> ActionOut:
    reason = body.reason if body else None
    res = _act(_engine(request).unshelve, alert_id, p.user.username, reason)
    return await _audited(request, p, "alert.unshelve", res, reason)


@router.post(
    "/{alert_id}/close",
    response_model=ActionOut,
    summary="Close (QA, electronically signed: password and meaning)",
)
async def close(
    request: Request,
    alert_id: AlertId,
    body: CloseIn,
    p: Annotated[Principal, Depends(require(Perm.ALERT_CLOSE))],
) -> ActionOut:
    engine = _engine(request)
    store = get_ctx(request).alert_store
    if store is None or store.get_alert(alert_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    await verify_signature(request, p, body.password, "alert", str(alert_id))
    res = _act(engine.close_alert, alert_id, p.user.username, body.reason)
    sig = Signature(p.user.name, p.user.username, body.meaning, time.time_ns())
    return await _audited(request, p, "alert.close", res, body.reason, sig)
