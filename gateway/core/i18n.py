"""Languages, time zones and translatable texts, for every layer (rules, records, API, notifiers).

Translations are gettext catalogs (domain `vigil`) under `gateway/locale/<ll_CC>/LC_MESSAGES/`,
kept with Babel (`make i18n`: extract, update, compile); the compiled `.mo` files are committed,
so an installed package needs no build step. English is the source language: a msgid is the
English text, so a missing translation shows English, never a key.

Alert messages are `Text`: a msgid (an English template with `{name}` placeholders) and its
arguments. The rules engine stores both with the alert (and the English rendering as `message`),
so the console, reports and notifications render them in the reader's language and time zone
when they show them. Argument values are numbers, strings, `Time` (shown in the display zone),
`Dur` (shown with localized units), nested `Text`, or lists of these (joined).
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DOMAIN = "vigil"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("zh-CN", "en")
"""What vigil speaks: simplified Chinese first, English."""
DEFAULT_LANGUAGE = "zh-CN"
DEFAULT_TIMEZONE = "Asia/Shanghai"
"""Display zone (Beijing time); storage is always UTC."""


def N_(msgid: str) -> str:
    """Marks a msgid for extraction; translated later, where the reader's language is known."""
    return msgid


def normalize(lang: str | None) -> str | None:
    """'zh', 'zh_CN', 'zh-Hans-CN', 'ZH-cn' → 'zh-CN'; 'en-GB' → 'en'; anything else → None."""
    if not lang:
        return None
    tag = lang.strip().replace("_", "-").lower()
    if tag == "zh" or tag.startswith(("zh-cn", "zh-hans", "zh-sg")):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def parse_accept_language(header: str | None) -> list[str]:
    """Languages of an Accept-Language header we speak, best first (RFC 9110 q-values)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = normalize(tag)
        if lang is not None and q > 0:
            ranked.append((-q, i, lang))
    out: list[str] = []
    for _q, _i, lang in sorted(ranked):
        if lang not in out:
            out.append(lang)
    return out


def negotiate(
    *choices: str | None, accept_language: str | None = None, default: str = DEFAULT_LANGUAGE
) -> str:
    """The first of `choices` we speak, else the best of Accept-Language, else `default`."""
    for c in choices:
        lang = normalize(c)
        if lang is not None:
            return lang
    found = parse_accept_language(accept_language)
    return found[0] if found else (normalize(default) or DEFAULT_LANGUAGE)


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    code = (normalize(lang) or "en").replace("-", "_")
    return _gettext.translation(DOMAIN, LOCALE_DIR, [code], fallback=True)


def gettext(msgid: str, lang: str) -> str:
    return translations(lang).gettext(msgid)


def catalog(lang: str) -> dict[str, str]:
    """Every translated message of a language (msgid → text), for the web console."""
    t = translations(lang)
    found: dict[str, str] = {}
    cat = getattr(t, "_catalog", {})
    for k, v in cat.items():
        if isinstance(k, str) and k and isinstance(v, str) and v:
            found[k] = v
    return found


@cache
def zone(name: str | None) -> tzinfo:
    """The display zone by IANA name; UTC for None or an unknown name."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def check_zone(name: str) -> str:
    """Validator: an IANA zone name that this machine knows."""
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)"
        ) from None
    return name


def offset_label(dt: datetime) -> str:
    """'UTC' or 'UTC+08:00': the zone every displayed time carries."""
    off = dt.utcoffset()
    if not off:
        return "UTC"
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"UTC{sign}{h:02d}:{m:02d}"


def fmt_time(ns: int | None, tz: tzinfo | str | None = UTC, seconds: bool = True) -> str:
    """'2026-11-22 16:00:00 UTC+08:00' (empty for None). Never raises."""
    if ns is None:
        return ""
    zi = zone(tz) if isinstance(tz, str) or tz is None else tz
    try:
        dt = datetime.fromtimestamp(ns / 1e9, UTC).astimezone(zi)
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    return (
        dt.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " " + (offset_label(dt))
    )


def zone_label(tz: tzinfo | str | None, at_ns: int | None = None) -> str:
    """'Asia/Shanghai (UTC+08:00)' for headers that say once which zone a table uses."""
    zi = zone(tz) if isinstance(tz, str) or tz is None else tz
    dt = datetime.fromtimestamp((at_ns or 0) / 1e9, UTC).astimezone(zi)
    name = getattr(zi, "key", None) or "UTC"
    off = offset_label(dt)
    return name if name == off else f"{name} ({off})"


WORDS = (
    # ISA-18.2 alert states and what happens to alerts
    N_("normal"),
    N_("unacknowledged"),
    N_("acknowledged"),
    N_("rtn_unacknowledged"),
    N_("shelved"),
    N_("suppressed"),
    N_("out_of_service"),
    N_("raised"),
    N_("reactivated"),
    N_("cleared"),
    N_("acked"),
    N_("unshelved"),
    N_("closed"),
    N_("escalated"),
    N_("realarmed"),
    N_("unsuppressed"),
    N_("in_service"),
    # priorities, roles, device and shipment states
    N_("critical"),
    N_("high"),
    N_("medium"),
    N_("low"),
    N_("viewer"),
    N_("operator"),
    N_("qa"),
    N_("admin"),
    N_("ok"),
    N_("alarm"),
    N_("offline"),
    N_("stale"),
    N_("active"),
    N_("stopped"),
    N_("approved"),
    N_("rejected"),
    N_("running"),
    N_("complete"),
    N_("yes"),
    N_("no"),
)
"""Values the console, reports and notifications show translated (stored in English)."""
LIST_SEPARATOR = N_("; ")
"""Between the items of a list argument (a full-width semicolon in Chinese)."""
_DUR_UNITS = ((N_("{n}d"), 86_400), (N_("{n}h"), 3_600), (N_("{n}m"), 60), (N_("{n}s"), 1))


def fmt_duration(seconds: float, lang: str = "en") -> str:
    """Short form: 5400 → '1h30m' in English, '1小时30分' in Chinese."""
    s = round(seconds)
    if s <= 0:
        return gettext("{n}s", lang).format(n=0)
    parts = []
    for unit, size in _DUR_UNITS:
        if s >= size:
            n, s = divmod(s, size)
            parts.append(gettext(unit, lang).format(n=n))
    return "".join(parts)


# -- structured texts -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Time:
    """A time argument (UTC ns): ISO 8601 UTC in the canonical English text, local time with
    its zone when displayed."""

    ns: int


@dataclass(frozen=True, slots=True)
class Dur:
    """A duration argument in seconds."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Text:
    """A translatable message: `msgid` is its English template, `args` fill its placeholders."""

    msgid: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.render()

    def render(self, lang: str = "en", tz: tzinfo | str | None = None) -> str:
        """The text in `lang`; `tz` None: the canonical form (times as ISO 8601 UTC). Never
        raises: a template that does not format falls back to English, then to the msgid."""
        args = {k: _arg(v, lang, tz) for k, v in self.args.items()}
        for template in (gettext(self.msgid, lang), self.msgid):
            try:
                return template.format(**args)
            except (KeyError, IndexError, ValueError, TypeError):
                continue
        return self.msgid

    def to_json(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "args": {k: _dump(v) for k, v in self.args.items()}}

    @classmethod
    def from_json(cls, doc: Any) -> Text | None:
        """The Text of `to_json`, or None when `doc` is not one."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("msgid"), str):
            return None
        args = doc.get("args")
        if not isinstance(args, Mapping):
            args = {}
        return cls(doc["msgid"], {str(k): _load(v) for k, v in args.items()})


def _iso(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"


def _arg(v: Any, lang: str, tz: tzinfo | str | None) -> Any:
    if isinstance(v, Time):
        return _iso(v.ns) if tz is None else fmt_time(v.ns, tz)
    if isinstance(v, Dur):
        return fmt_duration(v.seconds, lang)
    if isinstance(v, Text):
        return v.render(lang, tz)
    if isinstance(v, list | tuple):
        sep = "; " if tz is None else gettext(LIST_SEPARATOR, lang)
        return sep.join(str(_arg(x, lang, tz)) for x in v)
    return v


def _dump(v: Any) -> Any:
    if isinstance(v, Time):
        return {"$time": v.ns}
    if isinstance(v, Dur):
        return {"$dur": v.seconds}
    if isinstance(v, Text):
        return {"$text": v.to_json()}
    if isinstance(v, list | tuple):
        return [_dump(x) for x in v]
    return v


def _load(v: Any) -> Any:
    if isinstance(v, Mapping):
        if "$time" in v:
            return Time(int(v["$time"]))
        if "$dur" in v:
            return Dur(float(v["$dur"]))
        if "$text" in v:
            return Text.from_json(v["$text"]) or ""
        return str(v)
    if isinstance(v, list):
        return [_load(x) for x in v]
    return v


def render_json(doc: Any, lang: str, tz: tzinfo | str | None, fallback: str = "") -> str:
    """Render a stored Text document, or `fallback` when it is none."""
    t = Text.from_json(doc)
    return t.render(lang, tz) if t is not None else fallback
