"""`pressure_cascade`: a cleanroom's differential pressure to the adjacent lower grade below its
minimum (EU GMP Annex 1 (2022), premises: ≥ 10 Pa between adjacent grades, monitored continuously,
alarmed with an on-delay so that door openings do not raise alarms).

Raised when `dp_pa` has been below `min_dp` continuously for `on_delay` — or for `door_delay`
when the door was open at any reading of that excursion, because an opening is expected to
collapse the cascade for a while. A door left open, or a cascade that does not recover after the
door closed, still alarms once `door_delay` has passed. Returns to normal at `min_dp + deadband`.
Without a door signal (`door_field` absent from the readings) `on_delay` applies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, Limit, PointSink, RuleBase, fmt_num, num
from alert_rules.kinds.boolean import as_bool
from alert_rules.model import Priority
from alert_rules.timers import ExcursionTimer
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import ANNEX1_MIN_DP_PA


class PressureCascadeRule(RuleBase):
    kind: Literal["pressure_cascade"] = "pressure_cascade"
    priority: Priority = Priority.HIGH
    field: str = "dp_pa"
    min_dp: float = ANNEX1_MIN_DP_PA
    """Pa; the cascade is lost below it (exactly `min_dp` is fine)."""
    deadband: float = Field(default=0.5, ge=0)
    on_delay: Duration = 10.0
    """Door closed: filters transients of the HVAC control loop."""
    door_field: str | None = "door_open"
    door_delay: Duration = 60.0
    """On-delay when a door was open during the excursion."""
    off_delay: Duration = 0.0
    max_gap: Duration = Field(default=300.0, gt=0)
    unit: str = " Pa"

    @model_validator(mode="after")
    def _check(self) -> PressureCascadeRule:
        if self.door_delay < self.on_delay:
            raise ValueError("'door_delay' must be at least 'on_delay'")
        return self

    def build(self, point: PointSink) -> Evaluator:
        return PressureCascadeEvaluator(self, point)


class PressureCascadeEvaluator(Evaluator):
    __slots__ = ("closed_delay", "door_delay", "door_seen", "limit", "spec", "timer")

    def __init__(self, spec: PressureCascadeRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.limit = Limit(False, spec.min_dp, False, spec.deadband)
        self.closed_delay = to_ns(spec.on_delay)
        self.door_delay = to_ns(spec.door_delay)
        self.timer = ExcursionTimer(
            self.closed_delay, to_ns(spec.off_delay), to_ns(spec.max_gap), False
        )
        self.door_seen = False
        """The door was open at some reading of the current excursion."""

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None:
            return
        timer = self.timer
        # The span up to this reading is judged with the delay decided by earlier readings
        # (sample and hold: the door state holds until the next reading).
        timer.feed(ctx, ts, self.limit.status(v), v, self)
        field = self.spec.door_field
        door = as_bool(reading.fields[field]) if field and field in reading.fields else None
        if timer.active or timer.run_start is not None:
            self.door_seen = self.door_seen or bool(door)
        else:
            self.door_seen = bool(door)
        timer.on_delay = self.door_delay if self.door_seen else self.closed_delay

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        s = self.spec
        delay = Dur(self.timer.on_delay / 1e9)
        if self.door_seen:
            why = Text(N_(" (door opened; door delay {delay})"), {"delay": delay})
        else:
            why = Text(N_(" for {delay}"), {"delay": delay})
        text = Text(
            N_(
                "pressure cascade lost: {field} < {min_dp}{unit}{why} "
                "since {since} (value {value}{unit}, lowest {peak})"
            ),
            {
                "field": s.field,
                "min_dp": fmt_num(s.min_dp),
                "unit": s.unit,
                "why": why,
                "since": Time(started),
                "value": fmt_num(value),
                "peak": fmt_num(peak),
            },
        )
        self.point.activate(ctx, started, at, value, peak, text)

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.point.clear(ctx, ended, at, value, peak)

    def dump(self) -> dict[str, Any]:
        return {"timer": self.timer.dump(), "door_seen": self.door_seen}

    def load(self, state: dict[str, Any]) -> None:
        self.timer.load(state["timer"])
        self.door_seen = state["door_seen"]
        self.timer.on_delay = self.door_delay if self.door_seen else self.closed_delay
