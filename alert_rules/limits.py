"""What a product profile says about one field: its limits, for reports and displays.

`RuleLibrary.limits(profile, field)` answers from the profile's rules (inherited ones included,
without a binding's overrides), so a report judges a shipment by the same numbers as the rules:

* bands — every limit of an enabled `threshold` or `duration` rule on the field, with the rule's
  comparison (`inclusive`): time beyond each is reported;
* low / high — the range: the tightest `threshold` limits, or the tightest `duration` limits when
  the profile has no thresholds on the field;
* delta_h / mkt_limit — from the profile's `mkt` rule on the field;
* max_gap_ns — how long a reading holds its value: the shortest `max_gap` of the rules on the
  field, so a report never holds a value longer than a rule did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from alert_rules.kinds import RuleBase
from alert_rules.kinds.duration import DurationRule
from alert_rules.kinds.mkt import MktRule
from alert_rules.kinds.threshold import ThresholdRule
from alert_rules.units import to_ns
from gateway.core.standards import DEFAULT_MAX_GAP_S, MKT_DELTA_H_KJ_MOL

Op = Literal[">", ">=", "<", "<="]
_SYMBOL = {">": ">", ">=": "\u2265", "<": "<", "<=": "\u2264"}


@dataclass(frozen=True, slots=True)
class Band:
    """Values `op limit` are beyond this band (an excursion): e.g. (">", 8.0) is above 8."""

    op: Op
    limit: float

    @property
    def symbol(self) -> str:
        """The comparison as printed: ≥, >, ≤ or <."""
        return _SYMBOL[self.op]

    def beyond(self, v: float) -> bool:
        op, lim = self.op, self.limit
        if op == ">":
            return v > lim
        if op == ">=":
            return v >= lim
        if op == "<":
            return v < lim
        return v <= lim


@dataclass(frozen=True, slots=True)
class ProfileLimits:
    """The limits of one profile for one field (see the module docstring)."""

    profile: str
    field: str
    description: str = ""
    bands: tuple[Band, ...] = ()
    """Highest first, then the low bands from the highest."""
    low: float | None = None
    high: float | None = None
    delta_h: float = MKT_DELTA_H_KJ_MOL
    """MKT activation energy, kJ/mol."""
    mkt_limit: float | None = None
    max_gap_ns: int = to_ns(DEFAULT_MAX_GAP_S)
    known: bool = True
    """False: the profile is not in the library (then nothing else is set)."""


def profile_limits(
    profile: str, field: str, rules: Iterable[RuleBase], description: str = ""
) -> ProfileLimits:
    """The limits that `rules` (one profile's) set for `field`."""
    bands: dict[tuple[str, float], Band] = {}
    thr_low: list[float] = []
    thr_high: list[float] = []
    dur_low: list[float] = []
    dur_high: list[float] = []
    delta_h, mkt_limit = MKT_DELTA_H_KJ_MOL, None
    gaps: list[float] = []
    for spec in rules:
        if spec.field_name != field or not spec.enabled:
            continue
        if spec.max_gap_s is not None:
            gaps.append(spec.max_gap_s)
        if isinstance(spec, MktRule):
            delta_h, mkt_limit = float(spec.delta_h), float(spec.limit)
        elif isinstance(spec, ThresholdRule | DurationRule):
            lows, highs = (
                (thr_low, thr_high) if isinstance(spec, ThresholdRule) else (dur_low, dur_high)
            )
            if spec.high is not None:
                b = Band(">=" if spec.inclusive else ">", float(spec.high))
                bands[(b.op, b.limit)] = b
                highs.append(b.limit)
            if spec.low is not None:
                b = Band("<=" if spec.inclusive else "<", float(spec.low))
                bands[(b.op, b.limit)] = b
                lows.append(b.limit)
    low = max(thr_low) if thr_low else (max(dur_low) if dur_low else None)
    high = min(thr_high) if thr_high else (min(dur_high) if dur_high else None)
    ordered = sorted(bands.values(), key=lambda b: (b.op[0] == "<", -b.limit))
    return ProfileLimits(
        profile,
        field,
        description,
        tuple(ordered),
        low,
        high,
        delta_h,
        mkt_limit,
        to_ns(min(gaps)) if gaps else to_ns(DEFAULT_MAX_GAP_S),
    )
