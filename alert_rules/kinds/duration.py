"""`duration`: excursion timers of temperature recorders and shipping indicators.

* instant — raised on the first reading beyond the limit;
* single — raised when one continuous excursion reaches `duration` (WHO PQS E006 30-day recorder:
  ≤ -0.5 °C for 60 min, > 8 °C for 10 h);
* cumulative — raised when the total time beyond the limit reaches `duration`, counted within a
  rolling `window` or within the current shipment (`scope: shipment`, the `shipment` tag), like
  the WHO shipping indicators (≥ 30 °C for 10 h cumulative).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import (
    Evaluator,
    Limit,
    PointSink,
    RuleBase,
    check_one_limit,
    fmt_num,
    limit_from,
    num,
)
from alert_rules.kinds.threshold import ExcursionEvaluator
from alert_rules.timers import CumulativeTimer
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import DEFAULT_MAX_GAP_S


class DurationRule(RuleBase):
    kind: Literal["duration"] = "duration"
    field: str
    high: float | None = None
    low: float | None = None
    inclusive: bool = True
    timer: Literal["instant", "single", "cumulative"]
    duration: Duration = 0.0
    scope: Literal["window", "shipment"] = "window"
    """Cumulative only: count within a rolling window or within the current shipment."""
    window: Duration | None = None
    off_delay: Duration = 0.0
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)
    unit: str = ""

    @model_validator(mode="after")
    def _check(self) -> DurationRule:
        check_one_limit(self)
        if self.timer != "instant" and self.duration <= 0:
            raise ValueError(f"'duration' must be > 0 for a {self.timer} timer")
        if self.timer == "cumulative" and self.scope == "window":
            if not self.window:
                raise ValueError("a cumulative timer with scope 'window' needs 'window'")
            if self.window < self.duration:
                raise ValueError("'window' must be at least 'duration'")
        return self

    def build(self, point: PointSink) -> Evaluator:
        limit = limit_from(self)
        if self.timer == "cumulative":
            window = to_ns(self.window) if self.scope == "window" and self.window else None
            return CumulativeEvaluator(
                self.field,
                point,
                limit,
                to_ns(self.duration),
                window,
                to_ns(self.max_gap),
                self.unit,
            )
        on_delay = 0 if self.timer == "instant" else to_ns(self.duration)
        label = "single event" if self.timer == "single" else ""
        return ExcursionEvaluator(
            self.field,
            point,
            limit,
            on_delay,
            to_ns(self.off_delay),
            to_ns(self.max_gap),
            self.unit,
            label,
        )


class CumulativeEvaluator(Evaluator):
    __slots__ = ("limit", "timer", "unit")

    def __init__(
        self,
        field: str,
        point: PointSink,
        limit: Limit,
        duration: int,
        window: int | None,
        max_gap: int,
        unit: str,
    ) -> None:
        super().__init__(field, point)
        self.limit = limit
        self.timer = CumulativeTimer(duration, window, max_gap, limit.high)
        self.unit = unit

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is not None:
            self.timer.feed(ctx, ts, self.limit.status(v), v, self, reading.tags.get("shipment"))

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        t, lim = self.timer, self.limit
        if t.window is not None:
            scope = Text(N_("within {window}"), {"window": Dur(t.window / 1e9)})
        elif t.scope_key:
            scope = Text(N_("in shipment {shipment}"), {"shipment": t.scope_key})
        else:
            scope = Text(N_("cumulative"))
        text = Text(
            N_(
                "cumulative: {field} {op} {limit}{unit} for {duration} {scope}, "
                "first at {since} (peak {peak}{unit})"
            ),
            {
                "field": self.field,
                "op": lim.op,
                "limit": fmt_num(lim.limit),
                "unit": self.unit,
                "duration": Dur(t.duration / 1e9),
                "scope": scope,
                "since": Time(started),
                "peak": fmt_num(peak),
            },
        )
        self.point.activate(ctx, started, at, value, peak, text)

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.point.clear(ctx, ended, at, value, peak)

    def dump(self) -> dict[str, Any]:
        return self.timer.dump()

    def load(self, state: dict[str, Any]) -> None:
        self.timer.load(state)
