"""Shipment reports (PDF and CSV): what QA reviews and signs when a shipment arrives.

Source of the readings: the shipment registry's `shipment_readings` table (every reading tagged
with the shipment, kept as its journal line), not the journal, which deletes rows after
`retention_hours`. Statistics follow the rules engine's conventions (docs/rules.md): each reading
holds its value until the next reading of the same device, for at most the profile rules'
`max_gap` (1 h unless the rules say otherwise); the mean and MKT are weighted by that hold time,
and time out of range per band is the hold time spent beyond each limit. With several loggers on
one asset, the summary is the worst logger's.

Bands and limits come from the shipment's product profile, as the rules library states them
(`RuleLibrary.limits`, alert_rules/limits.py): threshold and duration rules on the temperature
field, the MKT activation energy from its `mkt` rule (default 83.144 kJ/mol).

`build_report` is pure (it gets the readings and alerts); the API gathers alerts on the event loop
thread (the alert store is bound to it) and builds and renders in a worker thread.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alert_rules import Band, ProfileLimits, RuleLibrary
from alert_rules.mkt import mkt_c
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


def _num(v: float | None, digits: int = 2) -> str:
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

    @property
    def signature_status(self) -> str:
        s = self.shipment
        if s.approved_at_ns is None:
            return "not signed" if not s.active else "not signed (shipment still active)"
        return "signed"

    def content_digest(self) -> str:
        """SHA-256 of the report content without generation time and signature, the part QA
        signs; a later report shows whether the data changed since (late uploads)."""
        return hashlib.sha256(_csv_body(self).encode()).hexdigest()


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
    end_ns: int | None,
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
    holds: list[float] = []
    for i, (ts, v) in enumerate(pts):
        nxt = pts[i + 1][0] if i + 1 < len(pts) else (end_ns if end_ns is not None else ts)
        hold = max(0, min(nxt, ts + limits.max_gap_ns) - ts) / 1e9
        holds.append(hold)
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
    end = shipment.stopped_at_ns
    by_series = _series_from_lines(rows, FIELD)
    series = [_stats(dev, meas, pts, end, limits) for (dev, meas), pts in sorted(by_series.items())]
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


# -- CSV --------------------------------------------------------------------------------------
def _stats_row(s: SeriesStats) -> list[str]:
    return [
        s.device,
        s.measurement,
        str(s.n),
        fmt_ts(s.first_ns),
        fmt_ts(s.last_ns),
        _num(s.min),
        _num(s.max),
        _num(s.mean),
        _num(s.mkt),
        f"{s.held_s:.0f}",
    ]


def _csv_body(r: ShipmentReport) -> str:
    s = r.shipment
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "value"])
    for k, v in (
        ("id", s.id),
        ("asset", s.asset),
        ("site", s.site or ""),
        ("profile", s.profile),
        ("product", s.product),
        ("origin", s.origin),
        ("destination", s.destination),
        ("started_at", fmt_ts(s.started_at_ns)),
        ("started_by", s.started_by),
        ("stopped_at", fmt_ts(s.stopped_at_ns)),
        ("stopped_by", s.stopped_by or ""),
        ("status", "active" if s.active else "stopped"),
    ):
        w.writerow(["shipment", k, v])
    w.writerow(["limits", "mkt_delta_h_kj_mol", f"{r.limits.delta_h:g}"])
    if r.limits.low is not None:
        w.writerow(["limits", "low_c", f"{r.limits.low:g}"])
    if r.limits.high is not None:
        w.writerow(["limits", "high_c", f"{r.limits.high:g}"])
    if r.limits.mkt_limit is not None:
        w.writerow(["limits", "mkt_limit_c", f"{r.limits.mkt_limit:g}"])
    w.writerow([])
    w.writerow(
        [
            "statistics",
            "device",
            "measurement",
            "readings",
            "first",
            "last",
            "min_c",
            "max_c",
            "mean_c",
            "mkt_c",
            "covered_s",
        ]
    )
    for st in [r.summary, *r.series]:
        w.writerow(["statistics", *_stats_row(st)])
    w.writerow([])
    w.writerow(["out_of_range", "device", "band", "seconds", "h:mm:ss"])
    for st in [r.summary, *r.series]:
        for label, secs in st.band_s.items():
            w.writerow(["out_of_range", st.device, label, f"{secs:.0f}", fmt_dur(secs)])
    w.writerow([])
    w.writerow(
        [
            "alerts",
            "id",
            "rule",
            "source",
            "severity",
            "state",
            "raised_at",
            "cleared_at",
            "value",
            "message",
            "retrospective",
            "acked_by",
            "acked_at",
            "closed_by",
            "closed_at",
        ]
    )
    for ra in r.alerts:
        a = ra.alert
        w.writerow(
            [
                "alerts",
                a["id"],
                a["rule"],
                a["source"],
                a["severity"],
                a["state"],
                fmt_ts(a["raised_at"]),
                fmt_ts(a["cleared_at"]),
                _num(a["value"]),
                a["message"],
                str(bool(a["retrospective"])).lower(),
                a["acked_by"] or "",
                fmt_ts(a["acked_at"]),
                a["closed_by"] or "",
                fmt_ts(a["closed_at"]),
            ]
        )
    w.writerow([])
    w.writerow(["actions", "alert_id", "kind", "old_state", "new_state", "at", "by", "reason"])
    for ra in r.alerts:
        for act in ra.actions:
            w.writerow(
                [
                    "actions",
                    ra.alert["id"],
                    act.kind,
                    act.old_state or "",
                    act.new_state,
                    fmt_ts(act.at_ns),
                    act.by or "",
                    act.reason or "",
                ]
            )
    return buf.getvalue()


def _signature_rows(r: ShipmentReport) -> list[tuple[str, str]]:
    s = r.shipment
    rows = [("status", r.signature_status)]
    if s.approved_at_ns is not None:
        rows += [
            ("signed_by_name", s.approved_name or ""),
            ("signed_by_user", s.approved_by or ""),
            ("signed_at", fmt_ts(s.approved_at_ns)),
            ("meaning", s.approval_meaning or ""),
            ("signed_content_sha256", s.approved_digest or ""),
        ]
    digest = r.content_digest()
    rows.append(("current_content_sha256", digest))
    if s.approved_digest is not None:
        same = s.approved_digest == digest
        rows.append(("content_unchanged_since_signature", "yes" if same else "NO"))
    return rows


def to_csv(r: ShipmentReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["report", "title", f"vigil shipment report {r.shipment.id}"])
    w.writerow(["report", "generated_at", fmt_ts(r.generated_at_ns)])
    for k, v in _signature_rows(r):
        w.writerow(["signature", k, v])
    return buf.getvalue() + _csv_body(r)


# -- PDF --------------------------------------------------------------------------------------
def _latin(s: str) -> str:
    """Standard PDF fonts lack ≥ ≤ and most non-Latin-1; keep the meaning in ASCII."""
    s = s.replace("\u2265", ">=").replace("\u2264", "<=").replace("\u2212", "-")
    return s.encode("latin-1", "replace").decode("latin-1")


def _pdf_text(s: str) -> str:
    """Text for a Paragraph (which reads mark-up): Latin-1 and escaped."""
    return _latin(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chart(r: ShipmentReport, width: float, height: float) -> Any:
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    d = Drawing(width, height)
    t0 = r.shipment.started_at_ns
    curves = {dev: pts for dev, pts in r.curves.items() if pts}
    if not curves:
        d.add(String(width / 2, height / 2, "no temperature readings", textAnchor="middle"))
        return d
    end = r.shipment.stopped_at_ns or max(p[-1][0] for p in curves.values())
    x_max = max((end - t0) / 3.6e12, 1e-3)
    palette = [
        colors.HexColor(c)
        for c in ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
    ]
    data: list[list[tuple[float, float]]] = []
    styles: list[tuple[Any, float, Any]] = []
    legend: list[tuple[Any, str]] = []
    for i, (dev, pts) in enumerate(curves.items()):
        data.append([((ts - t0) / 3.6e12, v) for ts, v in pts])
        col = palette[i % len(palette)]
        styles.append((col, 1.0, None))
        legend.append((col, _latin(dev)))
    lims = [(b.limit, band_label(b)) for b in r.limits.bands]
    ys = [v for pts in curves.values() for _, v in pts] + [lim for lim, _ in lims]
    for lim, label in lims:
        data.append([(0.0, lim), (x_max, lim)])
        styles.append((colors.red, 0.8, [4, 3]))
        legend.append((colors.red, _latin(f"limit {label}")))
    lp = LinePlot()
    lp.x, lp.y, lp.width, lp.height = 45, 40, width - 60, height - 80
    lp.data = data
    for i, (col, w, dash) in enumerate(styles):
        lp.lines[i].strokeColor = col
        lp.lines[i].strokeWidth = w
        if dash:
            lp.lines[i].strokeDashArray = dash
    lo, hi = min(ys), max(ys)
    pad = max(0.5, (hi - lo) * 0.08)
    lp.yValueAxis.valueMin, lp.yValueAxis.valueMax = lo - pad, hi + pad
    lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 0, x_max
    lp.xValueAxis.labelTextFormat = "%.1f"
    lp.yValueAxis.labelTextFormat = "%.1f"
    d.add(lp)
    d.add(
        String(
            lp.x + lp.width / 2, 12, "hours since shipment start", textAnchor="middle", fontSize=8
        )
    )
    d.add(String(10, lp.y + lp.height / 2, "°C", fontSize=8))
    lg = Legend()
    lg.x, lg.y = 45, height - 8
    lg.alignment = "right"
    lg.columnMaximum = 2
    lg.fontSize = 7
    lg.colorNamePairs = legend[:12]
    d.add(lg)
    return d


def to_pdf(r: ShipmentReport) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    s = r.shipment
    ss = getSampleStyleSheet()
    small = ss["BodyText"].clone("small", fontSize=8, leading=10)
    h2 = ss["Heading2"].clone("h2", keepWithNext=1)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Shipment report {s.id}",
        author="vigil",
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
            ("FONTSIZE", (0, 0), (-1, -1), 7.5),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )

    def p(text: str, style: Any = small) -> Any:
        return Paragraph(_pdf_text(text), style)

    def table(rows: list[list[str]], widths: list[float] | None = None) -> Any:
        t = Table([[p(c) for c in row] for row in rows], colWidths=widths, repeatRows=1)
        t.setStyle(grid)
        return t

    story: list[Any] = [
        Paragraph(_pdf_text(f"Shipment report {s.id}"), ss["Title"]),
        p(f"Generated {fmt_ts(r.generated_at_ns)} by vigil. Times are UTC."),
        Spacer(1, 4 * mm),
    ]
    info = [
        [
            "Shipment",
            s.id,
            "Profile",
            f"{s.profile} {('- ' + r.limits.description) if r.limits.description else ''}",
        ],
        ["Asset", f"{s.site + '/' if s.site else ''}{s.asset}", "Product", s.product],
        ["Origin", s.origin, "Destination", s.destination],
        [
            "Started",
            f"{fmt_ts(s.started_at_ns)} by {s.started_by}",
            "Stopped",
            f"{fmt_ts(s.stopped_at_ns)} by {s.stopped_by}" if s.stopped_at_ns else "still active",
        ],
    ]
    t = Table([[p(c) for c in row] for row in info], colWidths=[22 * mm, 68 * mm, 22 * mm, 68 * mm])
    t.setStyle(
        TableStyle(
            [("GRID", (0, 0), (-1, -1), 0.3, colors.grey), ("FONTSIZE", (0, 0), (-1, -1), 7.5)]
        )
    )
    story += [t, Spacer(1, 4 * mm)]

    # signature status first: the reviewer sees at once whether this is the signed record
    sig_rows = [["item", "value"]] + [[k.replace("_", " "), v] for k, v in _signature_rows(r)]
    story += [Paragraph("Signature", h2), table(sig_rows, [55 * mm, 125 * mm])]

    story.append(Paragraph("Temperature", h2))
    story.append(_chart(r, 180 * mm, 80 * mm))
    stat_rows = [
        [
            "device",
            "readings",
            "first",
            "last",
            "min °C",
            "max °C",
            "mean °C",
            f"MKT °C (dH {r.limits.delta_h:g} kJ/mol)",
        ]
    ]
    for st in [r.summary, *r.series]:
        stat_rows.append(
            [
                st.device,
                str(st.n),
                fmt_ts(st.first_ns),
                fmt_ts(st.last_ns),
                _num(st.min),
                _num(st.max),
                _num(st.mean),
                _num(st.mkt),
            ]
        )
    story += [Spacer(1, 2 * mm), table(stat_rows)]
    lim_text = []
    if r.limits.low is not None or r.limits.high is not None:
        lim_text.append(f"range {_num(r.limits.low, 1)} .. {_num(r.limits.high, 1)} °C")
    if r.limits.mkt_limit is not None:
        lim_text.append(f"MKT limit {r.limits.mkt_limit:g} °C")
    if not r.limits.known:
        lim_text.append(f"profile {s.profile!r} is not in the rules library: no limits")
    if lim_text:
        story.append(p("Limits: " + "; ".join(lim_text)))

    story.append(Paragraph("Time out of range", h2))
    if r.limits.bands:
        labels = [band_label(b) for b in r.limits.bands]
        band_rows = [["device", *labels]]
        for st in [r.summary, *r.series]:
            band_rows.append([st.device, *[fmt_dur(st.band_s.get(lb, 0.0)) for lb in labels]])
        story.append(table(band_rows))
    else:
        story.append(p("The profile defines no temperature bands."))

    story.append(Paragraph("Alerts", h2))
    if not r.alerts:
        story.append(p("No alerts during the shipment."))
    for ra in r.alerts:
        a = ra.alert
        head = (
            f"#{a['id']} {a['rule']} ({a['severity']}) on {a['source']}: {a['message']}. "
            f"Raised {fmt_ts(a['raised_at'])}, cleared {fmt_ts(a['cleared_at']) or '-'}, "
            f"state {a['state']}{', retrospective' if a['retrospective'] else ''}."
        )
        story.append(p(head))
        acts = [["time", "action", "old state", "new state", "by", "reason"]]
        for act in ra.actions:
            acts.append(
                [
                    fmt_ts(act.at_ns),
                    act.kind,
                    act.old_state or "",
                    act.new_state,
                    act.by or "",
                    act.reason or "",
                ]
            )
        story += [
            table(acts, [32 * mm, 22 * mm, 28 * mm, 28 * mm, 25 * mm, 45 * mm]),
            Spacer(1, 2 * mm),
        ]
    doc.build(story)
    return buf.getvalue()


def report_for(
    registry: Any,
    shipment: Shipment,
    alerts: list[ReportAlert],
    library: RuleLibrary | None,
    now_ns: int | None = None,
) -> ShipmentReport:
    """The report of a shipment from its registry rows (blocking: use a worker thread)."""
    import time

    limits = profile_limits(library, shipment.profile)
    now = time.time_ns() if now_ns is None else now_ns
    return build_report(shipment, registry.readings(shipment.id), alerts, limits, now)
