"""The chain report of a lot as PDF (reportlab): verdict, decision, route map, legs, budget, in
the reader's language and time zone.

Text is set in the shipment report's font (pdf.font_name: an embedded TrueType font with Chinese
glyphs, else the built-in CID font STSong-Light), so Chinese labels and names (products, sites)
print as written. Every page has a header (report, lot, verdict) and "page n of m". The route is
drawn from the loggers' own positions over the sites' geofences, on a plain equirectangular
projection with a scale bar: no map tiles, so the report renders offline.
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
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.core.i18n import N_, fmt_time, gettext, zone_label
from gateway.records.geofence import EARTH_RADIUS_M
from gateway.records.reports.chain import SUMMARY_LABEL, VERDICTS, ChainReport, fmt_hours
from gateway.records.reports.chain_csv import ALL_LOGGERS
from gateway.records.reports.csvfile import alert_text
from gateway.records.reports.pdf import font_name, numbered_canvas

S = 1_000_000_000
LEG_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
VERDICT_COLOURS = {"pass": "#2ca02c", "review": "#ff7f0e", "fail": "#d62728"}
KINDS = {
    "storage": N_("storage"),
    "transport": N_("transport"),
    "cross_dock": N_("cross-dock"),
    "destination": N_("destination"),
}
"""Leg kinds as people read them."""
DECISIONS = {
    "release": N_("released"),
    "quarantine": N_("quarantined"),
    "reject": N_("rejected"),
}


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def route_drawing(r: ChainReport, width: float, height: float, lang: str = "en") -> Drawing:
    """The legs' positions as lines (one colour per leg) over the geofences (labelled), with
    start and end marks, the stages a geofence recorded, a scale bar and north."""
    font = font_name()
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
                gettext("no positions recorded", lang),
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
    d.add(String(10, height - 14, gettext("N", lang) + " ↑", fontName=font, fontSize=8))
    return d


def _decision_rows(r: ChainReport, lang: str, tz: str) -> list[list[str]]:
    """The decision with its signature and evidence, labelled for people."""
    _ = lambda m: gettext(m, lang)  # noqa: E731
    yes_no = lambda b: _("yes") if b else _("no")  # noqa: E731
    d = r.decision
    if d is None:
        return [
            [_("Decision"), _("no decision yet")],
            [_("Evidence SHA-256 now"), r.evidence_sha256],
        ]
    again = r.decision_evidence_sha256 or ""
    rows = [
        [_("Decision"), _(DECISIONS.get(d.decision, d.decision))],
        [_("signed by"), f"{d.signer_name} ({d.decided_by})"],
        [_("time"), fmt_time(d.decided_at_ns, tz)],
        [_("meaning"), d.meaning],
        [_("Comment"), d.comment or ""],
        [_("Evidence SHA-256 signed"), d.evidence_sha256],
        [_("Evidence as of the decision, worked out again now"), again],
        [_("Evidence unchanged"), yes_no(d.evidence_sha256 == again)],
        [_("Needs review"), yes_no(d.needs_review)],
    ]
    if d.review_reason:
        rows.append([_("Why review"), d.review_reason])
    return rows


def to_pdf(r: ChainReport, lang: str = "en", tz: str = "UTC") -> bytes:
    """The report as PDF in `lang`, times in zone `tz`."""
    _ = lambda m: gettext(m, lang)  # noqa: E731
    t = lambda ns: fmt_time(ns, tz)  # noqa: E731
    font = font_name()
    ss = getSampleStyleSheet()
    body = ss["BodyText"].clone("chain-body", fontName=font, fontSize=8, leading=10.5)
    cell = body.clone("chain-cell", fontSize=7.5, leading=9.5, wordWrap="CJK")
    h1 = ss["Title"].clone("chain-title", fontName=font, fontSize=16, leading=20)
    h2 = ss["Heading2"].clone("chain-h2", fontName=font, fontSize=11, leading=14, keepWithNext=1)
    lot = r.lot
    title = _("Chain report, lot {lot}").format(lot=lot.id)
    verdict_text = _(VERDICTS.get(r.verdict, r.verdict))
    generated = _("Generated {time} by vigil").format(time=t(r.generated_at_ns))

    def header(c: Canvas, page: int, total: int) -> None:
        c.saveState()
        c.setFont(font, 8)
        w, h = A4
        c.drawString(14 * mm, h - 9 * mm, f"{title} · {_('Verdict')}: {verdict_text}")
        c.drawRightString(w - 14 * mm, h - 9 * mm, lot.product)
        c.line(14 * mm, h - 10.5 * mm, w - 14 * mm, h - 10.5 * mm)
        c.drawString(14 * mm, 7 * mm, generated)
        c.drawRightString(
            w - 14 * mm, 7 * mm, _("page {page} of {pages}").format(page=page, pages=total)
        )
        c.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=15 * mm,
        bottomMargin=13 * mm,
        title=title,
        author="vigil",
        lang=lang,
    )

    def p(text: str, style: Any = cell) -> Paragraph:
        return Paragraph(_esc(text), style)

    def table(rows: list[list[str]], widths: list[float] | None = None) -> Table:
        tb = Table([[p(c) for c in row] for row in rows], colWidths=widths, repeatRows=1)
        tb.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return tb

    story: list[Any] = [
        p(title, h1),
        p(_("Times are shown in {zone}.").format(zone=zone_label(tz, r.generated_at_ns)), body),
        Spacer(1, 3 * mm),
    ]
    colour = colors.HexColor(VERDICT_COLOURS.get(r.verdict, "#777777"))
    verdict = Table(
        [[p(f"{_('Verdict')}: {verdict_text}", h2)]]
        + [[p("• " + reason.render(lang, tz), body)] for reason in r.reasons],
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
        [_("Lot"), lot.id, _("Product"), lot.product],
        [_("Profile"), lot.profile, _("Expiry"), lot.expiry],
        [
            _("Traceability codes"),
            " ".join(lot.codes) or "-",
            _("Kept until"),
            r.retention_until.isoformat(),
        ],
    ]
    info_table = Table(
        [[p(c) for c in row] for row in info], colWidths=[28 * mm, 63 * mm, 28 * mm, 63 * mm]
    )
    info_table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
    story += [info_table, Spacer(1, 3 * mm)]

    story.append(p(_("Release decision"), h2))
    story.append(
        table([[_("Item"), _("Value")], *_decision_rows(r, lang, tz)], [55 * mm, 127 * mm])
    )

    story.append(p(_("Route"), h2))
    story.append(route_drawing(r, 182 * mm, 95 * mm, lang))

    story.append(p(_("Legs"), h2))
    rows = [[_("Leg"), _("Kind"), _("Where"), _("From"), _("To"), _("Loggers"), _("Lots")]]
    for lr in r.legs:
        g = lr.leg
        rows.append(
            [
                g.id,
                _(KINDS.get(g.kind, g.kind)),
                f"{g.site + '/' if g.site else ''}{g.asset}"
                + (f" ({g.origin} → {g.destination})" if g.origin or g.destination else ""),
                t(g.started_at_ns),
                t(g.stopped_at_ns) or _("open"),
                " ".join(g.devices) or _(ALL_LOGGERS),
                " ".join(g.lots),
            ]
        )
    story.append(table(rows, [27 * mm, 18 * mm, 32 * mm, 33 * mm, 33 * mm, 18 * mm, 21 * mm]))

    labels = list(r.totals.band_s)
    story.append(p(_("Temperature per leg (worst logger)"), h2))
    rows = [
        [
            _("Leg"),
            _("Readings"),
            _("Min °C"),
            _("Max °C"),
            _("Mean °C"),
            _("MKT °C"),
            *labels,
            _("Excursions"),
            _("Complete"),
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
    tot = r.totals
    rows.append(
        [
            _("whole chain"),
            str(tot.n),
            _n(tot.min),
            _n(tot.max),
            _n(tot.mean),
            _n(tot.mkt),
            *[fmt_hours(tot.band_s.get(label, 0.0)) for label in labels],
            str(tot.excursions),
            f"{tot.completeness:.1%}",
        ]
    )
    story.append(table(rows))
    story.append(
        p(
            _("Times beyond each limit in h:mm:ss; per leg, its {worst}.").format(
                worst=_(SUMMARY_LABEL)
            ),
            body,
        )
    )
    if tot.gaps:
        spans = [_("{start} to {end}").format(start=t(a), end=t(b)) for a, b in tot.gaps]
        story.append(p(_("Gaps between legs: {gaps}").format(gaps=_("; ").join(spans)), body))

    story.append(p(_("Stability budget"), h2))
    if r.use is None:
        story.append(
            p(_("The profile {profile} has no stability budget.").format(profile=lot.profile), body)
        )
    else:
        state = lambda bad: _("exhausted") if bad else _("within")  # noqa: E731
        rows = [
            [
                _("Item"),
                _("Band"),
                _("Allowed"),
                _("Consumed"),
                _("Remaining"),
                _("Share"),
                _("State"),
            ]
        ]
        for b in r.use.bands:
            rows.append(
                [
                    b.name,
                    f"{b.label} °C",
                    fmt_hours(b.allowed_ns / S),
                    fmt_hours(b.consumed_ns / S),
                    fmt_hours(b.remaining_ns / S),
                    f"{b.share:.0%}",
                    state(b.exhausted),
                ]
            )
        ft = r.use.freeze_thaw
        if ft is not None:
            rows.append(
                [
                    _("freeze/thaw"),
                    f"T < {ft.below:g} °C",
                    str(ft.allowed),
                    str(ft.count),
                    str(max(0, ft.allowed - ft.count)),
                    f"{ft.share:.0%}",
                    state(ft.exhausted),
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
                    _("exceeded") if m.exceeded else _("within"),
                ]
            )
        story.append(table(rows))

    story.append(p(_("Excursions"), h2))
    exc = [
        [_("Leg"), _("Logger"), _("Started"), _("Ended"), _("Duration"), _("Min °C"), _("Max °C")]
    ]
    for lr in r.legs:
        for dev in lr.devices:
            for e in dev.excursions:
                exc.append(
                    [
                        lr.leg.id,
                        dev.device,
                        t(e.start),
                        t(e.end),
                        fmt_hours((e.end - e.start) / S),
                        _n(e.lowest),
                        _n(e.highest),
                    ]
                )
    story.append(
        table(exc) if len(exc) > 1 else p(_("No excursion beyond the profile's limits."), body)
    )

    story.append(p(_("Alerts"), h2))
    al = [[_("Leg"), _("Rule"), _("Source"), _("Raised"), _("State"), _("Message")]]
    for where, ra in [(lr.leg.id, ra) for lr in r.legs for ra in lr.alerts] + [
        (_("Lot"), ra) for ra in r.lot_alerts
    ]:
        a = ra.alert
        al.append(
            [
                where,
                a["rule"],
                a["source"],
                t(a["raised_at"]),
                _(a["state"]),
                alert_text(a, lang, tz),
            ]
        )
    story.append(
        table(al, [22 * mm, 30 * mm, 28 * mm, 34 * mm, 20 * mm, 48 * mm])
        if len(al) > 1
        else p(_("No alerts."), body)
    )
    story.append(Spacer(1, 3 * mm))
    story.append(
        p(_("Evidence SHA-256 (the record above): {digest}").format(digest=r.evidence_sha256), body)
    )
    doc.build(story, canvasmaker=numbered_canvas(header))
    return buf.getvalue()


def _n(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"
