"""Durations in rule packs: written as people say them ("60m", "10h", "30d"), kept as seconds.

Engine code works in integer nanoseconds (Reading.ts_ns), so conversion happens once, at compile.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

NS_PER_S = 1_000_000_000
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)")


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds), a timedelta, or a string such as "90s", "1h30m", "30d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '90s', '15m', '10h' or '30d'")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("duration must be finite")
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return float(text)
        except ValueError:
            pass
        pos, total = 0, 0.0
        compact = text.replace(" ", "")
        for m in _PART.finditer(compact):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos == len(compact) and pos > 0:
            return total
    raise ValueError("expected a duration such as 90, '90s', '15m', '10h' or '30d'")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""Seconds, parsed from YAML-friendly text; never negative."""


def to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


def fmt_duration(seconds: float) -> str:
    """Short human form for messages: 3600 -> '1h', 5400 -> '1h30m', 59 -> '59s'."""
    s = round(seconds)
    if s == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            n, s = divmod(s, size)
            parts.append(f"{n}{unit}")
    return "".join(parts)
