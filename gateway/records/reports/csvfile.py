"""The shipment report as CSV, and the content digest QA signs."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping
from typing import Any

from gateway.core.i18n import fmt_time, gettext, render_json
from gateway.records.reports.stats import (
    SUMMARY_LABEL,
    SeriesStats,
    ShipmentReport,
    fmt_dur,
    fmt_num,
    fmt_ts,
)

TimeFmt = Callable[[int | None], str]
BOM = "\ufeff"
"""Put before a CSV file that people open: spreadsheet programs (Excel, WPS) then read it as
UTF-8, so Chinese text is not garbled."""


def time_format(tz: str | None) -> TimeFmt:
    """ISO 8601 UTC (the signed, canonical form) for None, else local time with its zone."""
    if tz is None:
        return fmt_ts
    return lambda ns: fmt_time(ns, tz)


def _stats_row(s: SeriesStats, ts: TimeFmt, lang: str) -> list[str]:
    return [
        gettext(s.device, lang) if s.device == SUMMARY_LABEL else s.device,
        s.measurement,
        str(s.n),
        ts(s.first_ns),
        ts(s.last_ns),
        fmt_num(s.min),
        fmt_num(s.max),
        fmt_num(s.mean),
        fmt_num(s.mkt),
        f"{s.held_s:.0f}",
    ]


def _csv_body(r: ShipmentReport, lang: str = "en", tz: str | None = None) -> str:
    s = r.shipment
    ts = time_format(tz)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "value"])
    w.writerow(["verdict", "code", r.verdict.code])
    w.writerow(["verdict", "text", gettext(r.verdict.title, lang)])
    for reason in r.verdict.reasons:
        w.writerow(["verdict", "reason", reason.render(lang, tz)])
    for k, v in (
        ("id", s.id),
        ("asset", s.asset),
        ("site", s.site or ""),
        ("profile", s.profile),
        ("product", s.product),
        ("origin", s.origin),
        ("destination", s.destination),
        ("started_at", ts(s.started_at_ns)),
        ("started_by", s.started_by),
        ("stopped_at", ts(s.stopped_at_ns)),
        ("stopped_by", s.stopped_by or ""),
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
        w.writerow(["statistics", *_stats_row(st, ts, lang)])
    w.writerow([])
    w.writerow(["out_of_range", "device", "band", "seconds", "h:mm:ss"])
    for st in [r.summary, *r.series]:
        name = gettext(st.device, lang) if st.device == SUMMARY_LABEL else st.device
        for label, secs in st.band_s.items():
            w.writerow(["out_of_range", name, label, f"{secs:.0f}", fmt_dur(secs)])
    w.writerow([])
    w.writerow(
        [
            "devices",
            "device",
            "serial",
            "interval_s",
            "completeness_pct",
            "slots",
            "filled",
            "gaps",
        ]
    )
    for d in r.devices:
        c = d.completeness
        w.writerow(
            [
                "devices",
                d.device,
                d.serial or "",
                "" if d.interval_s is None else f"{d.interval_s:g}",
                f"{c.share * 100:.1f}",
                str(c.slots),
                str(c.filled),
                str(len(c.gaps)),
            ]
        )
    w.writerow([])
    w.writerow(["gaps", "device", "from", "to", "missed_slots"])
    for d in r.devices:
        for g in d.completeness.gaps:
            w.writerow(["gaps", d.device, ts(g.start_ns), ts(g.end_ns), str(g.missed_slots)])
    w.writerow([])
    w.writerow(["humidity", "device", "readings", "min_pct", "max_pct", "mean_pct"])
    for d in r.devices:
        h = d.humidity
        if h is not None:
            w.writerow(
                ["humidity", d.device, str(h.n), fmt_num(h.min), fmt_num(h.max), fmt_num(h.mean)]
            )
    w.writerow([])
    w.writerow(
        [
            "excursions",
            "device",
            "side",
            "limit_c",
            "start",
            "end",
            "duration_s",
            "peak_c",
            "alert_ids",
            "closed_by",
            "signature_meaning",
        ]
    )
    for x in r.excursions:
        e = x.excursion
        sigs = [a.signature for a in x.alerts if a.signature]
        w.writerow(
            [
                "excursions",
                e.device,
                e.side,
                f"{e.limit:g}",
                ts(e.start_ns),
                ts(e.end_ns),
                f"{e.duration_s:.0f}",
                fmt_num(e.peak),
                " ".join(str(a.alert["id"]) for a in x.alerts),
                "; ".join(str(sg.get("name", "")) for sg in sigs),
                "; ".join(str(sg.get("meaning", "")) for sg in sigs),
            ]
        )
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
                ts(a["raised_at"]),
                ts(a["cleared_at"]),
                fmt_num(a["value"]),
                alert_text(a, lang, tz),
                str(bool(a["retrospective"])).lower(),
                a["acked_by"] or "",
                ts(a["acked_at"]),
                a["closed_by"] or "",
                ts(a["closed_at"]),
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
                    ts(act.at_ns),
                    act.by or "",
                    act.reason or "",
                ]
            )
    return buf.getvalue()


def alert_text(a: Mapping[str, Any], lang: str, tz: str | None) -> str:
    """An alert's message in `lang` and zone `tz`; None and English: the stored message."""
    if tz is None and lang == "en":
        return str(a["message"])
    return render_json(a.get("text"), lang, tz, str(a["message"]))


def signature_rows(r: ShipmentReport, tz: str | None = None) -> list[tuple[str, str]]:
    s = r.shipment
    rows = [("status", r.signature_status)]
    if s.approved_at_ns is not None:
        rows += [
            ("signed_by_name", s.approved_name or ""),
            ("signed_by_user", s.approved_by or ""),
            ("signed_at", time_format(tz)(s.approved_at_ns)),
            ("meaning", s.approval_meaning or ""),
            ("signed_content_sha256", s.approved_digest or ""),
        ]
    digest = content_digest(r)
    rows.append(("current_content_sha256", digest))
    if s.approved_digest is not None:
        same = s.approved_digest == digest
        rows.append(("content_unchanged_since_signature", "yes" if same else "NO"))
    return rows


def to_csv(r: ShipmentReport, lang: str = "en", tz: str | None = None) -> str:
    """The report as CSV sections; `tz` None: times in ISO 8601 UTC. Keys stay English
    identifiers (for programs); texts are in `lang`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    title = gettext("Shipment report {id}", lang).format(id=r.shipment.id)
    w.writerow(["report", "title", title])
    w.writerow(["report", "generated_at", time_format(tz)(r.generated_at_ns)])
    w.writerow(["report", "status", r.shipment.status])
    w.writerow(["report", "language", lang])
    w.writerow(["report", "time_zone", tz or "UTC"])
    if r.journal_chain:
        w.writerow(["report", "journal_chain", r.journal_chain])
    for k, v in signature_rows(r, tz):
        w.writerow(["signature", k, v])
    return buf.getvalue() + _csv_body(r, lang, tz)


def content_digest(r: ShipmentReport) -> str:
    """SHA-256 of the report content without generation time, status and signature, the part QA
    signs; a later report shows whether the data changed since (late uploads)."""
    return hashlib.sha256(_csv_body(r).encode()).hexdigest()
