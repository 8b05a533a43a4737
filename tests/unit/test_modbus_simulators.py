"""Process models of the simulated PLCs, stepped directly in simulated time (no server)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from simulators.plc.models import Autoclave, Cleanroom, FillingLine, FreezeDryer, Generic
from simulators.plc.spec import FaultSpec, PlcSpec, load_scenario
from simulators.plc.steam import psat_kpa, tsat_c


def faults(*specs: FaultSpec) -> Any:
    def lookup(kind: str, t: float) -> FaultSpec | None:
        return next((f for f in specs if f.kind == kind and f.active(t)), None)

    return lookup


def run(model: Any, until: float, every: float = 1.0) -> list[tuple[float, dict[str, Any]]]:
    """Sample the model's values every `every` simulated seconds."""
    out = []
    t = 0.0
    while t <= until:
        model.advance(t)
        out.append((t, model.values()))
        t += every
    return out


def test_steam_table_reference_points() -> None:
    assert psat_kpa(121.1) == pytest.approx(205.0, rel=0.005)
    assert psat_kpa(134.0) == pytest.approx(304.1, rel=0.01)
    assert psat_kpa(100.0) == pytest.approx(101.42, rel=0.005)
    for t in (50.0, 99.0, 105.0, 121.1, 134.0, 140.0):
        assert tsat_c(psat_kpa(t)) == pytest.approx(t, abs=1e-6)


AC_PARAMS = {"heatup_s": 600, "hold_s": 900, "cooldown_s": 600, "start_delay_s": 60}


def test_autoclave_cycle_phases_temperature_pressure_and_f0() -> None:
    ac = Autoclave("AC-01", AC_PARAMS, random.Random(1))
    samples = run(ac, 2300)
    phases = [v["phase"] for _, v in samples]
    # idle → heat-up → hold → cool-down → complete, in that order, once
    order = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert order == [0, 1, 2, 3, 4, 0]
    hold = [(t, v) for t, v in samples if v["phase"] == 2]
    hold_len = hold[-1][0] - hold[0][0] + 1
    assert hold_len == pytest.approx(900, abs=2)
    for _, v in hold:
        assert 121.0 <= v["chamber_temp_c"] <= 122.1
        assert v["batch"] == "AC01-0001"
    # saturated steam: pressure follows the temperature wherever steam fills the chamber
    # (below 100 °C the chamber holds air at atmospheric pressure)
    for _, v in samples:
        if v["phase"] in (1, 2, 3):
            assert v["chamber_pressure_kpa"] == pytest.approx(
                max(101.325, psat_kpa(v["chamber_temp_c"])), abs=1.5
            )
        else:
            assert v["chamber_pressure_kpa"] == pytest.approx(101.3, abs=0.6)
    # F0 at the end of the cycle: 15 min at 121.5 °C alone gives 15 * 10**0.04 = 16.4 min
    end = next(v for _, v in samples if v["phase"] == 4)
    assert 16.4 < end["f0_min"] < 25.0
    assert end["door_closed"] is False and end["batch"] == "AC01-0001"
    assert samples[-1][1]["batch"] == ""  # idle again: no batch


def test_autoclave_short_hold() -> None:
    short = FaultSpec(kind="short_hold", at_s=0, hold_s=300)
    ac = Autoclave("AC-01", AC_PARAMS, random.Random(1), faults(short))
    samples = run(ac, 1600)
    hold = [t for t, v in samples if v["phase"] == 2]
    assert hold[-1] - hold[0] + 1 == pytest.approx(300, abs=2)
    end = next(v for _, v in samples if v["phase"] == 4)
    assert end["f0_min"] < 10.0  # the under-processed load the rules must catch


def test_autoclave_steam_pressure_drop_lowers_temperature_consistently() -> None:
    # hold runs from about t=660; the supply sags 40 kPa from 900 to 1100
    drop = FaultSpec(kind="steam_pressure_drop", at_s=900, duration_s=200, drop_kpa=40)
    ac = Autoclave("AC-01", AC_PARAMS, random.Random(1), faults(drop))
    samples = dict(run(ac, 1300))
    before, during, after = samples[880], samples[1090], samples[1290]
    assert before["phase"] == during["phase"] == after["phase"] == 2
    assert before["chamber_temp_c"] > 121.0
    expected_t = tsat_c(psat_kpa(121.5) - 40)
    assert during["chamber_temp_c"] == pytest.approx(expected_t, abs=0.5)
    assert during["chamber_temp_c"] < 118.0
    assert during["chamber_pressure_kpa"] == pytest.approx(
        psat_kpa(during["chamber_temp_c"]), abs=1.5
    )
    assert after["chamber_temp_c"] > 121.0  # recovered


def test_simulated_time_not_poll_rate_decides_the_state() -> None:
    a = Autoclave("AC-01", AC_PARAMS, random.Random(1))
    b = Autoclave("AC-01", AC_PARAMS, random.Random(1))
    a.advance(1000.0)
    for t in range(0, 1001, 7):
        b.advance(float(t))
    b.advance(1000.0)
    assert (a.phase, a.batch) == (b.phase, b.batch)
    assert a.temp == pytest.approx(b.temp, abs=1e-6)
    assert a.f0 == pytest.approx(b.f0, rel=1e-3)


def test_cleanroom_door_open_dip_and_particle_spike() -> None:
    door = FaultSpec(kind="door_open", at_s=100, duration_s=20, dp_pa=2.0)
    spike = FaultSpec(kind="particle_spike", at_s=200, duration_s=30, factor=50)
    cr = Cleanroom("CR-B1", {"occupancy": "operation"}, random.Random(2), faults(door, spike))
    s = dict(run(cr, 300))
    assert s[90]["dp_pa"] == pytest.approx(15.0, abs=1.0) and s[90]["door_open"] is False
    assert s[115]["dp_pa"] < 3.0 and s[115]["door_open"] is True
    assert s[160]["dp_pa"] == pytest.approx(15.0, abs=1.0)  # recovered after the door closed
    assert 35_000 < s[150]["particles_05um_m3"] < 45_000
    assert s[215]["particles_05um_m3"] > 1_500_000
    assert s[215]["particles_5um_m3"] > 10_000
    assert s[250]["particles_05um_m3"] < 45_000
    at_rest = Cleanroom("CR-A", {"occupancy": "at_rest"}, random.Random(2))
    at_rest.advance(10)
    v = at_rest.values()
    assert v["phase"] == 0 and v["particles_05um_m3"] < 3520  # inside grade A/B at rest


def test_freeze_dryer_cycle() -> None:
    params = {
        "load_s": 100,
        "freeze_s": 3600,
        "primary_s": 7200,
        "secondary_s": 3600,
        "unload_s": 100,
        "idle_s": 100,
    }
    fd = FreezeDryer("FD-01", params, random.Random(3))
    s = dict(run(fd, 14_700, every=10))
    assert s[50]["phase"] == 0
    assert s[3700]["phase"] == 2 and s[3700]["shelf_temp_c"] < -40.0
    primary = s[3800 + 3000]
    assert primary["phase"] == 3
    assert 0.02 <= primary["chamber_pressure_mbar"] <= 1.0
    assert primary["condenser_temp_c"] < -70.0
    assert primary["product_temp_c"] < primary["shelf_temp_c"] - 5  # sublimation cooling
    assert s[14_000]["phase"] == 4 and s[14_000]["shelf_temp_c"] > 15
    assert s[14_000]["batch"] == "FD01-0001"


def test_filling_line_weights_and_counters() -> None:
    fl = FillingLine("FL-01", {"setup_s": 60, "run_s": 600, "target_g": 5.0}, random.Random(4))
    s = run(fl, 600)
    filling = [v for _, v in s if v["phase"] == 1]
    weights = [v["fill_weight_g"] for v in filling]
    assert sum(weights) / len(weights) == pytest.approx(5.0, abs=0.01)
    assert all(4.8 < w < 5.2 for w in weights)
    assert filling[-1]["vials_filled"] == pytest.approx(120 / 60 * 540, abs=3)
    assert filling[-1]["running"] is True and filling[-1]["batch"] == "FL01-0001"


def test_generic_bank_layout() -> None:
    g = Generic("G", {"float32": 3, "uint16": 2}, random.Random(0))
    assert [(r.name, r.address, r.type) for r in g.layout()] == [
        ("value_000", 0, "float32"),
        ("value_001", 2, "float32"),
        ("value_002", 4, "float32"),
        ("counter_000", 6, "uint16"),
        ("counter_001", 7, "uint16"),
    ]
    g.advance(5.0)
    assert g.values()["counter_001"] == 6


def test_specs_validate_params_and_fault_kinds() -> None:
    PlcSpec(name="AC-1", kind="autoclave", params={"hold_s": 60})
    with pytest.raises(ValidationError, match=r"params\.hold_minutes"):
        PlcSpec(name="AC-1", kind="autoclave", params={"hold_minutes": 60})
    with pytest.raises(ValidationError, match=r"faults\.0\.kind: door_open applies to cleanroom"):
        PlcSpec(name="AC-1", kind="autoclave", faults=[{"kind": "door_open"}])
    with pytest.raises(ValidationError):
        PlcSpec(name="AC-1", kind="boiler")


def test_scenario_from_mapping() -> None:
    sc = load_scenario(
        {
            "speed": 60,
            "mqtt": {"ignored": True},
            "plcs": [{"name": "CR", "kind": "cleanroom", "faults": [{"kind": "unplug"}]}],
        }
    )
    assert sc.speed == 60 and sc.plcs[0].faults[0].duration_s is None


def test_demo_specs_cover_every_process_kind() -> None:
    from simulators.plc import demo_specs

    specs = demo_specs()
    assert {s.kind for s in specs} == {"autoclave", "freeze_dryer", "cleanroom", "filling_line"}
    assert all(s.port == 0 for s in specs)


# -- the simulated PLC clock ---------------------------------------------------------------------


async def test_sim_clock_default_start_never_runs_ahead_within_the_horizon() -> None:
    import time

    from simulators.plc import SimClock

    wall = time.time()
    slow = SimClock(1.0)
    assert slow.epoch_s() == pytest.approx(wall, abs=0.5)  # speed 1: the PLC clock is now
    fast = SimClock(200.0, horizon_s=3600.0)
    # t=0 lies horizon x (1 - 1/speed) back: the clock reaches now after 3600 simulated s
    assert fast.start_s == pytest.approx(wall - 3600.0 * (1 - 1 / 200), abs=0.5)
    for t in (0.0, 600.0, 3599.0):
        wall_then = fast.start_s + 3600.0 * (1 - 1 / 200) + t / 200
        assert fast.epoch_s(t) <= wall_then + 1e-6
    assert fast.epoch_s(3600.0) == pytest.approx(wall + 3600.0 / 200, abs=0.5)


async def test_sim_clock_explicit_start_pause_and_resume() -> None:
    import asyncio
    from datetime import UTC, datetime

    from simulators.plc import SimClock

    start = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    clock = SimClock(1000.0, start=start, paused=True)
    assert clock.paused and clock.epoch_s() == start.timestamp()
    await asyncio.sleep(0.02)
    assert clock.now() == 0.0  # stands still while paused
    clock.resume()
    async with asyncio.timeout(5):
        while clock.now() < 15.0:  # noqa: ASYNC110 (polling the clock with a deadline)
            await asyncio.sleep(0.005)
    clock.pause()
    t = clock.now()
    assert t >= 15.0  # runs at 1000x once resumed
    await asyncio.sleep(0.02)
    assert clock.now() == t
    assert clock.wall(10.0) == float("inf")
    with pytest.raises(ValueError, match="time zone"):
        SimClock(1.0, start=datetime(2026, 3, 2, 6, 0))


def test_scenario_clock_settings() -> None:
    sc = load_scenario({"speed": 100, "start": "2026-03-02T06:00:00Z", "horizon_s": 7200})
    assert sc.start is not None and sc.start.timestamp() == 1_772_431_200
    assert sc.horizon_s == 7200
    with pytest.raises(ValidationError, match="timezone"):
        load_scenario({"start": "2026-03-02T06:00:00"})
    assert load_scenario({}).start is None


@pytest.mark.parametrize("kind", ["autoclave", "freeze_dryer", "cleanroom", "filling_line"])
def test_every_layout_has_a_clock_in_the_same_read_as_its_measurements(kind: str) -> None:
    from collectors.modbus.config import ModbusCollectorConfig
    from simulators.plc.layout import profile
    from simulators.plc.models import MODELS

    model = MODELS[kind]("X", {}, random.Random(0))
    clock = model.clock_register()
    assert clock.timestamp in ("s", "ms") and clock.fc == 4
    assert clock.name not in {r.name for r in model.layout()}
    cfg = ModbusCollectorConfig.model_validate(
        {
            "kind": "modbus",
            "profiles": {"p": profile(model.layout(), clock=clock)},
            "devices": [{"name": "d", "host": "h", "line": "L", "profile": "p"}],
        }
    )
    dev = cfg.devices[0]
    [read] = [r for r in cfg.plan_for(dev) if r.fc == 4]
    assert {p.name for p in read.points} >= {clock.name, model.layout()[0].name}


def test_generic_bank_clock_follows_the_counters() -> None:
    g = Generic("G", {"float32": 25, "uint16": 50}, random.Random(0))
    clock = g.clock_register()
    assert (clock.fc, clock.address, clock.type, clock.timestamp) == (3, 100, "uint64", "ms")
