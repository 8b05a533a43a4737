"""`particles`: airborne particle counts against EU GMP Annex 1 (2022) limits per grade and
occupancy state, at an alert or an action level.

Action levels default to Annex 1's maximum total-particle concentrations for monitoring
(Table 5; particles/m³, ≥ 0.5 µm and ≥ 5 µm, "at rest" and "in operation": see
gateway.core.standards); grade D in operation has no predetermined limit, so it is not judged
unless you give one. Alert levels are site-specific — Annex 1 asks for them to be set from
qualification and trend data, below the action level — so a `level: alert` rule needs explicit
limits or a `fraction` of the action level.

The state comes from the reading's `phase` tag (the cleanroom PLC exposes occupancy as the phase:
`at_rest` / `operation`); an unknown state is judged at rest, the stricter limit. Limits are
maxima: a count above the limit is an excursion, the limit itself is not. With `consecutive: n`
the alarm needs n readings in a row above their limit (Annex 1 asks to investigate consecutive or
regular low counts of ≥ 5 µm particles in grade A, where single counts may be false counts).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, num
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import ANNEX1_PARTICLE_LIMITS, DEFAULT_MAX_GAP_S

LEVELS = {"action": N_("action"), "alert": N_("alert")}

Grade = Literal["A", "B", "C", "D"]

FIELD_BY_SIZE = {0.5: "particles_05um_m3", 5.0: "particles_5um_m3"}


class ParticlesRule(RuleBase):
    kind: Literal["particles"] = "particles"
    grade: Grade
    size: float
    """Particle size in µm: 0.5 or 5."""
    level: Literal["action", "alert"] = "action"
    field: str = ""
    """Default by size: particles_05um_m3 / particles_5um_m3."""
    at_rest: float | None = Field(default=None, ge=0)
    in_operation: float | None = Field(default=None, ge=0)
    """Explicit limits (/m³) for this level, instead of Annex 1's (action) or `fraction` (alert)."""
    fraction: float | None = Field(default=None, gt=0, le=1)
    """Alert level as a fraction of the Annex 1 action limit."""
    state_tag: str = "phase"
    at_rest_values: list[str] = Field(default_factory=lambda: ["at_rest"])
    in_operation_values: list[str] = Field(default_factory=lambda: ["operation", "in_operation"])
    consecutive: int = Field(default=1, ge=1)
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)
    """Readings further apart than this do not count as consecutive."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "priority" not in data:
            data = {**data, "priority": "medium" if data.get("level") == "alert" else "high"}
        return data

    @model_validator(mode="after")
    def _check(self) -> ParticlesRule:
        if self.size not in FIELD_BY_SIZE:
            raise ValueError("'size' must be 0.5 or 5 (µm)")
        if not self.field:
            object.__setattr__(self, "field", FIELD_BY_SIZE[self.size])
        explicit = self.at_rest is not None or self.in_operation is not None
        if self.level == "alert" and not explicit and self.fraction is None:
            raise ValueError("an alert level needs 'at_rest'/'in_operation' limits or 'fraction'")
        if self.level == "action" and self.fraction is not None:
            raise ValueError("'fraction' applies to alert levels only")
        return self

    def limits(self) -> tuple[float | None, float | None]:
        """(at rest, in operation) limits of this rule's level, /m³; None = not judged."""
        rest, oper = ANNEX1_PARTICLE_LIMITS[(self.grade, self.size)]
        if self.level == "alert" and self.fraction is not None:
            rest = None if rest is None else rest * self.fraction
            oper = None if oper is None else oper * self.fraction
        if self.at_rest is not None or self.in_operation is not None:
            rest = self.at_rest if self.at_rest is not None else rest
            oper = self.in_operation if self.in_operation is not None else oper
        return rest, oper

    def build(self, point: PointSink) -> Evaluator:
        return ParticlesEvaluator(self, point)


class ParticlesEvaluator(Evaluator):
    __slots__ = (
        "active",
        "count",
        "last_ts",
        "max_gap",
        "oper",
        "oper_values",
        "peak",
        "rest",
        "rest_values",
        "run_start",
        "spec",
    )

    def __init__(self, spec: ParticlesRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.rest, self.oper = spec.limits()
        self.rest_values = frozenset(spec.at_rest_values)
        self.oper_values = frozenset(spec.in_operation_values)
        self.max_gap = to_ns(spec.max_gap)
        self.count = 0
        self.run_start: int | None = None
        self.last_ts: int | None = None
        self.active = False
        self.peak: float | None = None

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None or v != v:
            return
        state = reading.tags.get(self.spec.state_tag)
        operating = state in self.oper_values and state not in self.rest_values
        limit = self.oper if operating else self.rest
        if self.last_ts is not None and ts - self.last_ts > self.max_gap:
            self.count = 0
            self.run_start = None
        self.last_ts = ts
        if limit is not None and v > limit:
            if self.count == 0:
                self.run_start = ts
                if not self.active:
                    self.peak = None
            self.count += 1
            if self.peak is None or v > self.peak:
                self.peak = v
            if not self.active and self.count >= self.spec.consecutive:
                self.active = True
                state_text = N_("in operation") if operating else N_("at rest")
                self._activate(ctx, ts, v, limit, state_text)
            return
        self.count = 0
        self.run_start = None
        if self.active:
            self.active = False
            self.point.clear(ctx, ts, ts, v, self.peak)

    def _activate(self, ctx: EvalContext, ts: int, v: float, limit: float, state: str) -> None:
        s = self.spec
        size = "≥0.5 µm" if s.size == 0.5 else "≥5 µm"
        args = {
            "grade": s.grade,
            "state": Text(state),
            "size": size,
            "value": f"{v:,.0f}".replace(",", " "),
            "level": Text(LEVELS[s.level]),
            "limit": f"{limit:,.0f}".replace(",", " "),
            "count": self.count,
            "since": Time(self.run_start or ts),
        }
        if s.consecutive > 1:
            msgid = N_(
                "grade {grade} {state}: {size} particles {value}/m³ above the {level} level "
                "{limit}/m³ in {count} consecutive readings since {since}"
            )
        else:
            msgid = N_(
                "grade {grade} {state}: {size} particles {value}/m³ above the {level} level "
                "{limit}/m³ since {since}"
            )
        self.point.activate(ctx, self.run_start or ts, ts, v, self.peak, Text(msgid, args))

    def dump(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "run_start": self.run_start,
            "last_ts": self.last_ts,
            "active": self.active,
            "peak": self.peak,
        }

    def load(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
