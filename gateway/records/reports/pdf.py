"""The shipment report as PDF (reportlab): summary, statistics, chart, alerts, signature."""

from __future__ import annotations

import io
from typing import Any

from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.records.reports.csvfile import signature_rows
from gateway.records.reports.stats import ShipmentReport, band_label, fmt_dur, fmt_num, fmt_ts


def _latin(s: str) -> str:
    """Standard PDF fonts lack ≥ ≤ and most non-Latin-1; keep the meaning in ASCII."""
    s = s.replace("\u2265", ">=").replace("\u2264", "<=").replace("\u2212", "-")
    return s.encode("latin-1", "replace").decode("latin-1")


def _pdf_text(s: str) -> str:
    """Text for a Paragraph (which reads mark-up): Latin-1 and escaped."""
    return _latin(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chart(r: ShipmentReport, width: float, height: float) -> Any:

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
        *([p(f"Computed from {r.journal_chain}.")] if r.journal_chain else []),
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
    sig_rows = [["item", "value"]] + [[k.replace("_", " "), v] for k, v in signature_rows(r)]
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
                fmt_num(st.min),
                fmt_num(st.max),
                fmt_num(st.mean),
                fmt_num(st.mkt),
            ]
        )
    story += [Spacer(1, 2 * mm), table(stat_rows)]
    lim_text = []
    if r.limits.low is not None or r.limits.high is not None:
        lim_text.append(f"range {fmt_num(r.limits.low, 1)} .. {fmt_num(r.limits.high, 1)} °C")
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
