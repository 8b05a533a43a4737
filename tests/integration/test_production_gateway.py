"""Production rules judged by the real gateway (`vigil run`) on the PLCs' own clocks.

Two simulated autoclaves run 120 times faster than the wall clock: one good, one whose hold ends
after 5 minutes. The gateway polls them with `collector_config(..., device_clock=True)`, so every
reading is filed under the PLC's clock register (simulated process time) and the rules judge F0
and the hold in process time without any mapping in the test. Checked: the cycle summaries in the
alert store, the short-hold alert, and the `cycle_*` series the gateway forwards to
VictoriaMetrics.

The test's event loop serves the PLCs, so every blocking call (child process, HTTP, SQLite)
goes through a thread.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alert_rules import AlertStore
from alert_rules.cycles import COMPLETE, FAIL, PASS, CycleStore
from simulators.plc import collector_config, start_plcs, stop_plcs
from tests.gateway_proc import GatewayProcess
from tests.services import Mosquitto, VictoriaMetrics

pytestmark = pytest.mark.integration

S = 1_000_000_000
SPEED = 120.0
POLL_S = 0.05  # a reading every 6 simulated seconds
# heat-up 5 min, hold 16 min, cool-down 5 min: a cycle of 27 min, about 13 s of wall time
AUTOCLAVE = {
    "start_delay_s": 30,
    "heatup_s": 300,
    "hold_s": 960,
    "cooldown_s": 300,
    "complete_s": 30,
    "idle_s": 3600,
}
PLCS = [
    {"name": "AC-01", "kind": "autoclave", "params": AUTOCLAVE},
    {
        "name": "AC-02",
        "kind": "autoclave",
        "params": AUTOCLAVE,
        "faults": [{"kind": "short_hold", "at_s": 0, "hold_s": 300}],
    },
]
RULES = {
    "bindings": [
        {
            "profile": "steam_steriliser",
            "measurement": "process",
            "equipment": "AC-*",
            # one poll is 6 simulated s; a 1 s stall of this shared machine is 120 s
            "overrides": {"f0": {"max_gap": "120s"}},
        }
    ]
}


async def wait_for(
    predicate: Callable[[], Any], within_s: float, what: str, every_s: float = 0.2
) -> Any:
    """Run a blocking predicate in a thread until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = await asyncio.to_thread(predicate)
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}: {result!r}")
        await asyncio.sleep(every_s)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return []
    finally:
        con.close()


def devices_polled(gw: GatewayProcess) -> set[str]:
    rows = _rows(gw.journal, "SELECT line FROM readings WHERE line LIKE 'process,%'")
    return {m for (line,) in rows for m in re.findall(r"device=(AC-0[12])[, ]", line)}


def complete_cycles(gw: GatewayProcess) -> dict[str, tuple[Any, ...]]:
    rows = _rows(
        gw.data / "alerts.sqlite",
        f"SELECT device, verdict, f0_min FROM cycles WHERE status = '{COMPLETE}'",
    )
    return {r[0]: r for r in rows}


def cycle_series(vm: VictoriaMetrics) -> dict[tuple[str, str], dict[str, Any]]:
    rows = vm.export('{__name__=~"cycle_(f0_min|verdict|duration_s)"}')
    return {(str(r["metric"]["__name__"]), str(r["metric"]["device"])): r for r in rows}  # type: ignore[index]


async def test_gateway_judges_autoclave_cycles_on_the_plc_clock(
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    make_gateway: Callable[..., GatewayProcess],
) -> None:
    # Paused until the gateway polls them, so it sees each cycle from its start.
    plcs = await start_plcs(PLCS, SPEED, paused=True)
    gw: GatewayProcess | None = None
    try:
        modbus = collector_config(
            plcs,
            line="fill-finish-1",
            device_clock=True,
            interval_s=POLL_S,
            timeout_s=1.0,
            reconnect_max_s=0.5,
        )
        gw = make_gateway(mosquitto.url, victoria.url, collectors=[modbus], rules=RULES)
        await asyncio.to_thread(gw.start, False)
        await wait_for(
            lambda: devices_polled(gw) == {"AC-01", "AC-02"} or not gw.alive(),  # type: ignore[union-attr]
            within_s=30,
            what="the gateway to poll both autoclaves",
        )
        assert gw.alive(), gw.log.read_text()
        plcs[0].clock.resume()
        done = await wait_for(
            lambda: len(complete_cycles(gw)) == 2 and complete_cycles(gw),  # type: ignore[union-attr]
            within_s=40,
            what="both cycles to complete",
        )
        assert done["AC-01"][1] == PASS and done["AC-02"][1] == FAIL, done
        series = await wait_for(
            lambda: len(cycle_series(victoria)) == 6 and cycle_series(victoria),
            within_s=15,
            what="cycle series in VictoriaMetrics",
        )
        assert all(p.writes == 0 for p in plcs)
    finally:
        if gw is not None:
            await asyncio.to_thread(gw.stop)
        await stop_plcs(plcs)

    store = AlertStore(gw.data / "alerts.sqlite")
    try:
        cycles = CycleStore.of(store)
        [good] = cycles.list_cycles(device="AC-01", status=COMPLETE)
        [short] = cycles.list_cycles(device="AC-02", status=COMPLETE)
        f0_alerts = store.list_alerts(rule="steam_steriliser.f0")
    finally:
        store.close()

    # The good load: judged on the PLC's clock, the 27-minute cycle took 27 minutes.
    assert good.verdict == PASS, good.reasons
    assert good.batch == "AC01-0001" and good.equipment == "AC-01"
    assert [p["phase"] for p in good.phases] == ["heat_up", "hold", "cool_down", "complete"]
    assert 1500 <= (good.end_ns - good.start_ns) / S <= 1620  # type: ignore[operator]
    res = good.results["steam_steriliser.f0"]
    assert res["hold_s"] >= 900 and res["gaps"] == 0
    assert good.f0_min is not None and 15.0 <= good.f0_min <= 21.0
    assert [a.source for a in f0_alerts] == ["fill-finish-1/AC-02/AC-02"]  # line/equipment/device

    # The short hold: the cycle fails and the alert is raised when the hold ended.
    assert short.verdict == FAIL
    assert any("held" in why and "< 15m" in why for why in short.reasons), short.reasons
    assert short.f0_min is not None and short.f0_min < 15.0
    [alert] = f0_alerts
    assert "short hold" in alert.message and alert.tags["batch"] == "AC02-0001"
    assert short.phases[1]["end_ns"] <= alert.raised_at < short.end_ns  # type: ignore[operator]
    assert alert.id in short.alert_ids

    # The gateway forwarded the cycle readings, stamped with each cycle's end on the PLC clock.
    for c, verdict in ((good, 1), (short, 0)):
        f0 = series[("cycle_f0_min", c.device)]
        assert f0["values"] == [pytest.approx(c.f0_min, rel=1e-9)], c.device
        assert f0["timestamps"] == [c.end_ns // 1_000_000], c.device  # type: ignore[operator]
        assert f0["metric"]["batch"] == c.batch
        assert series[("cycle_verdict", c.device)]["values"] == [verdict], c.device
    duration = series[("cycle_duration_s", "AC-01")]["values"][0]
    assert duration == pytest.approx((good.end_ns - good.start_ns) / S, rel=1e-6)  # type: ignore[operator]

    # Every process reading was journaled and forwarded under the PLC's time, none under receipt.
    assert gw.query("SELECT COUNT(*) FROM readings WHERE line LIKE 'process,%'")[0][0] > 200
    flagged = "SELECT COUNT(*) FROM readings WHERE line LIKE 'process,%' AND ts_from_receive = 1"
    assert gw.query(flagged)[0][0] == 0
    rows = await asyncio.to_thread(
        victoria.export, '{__name__="process_chamber_temp_c",device="AC-01"}'
    )  # one series per phase and batch tag set
    stamps = sorted(int(t) for row in rows for t in row["timestamps"])  # type: ignore[attr-defined]
    assert stamps[0] <= good.start_ns // 1_000_000 <= good.end_ns // 1_000_000 <= stamps[-1]  # type: ignore[operator]
