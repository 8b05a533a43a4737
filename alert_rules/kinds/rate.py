"""`rate_of_change`: the value rises or falls faster than a limit (units per minute).

The rate is taken against the newest reading at least `window` old (the oldest one while the
history is shorter; `window: 0` = the previous reading), so a noisy sensor can be judged over a
few minutes rather than sample to sample. Readings further apart than `max_gap` give no rate.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, fmt_num, num
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import DEFAULT_MAX_GAP_S


class RateOfChangeRule(RuleBase):
    kind: Literal["rate_of_change"] = "rate_of_change"
    field: str
    max_rise: float | None = Field(default=None, gt=0)
    """Per minute."""
    max_fall: float | None = Field(default=None, gt=0)
    """Per minute, as a positive number."""
    window: Duration = 0.0
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)
    unit: str = ""

    @model_validator(mode="after")
    def _check(self) -> RateOfChangeRule:
        if self.max_rise is None and self.max_fall is None:
            raise ValueError("give 'max_rise', 'max_fall' or both")
        return self

    def build(self, point: PointSink) -> Evaluator:
        return RateEvaluator(self, point)


class RateEvaluator(Evaluator):
    __slots__ = ("active", "fall", "hist", "max_gap", "peak", "rise", "spec", "window")

    def __init__(self, spec: RateOfChangeRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.rise = spec.max_rise
        self.fall = spec.max_fall
        self.window = to_ns(spec.window)
        self.max_gap = to_ns(spec.max_gap)
        self.hist: deque[tuple[int, float]] = deque()
        self.active = False
        self.peak: float | None = None

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None or v != v:
            return
        hist = self.hist
        if hist and ts - hist[-1][0] > self.max_gap:
            hist.clear()
        while len(hist) > 1 and ts - hist[1][0] >= self.window:
            hist.popleft()
        rate = None
        if hist:
            t0, v0 = hist[0]
            if ts > t0:
                rate = (v - v0) * 60e9 / (ts - t0)
        hist.append((ts, v))
        if rate is None:
            return
        bad = (self.rise is not None and rate >= self.rise) or (
            self.fall is not None and -rate >= self.fall
        )
        if bad:
            if self.peak is None or abs(rate) > abs(self.peak):
                self.peak = rate
            if not self.active:
                self.active = True
                unit = self.spec.unit
                limits = (
                    f"{'+' + fmt_num(self.rise) if self.rise else ''}"
                    f"{' / ' if self.rise and self.fall else ''}"
                    f"{'-' + fmt_num(self.fall) if self.fall else ''}"
                )
                text = Text(
                    N_("{field} changing at {rate}{unit}/min (limit {limits}{unit}/min) at {at}"),
                    {
                        "field": self.field,
                        "rate": f"{rate:+.3g}",
                        "unit": unit,
                        "limits": limits,
                        "at": Time(ts),
                    },
                )
                self.point.activate(ctx, hist[0][0], ts, rate, self.peak, text)
        elif self.active:
            self.active = False
            self.point.clear(ctx, ts, ts, rate, self.peak)
            self.peak = None

    def dump(self) -> dict[str, Any]:
        return {"hist": [list(x) for x in self.hist], "active": self.active, "peak": self.peak}

    def load(self, state: dict[str, Any]) -> None:
        self.hist = deque((int(t), float(v)) for t, v in state["hist"])
        self.active = state["active"]
        self.peak = state["peak"]
