"""What a notification says: one JSON document (webhook body, MQTT state) and a mail text.

All notifiers render the same fields, so a person reading an e-mail, an SMS gateway reading
the webhook and a dashboard reading the retained MQTT state see the same facts.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from alert_rules.model import AlertEvent, EventKind

SUBJECT_MAX = 250
PLACE_TAGS = ("site", "asset", "device", "line", "equipment", "batch", "phase", "shipment")


def iso(ns: int | None) -> str | None:
    """UTC ISO 8601 with milliseconds and a Z, e.g. 2026-11-22T08:00:00.000Z."""
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns / 1e9, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _num(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def where(event: AlertEvent) -> str:
    """`fridge-3/lg-1 at wh1` (cold chain), `room-b2/pc-1 at L1` (process), else the source."""
    a = event.alert
    tags = a.tags
    for scope, parts in (("site", ("asset", "device")), ("line", ("equipment", "device"))):
        if tags.get(scope):
            what = "/".join(tags[p] for p in parts if tags.get(p))
            return f"{what} at {tags[scope]}" if what else tags[scope]
    return a.source


def label(event: AlertEvent) -> str:
    sev = str(event.alert.severity).upper()
    if event.kind is EventKind.RAISED:
        text = sev
    elif event.kind is EventKind.ESCALATED:
        text = f"{sev} ESCALATED tier {event.alert.tier}"
    else:
        text = f"{sev} {str(event.kind).upper().replace('_', ' ')}"
    if event.alert.retrospective:
        text += ", retrospective"
    return f"[{text}]"


def subject(event: AlertEvent) -> str:
    """One line, e.g. `[CRITICAL] vaccine_2_8.freeze_alarm fridge-3/lg-1 at wh1: temp_c ≤ ...`."""
    a = event.alert
    text = f"{label(event)} {a.rule} {where(event)}: {a.message}"
    if event.by:
        text += f" (by {event.by})"
    text = " ".join(text.split())
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def payload(
    event: AlertEvent, gateway: str, recipients: tuple[str, ...] | None = None
) -> dict[str, Any]:
    a = event.alert
    out: dict[str, Any] = {
        "gateway": gateway,
        "event": str(event.kind),
        "at": iso(event.at_ns),
        "alert_id": a.id,
        "rule": a.rule,
        "kind": a.kind,
        "severity": str(a.severity),
        "state": str(event.new_state),
        "old_state": str(event.old_state) if event.old_state is not None else None,
        "active": a.active,
        "source": a.source,
        **{t: a.tags[t] for t in PLACE_TAGS if a.tags.get(t)},
        "field": a.field or None,
        "value": _num(a.value),
        "peak": _num(a.peak),
        "message": a.message,
        "subject": subject(event),
        "started_at": iso(a.started_at),
        "raised_at": iso(a.raised_at),
        "ended_at": iso(a.ended_at),
        "cleared_at": iso(a.cleared_at),
        "detected_at": iso(a.detected_at),
        "retrospective": a.retrospective,
        "latching": a.latching,
        "activations": a.activations,
        "tier": a.tier,
        "annunciate": event.annunciate,
        "by": event.by,
        "reason": event.reason,
        "acked_by": a.acked_by,
        "acked_at": iso(a.acked_at),
        "closed_by": a.closed_by,
        "closed_at": iso(a.closed_at),
    }
    if recipients is not None:
        out["recipients"] = list(recipients)
    return out


def to_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


_TEXT_FIELDS = (
    ("Event", "event"),
    ("Alert id", "alert_id"),
    ("Rule", "rule"),
    ("Severity", "severity"),
    ("State", "state"),
    ("Source", "source"),
    *((t.capitalize(), t) for t in PLACE_TAGS),
    ("Value", "value"),
    ("Peak", "peak"),
    ("Message", "message"),
    ("Started at (UTC)", "started_at"),
    ("Raised at (UTC)", "raised_at"),
    ("Ended at (UTC)", "ended_at"),
    ("Cleared at (UTC)", "cleared_at"),
    ("Retrospective", "retrospective"),
    ("Escalation tier", "tier"),
    ("By", "by"),
    ("Reason", "reason"),
    ("Gateway", "gateway"),
)


def text_body(event: AlertEvent, gateway: str) -> str:
    """Plain-text mail body: the subject, then one `Label: value` line per known fact."""
    doc = payload(event, gateway)
    lines = [doc["subject"], ""]
    width = max(len(lbl) for lbl, _ in _TEXT_FIELDS) + 2
    for lbl, key in _TEXT_FIELDS:
        v = doc.get(key)
        if v is None or v == "":
            continue
        if isinstance(v, bool):
            v = "yes" if v else "no"
        lines.append(f"{lbl + ':':<{width}}{v}")
    if event.alert.retrospective:
        lines += [
            "",
            "This alarm was found in data uploaded late (e.g. a logger's buffer): "
            "the times above are when it happened, not when it was noticed.",
        ]
    return "\n".join(lines) + "\n"
