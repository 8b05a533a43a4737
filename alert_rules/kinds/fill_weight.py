"""`fill_weight`: filled vials outside the fill-weight tolerance (in-line checkweigher).

A weight is out of tolerance when it differs from the target by more than `tolerance` (absolute)
or `tolerance_pct` (% of the target). The target is fixed (`target`) or read from each reading
(`target_field`, e.g. the recipe's `target_weight_g` register). The checkweigher rejects single
bad vials by itself; the alarm is about the process drifting: it is raised when at least `count`
of the last `window` weights were out of tolerance (1 of 1: every bad vial; 3 of 3: three in a
row; 3 of 10: a drifting filler) and returns to normal when fewer are. Only readings in
`phases` count (a filler reports 0 g while it is set up); leaving them resets the window.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, fmt_num, num
from gateway.core.i18n import N_, Text, Time
from gateway.core.reading import FieldValue, Reading


class FillWeightRule(RuleBase):
    kind: Literal["fill_weight"] = "fill_weight"
    field: str = "fill_weight_g"
    target: float | None = Field(default=None, gt=0)
    target_field: str | None = None
    tolerance: float | None = Field(default=None, gt=0)
    tolerance_pct: float | None = Field(default=None, gt=0, lt=100)
    count: int = Field(default=1, ge=1)
    window: int = Field(default=1, ge=1, le=10_000)
    phases: list[str] | None = None
    phase_tag: str = "phase"
    unit: str = " g"

    @model_validator(mode="after")
    def _check(self) -> FillWeightRule:
        if (self.target is None) == (self.target_field is None):
            raise ValueError("give exactly one of 'target' or 'target_field'")
        if (self.tolerance is None) == (self.tolerance_pct is None):
            raise ValueError("give exactly one of 'tolerance' or 'tolerance_pct'")
        if self.count > self.window:
            raise ValueError("'count' must be at most 'window'")
        return self

    def build(self, point: PointSink) -> Evaluator:
        return FillWeightEvaluator(self, point)


class FillWeightEvaluator(Evaluator):
    __slots__ = ("active", "bad", "phases", "recent", "spec", "worst")

    def __init__(self, spec: FillWeightRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.phases = None if spec.phases is None else frozenset(spec.phases)
        self.recent: deque[tuple[int, float] | None] = deque()
        """The last `window` weights: (timestamp, deviation) if out of tolerance, None if in."""
        self.bad = 0
        self.active = False
        self.worst: float | None = None
        """Largest deviation from the target (signed) of the active alarm."""

    def _reset(self, ctx: EvalContext, ts: int, value: float | None) -> None:
        self.recent.clear()
        self.bad = 0
        if self.active:
            self.active = False
            self.point.clear(ctx, ts, ts, value, self.worst)
        self.worst = None

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None or v != v:
            return
        s = self.spec
        if self.phases is not None and reading.tags.get(s.phase_tag) not in self.phases:
            self._reset(ctx, ts, None)
            return
        target = s.target
        if target is None:
            target = num(reading.fields.get(s.target_field or "", 0.0))
            if target is None or not target > 0:
                return  # no recipe target in this reading: cannot judge
        pct = s.tolerance_pct
        tol = s.tolerance if s.tolerance is not None else target * (pct or 0.0) / 100
        dev = v - target
        out = abs(dev) > tol
        recent = self.recent
        if len(recent) == s.window and recent.popleft() is not None:
            self.bad -= 1
        recent.append((ts, dev) if out else None)
        if out:
            self.bad += 1
            if self.active and abs(dev) > abs(self.worst or 0.0):
                self.worst = dev
        if self.bad >= s.count:
            if self.active:
                return
            self.active = True
            bad = [x for x in recent if x is not None]
            first = bad[0][0]
            self.worst = max((d for _t, d in bad), key=abs)
            if s.window > 1:
                what = Text(
                    N_("{bad} of the last {n} weights"), {"bad": self.bad, "n": len(recent)}
                )
            else:
                what = Text(N_("weight"))
            text = Text(
                N_(
                    "fill weight: {what} outside {target} ± {tol}{unit} "
                    "(last {value}{unit}, worst {worst}{unit}) since {since}"
                ),
                {
                    "what": what,
                    "target": fmt_num(target),
                    "tol": fmt_num(round(tol, 6)),
                    "unit": s.unit,
                    "value": fmt_num(v),
                    "worst": f"{self.worst:+.3g}",
                    "since": Time(first),
                },
            )
            self.point.activate(ctx, first, ts, v, self.worst, text)
        elif self.active:
            self.active = False
            self.point.clear(ctx, ts, ts, v, self.worst)
            self.worst = None

    def dump(self) -> dict[str, Any]:
        return {
            "recent": [None if x is None else list(x) for x in self.recent],
            "bad": self.bad,
            "active": self.active,
            "worst": self.worst,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.recent = deque(None if x is None else (int(x[0]), x[1]) for x in state["recent"])
        self.bad = state["bad"]
        self.active = state["active"]
        self.worst = state["worst"]
