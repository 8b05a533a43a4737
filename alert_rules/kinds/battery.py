"""`battery_low`: logger battery at or below `low` percent; returns to normal above low + deadband
(a new battery), so a voltage wobbling around the limit does not chatter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alert_rules.kinds.base import Evaluator, Limit, PointSink, RuleBase
from alert_rules.kinds.threshold import ExcursionEvaluator
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_
from gateway.core.standards import ON_OFF_MAX_GAP_S


class BatteryLowRule(RuleBase):
    kind: Literal["battery_low"] = "battery_low"
    priority: Priority = Priority.LOW
    field: str = "battery_pct"
    low: float = 20.0
    deadband: float = Field(default=5.0, ge=0)
    on_delay: Duration = 0.0
    max_gap: Duration = Field(default=ON_OFF_MAX_GAP_S, gt=0)

    def build(self, point: PointSink) -> Evaluator:
        return ExcursionEvaluator(
            self.field,
            point,
            Limit(False, self.low, True, self.deadband),
            to_ns(self.on_delay),
            0,
            to_ns(self.max_gap),
            " %",
            N_("battery low"),
        )
