"""`mkt`: mean kinetic temperature over a rolling window above the product's limit (USP <1079.2>).

USP judges an excursion by the MKT over 24 h for 2-8 °C products (limit 8 °C) and over 30 days
for controlled-room-temperature products (limit 25 °C), including the excursion. Not meaningful
for frozen products. ΔH defaults to 83.144 kJ/mol (ΔH/R = 10 000 K); set it per product.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, num
from alert_rules.mkt import RollingMKT
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import DEFAULT_MAX_GAP_S, MKT_DELTA_H_KJ_MOL


class MktRule(RuleBase):
    kind: Literal["mkt"] = "mkt"
    field: str = "temp_c"
    limit: float
    """°C; raised when the window's MKT is above it."""
    inclusive: bool = False
    window: Duration = Field(default=86400.0, gt=0)
    delta_h: float = Field(default=MKT_DELTA_H_KJ_MOL, gt=0)
    """Activation energy in kJ/mol."""
    bucket: Duration | None = None
    """Resolution of the rolling window; window/720 by default (2 min for 24 h, 1 h for 30 d)."""
    min_coverage: float = Field(default=0.5, ge=0, le=1)
    """Fraction of the window that must hold readings before the MKT is judged."""
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)

    @model_validator(mode="after")
    def _check(self) -> MktRule:
        if self.bucket is not None and not 0 < self.bucket <= self.window:
            raise ValueError("'bucket' must be > 0 and at most 'window'")
        return self

    def build(self, point: PointSink) -> Evaluator:
        bucket = self.bucket or self.window / 720
        return MktEvaluator(
            self,
            point,
            RollingMKT(to_ns(self.window), to_ns(bucket), self.delta_h, to_ns(self.max_gap)),
        )


class MktEvaluator(Evaluator):
    __slots__ = ("active", "mkt", "peak", "spec")

    def __init__(self, spec: MktRule, point: PointSink, mkt: RollingMKT) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.mkt = mkt
        self.active = False
        self.peak: float | None = None

    def current(self) -> tuple[float | None, float]:
        """(MKT °C, covered fraction of the window) as of the last reading."""
        m = self.mkt
        return m.value(), m.covered_s() / m.window_s()

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        if v is None:
            return
        m = self.mkt
        m.add(ts, v)
        mkt = m.value()
        spec = self.spec
        above = (
            mkt is not None
            and m.covered_s() >= spec.min_coverage * m.window_s()
            and (mkt > spec.limit or (spec.inclusive and mkt == spec.limit))
        )
        if above:
            if self.peak is None or mkt > self.peak:  # type: ignore[operator]
                self.peak = mkt
            if not self.active:
                self.active = True
                op = "≥" if spec.inclusive else ">"
                text = Text(
                    N_(
                        "MKT over {window} {mkt:.2f} °C {op} {limit:g} °C at {at} "
                        "(ΔH {dh:g} kJ/mol)"
                    ),
                    {
                        "window": Dur(spec.window),
                        "mkt": mkt,
                        "op": op,
                        "limit": spec.limit,
                        "at": Time(ts),
                        "dh": spec.delta_h,
                    },
                )
                self.point.activate(ctx, ts, ts, mkt, self.peak, text)
        elif self.active:
            self.active = False
            self.point.clear(ctx, ts, ts, mkt, self.peak)
            self.peak = None

    def dump(self) -> dict[str, Any]:
        return {"mkt": self.mkt.dump(), "active": self.active, "peak": self.peak}

    def load(self, state: dict[str, Any]) -> None:
        self.mkt.load(state["mkt"])
        self.active = state["active"]
        self.peak = state["peak"]
