"""`door_open`: a door left open longer than `max_open` (a short opening to load goods is normal,
so the alarm has an on-delay rather than firing on every opening)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alert_rules.kinds.base import Evaluator, PointSink, RuleBase
from alert_rules.kinds.boolean import BoolEvaluator
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_
from gateway.core.standards import ON_OFF_MAX_GAP_S


class DoorOpenRule(RuleBase):
    kind: Literal["door_open"] = "door_open"
    field: str = "door_open"
    max_open: Duration = 300.0
    max_gap: Duration = Field(default=ON_OFF_MAX_GAP_S, gt=0)

    def build(self, point: PointSink) -> Evaluator:
        return BoolEvaluator(
            self.field, point, True, to_ns(self.max_open), 0, to_ns(self.max_gap), N_("door open")
        )
