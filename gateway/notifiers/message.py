"""What a notification says: one JSON document (webhook body, MQTT state) and a mail text.

All notifiers render the same fields, so a person reading an e-mail, an SMS gateway reading
the webhook and a dashboard reading the retained MQTT state see the same facts.
"""

from __future__ import annotations

import gettext
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

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


# -- SMS template parameters and chat (DingTalk / WeCom) messages ------------------------------
# Texts are wrapped in gettext calls (domain `vigil`, catalogs under gateway/locale/), so the
# zh-CN / en catalogs translate them; without a catalog the English source text is used.

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LANGUAGE = "zh_CN"
DEFAULT_TIMEZONE = "Asia/Shanghai"

SmsParam = Literal[
    "severity",
    "event",
    "rule",
    "where",
    "source",
    "site",
    "asset",
    "line",
    "equipment",
    "device",
    "batch",
    "value",
    "message",
    "time",
    "alert_id",
    "gateway",
]
"""What an SMS template variable can be filled with (`template_params` of an SMS channel)."""
SMS_PARAMS: tuple[str, ...] = get_args(SmsParam)


def translator(lang: str | None) -> Callable[[str], str]:
    """gettext for `lang` (e.g. zh_CN, en); the source text when there is no catalog."""
    langs = [lang] if lang else None
    return gettext.translation("vigil", LOCALE_DIR, languages=langs, fallback=True).gettext


def local_time(ns: int | None, tz: str = DEFAULT_TIMEZONE, seconds: bool = True) -> str:
    """A wall time in the display zone, stating its offset: `2026-11-22 16:00:00 UTC+08:00`."""
    if ns is None:
        return ""
    dt = datetime.fromtimestamp(ns / 1e9, UTC).astimezone(ZoneInfo(tz))
    off = dt.strftime("%z")
    zone = f"UTC{off[:3]}:{off[3:]}" if off else "UTC"
    return dt.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " " + zone


def severity_text(event: AlertEvent, _: Callable[[str], str]) -> str:
    sev = str(event.alert.severity)
    labels = {
        "critical": _("critical"),
        "high": _("high"),
        "medium": _("medium"),
        "low": _("low"),
    }
    return labels.get(sev, sev)


def event_text(event: AlertEvent, _: Callable[[str], str]) -> str:
    """What happened, in words: `alarm`, `back to normal`, `acknowledged`, ..."""
    k = event.kind
    labels = {
        EventKind.RAISED: _("alarm"),
        EventKind.REACTIVATED: _("alarm again"),
        EventKind.REALARMED: _("still in alarm"),
        EventKind.ESCALATED: _("not acknowledged, escalated"),
        EventKind.CLEARED: _("back to normal"),
        EventKind.ACKED: _("acknowledged"),
        EventKind.CLOSED: _("closed"),
        EventKind.SHELVED: _("shelved"),
        EventKind.UNSHELVED: _("unshelved"),
        EventKind.SUPPRESSED: _("suppressed"),
        EventKind.UNSUPPRESSED: _("no longer suppressed"),
        EventKind.OUT_OF_SERVICE: _("out of service"),
        EventKind.IN_SERVICE: _("back in service"),
    }
    return labels.get(k, str(k))


def _clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters, … marking a cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if limit > 1 else text[:limit]


def sms_params(
    event: AlertEvent,
    gateway: str,
    *,
    lang: str | None = DEFAULT_LANGUAGE,
    tz: str = DEFAULT_TIMEZONE,
    max_chars: int = 35,
) -> dict[str, str]:
    """Every SMS_PARAMS value for this event, as strings of at most `max_chars` (vendors take
    template variables as strings and refuse long ones). `time` is when it happened, in the
    display zone with its offset."""
    _ = translator(lang)
    a = event.alert
    when = a.raised_at if event.kind in (EventKind.RAISED, EventKind.REACTIVATED) else event.at_ns
    value = _num(a.value)
    out = {
        "severity": severity_text(event, _),
        "event": event_text(event, _),
        "rule": a.rule,
        "where": where(event),
        "source": a.source,
        "value": "" if value is None else f"{value:g}",
        "message": a.message,
        "time": local_time(when, tz, seconds=False),
        "alert_id": str(a.id),
        "gateway": gateway,
        **{t: a.tags.get(t, "") for t in ("site", "asset", "line", "equipment", "device", "batch")},
    }
    return {k: _clip(v, max_chars) for k, v in out.items()}


def chat_message(
    event: AlertEvent,
    gateway: str,
    *,
    markdown: bool = True,
    mentions: Sequence[str] = (),
    lang: str | None = DEFAULT_LANGUAGE,
    tz: str = DEFAULT_TIMEZONE,
    colour: bool = False,
) -> tuple[str, str]:
    """(title, body) of a DingTalk / WeCom group message: markdown (or plain text) with the
    facts a person on duty needs, times in the display zone, and `@mobile` for each mention
    (DingTalk notifies the mentioned only when the text carries them). `colour`: WeCom's
    `<font color=...>` for the headline."""
    _ = translator(lang)
    a = event.alert
    head = f"{severity_text(event, _)} · {event_text(event, _)}"
    title = _clip(f"[{head}] {where(event)}", 64)
    facts: list[tuple[str, str]] = [
        (_("Where"), where(event)),
        (_("Rule"), a.rule),
        (_("What"), a.message),
    ]
    value = _num(a.value)
    if value is not None:
        facts.append((_("Value"), f"{value:g}"))
    facts += [
        (_("Started"), local_time(a.started_at, tz)),
        (_("Raised"), local_time(a.raised_at, tz)),
    ]
    if a.cleared_at is not None:
        facts.append((_("Back to normal"), local_time(a.cleared_at, tz)))
    facts.append((_("State"), str(event.new_state)))
    if event.by:
        facts.append((_("By"), event.by + (f": {event.reason}" if event.reason else "")))
    if a.retrospective:
        facts.append((_("Note"), _("found in data uploaded late; times are when it happened")))
    facts.append((_("Alert"), f"#{a.id} · {gateway}"))
    at = " ".join(f"@{m}" for m in mentions)
    if markdown:
        headline = f'<font color="warning">{head}</font>' if colour else f"**{head}**"
        lines = [f"### {headline}", ""]
        lines += [f"- {k}: {v}" for k, v in facts]
        if at:
            lines += ["", at]
        return title, "\n".join(lines)
    lines = [f"[{head}]", *(f"{k}: {v}" for k, v in facts)]
    if at:
        lines.append(at)
    return title, "\n".join(lines)
