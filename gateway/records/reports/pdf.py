"""The shipment report as PDF (reportlab), in the reader's language and time zone.

Every page has a header (report, shipment, status) and a footer (generation time with its zone,
"page n of m"). The verdict comes first, then the shipment, the signatures, the chart, the
statistics, time out of range, humidity, the loggers with their record completeness and gaps,
the excursions with the alerts that covered them, and every alert with its actions.

Text is set in an embedded TrueType font that has Chinese glyphs (WenQuanYi Micro Hei, Debian's
`fonts-wqy-microhei`, installed by `make setup`), so product names, places and people print as
entered; without it, reportlab's built-in CID font STSong-Light (not embedded: the viewer
supplies it).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.core.i18n import fmt_duration, fmt_time, gettext, zone, zone_label
from gateway.records.reports.csvfile import alert_text, content_digest
from gateway.records.reports.stats import (
    SUMMARY_LABEL,
    WITHIN_LIMITS,
    ShipmentReport,
    band_label,
    fmt_dur,
    fmt_num,
)

FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)
"""TrueType fonts with CJK glyphs, embedded (subset) when found."""
CID_FONT = "STSong-Light"

PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
LIMIT_COLOURS = ("#d62728", "#ff7f0e", "#1f3fbf", "#6a0dad", "#e377c2", "#bcbd22")
"""One colour per limit line, so the legend tells them apart."""
VERDICT_COLOURS = {WITHIN_LIMITS: "#2b8a3e"}


@cache
def font_name() -> str:
    """Register the report font once; its name."""
    for path in FONT_FILES:
        if path.exists():
            pdfmetrics.registerFont(TTFont("VigilCJK", str(path), subfontIndex=0))
            return "VigilCJK"
    pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
    return CID_FONT


def _nice_step(span_s: float, ticks: int = 6) -> float:
    for step in (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800):
        if span_s / step <= ticks:
            return float(step)
    return 86400.0 * max(1, round(span_s / 86400 / ticks))


def _chart(r: ShipmentReport, width: float, height: float, lang: str, tz: str, font: str) -> Any:
    _ = lambda m: gettext(m, lang)  # noqa: E731
    d = Drawing(width, height)
    t0 = r.shipment.started_at_ns
    curves = {dev: pts for dev, pts in r.curves.items() if pts}
    if not curves:
        d.add(String(width / 2, height / 2, _("no temperature readings"), fontName=font))
        return d
    end = r.shipment.stopped_at_ns or max(p[-1][0] for p in curves.values())
    x_max = max((end - t0) / 1e9, 60.0)
    data: list[list[tuple[float, float]]] = []
    styles: list[tuple[Any, float, Any]] = []
    legend: list[tuple[Any, str]] = []
    for i, (dev, pts) in enumerate(curves.items()):
        data.append([((ts - t0) / 1e9, v) for ts, v in pts])
        col = colors.HexColor(PALETTE[i % len(PALETTE)])
        styles.append((col, 1.0, None))
        legend.append((col, dev))
    ys = [v for pts in curves.values() for _, v in pts]
    for i, b in enumerate(r.limits.bands):
        col = colors.HexColor(LIMIT_COLOURS[i % len(LIMIT_COLOURS)])
        data.append([(0.0, b.limit), (x_max, b.limit)])
        styles.append((col, 0.8, [4, 3]))
        legend.append((col, _("limit {band}").format(band=band_label(b))))
        ys.append(b.limit)
    lp = LinePlot()
    lp.x, lp.y, lp.width, lp.height = 40, 40, width - 55, height - 85
    lp.data = data
    for i, (col, w, dash) in enumerate(styles):
        lp.lines[i].strokeColor = col
        lp.lines[i].strokeWidth = w
        if dash:
            lp.lines[i].strokeDashArray = dash
    lo, hi = min(ys), max(ys)
    pad = max(0.5, (hi - lo) * 0.08)
    lp.yValueAxis.valueMin, lp.yValueAxis.valueMax = lo - pad, hi + pad
    lp.yValueAxis.labelTextFormat = "%.1f"
    lp.yValueAxis.labels.fontName = font
    step = _nice_step(x_max)
    zi = zone(tz)
    first = t0 / 1e9
    # ticks on whole local minutes/hours: shift the first tick to a multiple of the step
    offset = datetime.fromtimestamp(first, UTC).astimezone(zi).utcoffset()
    local0 = first + (offset.total_seconds() if offset else 0.0)
    start_tick = (-local0) % step
    steps = []
    x = start_tick
    while x <= x_max:
        steps.append(x)
        x += step
    lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 0, x_max
    lp.xValueAxis.valueSteps = steps
    day_fmt = "%m-%d %H:%M" if x_max > 86400 or step >= 3600 else "%H:%M"

    def label(v: float) -> str:
        return datetime.fromtimestamp(first + v, UTC).astimezone(zi).strftime(day_fmt)

    lp.xValueAxis.labelTextFormat = label
    lp.xValueAxis.labels.fontName = font
    lp.xValueAxis.labels.fontSize = 7
    # excursions shaded from their start to their end
    for row in r.excursions:
        e = row.excursion
        x0 = max(0.0, (e.start_ns - t0) / 1e9)
        x1 = min(x_max, (e.end_ns - t0) / 1e9)
        if x1 > x0:
            px0 = lp.x + lp.width * x0 / x_max
            px1 = lp.x + lp.width * x1 / x_max
            shade = colors.Color(0.84, 0.15, 0.16, alpha=0.12)
            d.add(Rect(px0, lp.y, px1 - px0, lp.height, fillColor=shade, strokeColor=None))
    d.add(lp)
    axis = _("local time ({zone})").format(zone=zone_label(tz, t0))
    d.add(String(lp.x + lp.width / 2, 8, axis, textAnchor="middle", fontSize=8, fontName=font))
    d.add(String(5, lp.y + lp.height + 6, "°C", fontSize=8, fontName=font))
    lg = Legend()
    lg.x, lg.y = 40, height - 6
    lg.alignment = "right"
    lg.columnMaximum = 3
    lg.fontSize = 7
    lg.fontName = font
    lg.colorNamePairs = legend[:12]
    d.add(lg)
    return d


def numbered_canvas(header: Callable[[Canvas, int, int], None]) -> type[Canvas]:
    """A canvas that draws the header and 'page n of m' once the page count is known."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                header(self, self._pageNumber, total)
                super().showPage()
            super().save()

    return NumberedCanvas


def to_pdf(r: ShipmentReport, lang: str = "en", tz: str = "UTC") -> bytes:
    """The report as PDF in `lang`, times in zone `tz`."""
    _ = lambda m: gettext(m, lang)  # noqa: E731
    font = font_name()
    s = r.shipment
    t = lambda ns: fmt_time(ns, tz)  # noqa: E731
    ss = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=ss["BodyText"], fontName=font, fontSize=8, leading=11)
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5, wordWrap="CJK")
    h1 = ParagraphStyle("h1", parent=ss["Title"], fontName=font, fontSize=16, leading=20)
    h2 = ParagraphStyle(
        "h2", parent=ss["Heading2"], fontName=font, fontSize=11, leading=14, keepWithNext=1
    )
    status = _(s.status)
    title = _("Shipment report {id}").format(id=s.id)
    generated = _("Generated {time} by vigil").format(time=t(r.generated_at_ns))

    def header(c: Canvas, page: int, total: int) -> None:
        c.saveState()
        c.setFont(font, 8)
        w, h = A4
        c.drawString(15 * mm, h - 10 * mm, f"{title} · {status}")
        c.drawRightString(w - 15 * mm, h - 10 * mm, f"{s.product or s.profile}")
        c.line(15 * mm, h - 11.5 * mm, w - 15 * mm, h - 11.5 * mm)
        c.drawString(15 * mm, 8 * mm, generated)
        c.drawRightString(
            w - 15 * mm, 8 * mm, _("page {page} of {pages}").format(page=page, pages=total)
        )
        c.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=16 * mm,
        bottomMargin=14 * mm,
        title=title,
        author="vigil",
        lang=lang,
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )

    def p(text: str, style: Any = cell) -> Any:
        return Paragraph(escape(text), style)

    def table(rows: list[list[str]], widths: list[float] | None = None) -> Any:
        tb = Table([[p(c) for c in row] for row in rows], colWidths=widths, repeatRows=1)
        tb.setStyle(grid)
        return tb

    def name(device: str) -> str:
        return _(device) if device == SUMMARY_LABEL else device

    # verdict first
    v = r.verdict
    verdict_rows = [[p(_("Verdict") + ": " + _(v.title), h2)]]
    verdict_rows += [[p("• " + reason.render(lang, tz), body)] for reason in v.reasons]
    vt = Table(verdict_rows, colWidths=[180 * mm])
    colour = colors.HexColor(VERDICT_COLOURS.get(v.code, "#b00020"))
    vt.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.2, colour),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f5f7fa")),
            ]
        )
    )
    story: list[Any] = [Paragraph(escape(title), h1), vt, Spacer(1, 3 * mm)]

    info = [
        [_("Shipment"), s.id, _("Status"), status],
        [_("Profile"), f"{s.profile} {r.limits.description}".strip(), _("Product"), s.product],
        [_("Asset"), f"{s.site + '/' if s.site else ''}{s.asset}", _("Note"), s.note],
        [_("Origin"), s.origin, _("Destination"), s.destination],
        [
            _("Started"),
            f"{t(s.started_at_ns)} ({s.started_by})",
            _("Stopped"),
            f"{t(s.stopped_at_ns)} ({s.stopped_by})" if s.stopped_at_ns else _("still active"),
        ],
    ]
    it = Table(
        [[p(c) for c in row] for row in info], colWidths=[22 * mm, 68 * mm, 22 * mm, 68 * mm]
    )
    it.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
    story += [
        it,
        p(_("Times are shown in {zone}.").format(zone=zone_label(tz, s.started_at_ns)), body),
    ]
    if r.journal_chain:  # where in the gateway's record these figures come from
        story.append(p(_("Computed from {chain}.").format(chain=r.journal_chain), body))

    # signatures: the approval of this report, and every alert closed with a signature
    story.append(Paragraph(escape(_("Electronic signatures")), h2))
    sig_rows = [[_("signed by"), _("time"), _("meaning"), _("record")]]
    if s.approved_at_ns is not None:
        sig_rows.append(
            [
                f"{s.approved_name} ({s.approved_by})",
                t(s.approved_at_ns),
                s.approval_meaning or "",
                _("approval of this report"),
            ]
        )
    for closed in r.alerts:
        sg = closed.signature
        if sg:
            sig_rows.append(
                [
                    f"{sg.get('name', '')} ({sg.get('username', '')})",
                    t(sg.get("signed_at_ns")),
                    str(sg.get("meaning", "")),
                    _("closing of alert {id}").format(id=closed.alert["id"]),
                ]
            )
    story.append(table(sig_rows, [45 * mm, 45 * mm, 55 * mm, 35 * mm]))
    now = content_digest(r)
    if s.approved_at_ns is None:
        state = _("not signed") if not s.active else _("not signed (shipment still active)")
    elif s.approved_digest is None:
        state = _("signed (no content digest was recorded)")
    elif s.approved_digest == now:
        state = _("signed; the data are unchanged since the signature")
    else:
        state = _("signed, but the data CHANGED after the signature (late readings)")
    story.append(
        p(
            _("Report status: {state}. Content SHA-256: {digest}").format(state=state, digest=now),
            body,
        )
    )

    story.append(Paragraph(escape(_("Temperature")), h2))
    story.append(_chart(r, 180 * mm, 82 * mm, lang, tz, font))
    stat_rows = [
        [
            _("device"),
            _("readings"),
            _("first"),
            _("last"),
            _("min °C"),
            _("max °C"),
            _("mean °C"),
            _("MKT °C (ΔH {dh:g} kJ/mol)").format(dh=r.limits.delta_h),
        ]
    ]
    for st in [r.summary, *r.series]:
        stat_rows.append(
            [
                name(st.device),
                str(st.n),
                t(st.first_ns),
                t(st.last_ns),
                fmt_num(st.min),
                fmt_num(st.max),
                fmt_num(st.mean),
                fmt_num(st.mkt),
            ]
        )
    story += [Spacer(1, 2 * mm), table(stat_rows)]
    lim = r.limits
    lim_text = []
    if lim.low is not None or lim.high is not None:
        lim_text.append(
            _("range {low} .. {high} °C").format(low=fmt_num(lim.low, 1), high=fmt_num(lim.high, 1))
        )
    if lim.mkt_limit is not None:
        lim_text.append(_("MKT limit {limit:g} °C").format(limit=lim.mkt_limit))
    if not lim.known:
        lim_text.append(
            _("profile {profile} is not in the rules library: no limits").format(profile=s.profile)
        )
    if lim_text:
        story.append(p(_("Limits") + ": " + "; ".join(lim_text), body))

    story.append(Paragraph(escape(_("Time out of range")), h2))
    if lim.bands:
        labels = [band_label(b) for b in lim.bands]
        band_rows = [[_("device"), *labels]]
        for st in [r.summary, *r.series]:
            band_rows.append([name(st.device), *[fmt_dur(st.band_s.get(lb, 0.0)) for lb in labels]])
        story.append(table(band_rows))
    else:
        story.append(p(_("The profile defines no temperature bands."), body))

    story.append(Paragraph(escape(_("Excursions")), h2))
    if not r.excursions:
        story.append(p(_("No excursion beyond the product's range."), body))
    else:
        ex_rows = [
            [
                _("device"),
                _("start"),
                _("end"),
                _("duration"),
                _("peak °C"),
                _("alert"),
                _("closed by"),
                _("signature meaning"),
            ]
        ]
        for x in r.excursions:
            e = x.excursion
            sigs = [a.signature for a in x.alerts if a.signature]
            closers = [a.alert.get("closed_by") or "" for a in x.alerts]
            ex_rows.append(
                [
                    e.device,
                    t(e.start_ns),
                    t(e.end_ns),
                    fmt_duration(e.duration_s, lang),
                    f"{e.peak:.2f}",
                    ", ".join(f"#{a.alert['id']}" for a in x.alerts) or "-",
                    ", ".join(str(sg.get("name", "")) for sg in sigs)
                    or ", ".join(c for c in closers if c)
                    or "-",
                    "; ".join(str(sg.get("meaning", "")) for sg in sigs) or "-",
                ]
            )
        story.append(
            table(ex_rows, [20 * mm, 30 * mm, 30 * mm, 16 * mm, 14 * mm, 16 * mm, 24 * mm, 30 * mm])
        )

    humid = [d for d in r.devices if d.humidity is not None]
    story.append(Paragraph(escape(_("Humidity")), h2))
    if not humid:
        story.append(p(_("The loggers recorded no humidity."), body))
    else:
        hl = r.humidity_limits
        hlabels = [band_label(b, "%RH") for b in hl.bands] if hl is not None else []
        h_rows = [[_("device"), _("readings"), _("min %RH"), _("max %RH"), _("mean %RH"), *hlabels]]
        for d in humid:
            h = d.humidity
            assert h is not None
            h_rows.append(
                [
                    d.device,
                    str(h.n),
                    fmt_num(h.min, 1),
                    fmt_num(h.max, 1),
                    fmt_num(h.mean, 1),
                    *[fmt_dur(h.band_s.get(lb, 0.0)) for lb in hlabels],
                ]
            )
        story.append(table(h_rows))

    story.append(Paragraph(escape(_("Loggers and record completeness")), h2))
    story.append(
        p(
            _(
                "China GSP: a record at least every {transport} in transport and every "
                "{oor} while out of range."
            ).format(transport=fmt_duration(300, lang), oor=fmt_duration(120, lang)),
            body,
        )
    )
    dev_rows = [[_("device"), _("serial"), _("logging interval"), _("complete"), _("gaps")]]
    gap_rows = [[_("device"), _("from"), _("to"), _("missed records")]]
    for d in r.devices:
        c = d.completeness
        dev_rows.append(
            [
                d.device,
                d.serial or _("not reported"),
                fmt_duration(d.interval_s, lang) if d.interval_s else "-",
                f"{c.share * 100:.1f} % ({c.filled}/{c.slots})",
                str(len(c.gaps)),
            ]
        )
        for g in c.gaps:
            gap_rows.append([d.device, t(g.start_ns), t(g.end_ns), str(g.missed_slots)])
    story.append(table(dev_rows))
    if len(gap_rows) > 1:
        story += [Spacer(1, 2 * mm), table(gap_rows)]

    story.append(Paragraph(escape(_("Alerts")), h2))
    if not r.alerts:
        story.append(p(_("No alerts during the shipment."), body))
    for ra in r.alerts:
        a = ra.alert
        head = _(
            "#{id} {rule} ({severity}) on {source}: {message}. "
            "Raised {raised}, cleared {cleared}, state {state}."
        ).format(
            id=a["id"],
            rule=a["rule"],
            severity=_(a["severity"]),
            source=a["source"],
            message=alert_text(a, lang, tz),
            raised=t(a["raised_at"]),
            cleared=t(a["cleared_at"]) or "-",
            state=_(a["state"]),
        )
        if a.get("peak") is not None:
            head += " " + _("Peak {peak}.").format(peak=fmt_num(a["peak"]))
        story.append(p(head, body))
        acts = [[_("time"), _("action"), _("old state"), _("new state"), _("by"), _("reason")]]
        for act in ra.actions:
            acts.append(
                [
                    t(act.at_ns),
                    _(act.kind),
                    _(act.old_state) if act.old_state else "",
                    _(act.new_state),
                    act.by or "",
                    act.reason or "",
                ]
            )
        story += [
            table(acts, [34 * mm, 22 * mm, 28 * mm, 28 * mm, 24 * mm, 44 * mm]),
            Spacer(1, 2 * mm),
        ]
    doc.build(story, canvasmaker=numbered_canvas(header))
    return buf.getvalue()
