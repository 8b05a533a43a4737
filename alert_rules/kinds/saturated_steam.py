"""`saturated_steam`: chamber temperature consistent with the saturation temperature of the
measured chamber pressure (EN 285: during the plateau they differ by at most 2 K).

Steam sterilisation relies on saturated steam. If the chamber is colder than the saturation
temperature of its pressure, air or other non-condensable gas is present (partial pressure); if
it is hotter, the steam is superheated (dry). Both kill less than the temperature suggests, which
F0 computed from temperature alone cannot see.

The saturation temperature comes from the IAPWS-IF97 region-4 equations (the industrial standard
for water and steam, accurate to well under 0.01 K here). The pressure is absolute unless
`gauge: true`. Judged while `phases` (default `hold`) apply and the chamber is at least
`min_temp`; elsewhere the reading counts as normal.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, fmt_num, num
from alert_rules.timers import ENTER, NORMAL, STAY, UNKNOWN, ExcursionTimer
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import DEFAULT_MAX_GAP_S

# IAPWS-IF97, region 4 (saturation line), coefficients n1..n10.
_N = (
    0.11670521452767e4,
    -0.72421316703206e6,
    -0.17073846940092e2,
    0.12020824702470e5,
    -0.32325550322333e7,
    0.14915108613530e2,
    -0.48232657361591e4,
    0.40511340542057e6,
    -0.23855557567849,
    0.65017534844798e3,
)
ATM_KPA = 101.325
PRESSURE_UNITS_KPA = {"kPa": 1.0, "bar": 100.0, "mbar": 0.1, "MPa": 1000.0, "Pa": 0.001}


def tsat_c(pressure_kpa: float) -> float:
    """Saturation temperature (°C) at an absolute pressure (kPa); IF97 eq. 31."""
    n1, n2, n3, n4, n5, n6, n7, n8, n9, n10 = _N
    beta = (pressure_kpa / 1000.0) ** 0.25
    e = beta * beta + n3 * beta + n6
    f = n1 * beta * beta + n4 * beta + n7
    g = n2 * beta * beta + n5 * beta + n8
    d = 2 * g / (-f - math.sqrt(f * f - 4 * e * g))
    t = (n10 + d - math.sqrt((n10 + d) ** 2 - 4 * (n9 + n10 * d))) / 2
    return t - 273.15


def psat_kpa(temp_c: float) -> float:
    """Saturation pressure (absolute kPa) at temp_c; IF97 eq. 30."""
    n1, n2, n3, n4, n5, n6, n7, n8, n9, n10 = _N
    t = temp_c + 273.15
    theta = t + n9 / (t - n10)
    a = theta * theta + n1 * theta + n2
    b = n3 * theta * theta + n4 * theta + n5
    c = n6 * theta * theta + n7 * theta + n8
    return float((2 * c / (-b + math.sqrt(b * b - 4 * a * c))) ** 4 * 1000.0)


class SaturatedSteamRule(RuleBase):
    kind: Literal["saturated_steam"] = "saturated_steam"
    field: str = "chamber_temp_c"
    pressure_field: str = "chamber_pressure_kpa"
    pressure_unit: Literal["kPa", "bar", "mbar", "MPa", "Pa"] = "kPa"
    gauge: bool = False
    """Pressure relative to the atmosphere (adds 101.325 kPa)."""
    tolerance: float = Field(default=2.0, gt=0)
    """Kelvin; raised when |T - T_sat(p)| is above it."""
    deadband: float = Field(default=0.0, ge=0)
    phases: list[str] | None = Field(default_factory=lambda: ["hold"])
    """Phase-tag values in which it is judged; None: always."""
    phase_tag: str = "phase"
    min_temp: float = 100.0
    """Below this chamber temperature there is no steam to judge."""
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)

    def build(self, point: PointSink) -> Evaluator:
        return SaturatedSteamEvaluator(self, point)


class SaturatedSteamEvaluator(Evaluator):
    __slots__ = ("delta", "kpa", "offset", "phases", "pressure", "spec", "temp", "timer")

    def __init__(self, spec: SaturatedSteamRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.kpa = PRESSURE_UNITS_KPA[spec.pressure_unit]
        self.offset = ATM_KPA if spec.gauge else 0.0
        self.phases = None if spec.phases is None else frozenset(spec.phases)
        self.timer = ExcursionTimer(
            to_ns(spec.on_delay), to_ns(spec.off_delay), to_ns(spec.max_gap), None
        )
        self.delta = 0.0
        """T - T_sat(p) of the worst reading of the current excursion (with its p and T)."""
        self.pressure = 0.0
        self.temp = 0.0

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        t = num(value)
        if t is None:
            return
        s = self.spec
        if self.phases is not None and reading.tags.get(s.phase_tag) not in self.phases:
            st = NORMAL
        elif t != t:
            st = UNKNOWN
        elif t < s.min_temp:
            st = NORMAL
        else:
            p = num(reading.fields.get(s.pressure_field, math.nan))
            p_kpa = math.nan if p is None else p * self.kpa + self.offset
            if not p_kpa > 0.62:  # below the triple point (or NaN): no saturation line
                st = UNKNOWN
            else:
                d = t - tsat_c(p_kpa)
                a = abs(d)
                st = ENTER if a > s.tolerance else STAY if a > s.tolerance - s.deadband else NORMAL
                if st == ENTER:
                    timer = self.timer
                    fresh = not timer.active and timer.run_start is None
                    if fresh or a > abs(self.delta):  # the worst sample of the excursion
                        self.delta, self.pressure, self.temp = d, p_kpa, t
        self.timer.feed(ctx, ts, st, t, self)

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        s, d = self.spec, self.delta
        why = (
            N_("superheated (dry) steam")
            if d > 0
            else N_("air or non-condensable gas in the chamber")
        )
        args: dict[str, Any] = {
            "field": s.field,
            "temp": f"{self.temp:.2f}",
            "delta": f"{d:+.1f}",
            "tsat": f"{tsat_c(self.pressure):.2f}",
            "pressure": f"{self.pressure:.1f}",
            "tolerance": fmt_num(s.tolerance),
            "why": Text(why),
            "since": Time(started),
        }
        if self.timer.on_delay:
            args["delay"] = Dur(self.timer.on_delay / 1e9)
            msgid = N_(
                "steam not saturated: {field} {temp} °C is {delta} K from {tsat} °C, the "
                "saturation temperature at {pressure} kPa (limit ±{tolerance} K for {delay}): "
                "{why}, since {since}"
            )
        else:
            msgid = N_(
                "steam not saturated: {field} {temp} °C is {delta} K from {tsat} °C, the "
                "saturation temperature at {pressure} kPa (limit ±{tolerance} K): "
                "{why}, since {since}"
            )
        self.point.activate(ctx, started, at, d, d, Text(msgid, args))

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.point.clear(ctx, ended, at, self.delta, self.delta)

    def dump(self) -> dict[str, Any]:
        return {
            "timer": self.timer.dump(),
            "delta": self.delta,
            "pressure": self.pressure,
            "temp": self.temp,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.timer.load(state["timer"])
        self.delta = state["delta"]
        self.pressure = state["pressure"]
        self.temp = state["temp"]
