"""Shipment report content: per-logger statistics, time out of range, alerts, the chart's
curves. Pure: `build_report` gets the readings and alerts and returns a `ShipmentReport` that
csvfile.py and pdf.py render.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alert_rules import Band, ProfileLimits, RuleLibrary
from alert_rules.mkt import mkt_c
from alert_rules.weighting import hold_ns
from gateway.core.lineprotocol import LineProtocolError, parse_line
from gateway.records.shipments import Shipment

FIELD = "temp_c"
CHART_POINTS = 1500
"""Points per device in the PDF chart (min/max per bucket, so excursions stay visible)."""


def fmt_ts(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_dur(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fmt_num(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def band_label(b: Band) -> str:
    """A temperature band as the report names it: '> 8 °C'."""
    return f"{b.symbol} {b.limit:g} °C"


def profile_limits(library: RuleLibrary | None, profile: str, fld: str = FIELD) -> ProfileLimits:
    """The limits of a profile for `fld`; no library or unknown profile: `known` is False."""
    if library is None:
        return ProfileLimits(profile, fld, known=False)
    return library.limits(profile, fld)


@dataclass(slots=True)
class SeriesStats:
    device: str
    measurement: str
    n: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    mkt: float | None = None
    held_s: float = 0.0
    band_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertAction:
    kind: str
    old_state: str | None
    new_state: str
    at_ns: int
    by: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class ReportAlert:
    alert: dict[str, Any]
    actions: tuple[AlertAction, ...]


@dataclass(slots=True)
class ShipmentReport:
    shipment: Shipment
    limits: ProfileLimits
    generated_at_ns: int
    series: list[SeriesStats]
    summary: SeriesStats
    alerts: list[ReportAlert]
    curves: dict[str, list[tuple[int, float]]]
    """device → (ts_ns, °C) for the chart, downsampled."""
    journal_chain: str = ""
    """The journal chain position and head at report time (chain.head_line); not part of the
    signed content, which must not change as the journal grows."""

    @property
    def signature_status(self) -> str:
        s = self.shipment
        if s.approved_at_ns is None:
            return "not signed" if not s.active else "not signed (shipment still active)"
        return "signed"


# -- building ---------------------------------------------------------------------------------
def _series_from_lines(
    rows: Iterable[tuple[str, str, int, str]], fld: str
) -> dict[tuple[str, str], list[tuple[int, float]]]:
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for measurement, device, ts, line in rows:
        try:
            _m, _tags, fields, _ts = parse_line(line)
        except LineProtocolError:
            continue
        v = fields.get(fld)
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        fv = float(v)
        if not math.isfinite(fv):
            continue
        out.setdefault((device, measurement), []).append((ts, fv))
    for pts in out.values():
        pts.sort()
    return out


def _stats(
    device: str,
    measurement: str,
    pts: Sequence[tuple[int, float]],
    limits: ProfileLimits,
) -> SeriesStats:
    st = SeriesStats(device, measurement, n=len(pts))
    bands = [(b, band_label(b)) for b in limits.bands]
    st.band_s = {label: 0.0 for _b, label in bands}
    if not pts:
        return st
    st.first_ns, st.last_ns = pts[0][0], pts[-1][0]
    values = [v for _, v in pts]
    st.min, st.max = min(values), max(values)
    holds = [h / 1e9 for h in hold_ns([ts for ts, _ in pts], limits.max_gap_ns)]
    for (_ts, v), hold in zip(pts, holds, strict=True):
        for b, label in bands:
            if b.beyond(v):
                st.band_s[label] += hold
    st.held_s = sum(holds)
    weights = holds if st.held_s > 0 else [1.0] * len(values)
    st.mean = math.fsum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)
    st.mkt = mkt_c(values, weights, delta_h=limits.delta_h)
    return st


def _downsample(pts: Sequence[tuple[int, float]], n: int = CHART_POINTS) -> list[tuple[int, float]]:
    if len(pts) <= n:
        return list(pts)
    step = math.ceil(len(pts) / (n // 2))
    out: list[tuple[int, float]] = []
    for i in range(0, len(pts), step):
        chunk = pts[i : i + step]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def gather_alerts(store: Any, shipment: Shipment, limit: int = 10_000) -> list[ReportAlert]:
    """Alerts of the shipment with their actions. Call on the alert store's thread."""
    if store is None:
        return []
    out = []
    for a in reversed(store.list_alerts(since_ns=shipment.started_at_ns, limit=limit)):
        tags = a.tags or {}
        mine = tags.get("shipment") == shipment.id or (
            tags.get("asset") == shipment.asset
            and (shipment.site is None or tags.get("site") == shipment.site)
            and shipment.contains(a.raised_at)
        )
        if not mine:
            continue
        actions = tuple(
            AlertAction(
                h["kind"], h["old_state"], h["new_state"], h["wall_ns"], h["by"], h["reason"]
            )
            for h in store.history(a.id)
        )
        out.append(ReportAlert(a.to_dict(), actions))
    return out


def build_report(
    shipment: Shipment,
    rows: Iterable[tuple[str, str, int, str]],
    alerts: list[ReportAlert],
    limits: ProfileLimits,
    now_ns: int,
) -> ShipmentReport:
    """Statistics of the shipment's readings: rows are (measurement, device, ts_ns, line)."""
    by_series = _series_from_lines(rows, FIELD)
    series = [_stats(dev, meas, pts, limits) for (dev, meas), pts in sorted(by_series.items())]
    summary = SeriesStats("all devices (worst)", "", n=sum(s.n for s in series))
    summary.band_s = {band_label(b): 0.0 for b in limits.bands}
    present = [s for s in series if s.n]
    if present:
        summary.first_ns = min(s.first_ns for s in present if s.first_ns is not None)
        summary.last_ns = max(s.last_ns for s in present if s.last_ns is not None)
        summary.min = min(s.min for s in present if s.min is not None)
        summary.max = max(s.max for s in present if s.max is not None)
        total = sum(s.held_s for s in present)
        if total > 0:
            summary.mean = sum((s.mean or 0.0) * s.held_s for s in present) / total
        else:
            summary.mean = sum(s.mean or 0.0 for s in present) / len(present)
        summary.mkt = max(s.mkt for s in present if s.mkt is not None)
        summary.held_s = max(s.held_s for s in present)
        for label in summary.band_s:
            summary.band_s[label] = max(s.band_s.get(label, 0.0) for s in present)
    curves = {s_key[0]: _downsample(pts) for s_key, pts in sorted(by_series.items())}
    return ShipmentReport(shipment, limits, now_ns, series, summary, alerts, curves)


def report_for(
    registry: Any,
    shipment: Shipment,
    alerts: list[ReportAlert],
    library: RuleLibrary | None,
    now_ns: int | None = None,
) -> ShipmentReport:
    """The report of a shipment from its registry rows (blocking: use a worker thread)."""
    limits = profile_limits(library, shipment.profile)
    now = time.time_ns() if now_ns is None else now_ns
    return build_report(shipment, registry.readings(shipment.id), alerts, limits, now)
