"""`f0`: F0 (equivalent minutes at 121.1 °C) of a steam sterilisation cycle, with its verdict.

    F0 = Σ Δt · 10^((T - T_ref) / z)        Δt in minutes, z = 10 °C, T_ref = 121.1 °C

Integrated on event time over the actual sample intervals with the **trapezoid rule on the
lethal rate** L = 10^((T - T_ref)/z): an interval [a, b] adds (L(a) + L(b)) / 2 · (b - a). It is
exact for a constant temperature and, unlike a left Riemann sum, does not under-count the heat-up
and over-count the cool-down when the logging interval is long. An interval counts when its left
reading is in one of `phases` (None: the whole cycle).

A data gap (an interval longer than `max_gap`) does not fabricate lethality: it adds
min(L(a), L(b)) · max_gap — as if the lower of the two temperatures at its ends had held for
`max_gap` — and nothing for the rest; the cycle is flagged (`gaps`, `gap_s`) and, with
`gap_fails` (default), fails.

The cycle passes when it holds `temp` (≥ 121 °C) continuously for `duration` (15 min), as the
`hold` kind measures it, F0 ≥ `target`, and no gap or implausible reading (`sensor_min` ..
`sensor_max`) spoils the record; a short hold alarms as soon as the hold phase ends. z and T_ref
are configurable, so the same kind gives F_H for dry heat (z = 20 °C, T_ref = 170 °C).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alert_rules.kinds.base import PointSink
from alert_rules.kinds.hold import HoldEvaluator, HoldRule
from alert_rules.units import Duration
from gateway.core.i18n import N_, Text
from gateway.core.standards import (
    F0_T_REF_C,
    F0_Z_C,
    STEAM_STERILISATION_C,
    STEAM_STERILISATION_HOLD_S,
)

MIN_NS = 60e9


def lethal_rate(temp_c: float, t_ref: float = F0_T_REF_C, z: float = F0_Z_C) -> float:
    """Lethality per minute at temp_c: 1.0 at T_ref, x10 per z degrees."""
    return float(10.0 ** ((temp_c - t_ref) / z))


class F0Rule(HoldRule):
    kind: Literal["f0"] = "f0"  # type: ignore[assignment]
    temp: float = STEAM_STERILISATION_C
    duration: Duration = Field(default=STEAM_STERILISATION_HOLD_S, gt=0)
    target: float = Field(gt=0)
    """Minimum F0 in minutes for the cycle to pass."""
    z: float = Field(default=F0_Z_C, gt=0)
    t_ref: float = F0_T_REF_C

    def build(self, point: PointSink) -> F0Evaluator:
        return F0Evaluator(self, point)


class F0Evaluator(HoldEvaluator):
    __slots__ = ("f0", "last_rate")

    def __init__(self, spec: F0Rule, point: PointSink) -> None:
        self.f0 = 0.0
        self.last_rate: float | None = None
        super().__init__(spec, point)

    def _reset(self) -> None:
        super()._reset()
        self.f0 = 0.0
        self.last_rate = None

    def _rate(self, v: float) -> float:
        s: F0Rule = self.spec  # type: ignore[assignment]
        try:
            return float(10.0 ** ((v - s.t_ref) / s.z))
        except OverflowError:
            return float("inf")

    def _advance(self, ts: int, v: float | None) -> None:
        super()._advance(ts, v)
        a = self.last_rate
        last = self.last_ts
        if a is None or last is None:
            return
        b = a if v is None else self._rate(v)
        dt = ts - last
        if dt > self.max_gap:
            self.f0 += min(a, b) * self.max_gap / MIN_NS
        else:
            self.f0 += (a + b) / 2 * dt / MIN_NS

    def _sample(self, ts: int, v: float | None, counted: bool) -> None:
        self.last_rate = self._rate(v) if counted and v is not None else None

    def _value(self) -> float:
        return self.f0

    def _more_reasons(self) -> list[Text]:
        s: F0Rule = self.spec  # type: ignore[assignment]
        if self.f0 >= s.target:
            return []
        return [Text(N_("F0 {f0:.2f} min < {target:g} min"), {"f0": self.f0, "target": s.target})]

    def _result(self) -> dict[str, Any]:
        s: F0Rule = self.spec  # type: ignore[assignment]
        return {"f0_min": self.f0, "f0_target_min": s.target, **super()._result()}

    def dump(self) -> dict[str, Any]:
        return {**super().dump(), "f0": self.f0, "last_rate": self.last_rate}
