"""The chain report of a lot as PDF (reportlab): verdict, decision, route map, legs, budget.

Text is set in the built-in CID font STSong-Light, so Chinese names (products, sites) print as
written. The route is drawn from the loggers' own positions over the sites' geofences, on a plain
equirectangular projection with a scale bar: no map tiles, so the report renders offline.
"""

from __future__ import annotations

import io
import math
from typing import Any

from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.records.geofence import EARTH_RADIUS_M
from gateway.records.reports.chain import ChainReport, fmt_hours
from gateway.records.reports.chain_csv import decision_rows, fmt_local

FONT = "STSong-Light"
S = 1_000_000_000
LEG_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
VERDICT_COLOURS = {"pass": "#2ca02c", "review": "#ff7f0e", "fail": "#d62728"}
VERDICT_TEXT = {"pass": "通过 PASS", "review": "需审核 REVIEW", "fail": "不合格 FAIL"}
KIND_TEXT = {
    "storage": "储存 storage",
    "transport": "运输 transport",
    "cross_dock": "中转 cross-dock",
    "destination": "目的地 destination",
}


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def route_drawing(r: ChainReport, width: float, height: float) -> Drawing:
    """The legs' positions as lines (one colour per leg) over the geofences (labelled), with
    start and end marks, the stages a geofence recorded, a scale bar and north."""
    font = _font()
    d = Drawing(width, height)
    d.add(Rect(0, 0, width, height, strokeColor=colors.grey, fillColor=None, strokeWidth=0.5))
    fences = r.geofences()
    outlines = {name: g.outline() for name, g in fences.items()}
    routes = [(lr, lr.route) for lr in r.legs if lr.route]
    pts = [(lat, lon) for _lr, route in routes for _t, lat, lon in route]
    pts += [p for o in outlines.values() for p in o]
    if not pts:
        d.add(
            String(
                width / 2,
                height / 2,
                "无位置数据 no positions recorded",
                fontName=font,
                fontSize=9,
                textAnchor="middle",
            )
        )
        return d
    lat0 = (min(p[0] for p in pts) + max(p[0] for p in pts)) / 2
    kx = math.cos(math.radians(lat0))
    xs = [p[1] * kx for p in pts]
    ys = [p[0] for p in pts]
    span_x = max(max(xs) - min(xs), 1e-6)
    span_y = max(max(ys) - min(ys), 1e-6)
    pad = 18.0
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad - 14) / span_y)
    ox = pad + ((width - 2 * pad) - span_x * scale) / 2 - min(xs) * scale
    oy = pad + 14 + ((height - 2 * pad - 14) - span_y * scale) / 2 - min(ys) * scale

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return ox + lon * kx * scale, oy + lat * scale

    for name, outline in outlines.items():
        corners = [c for lat, lon in outline for c in xy(lat, lon)]
        d.add(
            Polygon(
                corners,
                fillColor=colors.HexColor("#dfeaf5"),
                strokeColor=colors.HexColor("#4a78a8"),
                strokeWidth=0.8,
            )
        )
        cx = sum(corners[0::2]) / len(outline)
        cy = sum(corners[1::2]) / len(outline)
        site = r.sites.get(name)
        label = f"{site.name} {name}" if site is not None and site.name else name
        d.add(
            String(
                cx,
                cy,
                label,
                fontName=font,
                fontSize=7,
                textAnchor="middle",
                fillColor=colors.HexColor("#24496e"),
            )
        )
    for i, (lr, route) in enumerate(routes):
        colour = colors.HexColor(LEG_COLOURS[i % len(LEG_COLOURS)])
        line = [c for _t, lat, lon in route for c in xy(lat, lon)]
        if len(route) > 1:
            d.add(PolyLine(line, strokeColor=colour, strokeWidth=1.4))
        x0, y0 = line[0], line[1]
        x1, y1 = line[-2], line[-1]
        d.add(Circle(x0, y0, 2.5, fillColor=colors.white, strokeColor=colour))
        d.add(Circle(x1, y1, 2.5, fillColor=colour, strokeColor=colour))
        for st in lr.stages:
            sx, sy = xy(st.lat, st.lon)
            d.add(Rect(sx - 2, sy - 2, 4, 4, fillColor=colors.black, strokeColor=None))
    # legend
    x = 6.0
    for i, (lr, _route) in enumerate(routes):
        colour = colors.HexColor(LEG_COLOURS[i % len(LEG_COLOURS)])
        d.add(Line(x, 7, x + 12, 7, strokeColor=colour, strokeWidth=2))
        text = f"{lr.leg.id} ({lr.leg.asset})"
        d.add(String(x + 15, 4, text, fontName=font, fontSize=6.5))
        x += 22 + pdfmetrics.stringWidth(text, font, 6.5)
    # scale bar: a round distance about a fifth of the width
    metres_per_pt = math.radians(1.0 / scale) * EARTH_RADIUS_M
    target = metres_per_pt * width / 5
    step = 10 ** math.floor(math.log10(max(target, 1.0)))
    bar_m = max(step, round(target / step) * step)
    bar_pt = bar_m / metres_per_pt
    bx, by = width - bar_pt - 10, height - 12
    d.add(Line(bx, by, bx + bar_pt, by, strokeColor=colors.black, strokeWidth=1.5))
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    d.add(String(bx + bar_pt / 2, by + 3, label, fontName=font, fontSize=6.5, textAnchor="middle"))
    d.add(String(10, height - 14, "N ↑ 北", fontName=font, fontSize=8))
    return d


def to_pdf(r: ChainReport, tz: str = "UTC") -> bytes:
    font = _font()
    ss = getSampleStyleSheet()
    body = ss["BodyText"].clone("chain-body", fontName=font, fontSize=8, leading=10.5)
    h1 = ss["Title"].clone("chain-title", fontName=font, fontSize=16, leading=20)
    h2 = ss["Heading2"].clone("chain-h2", fontName=font, fontSize=11, leading=14, keepWithNext=1)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=f"Chain report {r.lot.id}",
        author="vigil",
    )

    def p(text: str, style: Any = body) -> Paragraph:
        return Paragraph(_esc(text), style)

    def table(rows: list[list[str]], widths: list[float] | None = None) -> Table:
        t = Table([[p(c) for c in row] for row in rows], colWidths=widths, repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    lot = r.lot
    story: list[Any] = [
        p(f"全程温度追溯报告 Chain report — 批号 lot {lot.id}", h1),
        p(
            f"Generated {fmt_local(r.generated_at_ns, tz)} by vigil. Times are in {tz} "
            "(ISO 8601 with the UTC offset)."
        ),
        Spacer(1, 3 * mm),
    ]
    colour = colors.HexColor(VERDICT_COLOURS.get(r.verdict, "#777777"))
    verdict = Table(
        [[p(f"结论 Verdict: {VERDICT_TEXT.get(r.verdict, r.verdict)}", h2)]]
        + [[p(f"- {reason}")] for reason in r.reasons],
        colWidths=[182 * mm],
    )
    verdict.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.2, colour),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f6f6")),
            ]
        )
    )
    story += [verdict, Spacer(1, 3 * mm)]
    info = [
        ["批号 Lot", lot.id, "产品 Product", lot.product],
        ["品规档案 Profile", lot.profile, "有效期 Expiry", lot.expiry],
        [
            "追溯码 Codes",
            " ".join(lot.codes) or "-",
            "保存至 Kept until",
            r.retention_until.isoformat(),
        ],
    ]
    story += [table(info, [28 * mm, 63 * mm, 28 * mm, 63 * mm]), Spacer(1, 3 * mm)]

    story.append(p("放行决定 Release decision", h2))
    story.append(
        table(
            [["item", "value"]] + [[k.replace("_", " "), v] for k, v in decision_rows(r, tz)],
            [55 * mm, 127 * mm],
        )
    )

    story.append(p("路线 Route", h2))
    story.append(route_drawing(r, 182 * mm, 95 * mm))

    story.append(p("运输环节 Legs", h2))
    rows = [["leg", "kind", "where", "from", "to", "loggers", "lots"]]
    for lr in r.legs:
        g = lr.leg
        rows.append(
            [
                g.id,
                KIND_TEXT.get(g.kind, g.kind),
                f"{g.site + '/' if g.site else ''}{g.asset}"
                + (f" ({g.origin} → {g.destination})" if g.origin or g.destination else ""),
                fmt_local(g.started_at_ns, tz),
                fmt_local(g.stopped_at_ns, tz) or "open",
                " ".join(g.devices) or "all",
                " ".join(g.lots),
            ]
        )
    story.append(table(rows, [27 * mm, 22 * mm, 34 * mm, 30 * mm, 30 * mm, 18 * mm, 21 * mm]))

    labels = list(r.totals.band_s)
    story.append(p("温度统计 Temperature per leg (worst logger)", h2))
    rows = [
        [
            "leg",
            "readings",
            "min °C",
            "max °C",
            "mean °C",
            "MKT °C",
            *labels,
            "excursions",
            "complete",
        ]
    ]
    for lr in r.legs:
        s = lr.summary
        c = s.completeness
        rows.append(
            [
                lr.leg.id,
                str(s.n),
                _n(s.min),
                _n(s.max),
                _n(s.mean),
                _n(s.mkt),
                *[fmt_hours(s.band_s.get(label, 0.0)) for label in labels],
                str(len(s.excursions)),
                "-" if c is None else f"{c.share:.1%}",
            ]
        )
    t = r.totals
    rows.append(
        [
            "whole chain 全程",
            str(t.n),
            _n(t.min),
            _n(t.max),
            _n(t.mean),
            _n(t.mkt),
            *[fmt_hours(t.band_s.get(label, 0.0)) for label in labels],
            str(t.excursions),
            f"{t.completeness:.1%}",
        ]
    )
    story.append(table(rows))
    if t.gaps:
        story.append(
            p(
                "Gaps between legs: "
                + "; ".join(f"{fmt_local(a, tz)} to {fmt_local(b, tz)}" for a, b in t.gaps)
            )
        )

    story.append(p("稳定性预算 Stability budget", h2))
    if r.use is None:
        story.append(p(f"The profile {lot.profile} has no stability budget."))
    else:
        rows = [["item", "band", "allowed", "consumed", "remaining", "share", "state"]]
        for b in r.use.bands:
            rows.append(
                [
                    b.name,
                    f"{b.label} °C",
                    fmt_hours(b.allowed_ns / S),
                    fmt_hours(b.consumed_ns / S),
                    fmt_hours(b.remaining_ns / S),
                    f"{b.share:.0%}",
                    "exhausted 已耗尽" if b.exhausted else "within",
                ]
            )
        ft = r.use.freeze_thaw
        if ft is not None:
            rows.append(
                [
                    "freeze/thaw",
                    f"T < {ft.below:g} °C",
                    str(ft.allowed),
                    str(ft.count),
                    str(max(0, ft.allowed - ft.count)),
                    f"{ft.share:.0%}",
                    "exhausted 已耗尽" if ft.exhausted else "within",
                ]
            )
        m = r.use.mkt
        if m is not None:
            rows.append(
                [
                    "MKT",
                    f"≤ {m.limit:g} °C",
                    f"{m.limit:g} °C",
                    _n(m.mkt_c),
                    "",
                    "",
                    "exceeded 超限" if m.exceeded else "within",
                ]
            )
        story.append(table(rows))

    story.append(p("偏差 Excursions", h2))
    exc = [["leg", "logger", "start", "end", "duration", "lowest °C", "highest °C"]]
    for lr in r.legs:
        for dev in lr.devices:
            for e in dev.excursions:
                exc.append(
                    [
                        lr.leg.id,
                        dev.device,
                        fmt_local(e.start, tz),
                        fmt_local(e.end, tz),
                        fmt_hours((e.end - e.start) / S),
                        _n(e.lowest),
                        _n(e.highest),
                    ]
                )
    story.append(table(exc) if len(exc) > 1 else p("No excursion beyond the profile's limits."))

    story.append(p("报警 Alerts", h2))
    al = [["leg", "rule", "source", "raised", "state", "message"]]
    for lr in r.legs:
        for ra in lr.alerts:
            a = ra.alert
            al.append(
                [
                    lr.leg.id,
                    a["rule"],
                    a["source"],
                    fmt_local(a["raised_at"], tz),
                    a["state"],
                    a["message"],
                ]
            )
    for ra in r.lot_alerts:
        a = ra.alert
        al.append(
            ["lot", a["rule"], a["source"], fmt_local(a["raised_at"], tz), a["state"], a["message"]]
        )
    story.append(
        table(al, [22 * mm, 34 * mm, 30 * mm, 30 * mm, 20 * mm, 46 * mm])
        if len(al) > 1
        else p("No alerts.")
    )
    story.append(Spacer(1, 3 * mm))
    story.append(p(f"Evidence SHA-256 (the record above): {r.evidence_sha256}"))
    doc.build(story)
    return buf.getvalue()


def _n(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"
