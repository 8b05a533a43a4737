"""`sensor_fault`: the sensor, not the product, is wrong — value outside the sensor's physical
range (or not a number), or flatlined (unchanged within `flatline_tolerance` for `flatline`).

A reading outside the physical range is a broken or disconnected probe, so it is reported as a
fault rather than as a temperature excursion (China GSP: sensor values are never corrected).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, fmt_num, num
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading


class SensorFaultRule(RuleBase):
    kind: Literal["sensor_fault"] = "sensor_fault"
    priority: Priority = Priority.HIGH
    field: str
    min: float | None = None
    max: float | None = None
    flatline: Duration | None = None
    flatline_tolerance: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SensorFaultRule:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("'min' must be below 'max'")
        if self.flatline is not None and self.flatline <= 0:
            raise ValueError("'flatline' must be > 0")
        return self

    def build(self, point: PointSink) -> Evaluator:
        return SensorFaultEvaluator(self, point)


class SensorFaultEvaluator(Evaluator):
    __slots__ = ("active", "flat", "hi", "lo", "ref_ts", "ref_v", "tol")

    def __init__(self, spec: SensorFaultRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.lo = -math.inf if spec.min is None else spec.min
        self.hi = math.inf if spec.max is None else spec.max
        self.flat = to_ns(spec.flatline) if spec.flatline else 0
        self.tol = spec.flatline_tolerance
        self.ref_ts: int | None = None
        self.ref_v = 0.0
        self.active = False

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None:
            return
        text: Text | None = None
        started = at = ts
        if not (self.lo <= v <= self.hi):  # also true for NaN
            self.ref_ts = None
            text = Text(
                N_(
                    "sensor fault: {field} = {value} outside the sensor's range "
                    "[{lo}, {hi}] at {at}"
                ),
                {
                    "field": self.field,
                    "value": fmt_num(v),
                    "lo": fmt_num(self.lo),
                    "hi": fmt_num(self.hi),
                    "at": Time(ts),
                },
            )
        elif self.flat:
            ref = self.ref_ts
            if ref is not None and abs(v - self.ref_v) <= self.tol:
                if ts - ref >= self.flat:
                    started, at = ref, ref + self.flat
                    text = Text(
                        N_("sensor fault: {field} flat at {value} for {duration} since {since}"),
                        {
                            "field": self.field,
                            "value": fmt_num(self.ref_v),
                            "duration": Dur(self.flat / 1e9),
                            "since": Time(ref),
                        },
                    )
            else:
                self.ref_ts, self.ref_v = ts, v
        if text is not None:
            if not self.active:
                self.active = True
                self.point.activate(ctx, started, at, v, v, text)
        elif self.active:
            self.active = False
            self.point.clear(ctx, ts, ts, v, None)

    def dump(self) -> dict[str, Any]:
        return {"ref_ts": self.ref_ts, "ref_v": self.ref_v, "active": self.active}

    def load(self, state: dict[str, Any]) -> None:
        self.ref_ts, self.ref_v, self.active = state["ref_ts"], state["ref_v"], state["active"]
