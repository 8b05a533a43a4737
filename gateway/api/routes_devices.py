"""Devices with their newest reading and state, and the newest readings (from LiveReadings)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from alert_rules.engine import source_of
from gateway.api.deps import Principal, get_ctx, require
from gateway.api.models import DeviceOut, ReadingOut, ns_to_dt
from gateway.core.ports import SourceStatus
from gateway.core.reading import Reading
from gateway.records.users import Perm

router = APIRouter(prefix="/api/v1", tags=["devices"])

ANNUNCIATED = {"unacknowledged", "acknowledged", "rtn_unacknowledged"}


def reading_out(r: Reading) -> ReadingOut:
    return ReadingOut(
        measurement=r.measurement,
        device=r.tags.get("device", ""),
        tags=dict(r.tags),
        fields=dict(r.fields),
        ts=ns_to_dt(r.ts_ns),
        received=ns_to_dt(r.received_ns),
        ts_from_receive=r.ts_from_receive,
    )


@router.get("/devices", response_model=list[DeviceOut], summary="Devices, newest reading, state")
async def devices(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    site: Annotated[str | None, Query(max_length=200)] = None,
    asset: Annotated[str | None, Query(max_length=200)] = None,
) -> list[DeviceOut]:
    """Every device that sent readings or that a collector polls, and every collector connection.

    State: `alarm` when an annunciated alert is open on the device's source, `offline` when its
    collector cannot reach it, `stale` when nothing arrived for `stale_after_s`, else `ok`."""
    ctx = get_ctx(request)
    by_device: dict[str, list[Reading]] = {}
    for r in ctx.live.snapshot():
        dev = r.tags.get("device", "")
        if site is not None and r.tags.get("site") != site:
            continue
        if asset is not None and r.tags.get("asset") != asset:
            continue
        by_device.setdefault(dev, []).append(r)
    statuses = ctx.sources()
    polled = {st.device: st for st in statuses if st.device}
    if site is None and asset is None:  # collectors' devices carry no site or asset of their own
        for dev in polled:
            by_device.setdefault(dev, [])
    open_by_source: dict[str, list[str]] = {}
    if ctx.alert_store is not None:
        for a in ctx.alert_store.open_alerts():
            open_by_source.setdefault(a.source, []).append(str(a.state))
    now = time.time_ns()
    stale_ns = int(ctx.stale_after_s * 1e9)
    out = []
    for dev, rs in sorted(by_device.items()):
        rs.sort(key=lambda r: r.ts_ns)
        st = polled.get(dev)
        newest = rs[-1] if rs else None
        received = max((r.received_ns for r in rs), default=None)
        fields: dict[str, float | int | bool | str] = {}
        tags: dict[str, str] = {}
        for r in rs:
            fields.update(r.fields)
            tags.update(r.tags)
        if newest is not None:
            src = source_of(newest.tags)
        else:  # a polled device that has not answered yet: the source its readings would have
            src = source_of(st.tags) if st is not None and st.tags else dev
        states = open_by_source.get(src, [])
        out.append(
            DeviceOut(
                device=dev,
                source=src,
                state=_state(states, st, received, now, stale_ns),
                measurements=sorted({r.measurement for r in rs}),
                tags=tags,
                last_ts=ns_to_dt(newest.ts_ns) if newest is not None else None,
                last_received=ns_to_dt(received),
                fields=fields,
                open_alerts=len(states),
                shipment=newest.tags.get("shipment") if newest is not None else None,
                **_status_fields(st),
            )
        )
    if site is None and asset is None:
        for st in statuses:
            if not st.device:
                out.append(
                    DeviceOut(
                        device=st.collector,
                        kind="connection",
                        source=st.address,
                        state=_state([], st, st.last_seen_ns or None, now, stale_ns),
                        measurements=[],
                        tags={},
                        last_ts=None,
                        last_received=ns_to_dt(st.last_seen_ns or None),
                        fields={},
                        open_alerts=0,
                        shipment=None,
                        **_status_fields(st),
                    )
                )
    return out


def _state(
    alerts: list[str], st: SourceStatus | None, received: int | None, now: int, stale_ns: int
) -> Literal["ok", "alarm", "offline", "stale"]:
    if any(s in ANNUNCIATED for s in alerts):
        return "alarm"
    if st is not None and st.online is False:
        return "offline"
    if received is None or now - received > stale_ns:
        return "stale"
    return "ok"


def _status_fields(st: SourceStatus | None) -> dict[str, Any]:
    if st is None:
        return {}
    return {
        "online": st.online,
        "online_since": ns_to_dt(st.since_ns) if st.since_ns else None,
        "last_error": st.last_error,
        "collector": st.collector,
        "address": st.address,
    }


@router.get(
    "/readings/latest", response_model=list[ReadingOut], summary="Newest reading per series"
)
async def latest_readings(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    device: Annotated[str | None, Query(max_length=200)] = None,
    measurement: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[ReadingOut]:
    rs = [
        r
        for r in get_ctx(request).live.snapshot()
        if (device is None or r.tags.get("device") == device)
        and (measurement is None or r.measurement == measurement)
    ]
    rs.sort(key=lambda r: (r.measurement, r.tags.get("device", "")))
    return [reading_out(r) for r in rs[:limit]]
