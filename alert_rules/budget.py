"""Stability budgets: how much temperature stress a product may take over its whole chain.

A product profile may carry a `budget:` (the product's stability data, as Controlant, ELPRO or
Berlinger platforms judge a shipment): the cumulative time allowed in each temperature band
(e.g. 72 h in 8-25 °C, 0 h below 0 °C), the freeze/thaw cycles allowed, and an MKT limit over a
window. A lot consumes it across all its legs (storage, trucks, cross-docks, destination):

* time in a band: per leg, the logger that spent the longest in the band (each reading holding
  for its hold time, alert_rules/weighting.py), summed over the legs;
* freeze/thaw: per leg, the logger that entered the frozen range most often, summed;
* MKT: over the legs in time order, per leg the logger with the highest MKT; the highest MKT of
  any window of `window` (or of the whole chain without one).

`consume` is pure. The gateway writes the result as `lot_budget` readings (gateway.core.schema)
and `budget_rules` are the rules that turn them into alerts: one per configured share
(`alert_at`, e.g. 50 % and 80 %), one when the budget is exhausted, one for the MKT limit and one
when a release decision needs review because its evidence changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alert_rules.exposure import (
    Segment,
    entries,
    held_segments,
    max_window_mkt,
    mkt_of,
    reach_time,
    time_in,
)
from alert_rules.kinds.base import RuleBase
from alert_rules.kinds.threshold import ThresholdRule
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.standards import MKT_DELTA_H_KJ_MOL

RESERVED_NAMES = frozenset({"freeze_thaw", "mkt", "decision"})
"""Budget item names that are not bands (the `budget` tag of lot_budget readings)."""
NEVER_STALE_S = 100 * 365 * 86_400.0
"""The budget rules' max_gap: a lot_budget reading holds until the next one, however late."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetBand(_Strict):
    """A temperature band and the cumulative time the product may spend in it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
    above: float | None = None
    """In the band when the value is > above."""
    at_least: float | None = None
    """... or >= at_least."""
    below: float | None = None
    """... and < below."""
    at_most: float | None = None
    """... or <= at_most."""
    allow: Duration
    """Cumulative time allowed over the whole chain; 0: any time in the band exhausts it."""

    @model_validator(mode="after")
    def _bounds(self) -> BudgetBand:
        if self.above is not None and self.at_least is not None:
            raise ValueError("give 'above' or 'at_least', not both")
        if self.below is not None and self.at_most is not None:
            raise ValueError("give 'below' or 'at_most', not both")
        lo, hi = self.lower, self.upper
        if lo is None and hi is None:
            raise ValueError("a band needs a bound: above/at_least and/or below/at_most")
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"the lower bound {lo:g} must be below the upper bound {hi:g}")
        if self.name in RESERVED_NAMES:
            raise ValueError(f"the name {self.name!r} is reserved")
        return self

    @property
    def lower(self) -> float | None:
        return self.above if self.above is not None else self.at_least

    @property
    def upper(self) -> float | None:
        return self.below if self.below is not None else self.at_most

    def contains(self, v: float) -> bool:
        if self.above is not None and not v > self.above:
            return False
        if self.at_least is not None and not v >= self.at_least:
            return False
        if self.below is not None and not v < self.below:
            return False
        return not (self.at_most is not None and not v <= self.at_most)

    @property
    def label(self) -> str:
        """'8 < T ≤ 25', 'T < 0'."""
        left = (
            f"{self.above:g} < "
            if self.above is not None
            else f"{self.at_least:g} \u2264 "
            if self.at_least is not None
            else ""
        )
        right = (
            f" < {self.below:g}"
            if self.below is not None
            else f" \u2264 {self.at_most:g}"
            if self.at_most is not None
            else ""
        )
        return f"{left}T{right}"


class FreezeThawBudget(_Strict):
    """Freeze/thaw cycles allowed: each entry into the frozen range (value < below) counts."""

    below: float = 0.0
    max: int = Field(ge=0)


class MktBudget(_Strict):
    """USP <1079.2> mean kinetic temperature limit over the chain."""

    limit: float
    window: Duration | None = None
    """The highest MKT of any window this long is judged; none: the whole chain."""
    delta_h: float = Field(default=MKT_DELTA_H_KJ_MOL, gt=0)
    """Activation energy, kJ/mol."""

    @field_validator("window")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("window must be positive (or left out for the whole chain)")
        return v


class StabilityBudget(_Strict):
    """The `budget:` of a product profile."""

    field: str = "temp_c"
    bands: list[BudgetBand] = Field(default_factory=list)
    freeze_thaw: FreezeThawBudget | None = None
    mkt: MktBudget | None = None
    alert_at: list[float] = Field(default_factory=lambda: [0.5, 0.8])
    """Shares consumed that raise an alert (besides 100 %, exhausted)."""
    share_priority: Priority = Priority.MEDIUM
    exhausted_priority: Priority = Priority.CRITICAL

    @field_validator("alert_at")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        for x in v:
            if not 0 < x < 1:
                raise ValueError(f"shares are between 0 and 1 (exclusive), got {x:g}")
        return sorted(set(v))

    @model_validator(mode="after")
    def _something(self) -> StabilityBudget:
        names = [b.name for b in self.bands]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate band name(s): {', '.join(dup)}")
        if not self.bands and self.freeze_thaw is None and self.mkt is None:
            raise ValueError("a budget needs bands, freeze_thaw or mkt")
        return self

    @property
    def levels(self) -> list[float]:
        """The shares alerted on, 1.0 (exhausted) last."""
        return [*self.alert_at, 1.0]


# -- consumption ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LegSeries:
    """One leg of a lot as the budget sees it: its window and its loggers' readings."""

    leg: str
    since_ns: int
    devices: dict[str, list[tuple[int, float]]]
    """device → sorted (event time ns, value) inside the leg."""
    interval_ns: int | None = None
    """The loggers' configured interval; None: learned per device."""


@dataclass(frozen=True, slots=True)
class BandUse:
    name: str
    label: str
    allowed_ns: int
    consumed_ns: int
    per_leg: dict[str, int]
    worst_device: dict[str, str]
    """leg → the device whose time is counted."""
    crossings: dict[float, int]
    """share → the event time it was reached (exhausted: 1.0)."""

    @property
    def remaining_ns(self) -> int:
        return max(0, self.allowed_ns - self.consumed_ns)

    @property
    def share(self) -> float:
        if self.allowed_ns > 0:
            return self.consumed_ns / self.allowed_ns
        return 1.0 if self.consumed_ns > 0 else 0.0

    @property
    def exhausted(self) -> bool:
        return self.consumed_ns > 0 and self.consumed_ns >= self.allowed_ns


@dataclass(frozen=True, slots=True)
class FreezeUse:
    below: float
    allowed: int
    count: int
    events: tuple[int, ...]
    """Event times of the counted freezes."""

    @property
    def share(self) -> float:
        if self.allowed > 0:
            return self.count / self.allowed
        return 1.0 if self.count > 0 else 0.0

    @property
    def exhausted(self) -> bool:
        return self.count > self.allowed or (self.allowed == 0 and self.count > 0)


@dataclass(frozen=True, slots=True)
class MktUse:
    limit: float
    window_ns: int | None
    mkt_c: float | None
    window: tuple[int, int] | None
    """The (start, end) the MKT is over."""

    @property
    def exceeded(self) -> bool:
        return self.mkt_c is not None and self.mkt_c > self.limit


@dataclass(frozen=True, slots=True)
class BudgetUse:
    bands: list[BandUse] = field(default_factory=list)
    freeze_thaw: FreezeUse | None = None
    mkt: MktUse | None = None
    last_ns: int | None = None
    """The latest instant held in any leg."""

    @property
    def exhausted(self) -> list[str]:
        """Names of what is exhausted or exceeded."""
        out = [b.name for b in self.bands if b.exhausted]
        if self.freeze_thaw is not None and self.freeze_thaw.exhausted:
            out.append("freeze_thaw")
        if self.mkt is not None and self.mkt.exceeded:
            out.append("mkt")
        return out


def consume(budget: StabilityBudget, legs: Sequence[LegSeries], gap_limit_ns: int) -> BudgetUse:
    """What the lot's legs consumed of its budget (legs in any order; they must not overlap)."""
    ordered = sorted(legs, key=lambda g: g.since_ns)
    segs: list[dict[str, list[Segment]]] = [
        {
            dev: held_segments(pts, gap_limit_ns, leg.interval_ns)
            for dev, pts in sorted(leg.devices.items())
        }
        for leg in ordered
    ]
    last = max((s[-1].end for per in segs for s in per.values() if s), default=None)
    bands = [_band_use(b, ordered, segs, budget.levels) for b in budget.bands]
    freeze = None
    if budget.freeze_thaw is not None:
        ft = budget.freeze_thaw

        def frozen(v: float) -> bool:
            return v < ft.below

        events: list[int] = []
        was_frozen = False  # a lot still frozen when it moves on is one freeze, not two
        for per in segs:
            counted = max(
                per.values(), key=lambda s: len(entries(s, frozen, was_frozen)), default=[]
            )
            events += entries(counted, frozen, was_frozen)
            if counted:
                was_frozen = frozen(counted[-1].value)
        freeze = FreezeUse(ft.below, ft.max, len(events), tuple(events))
    mkt = None
    if budget.mkt is not None:
        m = budget.mkt
        chain: list[Segment] = []
        for per in segs:
            best = max(per.values(), key=lambda s: mkt_of(s, m.delta_h) or -1e9, default=[])
            chain += best
        window_ns = to_ns(m.window) if m.window else None
        if window_ns is None:
            value = mkt_of(chain, m.delta_h)
            span = (chain[0].start, chain[-1].end) if chain else None
            mkt = MktUse(m.limit, None, value, span)
        else:
            found = max_window_mkt(chain, window_ns, m.delta_h)
            mkt = MktUse(
                m.limit,
                window_ns,
                found[0] if found else None,
                (found[1], found[2]) if found else None,
            )
    return BudgetUse(bands, freeze, mkt, last)


def _band_use(
    band: BudgetBand,
    legs: Sequence[LegSeries],
    segs: Sequence[dict[str, list[Segment]]],
    levels: Sequence[float],
) -> BandUse:
    allowed = to_ns(band.allow)
    per_leg: dict[str, int] = {}
    worst: dict[str, str] = {}
    timeline: list[Segment] = []
    for leg, per in zip(legs, segs, strict=True):
        best_dev, best_ns = "", 0
        for dev, s in per.items():
            ns = time_in(s, band.contains)
            if ns > best_ns or not best_dev:
                best_dev, best_ns = dev, ns
        per_leg[leg.leg] = best_ns
        if best_dev:
            worst[leg.leg] = best_dev
            timeline += per[best_dev]
    crossings: dict[float, int] = {}
    for level in levels:
        at = reach_time(timeline, band.contains, round(level * allowed))
        if at is not None:
            crossings[level] = at
    return BandUse(band.name, band.label, allowed, sum(per_leg.values()), per_leg, worst, crossings)


# -- the rules that turn lot_budget readings into alerts --------------------------------------
def level_id(level: float) -> str:
    """The rule id of a share: 0.5 → budget_50pct, 0.875 → budget_87_5pct."""
    return "budget_" + f"{level * 100:g}".replace(".", "_") + "pct"


def budget_rules(budget: StabilityBudget | None) -> list[RuleBase]:
    """Threshold rules on the `lot_budget` fields of one product profile: its budget's shares,
    exhaustion and MKT limit, and (for every profile) the release decision's review."""
    rules: list[RuleBase] = [_review_rule()]
    if budget is None:
        return rules
    rules += [
        ThresholdRule(
            id=level_id(level),
            field="share",
            high=level,
            priority=budget.share_priority,
            max_gap=NEVER_STALE_S,
            message=f"stability budget {{value:.0%}} consumed (alert at {level:.0%})",
            description=f"Stability budget: {level:.0%} of an allowance consumed over the chain.",
        )
        for level in budget.alert_at
    ]
    rules.append(
        ThresholdRule(
            id="budget_exhausted",
            field="share",
            high=1.0,
            priority=budget.exhausted_priority,
            latching=True,
            max_gap=NEVER_STALE_S,
            message="stability budget exhausted ({value:.0%} consumed)",
            description="Stability budget: an allowance is used up over the chain.",
        )
    )
    if budget.mkt is not None:
        rules.append(
            ThresholdRule(
                id="budget_mkt",
                field="mkt_c",
                high=budget.mkt.limit,
                inclusive=False,
                priority=budget.exhausted_priority,
                latching=True,
                max_gap=NEVER_STALE_S,
                unit=" °C",
                message="MKT over the chain {value:.2f} °C is above the limit {limit:g} °C",
                description="USP <1079.2>: MKT over the lot's chain above the product's limit.",
            )
        )
    return rules


def _review_rule() -> ThresholdRule:
    return ThresholdRule(
        id="decision_review",
        field="review",
        high=1.0,
        priority=Priority.HIGH,
        max_gap=NEVER_STALE_S,
        message="the lot's release decision needs review: its evidence changed after signing",
        description="A late upload changed the evidence of a signed release decision.",
    )
