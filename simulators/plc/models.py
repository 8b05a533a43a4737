"""Process models behind the simulated PLCs, stepped in simulated time.

Each model integrates its state in small steps up to the simulated time of a request, so what a
client reads depends only on simulated time (and the seed), not on how often it polls; a speed
factor makes a 30-minute autoclave cycle pass in seconds. Measured values carry sensor noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from simulators.plc import layout as L
from simulators.plc.faults import FaultSpec
from simulators.plc.steam import ATM_KPA, psat_kpa, tsat_c

FaultLookup = Callable[[str, float], FaultSpec | None]
Value = float | int | bool | str


def _no_faults(kind: str, t: float) -> FaultSpec | None:
    return None


def _approach(x: float, target: float, tau: float, dt: float) -> float:
    """First-order lag: x moves toward target with time constant tau."""
    return target + (x - target) * math.exp(-dt / tau)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProcessModel:
    kind: ClassVar[str]
    Params: ClassVar[type[Params]]
    max_dt: ClassVar[float] = 1.0

    def __init__(
        self,
        name: str,
        params: dict[str, Any],
        rng: random.Random,
        faults: FaultLookup = _no_faults,
    ) -> None:
        self.name = name
        self.p: Any = self.Params.model_validate(params)
        self.rng = rng
        self.faults = faults
        self.t = 0.0

    def layout(self) -> list[L.Reg]:
        raise NotImplementedError

    def clock_register(self) -> L.Reg:
        """Where this PLC keeps its clock (served by the server from the simulated clock)."""
        raise NotImplementedError

    def advance(self, t: float) -> None:
        """Integrate to simulated time t (never backwards)."""
        while self.t < t - 1e-9:
            dt = min(self.max_dt, t - self.t)
            self._step(self.t, dt)
            self.t += dt

    def _step(self, t: float, dt: float) -> None:
        raise NotImplementedError

    def values(self) -> dict[str, Value]:
        """Measured values by register name (noise added here)."""
        raise NotImplementedError

    def _batch_id(self, n: int) -> str:
        prefix = "".join(c for c in self.name.upper() if c.isalnum())[:6] or "B"
        return f"{prefix}-{n:04d}"[:16]


# -- autoclave -----------------------------------------------------------------------------------


class AutoclaveParams(Params):
    setpoint_c: float = Field(121.5, ge=105, le=140)
    heatup_s: float = Field(600.0, gt=0)
    hold_s: float = Field(900.0, gt=0)
    cooldown_s: float = Field(600.0, gt=0)
    complete_s: float = Field(60.0, ge=0)
    idle_s: float = Field(120.0, ge=0)
    start_delay_s: float = Field(30.0, ge=0)
    ambient_c: float = Field(40.0, ge=0, le=99)
    first_batch: int = Field(1, ge=0)


class Autoclave(ProcessModel):
    """Steam steriliser: heat-up, hold, cool-down; chamber pressure = saturation pressure of T.

    Below 100 °C the chamber holds air at atmospheric pressure. A steam_pressure_drop caps the
    supply pressure, so temperature follows the lower saturation temperature (and F0 suffers); a
    short_hold ends the hold phase early. The PLC integrates F0 (z = 10 °C, 121.1 °C).
    """

    kind = "autoclave"
    Params = AutoclaveParams
    PHASES = L.AUTOCLAVE_PHASES

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.phase = 0
        self.phase_t = 0.0
        self.temp = self.p.ambient_c
        self.pressure = ATM_KPA
        self.f0 = 0.0
        self.cycle_t = 0.0
        self.cycles = 0
        self.batch_no = self.p.first_batch - 1
        self.batch = ""
        self.t_start = self.temp
        self.started_once = False

    def layout(self) -> list[L.Reg]:
        return L.AUTOCLAVE

    def clock_register(self) -> L.Reg:
        return L.AUTOCLAVE_CLOCK

    def _goto(self, phase: int) -> None:
        self.phase = phase
        self.phase_t = 0.0

    def _supply_cap(self, t: float) -> float:
        """Highest temperature the steam supply allows right now."""
        f = self.faults("steam_pressure_drop", t)
        if f is None:
            return math.inf
        return tsat_c(max(ATM_KPA, psat_kpa(self.p.setpoint_c) - f.drop_kpa))

    def _step(self, t: float, dt: float) -> None:
        p = self.p
        self.phase_t += dt
        if self.phase == 0:  # idle
            self.temp = _approach(self.temp, p.ambient_c, 900.0, dt)
            wait = p.idle_s if self.started_once else p.start_delay_s
            if self.phase_t >= wait:
                self.started_once = True
                self.batch_no += 1
                self.cycles += 1
                self.batch = self._batch_id(self.batch_no)
                self.f0 = 0.0
                self.cycle_t = 0.0
                self.t_start = self.temp
                self._goto(1)
        elif self.phase == 1:  # heat-up: steam admitted, linear ramp, capped by the supply
            rate = (p.setpoint_c - self.t_start) / p.heatup_s
            self.temp = min(self.temp + rate * dt, self._supply_cap(t), p.setpoint_c)
            if self.temp >= p.setpoint_c - 1e-6:
                self._goto(2)
        elif self.phase == 2:  # hold: controller oscillates ±0.3 °C around the setpoint
            target = p.setpoint_c + 0.3 * math.sin(2 * math.pi * self.phase_t / 60.0)
            target = min(target, self._supply_cap(t))
            self.temp = _approach(self.temp, target, 15.0, dt)
            short = self.faults("short_hold", t)
            hold = min(p.hold_s, short.hold_s) if short is not None else p.hold_s
            if self.phase_t >= hold:
                self._goto(3)
        elif self.phase == 3:  # cool-down: exhaust, chamber follows the saturation curve down
            self.temp = _approach(self.temp, 60.0, p.cooldown_s / 3.0, dt)
            if self.phase_t >= p.cooldown_s:
                self._goto(4)
        elif self.phase == 4:  # complete: door open, unloading
            self.temp = _approach(self.temp, p.ambient_c, 900.0, dt)
            if self.phase_t >= p.complete_s:
                self.batch = ""
                self._goto(0)
        if self.phase in (1, 2, 3):
            self.cycle_t += dt
            self.f0 += dt / 60.0 * 10 ** ((self.temp - 121.1) / 10.0)
        self.pressure = max(ATM_KPA, psat_kpa(self.temp)) if self.phase in (1, 2, 3) else ATM_KPA

    def values(self) -> dict[str, Value]:
        g = self.rng.gauss
        return {
            "chamber_temp_c": self.temp + g(0, 0.05),
            "chamber_pressure_kpa": self.pressure + g(0, 0.1),
            "f0_min": self.f0,
            "drain_temp_c": self.temp - 0.3 + g(0, 0.05),
            "cycle_time_s": int(self.cycle_t),
            "phase": self.phase,
            "batch": self.batch,
            "setpoint_c": self.p.setpoint_c,
            "hold_setpoint_min": round(self.p.hold_s / 60.0),
            "cycle_count": self.cycles,
            "steam_valve_open": self.phase in (1, 2),
            "exhaust_valve_open": self.phase == 3,
            "door_closed": self.phase in (1, 2, 3),
        }


# -- freeze-dryer --------------------------------------------------------------------------------


class FreezeDryerParams(Params):
    load_s: float = Field(600.0, gt=0)
    freeze_s: float = Field(7200.0, gt=0)
    primary_s: float = Field(36000.0, gt=0)
    secondary_s: float = Field(14400.0, gt=0)
    unload_s: float = Field(600.0, gt=0)
    idle_s: float = Field(600.0, ge=0)
    freeze_shelf_c: float = -45.0
    primary_shelf_c: float = -20.0
    secondary_shelf_c: float = 25.0
    primary_mbar: float = Field(0.1, gt=0)
    secondary_mbar: float = Field(0.03, gt=0)
    condenser_c: float = -75.0
    first_batch: int = Field(1, ge=0)


class FreezeDryer(ProcessModel):
    """Lyophiliser: load, freeze, primary drying under vacuum, secondary drying, unload.

    Product temperature lags the shelf and stays below it by sublimation cooling in primary drying
    until the ice is gone (the last 15 % of the phase), then rises to the shelf temperature.
    """

    kind = "freeze_dryer"
    Params = FreezeDryerParams
    max_dt = 10.0

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.phase = 0
        self.phase_t = 0.0
        self.shelf = 20.0
        self.product = 20.0
        self.condenser = 20.0
        self.pressure = 1013.25
        self.batch_no = self.p.first_batch - 1
        self.batch = ""

    def layout(self) -> list[L.Reg]:
        return L.FREEZE_DRYER

    def clock_register(self) -> L.Reg:
        return L.FREEZE_DRYER_CLOCK

    def _durations(self) -> dict[int, float]:
        p = self.p
        return {
            0: p.idle_s,
            1: p.load_s,
            2: p.freeze_s,
            3: p.primary_s,
            4: p.secondary_s,
            5: p.unload_s,
        }

    def _step(self, t: float, dt: float) -> None:
        p = self.p
        self.phase_t += dt
        ph = self.phase
        shelf_target = {2: p.freeze_shelf_c, 3: p.primary_shelf_c, 4: p.secondary_shelf_c}.get(
            ph, 20.0
        )
        self.shelf = _approach(self.shelf, shelf_target, 900.0, dt)
        if ph == 3:
            progress = self.phase_t / p.primary_s
            product_target = self.shelf - 12.0 if progress < 0.85 else self.shelf
        else:
            product_target = self.shelf
        self.product = _approach(self.product, product_target, 1800.0, dt)
        cond_target = p.condenser_c if ph in (2, 3, 4) else 20.0
        self.condenser = _approach(self.condenser, cond_target, 600.0, dt)
        if ph in (3, 4):
            sp = p.primary_mbar if ph == 3 else p.secondary_mbar
            self.pressure = _approach(self.pressure, sp, 120.0, dt)
        else:
            self.pressure = _approach(self.pressure, 1013.25, 60.0, dt)
        if self.phase_t >= self._durations()[ph]:
            nxt = (ph + 1) % 6
            if nxt == 1:
                self.batch_no += 1
                self.batch = self._batch_id(self.batch_no)
            if nxt == 0:
                self.batch = ""
            self.phase = nxt
            self.phase_t = 0.0

    def values(self) -> dict[str, Value]:
        g = self.rng.gauss
        return {
            "shelf_temp_c": self.shelf + g(0, 0.1),
            "product_temp_c": self.product + g(0, 0.2),
            "condenser_temp_c": self.condenser + g(0, 0.2),
            "chamber_pressure_mbar": max(0.001, self.pressure * (1 + g(0, 0.01))),
            "phase": self.phase,
            "batch": self.batch,
            "vacuum_setpoint_ubar": round(
                1000 * (self.p.primary_mbar if self.phase != 4 else self.p.secondary_mbar)
            ),
            "door_closed": self.phase in (2, 3, 4),
            "vacuum_pump_on": self.phase in (3, 4),
        }


# -- cleanroom HVAC ------------------------------------------------------------------------------


class CleanroomParams(Params):
    dp_setpoint_pa: float = Field(15.0, ge=-50, le=100)
    occupancy: str = Field("operation", pattern="^(at_rest|operation)$")
    particles_05um_m3: float | None = Field(None, ge=0)
    """Baseline ≥0.5 µm counts; default typical of grade B (600 at rest, 40 000 in operation)."""
    particles_5um_m3: float | None = Field(None, ge=0)
    temp_c: float = 20.0
    rh_pct: float = Field(45.0, ge=0, le=100)


class Cleanroom(ProcessModel):
    """Room pressure cascade and particle counter; door openings dip ΔP, spikes raise counts."""

    kind = "cleanroom"
    Params = CleanroomParams

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.dp = self.p.dp_setpoint_pa
        self.door = False
        operating = self.p.occupancy == "operation"
        self.base05 = self.p.particles_05um_m3 or (40_000.0 if operating else 600.0)
        self.base5 = self.p.particles_5um_m3 or (300.0 if operating else 10.0)
        self.spike = 1.0

    def layout(self) -> list[L.Reg]:
        return L.CLEANROOM

    def clock_register(self) -> L.Reg:
        return L.CLEANROOM_CLOCK

    def _step(self, t: float, dt: float) -> None:
        door = self.faults("door_open", t)
        self.door = door is not None
        if door is not None:
            self.dp = _approach(self.dp, door.dp_pa, 1.0, dt)
        else:
            self.dp = _approach(self.dp, self.p.dp_setpoint_pa, 5.0, dt)
        spike = self.faults("particle_spike", t)
        self.spike = spike.factor if spike is not None else 1.0

    def _count(self, mean: float) -> int:
        return max(0, round(self.rng.gauss(mean, math.sqrt(mean) if mean > 0 else 0.0)))

    def values(self) -> dict[str, Value]:
        g = self.rng.gauss
        return {
            "dp_pa": self.dp + g(0, 0.2),
            "particles_05um_m3": self._count(self.base05 * self.spike),
            "particles_5um_m3": self._count(self.base5 * self.spike),
            "room_temp_c": self.p.temp_c + g(0, 0.05),
            "room_rh_pct": self.p.rh_pct + g(0, 0.3),
            "phase": 1 if self.p.occupancy == "operation" else 0,
            "door_open": self.door,
        }


# -- filling line --------------------------------------------------------------------------------


class FillingLineParams(Params):
    target_g: float = Field(10.0, gt=0)
    sd_g: float = Field(0.04, ge=0)
    tolerance_pct: float = Field(3.0, gt=0)
    """Vials outside target ± this are rejected."""
    speed_vpm: int = Field(120, ge=1, le=65535)
    run_s: float = Field(3600.0, gt=0)
    setup_s: float = Field(600.0, gt=0)
    first_batch: int = Field(1, ge=0)


class FillingLine(ProcessModel):
    """Vial filling: setup (changeover), then a batch; each poll sees the last vial weighed."""

    kind = "filling_line"
    Params = FillingLineParams

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.phase = 0
        self.phase_t = 0.0
        self.batch_no = self.p.first_batch - 1
        self.batch = ""
        self.vials = 0.0
        self.rejects = 0.0
        sd, tol = self.p.sd_g, self.p.target_g * self.p.tolerance_pct / 100
        self.p_reject = math.erfc(tol / (sd * math.sqrt(2))) if sd > 0 else 0.0

    def layout(self) -> list[L.Reg]:
        return L.FILLING_LINE

    def clock_register(self) -> L.Reg:
        return L.FILLING_LINE_CLOCK

    def _step(self, t: float, dt: float) -> None:
        self.phase_t += dt
        if self.phase == 0 and self.phase_t >= self.p.setup_s:
            self.phase, self.phase_t = 1, 0.0
            self.batch_no += 1
            self.batch = self._batch_id(self.batch_no)
            self.vials = self.rejects = 0.0
        elif self.phase == 1:
            n = self.p.speed_vpm / 60.0 * dt
            self.vials += n
            self.rejects += n * self.p_reject
            if self.phase_t >= self.p.run_s:
                self.phase, self.phase_t = 0, 0.0

    def values(self) -> dict[str, Value]:
        filling = self.phase == 1
        return {
            "fill_weight_g": self.rng.gauss(self.p.target_g, self.p.sd_g) if filling else 0.0,
            "vials_filled": int(self.vials),
            "rejects": min(65535, int(self.rejects)),
            "line_speed_vpm": self.p.speed_vpm if filling else 0,
            "target_weight_g": self.p.target_g,
            "phase": self.phase,
            "batch": self.batch,
            "running": filling,
        }


# -- generic register bank -----------------------------------------------------------------------


class GenericParams(Params):
    float32: int = Field(25, ge=0, le=1000)
    uint16: int = Field(50, ge=0, le=2000)


class Generic(ProcessModel):
    """A bank of slowly varying float32 values and uint16 counters (benchmarks, cadence tests)."""

    kind = "generic"
    Params = GenericParams
    max_dt = math.inf  # nothing to integrate: values are functions of time

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._layout = L.generic_layout(self.p.float32, self.p.uint16)

    def layout(self) -> list[L.Reg]:
        return self._layout

    def clock_register(self) -> L.Reg:
        return L.generic_clock(self.p.float32, self.p.uint16)

    def _step(self, t: float, dt: float) -> None:
        pass

    def values(self) -> dict[str, Value]:
        t = self.t
        out: dict[str, Value] = {}
        for i in range(self.p.float32):
            out[f"value_{i:03d}"] = 20.0 + 5.0 * math.sin(t / 60.0 + i)
        for i in range(self.p.uint16):
            out[f"counter_{i:03d}"] = (int(t) + i) % 65536
        return out


MODELS: dict[str, type[ProcessModel]] = {
    m.kind: m for m in (Autoclave, FreezeDryer, Cleanroom, FillingLine, Generic)
}


def params_model(kind: str) -> type[Params]:
    return MODELS[kind].Params
