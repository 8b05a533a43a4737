"""What a notification says: one JSON document (webhook body, MQTT state) and a mail text.

All notifiers render the same fields, so a person reading an e-mail, an SMS gateway reading
the webhook and a dashboard reading the retained MQTT state see the same facts. Texts are in
`lang` (zh-CN or en; the gateway passes gateway.language) with times in zone `tz`
(gateway.timezone); the defaults (English, `tz` None) give the canonical English texts in UTC.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from alert_rules.model import AlertEvent, EventKind
from gateway.core.i18n import N_, fmt_time, gettext, render_json

SUBJECT_MAX = 250
YES, NO = N_("yes"), N_("no")
PLACE_TAGS = ("site", "asset", "device", "line", "equipment", "batch", "phase", "shipment")


def iso(ns: int | None) -> str | None:
    """UTC ISO 8601 with milliseconds and a Z, e.g. 2026-11-22T08:00:00.000Z."""
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns / 1e9, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _num(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def where(event: AlertEvent, lang: str = "en") -> str:
    """`fridge-3/lg-1 at wh1` (cold chain), `room-b2/pc-1 at L1` (process), else the source."""
    a = event.alert
    tags = a.tags
    for scope, parts in (("site", ("asset", "device")), ("line", ("equipment", "device"))):
        if tags.get(scope):
            what = "/".join(tags[p] for p in parts if tags.get(p))
            if not what:
                return tags[scope]
            return gettext("{what} at {place}", lang).format(what=what, place=tags[scope])
    return a.source


def label(event: AlertEvent, lang: str = "en") -> str:
    if lang == "en":
        sev = str(event.alert.severity).upper()
        kind = str(event.kind).upper().replace("_", " ")
    else:
        sev, kind = gettext(str(event.alert.severity), lang), gettext(str(event.kind), lang)
    if event.kind is EventKind.RAISED:
        text = sev
    elif event.kind is EventKind.ESCALATED:
        text = gettext("{severity} ESCALATED tier {tier}", lang).format(
            severity=sev, tier=event.alert.tier
        )
    else:
        text = f"{sev} {kind}"
    if event.alert.retrospective:
        text += gettext(", retrospective", lang)
    return f"[{text}]"


def message_text(event: AlertEvent, lang: str = "en", tz: str | None = None) -> str:
    """The alert's message in `lang`, times in `tz` (None: the stored English text)."""
    a = event.alert
    if lang == "en" and tz is None:
        return a.message
    return render_json(a.text, lang, tz, a.message)


def subject(event: AlertEvent, lang: str = "en", tz: str | None = None) -> str:
    """One line, e.g. `[CRITICAL] vaccine_2_8.freeze_alarm fridge-3/lg-1 at wh1: temp_c ≤ ...`."""
    a = event.alert
    text = f"{label(event, lang)} {a.rule} {where(event, lang)}: {message_text(event, lang, tz)}"
    if event.by:
        text += gettext(" (by {by})", lang).format(by=event.by)
    text = " ".join(text.split())
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def payload(
    event: AlertEvent,
    gateway: str,
    recipients: tuple[str, ...] | None = None,
    lang: str = "en",
    tz: str | None = None,
) -> dict[str, Any]:
    """Times are ISO 8601 UTC for programs; `message` and `subject` are in `lang`."""
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
        "message": message_text(event, lang, tz),
        "subject": subject(event, lang, tz),
        "lang": lang,
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
    (N_("Event"), "event"),
    (N_("Alert id"), "alert_id"),
    (N_("Rule"), "rule"),
    (N_("Severity"), "severity"),
    (N_("State"), "state"),
    (N_("Source"), "source"),
    (N_("Site"), "site"),
    (N_("Asset"), "asset"),
    (N_("Device"), "device"),
    (N_("Line"), "line"),
    (N_("Equipment"), "equipment"),
    (N_("Batch"), "batch"),
    (N_("Phase"), "phase"),
    (N_("Shipment"), "shipment"),
    (N_("Value"), "value"),
    (N_("Peak"), "peak"),
    (N_("Message"), "message"),
    (N_("Started at"), "started_at"),
    (N_("Raised at"), "raised_at"),
    (N_("Ended at"), "ended_at"),
    (N_("Cleared at"), "cleared_at"),
    (N_("Retrospective"), "retrospective"),
    (N_("Escalation tier"), "tier"),
    (N_("By"), "by"),
    (N_("Reason"), "reason"),
    (N_("Gateway"), "gateway"),
)
_TRANSLATED = ("event", "severity", "state")


def text_body(event: AlertEvent, gateway: str, lang: str = "en", tz: str | None = None) -> str:
    """Plain-text mail body: the subject, then one `Label: value` line per known fact; times in
    `tz` with the zone named (None: UTC)."""
    doc = payload(event, gateway, lang=lang, tz=tz)
    a = event.alert
    times = {
        "started_at": a.started_at,
        "raised_at": a.raised_at,
        "ended_at": a.ended_at,
        "cleared_at": a.cleared_at,
    }
    rows = []
    for msgid, key in _TEXT_FIELDS:
        v = doc.get(key)
        if v is None or v == "":
            continue
        lbl = gettext(msgid, lang)
        if key in times:
            if tz is None:
                lbl = f"{lbl} (UTC)"
            else:
                v = fmt_time(times[key], tz)
        elif isinstance(v, bool):
            v = gettext(YES if v else NO, lang)
        elif key in _TRANSLATED and lang != "en":
            v = gettext(str(v), lang)
        rows.append((lbl, v))
    width = max(len(lbl) for lbl, _v in rows) + 2 if rows else 0
    lines = [doc["subject"], ""] + [f"{lbl + ':':<{width}}{v}" for lbl, v in rows]
    if event.alert.retrospective:
        lines += [
            "",
            gettext(
                "This alarm was found in data uploaded late (e.g. a logger's buffer): "
                "the times above are when it happened, not when it was noticed.",
                lang,
            ),
        ]
    return "\n".join(lines) + "\n"


# -- SMS template parameters and chat (DingTalk / WeCom) messages ------------------------------
# Their words are msgids of gateway.core.i18n (catalogs: zh-CN, en), rendered in the gateway's
# language; times in its display zone, each with its offset.

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

EVENT_WORDS = {
    EventKind.RAISED: N_("alarm"),
    EventKind.REACTIVATED: N_("alarm again"),
    EventKind.REALARMED: N_("still in alarm"),
    EventKind.ESCALATED: N_("not acknowledged, escalated"),
    EventKind.CLEARED: N_("back to normal"),
    EventKind.ACKED: N_("acknowledged"),
    EventKind.CLOSED: N_("closed"),
    EventKind.SHELVED: N_("shelved"),
    EventKind.UNSHELVED: N_("unshelved"),
    EventKind.SUPPRESSED: N_("suppressed"),
    EventKind.UNSUPPRESSED: N_("no longer suppressed"),
    EventKind.OUT_OF_SERVICE: N_("out of service"),
    EventKind.IN_SERVICE: N_("back in service"),
}
"""What happened, in words people read (msgids)."""


def event_words(event: AlertEvent, lang: str = "en") -> str:
    return gettext(EVENT_WORDS.get(event.kind, str(event.kind)), lang)


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
    lang: str = "en",
    tz: str | None = None,
    max_chars: int = 35,
) -> dict[str, str]:
    """Every SMS_PARAMS value for this event, as strings of at most `max_chars` (vendors take
    template variables as strings and refuse long ones). `time` is when it happened, in `tz`
    with its offset (None: UTC)."""
    a = event.alert
    when = a.raised_at if event.kind in (EventKind.RAISED, EventKind.REACTIVATED) else event.at_ns
    value = _num(a.value)
    out = {
        "severity": gettext(str(a.severity), lang),
        "event": event_words(event, lang),
        "rule": a.rule,
        "where": where(event, lang),
        "source": a.source,
        "value": "" if value is None else f"{value:g}",
        "message": message_text(event, lang, tz),
        "time": fmt_time(when, tz, seconds=False),
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
    lang: str = "en",
    tz: str | None = None,
    colour: bool = False,
) -> tuple[str, str]:
    """(title, body) of a DingTalk / WeCom group message: markdown (or plain text) with the
    facts a person on duty needs, times in `tz` with their offset, and `@mobile` for each
    mention (DingTalk notifies the mentioned only when the text carries them). `colour`:
    WeCom's `<font color=...>` for the headline."""
    a = event.alert
    head = f"{gettext(str(a.severity), lang)} · {event_words(event, lang)}"
    title = _clip(f"[{head}] {where(event, lang)}", 64)
    facts: list[tuple[str, str]] = [
        (N_("Where"), where(event, lang)),
        (N_("Rule"), a.rule),
        (N_("What"), message_text(event, lang, tz)),
    ]
    value = _num(a.value)
    if value is not None:
        facts.append((N_("Value"), f"{value:g}"))
    facts += [
        (N_("Started at"), fmt_time(a.started_at, tz)),
        (N_("Raised at"), fmt_time(a.raised_at, tz)),
    ]
    if a.cleared_at is not None:
        facts.append((N_("Cleared at"), fmt_time(a.cleared_at, tz)))
    facts.append((N_("State"), gettext(str(event.new_state), lang)))
    if event.by:
        facts.append((N_("By"), event.by + (f": {event.reason}" if event.reason else "")))
    if a.retrospective:
        facts.append(
            (
                N_("Note"),
                gettext(N_("found in data uploaded late; times are when it happened"), lang),
            )
        )
    facts.append((N_("Alert id"), f"#{a.id} · {gateway}"))
    rows = [(gettext(k, lang), v) for k, v in facts]
    at = " ".join(f"@{m}" for m in mentions)
    if markdown:
        headline = f'<font color="warning">{head}</font>' if colour else f"**{head}**"
        lines = [f"### {headline}", ""]
        lines += [f"- {k}: {v}" for k, v in rows]
        if at:
            lines += ["", at]
        return title, "\n".join(lines)
    lines = [f"[{head}]", *(f"{k}: {v}" for k, v in rows)]
    if at:
        lines.append(at)
    return title, "\n".join(lines)
