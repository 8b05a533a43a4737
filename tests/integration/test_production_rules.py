"""Production rules on live Modbus data: a simulated autoclave (a real pymodbus server, sped up)
polled by the ModbusCollector, readings through a small in-test Ingest into the RulesEngine,
the cycle reading written to VictoriaMetrics with the influxdb-client async write API.

The collector stamps readings with their receive time (the PLC sends none). The simulated
process runs `SPEED` times faster than the wall clock, so the Ingest maps each receive time onto
the PLC's simulated clock: F0 and hold times are then judged in process time, as they would be
on a real autoclave polled at `POLL_S x SPEED` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from alert_rules import AlertStore, ManualClock, RulesConfig, RulesEngine
from alert_rules.cycles import COMPLETE, FAIL, PASS, Cycle
from gateway.core.lineprotocol import encode
from gateway.core.reading import DeadLetter, Reading
from simulators.plc import RunningPlc, collector_config
from tests.integration import modbus_fixtures as mf
from tests.services import VictoriaMetrics, poll

pytestmark = pytest.mark.integration

plc_factory = mf.plc_factory

S = 1_000_000_000
SPEED = 200.0
POLL_S = 0.03  # a reading every 6 simulated seconds
# heat-up 5 min, hold 16 min, cool-down 5 min: a full cycle in about 8 s of wall time
AUTOCLAVE = {
    "start_delay_s": 5,
    "heatup_s": 300,
    "hold_s": 960,
    "cooldown_s": 300,
    "complete_s": 30,
    "idle_s": 3600,
}
BINDINGS = [
    {
        "line": "fill-finish-1",
        "equipment": "AC-*",
        "profile": "steam_steriliser",
        # a wall-clock hiccup of 0.6 s on this shared machine is 120 s of process time
        "overrides": {"f0": {"max_gap": "120s"}},
    }
]


class RulesIngest(mf.RecordingIngest):
    """Puts readings on the PLC's simulated time line, then through the rules engine."""

    def __init__(self, engine: RulesEngine, plc: RunningPlc) -> None:
        super().__init__()
        self.engine = engine
        self.wall0 = time.time_ns()
        self.sim0 = plc.clock.now()
        self.epoch = self.wall0 - 3600 * S  # the whole cycle lies in the past
        self.events: list[Any] = []

    def sim_ns(self, wall_ns: int) -> int:
        return self.epoch + round((self.sim0 + (wall_ns - self.wall0) / S * SPEED) * S)

    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        out = []
        for r in readings:
            ts = self.sim_ns(r.ts_ns)
            out.append(Reading(r.measurement, r.tags, r.fields, ts, ts, r.ts_from_receive))
        if out:
            self.engine.clock.set(max(r.ts_ns for r in out))  # type: ignore[attr-defined]
            self.events += self.engine.process(out)
        await super().submit(out, dead, on_committed)


def make_engine(tmp_path: Path) -> RulesEngine:
    config = RulesConfig.model_validate({"bindings": BINDINGS})
    return RulesEngine(config, AlertStore(tmp_path / "alerts.db"), ManualClock(0))


async def run_cycle(
    plc_factory: mf.PlcFactory, tmp_path: Path, faults: list[dict[str, Any]]
) -> tuple[RulesEngine, RulesIngest, Cycle]:
    (plc,) = await plc_factory(
        [{"name": "AC-01", "kind": "autoclave", "params": AUTOCLAVE, "faults": faults}],
        speed=SPEED,
    )
    engine = make_engine(tmp_path)
    ingest = RulesIngest(engine, plc)
    cfg = collector_config([plc], line="fill-finish-1", interval_s=POLL_S, timeout_s=1.0)
    async with mf.running(cfg, ingest):
        await mf.wait_until(
            lambda: engine.list_cycles(status=COMPLETE), within_s=40, what="the cycle to end"
        )
    [cycle] = engine.list_cycles(status=COMPLETE)
    assert plc.writes == 0
    return engine, ingest, cycle


async def write_to_victoria(victoria: VictoriaMetrics, readings: list[Reading]) -> None:
    async with InfluxDBClientAsync(url=victoria.url, token="unused", org="vigil") as client:
        await client.write_api().write(
            bucket="vigil",
            record=[encode(r) for r in readings],
            write_precision=WritePrecision.NS,
        )


async def test_autoclave_cycle_passes_with_f0_in_the_summary_and_in_victoria(
    plc_factory: mf.PlcFactory, tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    engine, ingest, c = await run_cycle(plc_factory, tmp_path, [])
    res = c.results["steam_steriliser.f0"]
    assert c.verdict == PASS, c.reasons
    assert (c.batch, c.device, c.equipment) == ("AC01-0001", "AC-01", "AC-01")
    assert [p["phase"] for p in c.phases] == ["heat_up", "hold", "cool_down", "complete"]
    assert res["hold_s"] >= 900 and res["gaps"] == 0
    # 16 min at 121.2-121.8 °C plus the ramps: F0 ≈ 18; the PLC's own integral agrees
    assert 15.0 <= c.f0_min <= 21.0  # type: ignore[operator]
    plc_f0 = max(r.fields["f0_min"] for r in ingest.readings if r.tags.get("batch") == "AC01-0001")
    assert abs(c.f0_min - plc_f0) < 0.05 * plc_f0  # type: ignore[operator]
    assert c.phases[1]["min"]["chamber_temp_c"] > 120.5
    assert engine.store.list_alerts(rule="steam_steriliser.f0") == []
    [reading] = engine.drain_readings()
    await write_to_victoria(victoria, [reading])

    def exported() -> dict[str, Any]:
        rows = victoria.export('{__name__=~"cycle_.*",device="AC-01"}')
        return {str(row["metric"]["__name__"]): row for row in rows}  # type: ignore[index]

    series = poll(lambda: len(exported()) >= 6 and exported(), timeout=15, what="cycle series")
    f0, verdict = series["cycle_f0_min"], series["cycle_verdict"]
    # VictoriaMetrics keeps 12 significant digits
    assert f0["values"] == [pytest.approx(c.f0_min, rel=1e-9)] and verdict["values"] == [1]
    assert f0["timestamps"] == [c.end_ns // 1_000_000]  # type: ignore[operator]
    assert f0["metric"]["batch"] == "AC01-0001"  # type: ignore[index]
    assert f0["metric"]["equipment"] == "AC-01"  # type: ignore[index]
    assert series["cycle_hold_s"]["values"] == [pytest.approx(res["hold_s"], rel=1e-9)]


async def test_short_hold_fails_the_cycle_and_raises_the_alert(
    plc_factory: mf.PlcFactory, tmp_path: Path
) -> None:
    engine, ingest, c = await run_cycle(
        plc_factory, tmp_path, [{"kind": "short_hold", "at_s": 0, "hold_s": 300}]
    )
    assert c.verdict == FAIL
    assert any("held" in why and "< 15m" in why for why in c.reasons), c.reasons
    assert any("F0" in why for why in c.reasons), c.reasons
    [alert] = engine.store.list_alerts(rule="steam_steriliser.f0")
    assert "short hold" in alert.message and alert.tags["batch"] == "AC01-0001"
    assert c.phases[1]["end_ns"] <= alert.raised_at < c.end_ns  # when the hold ended
    assert alert.id in c.alert_ids
    raised = [e for e in ingest.events if e.kind == "raised"]
    assert [e.alert.rule for e in raised] == ["steam_steriliser.f0"]
    [reading] = engine.drain_readings()
    assert reading.fields["verdict"] == 0 and reading.fields["f0_min"] < 15.0
