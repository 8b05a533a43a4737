"""The chain report of a lot as CSV, in the reader's language and time zone.

One file in sections (first column): `report`, `decision`, `lot`, `verdict`, `legs`,
`statistics`, `out_of_range`, `excursions`, `gaps`, `budget`, `stages`, `evidence`, `alerts`.
Section names, keys, column names and codes (verdict, leg kind, decision, budget state) stay
English identifiers, so a program reads the file in any language, as in the shipment and batch
reports; texts (the title, the verdict and its reasons, labels, alert messages) are in `lang`.
Times are ISO 8601 in the display zone, with its offset. The `evidence` section gives each
leg's readings SHA-256 and the chain's evidence SHA-256 (chain.evidence_digest), the one a
release decision records.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.core.i18n import N_, gettext
from gateway.records.reports.chain import (
    SUMMARY_LABEL,
    VERDICTS,
    ChainReport,
    DeviceStats,
    fmt_hours,
)
from gateway.records.reports.csvfile import alert_text

S = 1_000_000_000
ALL_LOGGERS = N_("all")
"""A leg without a list of loggers takes every logger of its asset."""


def zone_problem(tz: str) -> str:
    """Why `tz` is not an IANA time zone name ("" when it is one)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {tz!r} (an IANA name such as Asia/Shanghai or UTC)"
    return ""


def fmt_local(ns: int | None, tz: str = "UTC") -> str:
    """ISO 8601 with the zone's offset: 2026-11-22T16:00:00+08:00 ('' for None)."""
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, ZoneInfo(tz)).isoformat(timespec="seconds")


def _num(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _stats_row(leg: str, d: DeviceStats, lang: str, tz: str) -> list[str]:
    c = d.completeness
    return [
        "statistics",
        leg,
        gettext(d.device, lang) if d.device == SUMMARY_LABEL else d.device,
        str(d.n),
        fmt_local(d.first_ns, tz),
        fmt_local(d.last_ns, tz),
        _num(d.min),
        _num(d.max),
        _num(d.mean),
        _num(d.mkt),
        f"{d.held_s:.0f}",
        "" if c is None else f"{c.share:.4f}",
        str(len(d.excursions)),
    ]


def _record_sections(r: ChainReport, lang: str, tz: str) -> str:
    """The lot, the verdict and what it rests on: legs, figures, budget, stages, evidence."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    lot = r.lot
    for k, v in (
        ("lot", lot.id),
        ("product", lot.product),
        ("profile", lot.profile),
        ("expiry", lot.expiry),
        ("codes", " ".join(lot.codes)),
        ("retention_until", r.retention_until.isoformat()),
    ):
        w.writerow(["lot", k, v])
    w.writerow([])
    w.writerow(["verdict", r.verdict, gettext(VERDICTS[r.verdict], lang)])
    for reason in r.reasons:
        w.writerow(["verdict", "reason", reason.render(lang, tz)])
    w.writerow([])
    w.writerow(
        [
            "legs",
            "leg",
            "kind",
            "site",
            "asset",
            "devices",
            "lots",
            "started_at",
            "stopped_at",
            "status",
            "started_by",
            "start_reason",
            "stopped_by",
            "stop_reason",
        ]
    )
    for lr in r.legs:
        g = lr.leg
        w.writerow(
            [
                "legs",
                g.id,
                g.kind,
                g.site or "",
                g.asset,
                " ".join(g.devices) or gettext(ALL_LOGGERS, lang),
                " ".join(g.lots),
                fmt_local(g.started_at_ns, tz),
                fmt_local(g.stopped_at_ns, tz),
                g.status,
                g.started_by or "",
                g.start_reason or "",
                g.stopped_by or "",
                g.stop_reason or "",
            ]
        )
    w.writerow([])
    w.writerow(
        [
            "statistics",
            "leg",
            "device",
            "readings",
            "first",
            "last",
            "min_c",
            "max_c",
            "mean_c",
            "mkt_c",
            "covered_s",
            "completeness",
            "excursions",
        ]
    )
    for lr in r.legs:
        for d in [lr.summary, *lr.devices]:
            w.writerow(_stats_row(lr.leg.id, d, lang, tz))
    t = r.totals
    w.writerow(
        [
            "statistics",
            "chain",
            gettext(N_("all legs"), lang),
            str(t.n),
            fmt_local(t.first_ns, tz),
            fmt_local(t.last_ns, tz),
            _num(t.min),
            _num(t.max),
            _num(t.mean),
            _num(t.mkt),
            f"{t.held_s:.0f}",
            f"{t.completeness:.4f}",
            str(t.excursions),
        ]
    )
    w.writerow([])
    w.writerow(["out_of_range", "leg", "band", "seconds", "h:mm:ss"])
    for lr in r.legs:
        for label, secs in lr.summary.band_s.items():
            w.writerow(["out_of_range", lr.leg.id, label, f"{secs:.0f}", fmt_hours(secs)])
    for label, secs in t.band_s.items():
        w.writerow(["out_of_range", "chain", label, f"{secs:.0f}", fmt_hours(secs)])
    w.writerow([])
    w.writerow(["excursions", "leg", "device", "start", "end", "seconds", "lowest_c", "highest_c"])
    for lr in r.legs:
        for d in lr.devices:
            for e in d.excursions:
                w.writerow(
                    [
                        "excursions",
                        lr.leg.id,
                        d.device,
                        fmt_local(e.start, tz),
                        fmt_local(e.end, tz),
                        f"{(e.end - e.start) / S:.0f}",
                        _num(e.lowest),
                        _num(e.highest),
                    ]
                )
    w.writerow([])
    w.writerow(["gaps", "from", "to", "seconds"])
    for gap_start, gap_end in t.gaps:
        w.writerow(
            [
                "gaps",
                fmt_local(gap_start, tz),
                fmt_local(gap_end, tz),
                f"{(gap_end - gap_start) / S:.0f}",
            ]
        )
    w.writerow([])
    w.writerow(["budget", "item", "band", "allowed", "consumed", "remaining", "share", "state"])
    if r.use is not None:
        for b in r.use.bands:
            w.writerow(
                [
                    "budget",
                    b.name,
                    f"{b.label} °C",
                    f"{b.allowed_ns / S:.0f}",
                    f"{b.consumed_ns / S:.0f}",
                    f"{b.remaining_ns / S:.0f}",
                    f"{b.share:.4f}",
                    "exhausted" if b.exhausted else "within",
                ]
            )
        ft = r.use.freeze_thaw
        if ft is not None:
            w.writerow(
                [
                    "budget",
                    "freeze_thaw",
                    f"T < {ft.below:g} °C",
                    str(ft.allowed),
                    str(ft.count),
                    str(max(0, ft.allowed - ft.count)),
                    f"{ft.share:.4f}",
                    "exhausted" if ft.exhausted else "within",
                ]
            )
        m = r.use.mkt
        if m is not None:
            w.writerow(
                [
                    "budget",
                    "mkt",
                    f"MKT ≤ {m.limit:g} °C",
                    f"{m.limit:g}",
                    _num(m.mkt_c),
                    "",
                    "",
                    "exceeded" if m.exceeded else "within",
                ]
            )
    w.writerow([])
    w.writerow(["stages", "leg", "at", "stage", "lat", "lon"])
    for lr in r.legs:
        for st in lr.stages:
            w.writerow(
                [
                    "stages",
                    lr.leg.id,
                    fmt_local(st.at_ns, tz),
                    st.stage,
                    f"{st.lat:.6f}",
                    f"{st.lon:.6f}",
                ]
            )
    w.writerow([])
    w.writerow(["evidence", "leg", "readings", "positions", "readings_sha256"])
    for lr in r.legs:
        n = sum(d.n for d in lr.devices)
        w.writerow(["evidence", lr.leg.id, str(n), str(len(lr.route)), lr.readings_sha256])
    w.writerow(["evidence", "chain", "", "", r.evidence_sha256])
    return buf.getvalue()


def decision_rows(r: ChainReport, tz: str = "UTC") -> list[tuple[str, str]]:
    """The decision, its evidence digest and the same evidence worked out again now."""
    d = r.decision
    if d is None:
        return [("status", "no decision"), ("evidence_sha256_now", r.evidence_sha256)]
    again = r.decision_evidence_sha256 or ""
    rows = [
        ("status", d.decision),
        ("signed_by_name", d.signer_name),
        ("signed_by_user", d.decided_by),
        ("signed_at", fmt_local(d.decided_at_ns, tz)),
        ("meaning", d.meaning),
        ("comment", d.comment or ""),
        ("evidence_sha256", d.evidence_sha256),
        ("evidence_as_of_decision_sha256_now", again),
        ("evidence_unchanged", "yes" if d.evidence_sha256 == again else "NO"),
        ("needs_review", "yes" if d.needs_review else "no"),
    ]
    if d.review_reason:
        rows.append(("review_reason", d.review_reason))
    return rows


def to_csv(r: ChainReport, lang: str = "en", tz: str = "UTC") -> str:
    """The report as CSV sections, texts in `lang`, times in zone `tz` (put `BOM` before it
    for spreadsheet programs)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    title = gettext("vigil chain report, lot {lot}", lang).format(lot=r.lot.id)
    w.writerow(["report", "title", title])
    w.writerow(["report", "generated_at", fmt_local(r.generated_at_ns, tz)])
    w.writerow(["report", "language", lang])
    w.writerow(["report", "time_zone", tz])
    for k, v in decision_rows(r, tz):
        w.writerow(["decision", k, v])
    w.writerow([])
    body = _record_sections(r, lang, tz)
    alerts = io.StringIO()
    aw = csv.writer(alerts, lineterminator="\n")
    aw.writerow([])
    aw.writerow(
        [
            "alerts",
            "leg",
            "id",
            "rule",
            "source",
            "severity",
            "state",
            "raised_at",
            "cleared_at",
            "message",
        ]
    )
    for lr in r.legs:
        for ra in lr.alerts:
            a = ra.alert
            aw.writerow(
                [
                    "alerts",
                    lr.leg.id,
                    a["id"],
                    a["rule"],
                    a["source"],
                    a["severity"],
                    a["state"],
                    fmt_local(a["raised_at"], tz),
                    fmt_local(a["cleared_at"], tz),
                    alert_text(a, lang, tz),
                ]
            )
    for ra in r.lot_alerts:
        a = ra.alert
        aw.writerow(
            [
                "alerts",
                "lot",
                a["id"],
                a["rule"],
                a["source"],
                a["severity"],
                a["state"],
                fmt_local(a["raised_at"], tz),
                fmt_local(a["cleared_at"], tz),
                alert_text(a, lang, tz),
            ]
        )
    return buf.getvalue() + body + alerts.getvalue()
