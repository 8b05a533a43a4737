"""Devices with their newest reading and state, and the newest readings (from LiveReadings)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from alert_rules.engine import source_of
from gateway.api.deps import Principal, get_ctx, require
from gateway.api.models import DeviceOut, ReadingOut, ns_to_dt
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
    """State: `alarm` when an annunciated alert is open on the device's source, `stale` when
    nothing arrived for `stale_after_s`, else `ok`."""
    ctx = get_ctx(request)
    by_device: dict[str, list[Reading]] = {}
    for r in ctx.live.snapshot():
        dev = r.tags.get("device", "")
        if site is not None and r.tags.get("site") != site:
            continue
        if asset is not None and r.tags.get("asset") != asset:
            continue
        by_device.setdefault(dev, []).append(r)
    open_by_source: dict[str, list[str]] = {}
    if ctx.alert_store is not None:
        for a in ctx.alert_store.open_alerts():
            open_by_source.setdefault(a.source, []).append(str(a.state))
    now = time.time_ns()
    stale_ns = int(ctx.stale_after_s * 1e9)
    out = []
    for dev, rs in sorted(by_device.items()):
        rs.sort(key=lambda r: r.ts_ns)
        newest = rs[-1]
        received = max(r.received_ns for r in rs)
        fields: dict[str, float | int | bool | str] = {}
        tags: dict[str, str] = {}
        for r in rs:
            fields.update(r.fields)
            tags.update(r.tags)
        src = source_of(newest.tags)
        states = open_by_source.get(src, [])
        if any(s in ANNUNCIATED for s in states):
            state = "alarm"
        elif now - received > stale_ns:
            state = "stale"
        else:
            state = "ok"
        out.append(
            DeviceOut(
                device=dev,
                source=src,
                state=state,  # type: ignore[arg-type]
                measurements=sorted({r.measurement for r in rs}),
                tags=tags,
                last_ts=ns_to_dt(newest.ts_ns),
                last_received=ns_to_dt(received),
                fields=fields,
                open_alerts=len(states),
                shipment=newest.tags.get("shipment"),
            )
        )
    return out


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
