"""Simulated PLCs served by pymodbus and polled end to end by the collector."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from collectors.modbus import ModbusCollector, ModbusCollectorConfig
from simulators.plc import collector_config, load_scenario
from simulators.plc.steam import psat_kpa
from tests.integration import modbus_fixtures as mf

pytestmark = pytest.mark.integration

plc_factory = mf.plc_factory

ROOT = Path(__file__).resolve().parents[2]


def _runs(values: list[Any]) -> list[Any]:
    """Consecutive duplicates collapsed: the sequence of phases seen."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


async def test_autoclave_cycle_end_to_end_with_batch_and_phase_tags(
    plc_factory: mf.PlcFactory,
) -> None:
    """A full 36-minute cycle (default timings) at 1000x, polled at 20 Hz: about 2.5 s."""
    (plc,) = await plc_factory([{"name": "AC-01", "kind": "autoclave"}], speed=1000)
    cfg = collector_config([plc], line="fill-finish-1", interval_s=0.05, timeout_s=1.0)
    async with mf.running(cfg) as (col, ingest):
        await mf.wait_until(
            lambda: any(r.tags.get("phase") == "complete" for r in ingest.readings),
            within_s=20,
            what="the cycle to complete",
        )
    rs = ingest.of("AC-01")
    phases = [r.tags["phase"] for r in rs]
    assert _runs(phases)[:5] == ["idle", "heat_up", "hold", "cool_down", "complete"]
    for r in rs:
        assert r.measurement == "process" and r.ts_from_receive
        assert {k: r.tags[k] for k in ("line", "equipment", "device")} == {
            "line": "fill-finish-1",
            "equipment": "AC-01",
            "device": "AC-01",
        }
        if r.tags["phase"] == "idle":
            assert "batch" not in r.tags
        else:
            assert r.tags["batch"] == "AC01-0001"
    hold = [r.fields for r in rs if r.tags["phase"] == "hold"]
    assert len(hold) >= 10
    # Phase (fc 3) and temperatures (fc 4) come from two reads: a millisecond apart is a simulated
    # second at 1000x, so the readings at a phase boundary may mix both sides. Judge the inside.
    inside = hold[1:-1]
    assert min(f["chamber_temp_c"] for f in inside) > 121.0
    assert statistics.median(f["chamber_temp_c"] for f in hold) > 121.2
    assert all(f["steam_valve_open"] and f["door_closed"] for f in inside)
    for r in rs:
        f = r.fields
        if r.tags["phase"] in ("heat_up", "hold", "cool_down") and f["chamber_temp_c"] > 101:
            assert f["chamber_pressure_kpa"] == pytest.approx(
                psat_kpa(f["chamber_temp_c"]), abs=2.5
            )
        assert f["setpoint_c"] == 121.5 and f["hold_setpoint_min"] == 15
        assert abs(f["drain_temp_c"] - f["chamber_temp_c"]) < 1.0
    done = next(r.fields for r in rs if r.tags["phase"] == "complete")
    assert done["f0_min"] > 15.0 and done["cycle_count"] == 1
    assert 2000 <= done["cycle_time_s"] <= 2200  # word-swapped uint32 decoded right
    # the plan's four reads per poll, and nothing but reads
    polls = col.stats.polls_ok
    assert 4 * polls <= sum(plc.requests.values()) <= 4 * (polls + 1)
    assert set(plc.requests) == {1, 2, 3, 4}
    assert plc.writes == 0


async def test_autoclave_cycle_on_the_plc_clock(plc_factory: mf.PlcFactory) -> None:
    """With the PLC's clock mapped, a cycle run at 1000x is filed under process time: the hold
    lasts 15 minutes of event time, not the 0.9 s of wall time it took."""
    (plc,) = await plc_factory([{"name": "AC-01", "kind": "autoclave"}], speed=1000)
    cfg = collector_config(
        [plc], line="fill-finish-1", device_clock=True, interval_s=0.05, timeout_s=1.0
    )
    async with mf.running(cfg) as (col, ingest):
        await mf.wait_until(
            lambda: any(r.tags.get("phase") == "complete" for r in ingest.readings),
            within_s=20,
            what="the cycle to complete",
        )
    rs = ingest.of("AC-01")
    ts = [r.ts_ns for r in rs]
    assert ts == sorted(ts) and all(not r.ts_from_receive for r in rs)
    assert ts[-1] <= time.time_ns()  # the default start keeps the PLC clock out of the future
    assert ts[0] >= int(plc.clock.start_s * 1e9)
    assert "plc_clock_ms" not in rs[0].fields
    hold = [r for r in rs if r.tags["phase"] == "hold"]
    # polls are 50 simulated seconds apart: the hold seen spans 900 s less up to two polls
    assert 790 <= (hold[-1].ts_ns - hold[0].ts_ns) / 1e9 <= 900
    # the PLC's own cycle timer (same read as the clock) advances exactly with the event time
    running = [r for r in rs if r.tags["phase"] in ("heat_up", "hold", "cool_down")]
    for a, b in itertools.pairwise(running[1:-1]):
        d_clock = (b.ts_ns - a.ts_ns) / 1e9
        d_timer = b.fields["cycle_time_s"] - a.fields["cycle_time_s"]
        assert abs(d_clock - d_timer) <= 1.001, (d_clock, d_timer)
    assert col.stats.clock_rejects == 0 and col.devices["AC-01"].clock_error == ""
    assert plc.writes == 0


async def test_production_example_polls_every_simulator(
    plc_factory: mf.PlcFactory,
) -> None:
    """examples/production.yaml's register maps read the scenario's PLCs correctly."""
    scenario = load_scenario(ROOT / "simulators" / "plc" / "scenarios" / "production.yaml")
    specs = [p.model_copy(update={"port": 0, "faults": []}) for p in scenario.plcs]
    plcs = await plc_factory(specs, speed=100)
    doc = yaml.safe_load((ROOT / "examples" / "production.yaml").read_text())
    raw = next(c for c in doc["collectors"] if c["kind"] == "modbus")
    ports = {p.name: p.port for p in plcs}
    for d in raw["devices"]:
        d["port"] = ports[d["name"]]
    col = ModbusCollector(ModbusCollectorConfig.model_validate(raw), mf.RecordingIngest())
    by_name = {p.name: p for p in plcs}
    for name in ports:
        reading = await col.poll_once(name)
        assert reading is not None, (name, col.devices[name].last_error)
        expected = {r.name for r in by_name[name].layout if not r.tag}
        assert set(reading.fields) == expected, name
        assert "phase" in reading.tags, name
        # the example maps every PLC's clock: readings carry the PLC's (simulated) time
        assert not reading.ts_from_receive, name
        start_ns = int(by_name[name].clock.start_s * 1e9)
        assert start_ns <= reading.ts_ns <= reading.received_ns, name
    fl = await col.poll_once("FL-01")
    assert fl is not None and fl.fields["target_weight_g"] == 10.0  # float64, DCBA
    cr = await col.poll_once("CR-B1")
    assert cr is not None and cr.tags["phase"] == "operation"
    assert 10.0 < cr.fields["dp_pa"] < 20.0
    assert cr.fields["particles_05um_m3"] > 1000
    assert all(p.writes == 0 for p in plcs)


async def test_cleanroom_door_dip_and_particle_spike_seen_by_the_collector(
    plc_factory: mf.PlcFactory,
) -> None:
    (plc,) = await plc_factory([{"name": "CR-B1", "kind": "cleanroom"}], speed=20)
    cfg = collector_config([plc], interval_s=0.05)
    async with mf.running(cfg) as (_col, ingest):
        await mf.wait_until(lambda: len(ingest.readings) >= 3, what="readings")
        assert ingest.readings[-1].fields["dp_pa"] > 13.0
        plc.inject("door_open", dp_pa=1.0)
        await mf.wait_until(lambda: ingest.readings[-1].fields["dp_pa"] < 3.0, what="the ΔP dip")
        assert ingest.readings[-1].fields["door_open"] is True
        plc.clear("door_open")
        await mf.wait_until(lambda: ingest.readings[-1].fields["dp_pa"] > 13.0, what="ΔP recovery")
        plc.inject("particle_spike", factor=100)
        await mf.wait_until(
            lambda: ingest.readings[-1].fields["particles_05um_m3"] > 3_520_000,
            what="the particle spike",
        )


async def test_slow_answers_within_timeout_keep_the_device_online(
    plc_factory: mf.PlcFactory,
) -> None:
    (plc,) = await plc_factory([{"name": "FL-01", "kind": "filling_line"}])
    cfg = collector_config([plc], interval_s=0.1, timeout_s=1.0)
    async with mf.running(cfg) as (col, ingest):
        await mf.wait_until(lambda: len(ingest.readings) >= 2, what="readings")
        plc.inject("slow", delay_s=0.05)
        n = len(ingest.readings)
        await mf.wait_until(lambda: len(ingest.readings) >= n + 3, what="slow readings")
        status = col.devices["FL-01"]
        assert status.online is True
        assert status.last_poll_s >= 0.05 * len(col.plans["FL-01"])
        assert status.missed_cycles > 0  # a 0.2 s poll cannot keep a 0.1 s interval
    assert col.stats.polls_failed == 0
