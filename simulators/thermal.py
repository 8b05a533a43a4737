"""Thermal model of a cold space (warehouse room, fridge, truck) on a simulated clock.

The state is a deterministic function of (parameters, seed, faults, simulated time): the model
integrates on a fixed grid of `step_s` seconds from t=0, whatever times it is asked about, and draws
its random door openings from its own seeded RNG in time order. So a scenario gives the same
temperatures at 1x, 60x or as fast as possible, and tests can assert exact values.

Physics: Newton cooling towards ambient (time constant `tau_leak_s`, shorter while the door is open)
plus a bang-bang refrigeration unit of fixed capacity switched by a thermostat with hysteresis.
Each grid step is integrated exactly (linear ODE), so a coarse step stays stable. Door, compressor
and power faults act on the physics; freeze dips and heat excursions override its output for their
window only (see Excursion), so their duration is exact.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

AssetKind = Literal["warehouse_room", "fridge", "truck"]
ASSET_KINDS: tuple[AssetKind, ...] = ("warehouse_room", "fridge", "truck")
DAY_S = 86_400.0

DEFAULT_BANDS: dict[AssetKind, tuple[float, float]] = {
    "warehouse_room": (15.0, 25.0),
    "fridge": (2.0, 8.0),
    "truck": (2.0, 8.0),
}


@dataclass(frozen=True, slots=True)
class ThermalParams:
    setpoint_c: float
    hysteresis_c: float
    """Full dead band: the unit starts at setpoint + h/2 and stops at setpoint - h/2."""
    ambient_c: float
    ambient_swing_c: float = 0.0
    """Daily sinusoidal swing of the ambient (peak 15:00 UTC of the simulated day)."""
    tau_leak_s: float = 4 * 3600.0
    tau_door_s: float = 900.0
    """Extra exchange with ambient while the door is open (in parallel with the leak)."""
    capacity_c_per_s: float = 0.006
    door_openings_per_hour: float = 0.0
    door_open_min_s: float = 20.0
    door_open_max_s: float = 90.0
    rh_pct: float = 45.0
    ambient_rh_pct: float = 60.0
    tau_rh_s: float = 600.0
    initial_c: float | None = None
    """Start temperature; None draws one inside the dead band."""
    step_s: float = 10.0

    def check(self) -> None:
        """Reject parameter sets that cannot hold the setpoint: a scenario bug, not a fault."""
        if self.hysteresis_c <= 0 or self.tau_leak_s <= 0 or self.tau_door_s <= 0:
            raise ValueError("hysteresis_c, tau_leak_s and tau_door_s must be positive")
        if self.step_s <= 0 or self.step_s > 60:
            raise ValueError("step_s must be in (0, 60]")
        if self.door_open_min_s <= 0 or self.door_open_max_s < self.door_open_min_s:
            raise ValueError("need 0 < door_open_min_s <= door_open_max_s")
        worst = abs(self.ambient_c - self.setpoint_c) + abs(self.ambient_swing_c)
        if self.capacity_c_per_s <= worst / self.tau_leak_s:
            raise ValueError(
                f"capacity {self.capacity_c_per_s} C/s cannot hold {self.setpoint_c} C against "
                f"ambient {self.ambient_c}±{self.ambient_swing_c} C (leak {self.tau_leak_s} s)"
            )


_KIND_DEFAULTS: dict[AssetKind, dict[str, float]] = {
    # A pharmacy fridge: cycles every ~25 min, a failed one passes 8 C in ~45 min.
    "fridge": dict(
        hysteresis_c=1.5,
        ambient_c=22.0,
        ambient_swing_c=0.0,
        tau_leak_s=4 * 3600.0,
        tau_door_s=900.0,
        capacity_c_per_s=0.006,
        door_openings_per_hour=2.0,
        door_open_min_s=15.0,
        door_open_max_s=60.0,
        rh_pct=45.0,
        ambient_rh_pct=55.0,
    ),
    # A warehouse room: big thermal mass, slow HVAC cycles, dock doors barely matter.
    "warehouse_room": dict(
        hysteresis_c=2.0,
        ambient_c=28.0,
        ambient_swing_c=5.0,
        tau_leak_s=12 * 3600.0,
        tau_door_s=2 * 3600.0,
        capacity_c_per_s=0.002,
        door_openings_per_hour=3.0,
        door_open_min_s=30.0,
        door_open_max_s=180.0,
        rh_pct=50.0,
        ambient_rh_pct=65.0,
    ),
    # A reefer trailer: insulated (a failed unit warms ~3 C/h), deliveries open the doors.
    "truck": dict(
        hysteresis_c=2.0,
        ambient_c=30.0,
        ambient_swing_c=4.0,
        tau_leak_s=8 * 3600.0,
        tau_door_s=600.0,
        capacity_c_per_s=0.01,
        door_openings_per_hour=0.25,
        door_open_min_s=120.0,
        door_open_max_s=600.0,
        rh_pct=60.0,
        ambient_rh_pct=70.0,
    ),
}


def default_params(
    kind: AssetKind, band: tuple[float, float] | None = None, **overrides: float | None
) -> ThermalParams:
    """Parameters for a kind of asset holding a product band; the setpoint is the band's middle.

    The dead band is capped at 40 % of the product band so a healthy unit stays inside it.
    `overrides` (None values ignored) replace any field.
    """
    lo, hi = band or DEFAULT_BANDS[kind]
    if not lo < hi:
        raise ValueError(f"band {lo}..{hi} is empty")
    base = dict(_KIND_DEFAULTS[kind])
    base["hysteresis_c"] = min(base["hysteresis_c"], 0.4 * (hi - lo))
    params = ThermalParams(setpoint_c=(lo + hi) / 2, **base)
    params = replace(params, **{k: v for k, v in overrides.items() if v is not None})
    params.check()
    return params


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval [start_s, end_s) of simulated seconds."""

    start_s: float
    end_s: float = math.inf

    def __contains__(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True, slots=True)
class Excursion:
    """Forced temperature over a window: ramp to target_c, hold, ramp back to the physics.

    An override on top of the physics, which runs on untouched: outside the window the readings
    are exactly those of a healthy run, and with ramp_s=0 every instant in the window reads
    target_c, so a test knows how long the excursion lasts (the hold is duration - 2 * ramp_s).
    """

    window: Window
    target_c: float
    ramp_s: float = 0.0

    def temp_at(self, t: float, physics_c: float) -> float:
        w, r = self.window, self.ramp_s
        if r > 0 and t < w.start_s + r:
            return physics_c + (self.target_c - physics_c) * (t - w.start_s) / r
        if r > 0 and t > w.end_s - r:
            return self.target_c + (physics_c - self.target_c) * (t - (w.end_s - r)) / r
        return self.target_c


@dataclass(frozen=True, slots=True)
class AssetFaults:
    door_open: tuple[Window, ...] = ()
    compressor_failure: tuple[Window, ...] = ()
    power_failure: tuple[Window, ...] = ()
    excursions: tuple[Excursion, ...] = ()


@dataclass(frozen=True, slots=True)
class ThermalState:
    t_s: float
    temp_c: float
    """True air temperature (sensor noise and resolution are the logger's business)."""
    rh_pct: float
    door_open: bool
    compressor_on: bool
    """The unit is actually running (wants to, and is neither failed nor unpowered)."""
    power_ok: bool
    ambient_c: float


@dataclass(slots=True)
class _Grid:
    t: float
    temp: float
    rh: float
    demand: bool


class ThermalModel:
    """One asset's air temperature and humidity. Ask for nondecreasing times."""

    def __init__(
        self,
        params: ThermalParams,
        *,
        seed: int,
        day_offset_s: float = 0.0,
        faults: AssetFaults | None = None,
    ) -> None:
        params.check()
        self.params = params
        self.faults = faults or AssetFaults()
        self._day_offset_s = day_offset_s
        self._rng = random.Random(seed)
        p = params
        lo, hi = p.setpoint_c - p.hysteresis_c / 2, p.setpoint_c + p.hysteresis_c / 2
        t0 = p.initial_c if p.initial_c is not None else self._rng.uniform(lo, hi)
        self._g = _Grid(t=0.0, temp=t0, rh=p.rh_pct, demand=self._rng.random() < 0.5)
        self._doors: deque[Window] = deque()
        rate = p.door_openings_per_hour / 3600.0
        self._next_door = self._rng.expovariate(rate) if rate > 0 else math.inf

    # -- inputs as functions of time -------------------------------------------------------

    def ambient_c(self, t: float) -> float:
        p = self.params
        if not p.ambient_swing_c:
            return p.ambient_c
        phase = 2 * math.pi * ((self._day_offset_s + t) / DAY_S - 9 / 24)
        return p.ambient_c + p.ambient_swing_c * math.sin(phase)

    def _random_doors_until(self, t: float) -> None:
        p = self.params
        rate = p.door_openings_per_hour / 3600.0
        while self._next_door <= t:
            dur = self._rng.uniform(p.door_open_min_s, p.door_open_max_s)
            self._doors.append(Window(self._next_door, self._next_door + dur))
            self._next_door += dur + self._rng.expovariate(rate)

    def door_open(self, t: float) -> bool:
        if any(t in w for w in self.faults.door_open):
            return True
        self._random_doors_until(t)
        return any(t in w for w in self._doors)

    def power_ok(self, t: float) -> bool:
        return not any(t in w for w in self.faults.power_failure)

    def _can_run(self, t: float) -> bool:
        return self.power_ok(t) and not any(t in w for w in self.faults.compressor_failure)

    def _cooling(self, t: float) -> bool:
        return self.ambient_c(t) >= self.params.setpoint_c

    def _excursion(self, t: float) -> Excursion | None:
        for e in self.faults.excursions:
            if t in e.window:
                return e
        return None

    # -- integration ------------------------------------------------------------------------

    def _thermostat(self, temp: float, demand: bool, t: float) -> bool:
        p = self.params
        lo, hi = p.setpoint_c - p.hysteresis_c / 2, p.setpoint_c + p.hysteresis_c / 2
        if self._cooling(t):
            return temp >= hi or (demand and temp > lo)
        return temp <= lo or (demand and temp < hi)

    def _physics(
        self, temp: float, rh: float, demand: bool, t0: float, t1: float
    ) -> tuple[float, float]:
        """Exact solution of the linear ODE over [t0, t1] with inputs held at t0."""
        p = self.params
        dt = t1 - t0
        if dt <= 0:
            return temp, rh
        door = self.door_open(t0)
        running = demand and self._can_run(t0)
        ambient = self.ambient_c((t0 + t1) / 2)
        k = 1.0 / p.tau_leak_s + (1.0 / p.tau_door_s if door else 0.0)
        drive = 0.0
        if running:
            drive = -p.capacity_c_per_s if self._cooling(t0) else p.capacity_c_per_s
        eq = ambient + drive / k
        temp = eq + (temp - eq) * math.exp(-k * dt)
        rh_target = p.ambient_rh_pct if door else p.rh_pct - (3.0 if running else 0.0)
        rh = rh_target + (rh - rh_target) * math.exp(-dt / p.tau_rh_s)
        return temp, rh

    def _evolve(self, g: _Grid, t1: float) -> tuple[float, float, bool]:
        """Temperature, humidity and thermostat demand at t1 from grid state g (g.t <= t1)."""
        temp, rh = self._physics(g.temp, g.rh, g.demand, g.t, t1)
        return temp, rh, self._thermostat(temp, g.demand, t1)

    def state_at(self, t: float) -> ThermalState:
        """The asset at simulated second t (t >= any earlier t asked for, minus one step)."""
        g = self._g
        if t < g.t:
            raise ValueError(f"time went backwards: asked for {t} s, model is at {g.t} s")
        step = self.params.step_s
        while g.t + step <= t:
            t1 = g.t + step
            g.temp, g.rh, g.demand = self._evolve(g, t1)
            g.t = t1
            while self._doors and self._doors[0].end_s <= g.t:
                self._doors.popleft()
        temp, rh, demand = (g.temp, g.rh, g.demand) if t == g.t else self._evolve(g, t)
        excursion = self._excursion(t)
        if excursion is not None:
            temp = excursion.temp_at(t, temp)
        return ThermalState(
            t_s=t,
            temp_c=temp,
            rh_pct=min(100.0, max(0.0, rh)),
            door_open=self.door_open(t),
            compressor_on=demand and self._can_run(t),
            power_ok=self.power_ok(t),
            ambient_c=self.ambient_c(t),
        )
