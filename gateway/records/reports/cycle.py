"""The batch / cycle report (PDF and CSV): a production cycle's verdict with its reasons, F0 and
hold time, phases, ranges, data gaps, and the alerts of the cycle with their actions and
closing signatures, for QA's batch release. Built from the cycle summary the rules engine
stored (alert_rules/cycles.py)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from alert_rules.cycles import Cycle
from gateway.core.i18n import N_, fmt_duration, fmt_time, gettext, render_json
from gateway.records.reports.csvfile import alert_text
from gateway.records.reports.pdf import font_name, numbered_canvas
from gateway.records.reports.stats import ReportAlert, fmt_num

VERDICTS = {"pass": N_("Passed"), "fail": N_("Failed"), None: N_("Not judged")}


@dataclass(frozen=True, slots=True)
class CycleReport:
    cycle: Cycle
    alerts: list[ReportAlert]
    generated_at_ns: int


def build_cycle_report(cycle: Cycle, alerts: list[ReportAlert], now_ns: int) -> CycleReport:
    return CycleReport(cycle, alerts, now_ns)


def _reasons(c: Cycle, lang: str, tz: str) -> list[str]:
    texts = [render_json(d, lang, tz) for d in c.reason_texts]
    return [t for t in texts if t] or list(c.reasons)


def _hold_s(c: Cycle) -> float | None:
    return next((float(r["hold_s"]) for r in c.results.values() if "hold_s" in r), None)


def cycle_csv(r: CycleReport, lang: str = "en", tz: str = "UTC") -> str:
    c = r.cycle
    t = lambda ns: fmt_time(ns, tz)  # noqa: E731
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "value"])
    w.writerow(
        ["report", "title", gettext("Batch report {batch}", lang).format(batch=c.batch or c.id)]
    )
    w.writerow(["report", "generated_at", t(r.generated_at_ns)])
    w.writerow(["report", "language", lang])
    w.writerow(["verdict", "code", c.verdict or ""])
    w.writerow(["verdict", "text", gettext(VERDICTS[c.verdict], lang)])
    for reason in _reasons(c, lang, tz):
        w.writerow(["verdict", "reason", reason])
    for k, v in (
        ("id", c.id),
        ("device", c.device),
        ("line", c.line or ""),
        ("equipment", c.equipment or ""),
        ("batch", c.batch or ""),
        ("status", c.status),
        ("start", t(c.start_ns)),
        ("end", t(c.end_ns)),
        ("duration_s", "" if c.duration_s is None else f"{c.duration_s:.0f}"),
        ("f0_min", fmt_num(c.f0_min)),
        ("hold_s", "" if _hold_s(c) is None else f"{_hold_s(c):.0f}"),
        ("data_gaps", c.data_gaps),
    ):
        w.writerow(["cycle", k, v])
    w.writerow([])
    w.writerow(["phases", "phase", "start", "end", "min", "max"])
    for p in c.phases:
        mins = " ".join(f"{k}={v:g}" for k, v in sorted(p.get("min", {}).items()))
        maxs = " ".join(f"{k}={v:g}" for k, v in sorted(p.get("max", {}).items()))
        w.writerow(["phases", p["phase"], t(p["start_ns"]), t(p.get("end_ns")), mins, maxs])
    w.writerow([])
    w.writerow(
        [
            "alerts",
            "id",
            "rule",
            "severity",
            "state",
            "raised_at",
            "message",
            "closed_by",
            "signature_meaning",
        ]
    )
    for a in r.alerts:
        sg = a.signature or {}
        w.writerow(
            [
                "alerts",
                a.alert["id"],
                a.alert["rule"],
                a.alert["severity"],
                a.alert["state"],
                t(a.alert["raised_at"]),
                alert_text(a.alert, lang, tz),
                sg.get("name") or a.alert.get("closed_by") or "",
                sg.get("meaning", ""),
            ]
        )
    return buf.getvalue()


def cycle_pdf(r: CycleReport, lang: str = "en", tz: str = "UTC") -> bytes:
    _ = lambda m: gettext(m, lang)  # noqa: E731
    t = lambda ns: fmt_time(ns, tz)  # noqa: E731
    c = r.cycle
    font = font_name()
    ss = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=ss["BodyText"], fontName=font, fontSize=8, leading=11)
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5, wordWrap="CJK")
    h1 = ParagraphStyle("h1", parent=ss["Title"], fontName=font, fontSize=16, leading=20)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontName=font, fontSize=11, leading=14)
    title = _("Batch report {batch}").format(batch=c.batch or f"#{c.id}")
    generated = _("Generated {time} by vigil").format(time=t(r.generated_at_ns))

    def header(cv: Canvas, page: int, total: int) -> None:
        cv.saveState()
        cv.setFont(font, 8)
        w, h = A4
        cv.drawString(15 * mm, h - 10 * mm, f"{title} · {c.device}")
        cv.line(15 * mm, h - 11.5 * mm, w - 15 * mm, h - 11.5 * mm)
        cv.drawString(15 * mm, 8 * mm, generated)
        cv.drawRightString(
            w - 15 * mm, 8 * mm, _("page {page} of {pages}").format(page=page, pages=total)
        )
        cv.restoreState()

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
        tb = Table([[p(x) for x in row] for row in rows], colWidths=widths, repeatRows=1)
        tb.setStyle(grid)
        return tb

    verdict = [[p(_("Verdict") + ": " + _(VERDICTS[c.verdict]), h2)]]
    verdict += [[p("• " + reason, body)] for reason in _reasons(c, lang, tz)]
    vt = Table(verdict, colWidths=[180 * mm])
    colour = {"pass": "#2b8a3e", "fail": "#b00020"}.get(c.verdict or "", "#66727f")
    vt.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor(colour))]))
    hold = _hold_s(c)
    info = [
        [_("Device"), c.device, _("Batch"), c.batch or "-"],
        [_("Line"), c.line or "-", _("Equipment"), c.equipment or "-"],
        [_("Start"), t(c.start_ns), _("End"), t(c.end_ns) or _(c.status)],
        [
            _("Duration"),
            fmt_duration(c.duration_s, lang) if c.duration_s else "-",
            _("F0 (min)"),
            fmt_num(c.f0_min),
        ],
        [
            _("Hold time"),
            fmt_duration(hold, lang) if hold else "-",
            _("Data gaps"),
            str(c.data_gaps),
        ],
    ]
    it = Table(
        [[p(x) for x in row] for row in info], colWidths=[25 * mm, 65 * mm, 25 * mm, 65 * mm]
    )
    it.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
    story: list[Any] = [Paragraph(escape(title), h1), vt, Spacer(1, 3 * mm), it]
    story.append(Paragraph(escape(_("Phases")), h2))
    rows = [[_("phase"), _("start"), _("end"), _("min"), _("max")]]
    for ph in c.phases:
        rows.append(
            [
                ph["phase"],
                t(ph["start_ns"]),
                t(ph.get("end_ns")),
                " ".join(f"{k}={v:g}" for k, v in sorted(ph.get("min", {}).items())),
                " ".join(f"{k}={v:g}" for k, v in sorted(ph.get("max", {}).items())),
            ]
        )
    story.append(table(rows, [25 * mm, 33 * mm, 33 * mm, 45 * mm, 44 * mm]))
    story.append(Paragraph(escape(_("Alerts")), h2))
    if not r.alerts:
        story.append(p(_("No alerts during the cycle."), body))
    rows = [
        [_("alert"), _("raised"), _("message"), _("state"), _("closed by"), _("signature meaning")]
    ]
    for a in r.alerts:
        sg = a.signature or {}
        rows.append(
            [
                f"#{a.alert['id']} {a.alert['rule']}",
                t(a.alert["raised_at"]),
                alert_text(a.alert, lang, tz),
                _(a.alert["state"]),
                str(sg.get("name") or a.alert.get("closed_by") or "-"),
                str(sg.get("meaning") or "-"),
            ]
        )
    if r.alerts:
        story.append(table(rows, [30 * mm, 30 * mm, 60 * mm, 20 * mm, 20 * mm, 20 * mm]))
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
    doc.build(story, canvasmaker=numbered_canvas(header))
    return buf.getvalue()
