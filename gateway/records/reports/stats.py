"""Shipment report content: per-logger analysis (gateway/records/reports/analysis.py), the
verdict, excursions with the alerts that covered them, alerts with their actions and closing
signatures, the chart's curves. Pure: `build_report` gets the readings and alerts and returns a
`ShipmentReport` that csvfile.py and pdf.py render in a language and time zone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alert_rules import ProfileLimits, RuleLibrary
from gateway.core.i18n import N_, Dur, Text
from gateway.core.lineprotocol import LineProtocolError, parse_line
from gateway.records.reports.analysis import (
    HUMIDITY,
    TEMP,
    DeviceAnalysis,
    Excursion,
    Point,
    SeriesStats,
    analyse_device,
    band_label,
    worst,
)
from gateway.records.shipments import Shipment

FIELD = TEMP
CHART_POINTS = 1500
"""Points per device in the PDF chart (min/max per bucket, so excursions stay visible)."""

WITHIN_LIMITS = "within_limits"
EXCURSION = "excursion"
MKT_ABOVE_LIMIT = "mkt_above_limit"
INCOMPLETE = "incomplete"
VERDICT_TITLES = {
    WITHIN_LIMITS: N_("Within limits"),
    EXCURSION: N_("Temperature excursion"),
    MKT_ABOVE_LIMIT: N_("MKT above limit"),
    INCOMPLETE: N_("Incomplete record"),
}
"""Verdicts, worst first: an excursion outweighs an MKT above its limit, which outweighs gaps."""


def fmt_ts(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_dur(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fmt_num(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def profile_limits(library: RuleLibrary | None, profile: str, fld: str = FIELD) -> ProfileLimits:
    """The limits of a profile for `fld`; no library or unknown profile: `known` is False."""
    if library is None:
        return ProfileLimits(profile, fld, known=False)
    return library.limits(profile, fld)


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
    signature: dict[str, Any] | None = None
    """The closing signature from the audit trail: name, username, meaning, signed_at_ns."""


@dataclass(frozen=True, slots=True)
class Verdict:
    code: str
    """WITHIN_LIMITS, EXCURSION, MKT_ABOVE_LIMIT or INCOMPLETE: the worst that applies."""
    reasons: tuple[Text, ...]
    """Every finding, in the order of the codes."""

    @property
    def title(self) -> str:
        return VERDICT_TITLES[self.code]


@dataclass(frozen=True, slots=True)
class ExcursionRow:
    excursion: Excursion
    alerts: tuple[ReportAlert, ...]
    """Alerts of the device whose excursion overlaps this one."""


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
    devices: list[DeviceAnalysis] = field(default_factory=list)
    excursions: list[ExcursionRow] = field(default_factory=list)
    verdict: Verdict = field(default_factory=lambda: Verdict(WITHIN_LIMITS, ()))
    humidity_limits: ProfileLimits | None = None
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
def _points(rows: Iterable[tuple[str, str, int, str]]) -> dict[tuple[str, str], list[Point]]:
    out: dict[tuple[str, str], list[Point]] = {}
    for measurement, device, ts, line in rows:
        try:
            _m, tags, fields, _ts = parse_line(line)
        except LineProtocolError:
            continue
        out.setdefault((device, measurement), []).append((ts, fields, tags))
    for pts in out.values():
        pts.sort(key=lambda p: p[0])
    return out


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


def judge(
    devices: Sequence[DeviceAnalysis], summary: SeriesStats, limits: ProfileLimits
) -> Verdict:
    """The verdict line: every finding, and the worst as the verdict."""
    found: dict[str, list[Text]] = {}
    for d in devices:
        for e in d.excursions:
            msgid = (
                N_("{device}: {duration} above {limit:g} °C (peak {peak:.1f} °C)")
                if e.side == "high"
                else N_("{device}: {duration} below {limit:g} °C (lowest {peak:.1f} °C)")
            )
            found.setdefault(EXCURSION, []).append(
                Text(
                    msgid,
                    {
                        "device": d.device,
                        "duration": Dur(e.duration_s),
                        "limit": e.limit,
                        "peak": e.peak,
                    },
                )
            )
    if limits.mkt_limit is not None and summary.mkt is not None and summary.mkt > limits.mkt_limit:
        found.setdefault(MKT_ABOVE_LIMIT, []).append(
            Text(
                N_("MKT {mkt:.2f} °C above the limit of {limit:g} °C"),
                {"mkt": summary.mkt, "limit": limits.mkt_limit},
            )
        )
    if not devices or summary.n == 0:
        found.setdefault(INCOMPLETE, []).append(Text(N_("no temperature readings")))
    for d in devices:
        c = d.completeness
        if c.slots and c.filled < c.slots:
            found.setdefault(INCOMPLETE, []).append(
                Text(
                    N_("{device}: record {share:.1%} complete, {gaps} gap(s)"),
                    {"device": d.device, "share": c.share, "gaps": len(c.gaps)},
                )
            )
    for code in (EXCURSION, MKT_ABOVE_LIMIT, INCOMPLETE):
        if code in found:
            reasons = tuple(
                t for k in (EXCURSION, MKT_ABOVE_LIMIT, INCOMPLETE) for t in found.get(k, [])
            )
            return Verdict(code, reasons)
    return Verdict(WITHIN_LIMITS, ())


def _overlaps(a: dict[str, Any], device: str, e: Excursion) -> bool:
    tags = a.get("tags") or {}
    if tags.get("device") != device or a.get("field") not in ("", FIELD):
        return False
    start = a.get("started_at") or a.get("raised_at") or 0
    end = a.get("ended_at") or a.get("cleared_at")
    return start <= e.end_ns and (end is None or end >= e.start_ns)


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
        out.append(ReportAlert(a.to_dict(), tuple(actions_of(store, a.id))))
    return out


def actions_of(store: Any, alert_id: int) -> list[AlertAction]:
    """Every transition and action of an alert (the alert store's log), oldest first."""
    return [
        AlertAction(h["kind"], h["old_state"], h["new_state"], h["wall_ns"], h["by"], h["reason"])
        for h in store.history(alert_id)
    ]


SUMMARY_LABEL = N_("all devices (worst)")


def build_report(
    shipment: Shipment,
    rows: Iterable[tuple[str, str, int, str]],
    alerts: list[ReportAlert],
    limits: ProfileLimits,
    now_ns: int,
    humidity_limits: ProfileLimits | None = None,
) -> ShipmentReport:
    """The report of the shipment's readings: rows are (measurement, device, ts_ns, line)."""
    since = shipment.started_at_ns
    by_series = _points(rows)
    until = shipment.stopped_at_ns
    if until is None:
        until = max((p[-1][0] for p in by_series.values() if p), default=since)
    devices = [
        analyse_device(dev, meas, pts, limits, since, until, humidity_limits=humidity_limits)
        for (dev, meas), pts in sorted(by_series.items())
    ]
    devices = [d for d in devices if d.temp.n or d.humidity is not None]
    series = [d.temp for d in devices]
    summary = worst(devices, SUMMARY_LABEL)
    if not series:
        summary.band_s = {band_label(b): 0.0 for b in limits.bands}
    excursions = [
        ExcursionRow(e, tuple(a for a in alerts if _overlaps(a.alert, d.device, e)))
        for d in devices
        for e in d.excursions
    ]
    excursions.sort(key=lambda x: x.excursion.start_ns)
    curves: dict[str, list[tuple[int, float]]] = {}
    for (dev, _meas), pts in sorted(by_series.items()):
        temps = [
            (ts, float(v))
            for ts, f, _t in pts
            if isinstance(v := f.get(FIELD), int | float) and not isinstance(v, bool)
        ]
        if temps:
            curves[dev] = _downsample(temps)
    return ShipmentReport(
        shipment,
        limits,
        now_ns,
        series,
        summary,
        alerts,
        curves,
        devices,
        excursions,
        judge(devices, summary, limits),
        humidity_limits,
    )


def with_signatures(alerts: list[ReportAlert], audit: Any) -> list[ReportAlert]:
    """Each alert with the signature of its closing (the `alert.close` audit row), so the
    report names who closed an excursion's alert and what the signature meant. Blocking."""
    out = []
    for a in alerts:
        sig = None
        if audit is not None and a.alert.get("closed_at") is not None:
            row = audit.last(action="alert.close", entity="alert", entity_id=str(a.alert["id"]))
            if row is not None and isinstance(row.signature, dict):
                sig = row.signature
        out.append(ReportAlert(a.alert, a.actions, sig))
    return out


def report_for(
    registry: Any,
    shipment: Shipment,
    alerts: list[ReportAlert],
    library: RuleLibrary | None,
    now_ns: int | None = None,
    audit: Any = None,
) -> ShipmentReport:
    """The report of a shipment from its registry rows (blocking: use a worker thread)."""
    limits = profile_limits(library, shipment.profile)
    humidity = profile_limits(library, shipment.profile, HUMIDITY)
    now = time.time_ns() if now_ns is None else now_ns
    return build_report(
        shipment,
        registry.readings(shipment.id),
        with_signatures(alerts, audit),
        limits,
        now,
        humidity if humidity.known else None,
    )
