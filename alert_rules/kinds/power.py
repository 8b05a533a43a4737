"""`power_failure`: mains power lost (`power_ok` false) — China GSP requires an alarm on power
failure, locally and by SMS."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alert_rules.kinds.base import Evaluator, PointSink, RuleBase
from alert_rules.kinds.boolean import BoolEvaluator
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_
from gateway.core.standards import ON_OFF_MAX_GAP_S


class PowerFailureRule(RuleBase):
    kind: Literal["power_failure"] = "power_failure"
    priority: Priority = Priority.HIGH
    field: str = "power_ok"
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0
    max_gap: Duration = Field(default=ON_OFF_MAX_GAP_S, gt=0)

    def build(self, point: PointSink) -> Evaluator:
        return BoolEvaluator(
            self.field,
            point,
            False,
            to_ns(self.on_delay),
            to_ns(self.off_delay),
            to_ns(self.max_gap),
            N_("power failure"),
        )
