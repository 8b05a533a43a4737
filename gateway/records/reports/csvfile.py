"""The shipment report as CSV, and the content digest QA signs."""

from __future__ import annotations

import csv
import hashlib
import io

from gateway.records.reports.stats import SeriesStats, ShipmentReport, fmt_dur, fmt_num, fmt_ts


def _stats_row(s: SeriesStats) -> list[str]:
    return [
        s.device,
        s.measurement,
        str(s.n),
        fmt_ts(s.first_ns),
        fmt_ts(s.last_ns),
        fmt_num(s.min),
        fmt_num(s.max),
        fmt_num(s.mean),
        fmt_num(s.mkt),
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
                fmt_num(a["value"]),
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


def signature_rows(r: ShipmentReport) -> list[tuple[str, str]]:
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
    digest = content_digest(r)
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
    if r.journal_chain:
        w.writerow(["report", "journal_chain", r.journal_chain])
    for k, v in signature_rows(r):
        w.writerow(["signature", k, v])
    return buf.getvalue() + _csv_body(r)


def content_digest(r: ShipmentReport) -> str:
    """SHA-256 of the report content without generation time and signature, the part QA
    signs; a later report shows whether the data changed since (late uploads)."""
    return hashlib.sha256(_csv_body(r).encode()).hexdigest()
