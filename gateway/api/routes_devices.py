"""Devices with their newest reading and state, the newest readings (from LiveReadings), and a
device's record completeness (from the journal)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from alert_rules.engine import source_of
from alert_rules.kinds.base import num
from alert_rules.kinds.record_gap import RecordGapRule, Sample
from alert_rules.limits import profile_limits
from gateway.api.deps import LangQuery, Principal, display_of, get_ctx, require
from gateway.api.models import (
    BandOut,
    CadenceOut,
    CompletenessOut,
    DeviceOut,
    FieldOut,
    GapOut,
    ReadingOut,
    SeriesOut,
    dt_to_ns,
    ns_to_dt,
)
from gateway.core.i18n import gettext
from gateway.core.lineprotocol import LineProtocolError, decode
from gateway.core.ports import SourceStatus
from gateway.core.reading import FieldValue, Reading
from gateway.core.schema import FIELD_LABELS, unit_of
from gateway.pipeline.completeness import DEVICE_MEASUREMENTS, rule_for
from gateway.pipeline.journal import Journal
from gateway.records.reports import band_label
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
    p: Annotated[Principal, Depends(require(Perm.READ))],
    site: Annotated[str | None, Query(max_length=200)] = None,
    asset: Annotated[str | None, Query(max_length=200)] = None,
    lang: LangQuery = None,
) -> list[DeviceOut]:
    """Every device that sent readings or that a collector polls, and every collector connection.

    State: `alarm` when an annunciated alert is open on the device's source, `offline` when its
    collector cannot reach it, `stale` when nothing arrived for `stale_after_s`, else `ok`."""
    ctx = get_ctx(request)
    d = display_of(request, p, lang)
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
        meta_units = st.units if st is not None else {}
        meta_labels = st.labels if st is not None else {}
        values = [
            FieldOut(
                measurement=r.measurement,
                field=k,
                value=v,
                unit=meta_units.get(k) or unit_of(k),
                label=meta_labels.get(k) or gettext(FIELD_LABELS.get(k, k), d.lang),
            )
            for r in sorted(rs, key=lambda r: r.measurement)
            for k, v in sorted(r.fields.items())
        ]
        out.append(
            DeviceOut(
                device=dev,
                values=values,
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


COMPLETENESS_DEFAULT_S = 86_400.0
COMPLETENESS_MAX_S = 31 * 86_400.0
"""The longest window one request may ask for (the journal is read row by row)."""
LOOKBACK_NS = 2 * 3600 * 1_000_000_000
"""Readings received this long before the window are read too: the last one before it sets the
cadence at its start."""
_SPECIAL = re.compile(r"[\\, =]+")


def _device_history(
    journal: Journal, source: str, since_ns: int
) -> tuple[str, list[Reading]] | None:
    """(measurement, readings sorted by event time) of the device named by `source`."""
    device = source.rsplit("/", 1)[-1]
    needle = max(_SPECIAL.split(device), key=len)  # SQLite narrows, decoding decides
    found: dict[str, list[Reading]] = {}
    for row in journal.lines_containing(needle, since_ns - LOOKBACK_NS):
        if not row.line.startswith(tuple(m + "," for m in DEVICE_MEASUREMENTS)):
            continue
        try:
            r = decode(row.line, row.received_ns)
        except LineProtocolError:
            continue
        if r.tags.get("device") == device and source_of(r.tags) == source:
            found.setdefault(r.measurement, []).append(r)
    if not found:
        return None
    measurement, readings = max(found.items(), key=lambda kv: len(kv[1]))
    readings.sort(key=lambda r: r.ts_ns)
    return measurement, readings


@router.get(
    "/devices/{source:path}/completeness",
    response_model=CompletenessOut,
    summary="Record completeness of a device (China GSP cadence)",
)
async def device_completeness(
    request: Request,
    source: str,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    since: Annotated[
        datetime | None, Query(description="window start, event time (default: until - 24 h)")
    ] = None,
    until: Annotated[datetime | None, Query(description="window end (default: now)")] = None,
) -> CompletenessOut:
    """The share of required recording slots that hold a reading, and the gaps.

    `source` is the device's alert source (site/asset/device or line/equipment/device). The
    cadences are those of the `record_gap` rule bound to the device (China GSP: 30 min in
    storage, 5 min in transport, 2 min out of range; per binding), else the GSP defaults."""
    ctx = get_ctx(request)
    until_ns = dt_to_ns(until) if until is not None else time.time_ns()
    since_ns = (
        dt_to_ns(since) if since is not None else until_ns - int(COMPLETENESS_DEFAULT_S * 1e9)
    )
    if until_ns <= since_ns:
        raise HTTPException(422, "until must be after since")
    if until_ns - since_ns > COMPLETENESS_MAX_S * 1e9:
        raise HTTPException(422, "the window may be at most 31 days long")
    requested = since_ns
    pruned = await asyncio.to_thread(ctx.journal.pruned_before_ns)
    if pruned is not None and pruned > since_ns:
        # readings received before it may be gone (retention), and a reading is received after
        # it was taken: only from there on is the journal's record whole
        since_ns = min(pruned, until_ns - 1)
    history = await asyncio.to_thread(_device_history, ctx.journal, source, since_ns)
    if history is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no readings of {source!r} in the gateway's journal"
        )
    measurement, readings = history
    library = ctx.rule_library()
    latest = readings[-1].tags
    rule = rule_for(library, measurement, latest) if library is not None else None
    spec = rule if rule is not None else RecordGapRule(id="record_gap")
    rule_id = None
    if rule is not None and library is not None:
        rule_id = next(
            (c.id for c in library.rules_for(measurement, latest) if c.spec is rule), None
        )
    samples: list[Sample] = []
    for r in readings:
        v = r.fields.get(spec.field)
        if v is not None:
            samples.append((r.ts_ns, num(v), r.tags))
    c = spec.completeness(samples, since_ns, until_ns)
    inside = sum(1 for ts, _, _ in samples if since_ns <= ts < until_ns)
    return CompletenessOut(
        source=source,
        device=latest.get("device", ""),
        measurement=measurement,
        since=ns_to_dt(since_ns),
        until=ns_to_dt(until_ns),
        requested_since=ns_to_dt(requested),
        cadence=CadenceOut(
            rule=rule_id,
            context=spec.context,
            storage_s=spec.storage_cadence,
            transport_s=spec.transport_cadence,
            out_of_range_s=spec.out_of_range_cadence,
            low=spec.low,
            high=spec.high,
            field=spec.field,
        ),
        slots=c.slots,
        filled=c.filled,
        share=c.share,
        readings=inside,
        gaps=[
            GapOut(
                start=ns_to_dt(g.start_ns),
                end=ns_to_dt(g.end_ns),
                duration_s=(g.end_ns - g.start_ns) / 1e9,
                missed_slots=g.missed_slots,
            )
            for g in c.gaps
        ],
    )


def _thin(
    pts: list[tuple[int, dict[str, FieldValue]]], n: int
) -> list[tuple[int, dict[str, FieldValue]]]:
    """At most about n points: every k-th, plus each bucket's extremes of every field, so a
    short excursion is never thinned away."""
    if len(pts) <= n:
        return pts
    k = -(-len(pts) // max(1, n // 3))
    keep: set[int] = set()
    for start in range(0, len(pts), k):
        keep.add(start)
        chunk = range(start, min(start + k, len(pts)))
        names = {f for i in chunk for f, v in pts[i][1].items() if _number(v) is not None}
        for f in names:
            vals = [(_number(pts[i][1].get(f)), i) for i in chunk]
            present = [(v, i) for v, i in vals if v is not None]
            if present:
                keep.add(min(present)[1])
                keep.add(max(present)[1])
    return [pts[i] for i in sorted(keep)]


def _number(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def series_out(
    device: str,
    measurement: str,
    pts: list[tuple[int, dict[str, FieldValue]]],
    complete: bool,
    points: int,
    lang: str,
) -> SeriesOut:
    pts = _thin(sorted(pts, key=lambda p: p[0]), points)
    names = sorted({f for _, fs in pts for f, v in fs.items() if _number(v) is not None})
    return SeriesOut(
        device=device,
        measurement=measurement,
        ts=[ns_to_dt(ts) for ts, _ in pts],
        fields={f: [_number(fs.get(f)) for _, fs in pts] for f in names},
        units={f: unit_of(f) for f in names},
        labels={f: gettext(FIELD_LABELS.get(f, f), lang) for f in names},
        complete=complete,
    )


def history_series(
    request: Request, device: str, since_ns: int, until_ns: int, points: int
) -> list[SeriesOut]:
    """A device's recent readings per measurement, from the API's reading history, with the
    limits of the rules bound to the device's series."""
    ctx = get_ctx(request)
    lang = display_of(request, None).lang
    found = ctx.history.window(device, since_ns, until_ns)
    tags = {
        r.measurement: r.tags for r in ctx.live.snapshot() if r.tags.get("device", "") == device
    }
    library = ctx.rule_library()
    out = []
    for meas, (pts, complete) in sorted(found.items()):
        s = series_out(device, meas, pts, complete, points, lang)
        if library is not None and meas in tags:
            specs = [c.spec for c in library.rules_for(meas, dict(tags[meas]))]
            for f in s.fields:
                bands = profile_limits("bound", f, specs).bands
                if bands:
                    unit = s.units.get(f, "")
                    s.limits[f] = [
                        BandOut(op=b.op, limit=b.limit, label=band_label(b, unit)) for b in bands
                    ]
        out.append(s)
    return out


@router.get(
    "/readings/history",
    response_model=list[SeriesOut],
    summary="A device's readings over a time range, per measurement (for trend charts)",
)
async def readings_history(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    device: Annotated[str, Query(min_length=1, max_length=200)],
    since: Annotated[datetime | None, Query(description="default: 6 hours before until")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    points: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> list[SeriesOut]:
    """Event time; thinned to about `points` per series keeping each bucket's extremes. The
    gateway holds the newest readings of each series (`complete` false when the range starts
    before them); the journal, InfluxDB and shipment records keep the rest."""
    end = dt_to_ns(until) if until is not None else time.time_ns()
    start = dt_to_ns(since) if since is not None else end - 6 * 3600 * 1_000_000_000
    return history_series(request, device, start, end, points)
