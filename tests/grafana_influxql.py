"""What Grafana (10.3 and later, InfluxQL run by its backend) does to a panel's InfluxQL before
InfluxDB sees it, and to an annotation query's answer after: a port of the parts of Grafana's
source that matter, so tests run generated dashboards against a real InfluxDB exactly as a
Grafana in front of it would.

* the frontend interpolates dashboard variables with the InfluxDB data source's
  `interpolateQueryExpr` (datasource.ts): a multi-value or "All" variable becomes `(a|b)` with
  each value regex-escaped (`escapeRegex`), a custom "All" value is inserted verbatim, a single
  value is escaped only where the query uses it inside a regex literal, a number-like value never;
* the backend (pkg/tsdb/influxdb/models/query.go `Build`) replaces `$timeFilter` with absolute
  epoch milliseconds and `$__interval` / `$interval` / `$__interval_ms` with the interval the
  frontend computed (`rangeutil.calculateInterval`, `gtime.FormatInterval`);
* annotation answers become frames named `<measurement>.<column>` (buffered/response_parser.go),
  then a table, then events (response_parser.ts `transformAnnotationResponse`): rows with any empty
  column are left out, title and end match column names exactly, text and tags by containment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

VARIABLE_REGEX = re.compile(  # grafana/scenes variables/constants.ts (JS \w is ASCII)
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)((?:\.[^:^{}\[\]]+|\[\"[^\"]*\"\]|\['[^']*'\]"
    r"|\[[^\]\"']*\])*)(?::([^}]+))?\}",
    re.ASCII,
)
_ESCAPE = re.compile(r"[\\^$*+?.()|\[\]{}/]")  # @grafana/data escapeRegex
_REGEX_LITERAL = re.compile(  # datasource.ts interpolateQueryExpr regexMatcher
    r"(\s*(=|!)~\s*)\/((?![*+?])(?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)\/"
    r"((?:g(?:im?|mi?)?|i(?:gm?|mg?)?|m(?:gi?|ig?)?)?)",
    re.M,
)
_JS_FLOAT = re.compile(r"^\s*[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")
ALL = "$__all"


def escape_regex(value: str) -> str:
    return _ESCAPE.sub(lambda m: "\\" + m.group(0), value)


def _numeric(value: str) -> bool:
    """JavaScript's `!isNaN(parseFloat(value))`."""
    return _JS_FLOAT.match(value) is not None


@dataclass
class Var:
    """A dashboard variable as the user left it: `current` one value, several, or ALL."""

    name: str
    current: str | list[str]
    options: list[str] = field(default_factory=list)
    multi: bool = False
    all_value: str | None = None

    def is_all(self) -> bool:
        c = self.current
        return c == ALL or (isinstance(c, list) and c[:1] == [ALL])


def _interpolate_query_expr(value: str | list[str], var: Var, query: str) -> str | list[str]:
    if isinstance(value, str) and _numeric(value):
        return value
    if var.multi:
        if isinstance(value, str):
            return escape_regex(value)
        return "(" + "|".join(escape_regex(v) for v in value) + ")"
    inner = re.compile(r"\/(?:\^)?(.*)(\$" + re.escape(var.name) + r")(.*)(?:\$)?\/", re.M)
    for m in _REGEX_LITERAL.finditer(query):
        if inner.search(m.group(0)):
            if isinstance(value, str):
                return escape_regex(value)
            return "(" + "|".join(escape_regex(v) for v in value) + ")"
    return value


def _js(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def interpolate(query: str, variables: dict[str, Var], from_ms: int, to_ms: int) -> str:
    """The frontend step: what Grafana sends to its backend as the target's query."""
    builtins: dict[str, object] = {
        "__from": from_ms,
        "__to": to_ms,
        "__interval": "$__interval",
        "__interval_ms": "$__interval_ms",
    }

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return _js(builtins[name])
        var = variables.get(name)
        if var is None:
            return m.group(0)  # $timeFilter and friends: the backend's
        if fmt is not None:
            raise ValueError(f"format {fmt!r} of ${{{name}}} is not emulated")
        if var.is_all():
            if var.all_value:
                return interpolate(var.all_value, variables, from_ms, to_ms)
            value: str | list[str] = list(var.options)
        else:
            value = var.current
        return _js(_interpolate_query_expr(value, var, query))

    return VARIABLE_REGEX.sub(repl, query)


def format_interval(ms: int) -> str:
    """grafana-plugin-sdk-go gtime.FormatInterval."""
    for suffix, size in (
        ("y", 31_536_000_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ):
        if ms >= size:
            return f"{ms // size}{suffix}"
    return "1ms"


_ROUND = [
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
    (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
    (1814400000, 604800000), (3628800000, 2592000000),
]  # fmt: skip
"""rangeutil.roundInterval: raw interval (ms, below) -> the interval Grafana uses."""
_UNIT_MS = {
    "y": 31_536_000_000,
    "M": 2_592_000_000,
    "w": 604_800_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}


def interval_ms(from_ms: int, to_ms: int, max_data_points: int, min_interval: str | None) -> int:
    """rangeutil.calculateInterval: the range over the panel's points, rounded, at least the
    panel's min interval."""
    raw = (to_ms - from_ms) / max_data_points
    rounded = next((v for lim, v in _ROUND if raw < lim), 31_536_000_000)
    low = 1
    if min_interval:
        m = re.match(r"^(-?\d+(?:\.\d+)?)(ms|[Mwdhmsy])", min_interval)
        assert m, min_interval
        low = int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    return max(rounded, low)


def backend_build(query: str, from_ms: int, to_ms: int, interval: int) -> str:
    """models/query.go Build(): the macros Grafana's backend replaces."""
    interval = max(interval, 1)
    text = format_interval(interval)
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$interval", text).replace("$__interval_ms", str(interval))
    return out.replace("$__interval", text)


def expand(
    query: str,
    variables: dict[str, Var],
    from_ms: int,
    to_ms: int,
    *,
    max_data_points: int = 1000,
    min_interval: str | None = None,
) -> str:
    """A panel or annotation query as InfluxDB receives it from Grafana."""
    iv = interval_ms(from_ms, to_ms, max_data_points, min_interval)
    return backend_build(interpolate(query, variables, from_ms, to_ms), from_ms, to_ms, iv)


# -- annotations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Annotation:
    time: int
    time_end: Any
    title: Any
    text: Any
    tags: list[str]

    @property
    def is_region(self) -> bool:
        """Grafana: `Boolean(timeEnd && time !== timeEnd)`."""
        return bool(self.time_end) and self.time != self.time_end


def _frames(series: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any], list[Any]]]:
    """(name, times, values) per result column, as the backend builds time-series frames."""
    out = []
    for s in series:
        tags = s.get("tags") or {}
        for i, column in enumerate(s["columns"]):
            if column == "time":
                continue
            name = f"{s['name']}.{column}"
            if tags:
                name += " { " + ", ".join(f"{k}: {v}" for k, v in tags.items()) + " }"
            out.append((name, [row[0] for row in s["values"]], [row[i] for row in s["values"]]))
    return out


def annotations(target: dict[str, Any], result: dict[str, Any]) -> list[Annotation]:
    """The events Grafana makes of an annotation query's InfluxDB answer (`result` is one
    statement's result, fetched with epoch=ms)."""
    frames = _frames(result.get("series") or [])
    if not frames:
        return []
    columns = ["Time"] + [name for name, _, _ in frames]
    rows = []
    for i, t in enumerate(frames[0][1]):
        metrics = [values[i] for _, _, values in frames]
        if None not in metrics:
            rows.append([t, *metrics])
    title_i = time_i = end_i = text_i = 0
    tags_i: list[int] = []
    tag_names = [t for t in (target.get("tagsColumn") or "").replace(" ", "").split(",") if t]
    for index, column in enumerate(columns):
        if column.lower() == "time":
            time_i = index
        elif column == target.get("titleColumn"):
            title_i = index
        elif any(t in column for t in tag_names):
            tags_i.append(index)
        elif target.get("textColumn") and target["textColumn"] in column:
            text_i = index
        elif column == target.get("timeEndColumn"):
            end_i = index
        elif not title_i and text_i != index:
            title_i = index
    return [
        Annotation(
            time=row[time_i],
            time_end=row[end_i],
            title=row[title_i],
            text=row[text_i],
            tags=[tag for i in tags_i if row[i] for tag in str(row[i]).split(",")],
        )
        for row in rows
    ]
