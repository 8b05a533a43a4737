"""`phase_threshold`: a limit or a band that applies only in some process phases (recipe bands).

A chamber must stay ≥ 121 °C while the autoclave's phase is `hold`, but not during heat-up; a
freeze-dryer's chamber pressure must stay within 0.02-1 mbar in primary drying, but is at
atmospheric pressure while loading. The phase comes from the reading's `phase` tag (the PLC's
recipe step, see collectors/modbus/README.md).

Give `low`, `high` or both (a band); like `threshold`, limits are alarm limits, inclusive unless
`inclusive: false` — a recipe band "0.02-1 mbar allowed" is `low: 0.02, high: 1, inclusive:
false`. In the listed phases the rule behaves as `threshold` (on-delay, off-delay, deadband);
outside them, and for `settle` after a phase begins (a shelf needs time to reach its
set-point), the value counts as normal, so an active alarm returns to normal when the phase ends.
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
    fmt_num,
    num,
)
from alert_rules.timers import ENTER, NORMAL, UNKNOWN, ExcursionTimer
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import DEFAULT_MAX_GAP_S


class PhaseThresholdRule(RuleBase):
    kind: Literal["phase_threshold"] = "phase_threshold"
    field: str
    phases: list[str] = Field(min_length=1)
    phase_tag: str = "phase"
    low: float | None = None
    high: float | None = None
    inclusive: bool = True
    deadband: float = Field(default=0.0, ge=0)
    settle: Duration = 0.0
    """Readings within this time of the phase's start are not judged."""
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)
    unit: str = ""

    @model_validator(mode="after")
    def _check(self) -> PhaseThresholdRule:
        if self.low is None and self.high is None:
            raise ValueError("give 'low', 'high' or both")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("'low' must be below 'high'")
        return self

    def build(self, point: PointSink) -> Evaluator:
        return PhaseThresholdEvaluator(self, point)


class PhaseThresholdEvaluator(Evaluator):
    __slots__ = (
        "hi",
        "lo",
        "phase",
        "phase_since",
        "phases",
        "run_phase",
        "settle",
        "spec",
        "timer",
    )

    def __init__(self, spec: PhaseThresholdRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.phases = frozenset(spec.phases)
        self.lo = (
            None if spec.low is None else Limit(False, spec.low, spec.inclusive, spec.deadband)
        )
        self.hi = (
            None if spec.high is None else Limit(True, spec.high, spec.inclusive, spec.deadband)
        )
        side = None if self.lo is not None and self.hi is not None else self.hi is not None
        self.timer = ExcursionTimer(
            to_ns(spec.on_delay), to_ns(spec.off_delay), to_ns(spec.max_gap), side
        )
        self.settle = to_ns(spec.settle)
        self.phase: str | None = None
        self.phase_since = 0
        self.run_phase: str | None = None
        """Phase of the latest reading beyond the limit (named in the alert)."""

    def status(self, v: float) -> int:
        if v != v:
            return UNKNOWN
        a = self.lo.status(v) if self.lo is not None else NORMAL
        b = self.hi.status(v) if self.hi is not None else NORMAL
        return a if a > b else b

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None:
            return
        phase = reading.tags.get(self.spec.phase_tag)
        if phase != self.phase:
            self.phase = phase
            self.phase_since = ts
        if phase in self.phases and ts - self.phase_since >= self.settle:
            st = self.status(v)
            if st == ENTER:
                self.run_phase = phase
        else:
            st = NORMAL
        self.timer.feed(ctx, ts, st, v, self)

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        s = self.spec
        lim = self.lo or self.hi
        if self.lo is not None and self.hi is not None:
            what = Text(
                N_("outside {low}..{high}{unit}"),
                {"low": fmt_num(s.low), "high": fmt_num(s.high), "unit": s.unit},
            )
        else:
            assert lim is not None
            what = Text(
                "{op} {limit}{unit}", {"op": lim.op, "limit": fmt_num(lim.limit), "unit": s.unit}
            )
        args: dict[str, Any] = {
            "phase": self.run_phase,
            "field": s.field,
            "what": what,
            "since": Time(started),
            "value": fmt_num(value),
            "unit": s.unit,
        }
        if self.timer.on_delay:
            args["delay"] = Dur(self.timer.on_delay / 1e9)
            msgid = N_(
                "phase {phase}: {field} {what} for {delay} since {since} (value {value}{unit})"
            )
        else:
            msgid = N_("phase {phase}: {field} {what} since {since} (value {value}{unit})")
        self.point.activate(ctx, started, at, value, peak, Text(msgid, args))

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.point.clear(ctx, ended, at, value, peak)

    def dump(self) -> dict[str, Any]:
        return {
            "timer": self.timer.dump(),
            "phase": self.phase,
            "phase_since": self.phase_since,
            "run_phase": self.run_phase,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.timer.load(state["timer"])
        self.phase = state["phase"]
        self.phase_since = state["phase_since"]
        self.run_phase = state["run_phase"]
