"""Every panel of every generated dashboard, run against a real InfluxDB 1.x fed by `vigil run`.

The module starts `influxd` (Debian's 1.6: InfluxQL only, no /api/v2), Mosquitto, a simulated
autoclave and the gateway with `influx.version: 1`. A scripted scenario goes in: three loggers
over four hours, the past ones (one with an excursion above 8 °C, one with a gap longer than the
GSP storage cadence, one on a truck with a shipment tag), a malformed message, and one autoclave
cycle on the PLC's clock. Then each panel target, annotation and variable query is expanded the
way Grafana expands it (tests/grafana_influxql.py: `$timeFilter`, `$__interval`, variables as
regexes, "All") for three selections (one value, several, All) and two time ranges, and run
through InfluxDB's `/query` as Grafana's backend asks it.

Checked: no query fails or keeps a macro; the panels that have data in the scenario return it;
the temperature panels return the published series and the excursion's maximum; the annotation
is a region from the excursion's true start to its end; the completeness panels show the gap,
as the API does; the cycle panel shows F0 and verdict as the gateway recorded them.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from alert_rules import AlertStore
from alert_rules.cycles import COMPLETE, PASS, CycleStore
from dashboards import build
from gateway.records.users import UserStore
from simulators.plc import collector_config, start_plcs, stop_plcs
from tests.gateway_proc import GatewayProcess, Publisher
from tests.grafana_influxql import ALL, Var, annotations, expand, interpolate
from tests.services import InfluxDB1, Mosquitto, poll

pytestmark = pytest.mark.integration

MIN_MS = 60_000
HOUR_MS = 3_600_000
DB = "vigil"
DASHBOARDS = build.all_dashboards()
USER, PASSWORD = "regulator1", "regulator-password-1"

AUTOCLAVE = {
    "start_delay_s": 30,
    "heatup_s": 300,
    "hold_s": 960,
    "cooldown_s": 300,
    "complete_s": 30,
    "idle_s": 3600,
}
SPEED = 240.0


# -- the scenario -------------------------------------------------------------------------------


def excursion_temp(m: int) -> float:
    """lg-1: above 8 °C from minute 60 to 99, peaking at 11.3 °C at minute 80."""
    return round(11.3 - 0.05 * abs(m - 80), 2)


def published(t0: int) -> dict[str, list[tuple[int, float]]]:
    """(event time ms, temp_c) per logger: four hours from t0, one reading a minute."""
    out: dict[str, list[tuple[int, float]]] = {"lg-1": [], "lg-2": [], "lg(3)": []}
    for m in range(240):
        t = t0 + m * MIN_MS
        out["lg-1"].append((t, excursion_temp(m) if 60 <= m < 100 else 5.0 + 0.1 * (m % 3)))
        if not 125 <= m < 190:  # lg-2 records nothing for 65 minutes
            out["lg-2"].append((t, round(4.0 + 0.1 * (m % 4), 2)))
        out["lg(3)"].append((t, round(6.0 + 0.1 * (m % 5), 2)))
    return out


TOPICS = {
    "lg-1": "vigil/north/coldroom-1/lg-1/telemetry",
    "lg-2": "vigil/north/coldroom-1/lg-2/telemetry",
    # the shipment tag from the topic: two trips, two hours each
    "lg(3)": "trip/{shipment}/wh.south/truck-7/lg(3)/telemetry",
}


def messages(t0: int) -> list[tuple[str, bytes]]:
    out = []
    for device, readings in published(t0).items():
        entries = []
        for i, (t, v) in enumerate(readings):
            entry: dict[str, Any] = {"ts": t, "temp_c": v, "rh_pct": 45.0 + i % 7}
            if device == "lg-1":
                entry["battery_pct"] = 15.0  # low
            if device == "lg-2":
                entry["door_open"] = 30 <= i < 33
                entry["power_ok"] = not 40 <= i < 42
            entries.append(entry)
        for k in range(0, len(entries), 60):
            topic = TOPICS[device].format(shipment="SH-0001" if k < 120 else "SH-0002")
            out.append((topic, orjson.dumps({"readings": entries[k : k + 60]})))
    out.append(("vigil/north/coldroom-1/lg-1/telemetry", b"{not json"))  # a dead letter
    return out


@dataclass
class Scenario:
    influx: InfluxDB1
    t0: int
    """Start of the loggers' four hours (ms, on an hour)."""
    now: int
    cycle: Any
    api_completeness: dict[str, Any]
    options: dict[str, list[str]] = field(default_factory=dict)

    def run(self, q: str) -> dict[str, Any]:
        status, body = self.influx.query(q, DB, epoch="ms")
        assert status == 200, (q, body)  # 400: a parse error (a macro left, a bad duration)
        (result,) = body["results"]  # type: ignore[index]
        assert "error" not in result, (q, result)
        return result  # type: ignore[no-any-return]


def _influx_rows(influx: InfluxDB1, q: str) -> list[list[Any]]:
    status, body = influx.query(q, DB, epoch="ms")
    if status != 200:
        return []
    series = body["results"][0].get("series") or []  # type: ignore[index]
    return [row for s in series for row in s["values"]]


async def _scenario(influx: InfluxDB1, broker: Mosquitto, work: Path) -> Scenario:
    influx.create_database(DB)
    now = int(time.time() * 1000)
    t0 = now // HOUR_MS * HOUR_MS - 4 * HOUR_MS
    plcs = await start_plcs(
        [{"name": "AC-01", "kind": "autoclave", "params": AUTOCLAVE}],
        SPEED,
        horizon_s=3 * 3600,
        paused=True,
    )
    gw: GatewayProcess | None = None
    try:
        modbus = collector_config(
            plcs,
            line="fill-finish-1",
            device_clock=True,
            interval_s=0.05,
            timeout_s=1.0,
            reconnect_max_s=0.5,
        )
        mqtt = {
            "kind": "mqtt",
            "max_future_skew_s": 300,
            "subscriptions": [
                {"topic": "vigil/{site}/{asset}/{device}/telemetry"},
                {"topic": "trip/{shipment}/{site}/{asset}/{device}/telemetry"},
            ],
        }
        gw = GatewayProcess(
            work,
            broker.url,
            None,
            collectors=[mqtt, modbus],
            influx={
                "version": 1,
                "url": influx.url,
                "database": DB,
                "flush_interval_s": 0.2,
                "retry_max_s": 2,
            },
            rules={
                "kpi_interval": 1,
                "bindings": [
                    {"profile": "vaccine_2_8", "measurement": "coldchain"},
                    {
                        "profile": "steam_steriliser",
                        "measurement": "process",
                        "equipment": "AC-*",
                        # one poll is 12 simulated s; a stall of this shared machine is minutes
                        "overrides": {"f0": {"max_gap": "600s"}},
                    },
                ],
            },
            completeness={"window_s": 3600, "settle_s": 0, "interval_s": 0.5},
        )
        users = UserStore(gw.data / "users.sqlite")
        users.add(USER, "Regina Regulator", "viewer", PASSWORD)
        users.close()
        await asyncio.to_thread(gw.start)

        def polled() -> bool:
            return bool(gw.query("SELECT 1 FROM readings WHERE line LIKE 'process,%' LIMIT 1"))

        await asyncio.to_thread(poll, polled, 30, 0.1, "the gateway to poll AC-01")
        plcs[0].clock.resume()
        publisher = await asyncio.to_thread(Publisher, broker.port, "scenario-publisher")
        try:
            await asyncio.to_thread(publisher.publish_all, messages(t0))
        finally:
            publisher.close()

        def cycle_in_influx() -> bool:
            return bool(_influx_rows(influx, 'SELECT "f0_min" FROM "cycle"'))

        def windows_in_influx() -> bool:
            rows = _influx_rows(
                influx, f'SELECT "share" FROM "completeness" WHERE time >= {t0}ms GROUP BY *'
            )
            return len(rows) >= 12

        def alerts_in_influx() -> bool:
            ended = _influx_rows(influx, 'SELECT "end_ms" FROM "alert" WHERE "end_ms" > 0')
            return len(ended) >= 2

        await asyncio.to_thread(poll, cycle_in_influx, 60, 0.3, "the cycle point in InfluxDB")
        await asyncio.to_thread(poll, windows_in_influx, 30, 0.3, "completeness windows")
        await asyncio.to_thread(poll, alerts_in_influx, 30, 0.3, "ended alerts in InfluxDB")
        api = await asyncio.to_thread(_api_completeness, gw, t0)
    finally:
        if gw is not None:
            await asyncio.to_thread(gw.stop)
        await stop_plcs(plcs)
    store = AlertStore(gw.data / "alerts.sqlite")
    try:
        [cycle] = CycleStore.of(store).list_cycles(device="AC-01", status=COMPLETE)
    finally:
        store.close()
    return Scenario(influx, t0, int(time.time() * 1000), cycle, api)


def _api_completeness(gw: GatewayProcess, t0: int) -> dict[str, Any]:
    """GET /api/v1/devices/{source}/completeness from the running gateway, as a regulator."""
    base = f"http://127.0.0.1:{gw.api_port}/api/v1"
    login = urllib.request.Request(
        f"http://127.0.0.1:{gw.api_port}/auth/login",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(login, timeout=10) as r:
        token = json.load(r)["access_token"]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 / 1000))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 / 1000 + 4 * 3600))
    url = f"{base}/devices/north/coldroom-1/lg-2/completeness?since={since}&until={until}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scenario(influxdb1: InfluxDB1) -> Iterator[Scenario]:
    work = Path(tempfile.mkdtemp(prefix="vigil-influxql-"))
    broker = Mosquitto(work)
    broker.start()
    try:
        yield asyncio.run(_scenario(influxdb1, broker, work))
    finally:
        broker.stop()
        broker.remove()
        shutil.rmtree(work, ignore_errors=True)


# -- Grafana's side -----------------------------------------------------------------------------

Selection = str  # "one", "several", "all"
SELECTIONS = ("one", "several", "all")


def variables(sc: Scenario, uid: str, selection: Selection) -> dict[str, Var]:
    """The dashboard's variables as a user leaves them, each query variable's options found by
    running its query (interpolated with the variables before it), as Grafana does."""
    out: dict[str, Var] = {}
    for v in DASHBOARDS[uid]["templating"]["list"]:
        name = v["name"]
        if v["type"] == "custom":
            out[name] = Var(name, v["current"]["value"])
            continue
        if v["type"] != "query":
            continue
        q = interpolate(v["query"], out, sc.t0, sc.now)
        result = sc.run(q)
        options = sorted({row[1] for s in result.get("series", []) for row in s["values"]})
        multi = bool(v.get("multi"))
        current: str | list[str]
        if not multi:  # Grafana picks the first value
            assert options, f"{uid}: variable {name} has no values ({q})"
            current = options[0]
        elif selection == "all":
            current = ALL
        elif selection == "one":
            current = [options[0]] if options else [ALL]
        else:
            current = options[:2] if len(options) > 1 else [ALL]
        out[name] = Var(name, current, options, multi, v.get("allValue"))
    return out


def targets() -> Iterator[Any]:
    for uid, data in DASHBOARDS.items():
        for panel in data["panels"]:
            for t in panel.get("targets", []):
                yield pytest.param(uid, panel, t, id=f"{uid[6:]}:{panel['title']}:{t['refId']}")


def ranges(sc: Scenario) -> list[tuple[int, int, int]]:
    """(from, to, panel width in points): the four hours and a little more at 1000 points, the
    last five minutes (the gateway's own counters, at sub-second intervals), and two days at
    100 (coarse intervals)."""
    return [
        (sc.t0 - HOUR_MS, sc.now, 1000),
        (sc.now - 5 * MIN_MS, sc.now, 1000),
        (sc.now - 2 * 86_400_000, sc.now, 100),
    ]


def panel_query(
    sc: Scenario, uid: str, panel: dict[str, Any], target: dict[str, Any], sel: Selection, rng: Any
) -> str:
    frm, to, width = rng
    q = expand(
        target["query"],
        variables(sc, uid, sel),
        frm,
        to,
        max_data_points=int(panel.get("maxDataPoints") or width),
        min_interval=panel.get("interval"),
    )
    assert not re.search(r"\$\w|\$\{|\[\[", q), f"a macro was left: {q}"
    return q


def run_panel(sc: Scenario, uid: str, title: str, sel: Selection = "all", ref: str = "A") -> Any:
    panel = next(p for p in DASHBOARDS[uid]["panels"] if p.get("title") == title)
    target = next(t for t in panel["targets"] if t["refId"] == ref)
    rng = (sc.t0 - HOUR_MS, sc.now, 1000)
    return sc.run(panel_query(sc, uid, panel, target, sel, rng))


NO_DATA_IN_SCENARIO = {
    ("vigil-production-line", "Differential pressure"),
    ("vigil-production-line", "Particles ≥ 0.5 µm"),
    ("vigil-production-line", "Particles ≥ 5 µm"),
    ("vigil-production-line", "Shelf, product and condenser temperature"),
    ("vigil-production-line", "Freeze-dryer chamber pressure"),
    ("vigil-production-line", "Fill weight"),
    ("vigil-shipment", "Logger battery"),
    ("vigil-shipment", "Door openings"),
}
"""Panels of equipment or signals the scenario does not have (no cleanroom, freeze-dryer or
filling line; the truck's logger reports no battery or door). Their queries still run."""
EMPTY_TARGETS = {("vigil-production-line", "Batch and phase", r) for r in "BCD"}


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "panel", "target"), list(targets()))
def test_every_panel_query_runs_on_influxdb_1(
    scenario: Scenario, uid: str, panel: dict[str, Any], target: dict[str, Any]
) -> None:
    empty_ok = (uid, panel["title"]) in NO_DATA_IN_SCENARIO or (
        (uid, panel["title"], target["refId"]) in EMPTY_TARGETS
    )
    with_data = 0
    for sel in SELECTIONS:
        for rng in ranges(scenario):
            result = scenario.run(panel_query(scenario, uid, panel, target, sel, rng))
            if sel == "all" and rng[2] == 1000 and result.get("series"):
                with_data += 1
    assert with_data or empty_ok, f"{panel['title']} {target['refId']}: no data in any range"


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_variable_and_annotation_queries_run(scenario: Scenario, uid: str) -> None:
    for sel in SELECTIONS:
        vs = variables(scenario, uid, sel)  # runs every variable query
        for anno in DASHBOARDS[uid]["annotations"].get("list", []):
            target = anno.get("target", {})
            if "query" in target:
                q = expand(target["query"], vs, scenario.t0 - HOUR_MS, scenario.now)
                assert not re.search(r"\$\w", q), q
                scenario.run(q)


def _series(result: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    return {s["tags"]["device"]: [(t, v) for t, v in s["values"]] for s in result.get("series", [])}


def test_temperature_panels_return_the_published_series_and_the_excursion_max(
    scenario: Scenario,
) -> None:
    sc = scenario
    want = published(sc.t0)
    panel = next(
        p
        for p in DASHBOARDS["vigil-coldchain-overview"]["panels"]
        if p.get("title") == "Temperature by site / asset"
    )
    # four hours at 240 points: Grafana's interval is 1m, one reading per bucket
    q = expand(
        panel["targets"][0]["query"],
        variables(sc, "vigil-coldchain-overview", "all"),
        sc.t0,
        sc.t0 + 4 * HOUR_MS - 1,
        max_data_points=240,
    )
    assert "GROUP BY time(1m)" in q
    got = _series(sc.run(q))
    assert got == {d: [(t, pytest.approx(v)) for t, v in r] for d, r in want.items()}

    def value(title: str, uid: str = "vigil-coldchain-overview", sel: str = "all") -> Any:
        [s] = run_panel(sc, uid, title, sel)["series"]
        [[_, v]] = s["values"]
        return v

    assert value("Highest temperature") == pytest.approx(11.3)
    assert value("Lowest temperature") == pytest.approx(4.0)
    assert value("Readings outside band") == 40
    assert value("Loggers reporting") == 3
    # the truck's logger, found through its shipment tags: one series per trip (All)
    trips = run_panel(sc, "vigil-shipment", "Trip temperature")["series"]
    assert sorted((s["tags"]["shipment"], s["tags"]["device"]) for s in trips) == [
        ("SH-0001", "lg(3)"),
        ("SH-0002", "lg(3)"),
    ]
    first = next(s for s in trips if s["tags"]["shipment"] == "SH-0001")
    assert next((t, v) for t, v in first["values"] if v is not None) == (
        sc.t0,
        pytest.approx(6.0),
    )
    highest = run_panel(sc, "vigil-shipment", "Highest temperature")["series"]
    assert [s["values"][0][1] for s in highest] == [pytest.approx(6.4)] * 2
    one = run_panel(sc, "vigil-shipment", "Highest temperature", "one")  # the first site
    assert "series" not in one  # north has no truck
    # one value of each variable selected (the first: north, coldroom-1, lg-1)
    one = _series(run_panel(sc, "vigil-coldchain-overview", "Temperature by site / asset", "one"))
    assert set(one) == {"lg-1"}
    # the dot and brackets of "wh.south" and "lg(3)" are escaped by Grafana: they match only
    # themselves, alone or among several values
    for site, device in ((["wh.south"], ["lg(3)"]), (["north", "wh.south"], ["lg-2", "lg(3)"])):
        vs = {
            "site": Var("site", site, multi=True),
            "asset": Var("asset", ALL, multi=True, all_value=".*"),
            "device": Var("device", device, multi=True),
        }
        q = expand(panel["targets"][0]["query"], vs, sc.t0, sc.now)
        assert set(_series(sc.run(q))) == set(device), q
    [low] = run_panel(sc, "vigil-coldchain-overview", "Low battery")["series"]
    assert low["tags"]["device"] == "lg-1" and low["values"][0][1] == 15.0
    out = run_panel(sc, "vigil-shipment", "Time out of range")["series"]
    assert [s["values"][0][1] for s in out] == [0, 0]


def test_alert_annotation_spans_the_excursion_from_its_true_start_to_its_end(
    scenario: Scenario,
) -> None:
    sc = scenario
    uid = "vigil-coldchain-overview"
    [anno] = DASHBOARDS[uid]["annotations"]["list"]
    q = expand(anno["target"]["query"], variables(sc, uid, "all"), sc.t0 - HOUR_MS, sc.now)
    events = annotations(anno["target"], sc.run(q))
    high = [e for e in events if e.title == "vaccine_2_8.high"]
    assert len(high) == 1, events
    [e] = high
    # the first reading above 8 °C to the first back below 7.7 °C (the deadband), on the
    # loggers' clock, not when the gateway raised or cleared it
    assert (e.time, e.time_end) == (sc.t0 + 60 * MIN_MS, sc.t0 + 100 * MIN_MS)
    assert e.is_region and "temp_c > 8" in e.text
    assert "high" in e.tags and "north/coldroom-1/lg-1" in e.tags
    [gap] = [e for e in events if e.title == "vaccine_2_8.record_gap"]
    assert (gap.time, gap.time_end) == (sc.t0 + 124 * MIN_MS, sc.t0 + 190 * MIN_MS)
    assert gap.is_region and "north/coldroom-1/lg-2" in gap.tags
    # the point written at the clear carries the value that cleared it, at the true end
    rows = _influx_rows(
        sc.influx,
        'SELECT "event", "value", "peak" FROM "alert" WHERE "rule" = '
        "'vaccine_2_8.high' AND \"event\" = 'cleared'",
    )
    assert [r[0] for r in rows] == [sc.t0 + 100 * MIN_MS]
    assert rows[0][2] == pytest.approx(5.0 + 0.1 * (100 % 3)) and rows[0][3] == pytest.approx(11.3)


def test_completeness_panels_show_the_gap_as_the_api_does(scenario: Scenario) -> None:
    sc = scenario
    uid = "vigil-fleet-overview"
    rows = run_panel(sc, uid, "Record completeness per device")["series"]
    by_device = {
        s["tags"]["device"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in rows
    }
    # lg-2: 30-minute slots (storage), 8 in the four hours, one of them empty
    assert by_device["lg-2"]["completeness"] == pytest.approx(87.5)
    assert by_device["lg-2"]["missed_slots"] == 1
    assert by_device["lg-1"]["completeness"] == 100 and by_device["lg(3)"]["completeness"] == 100
    # the truck's logger is judged on the 5-minute transport cadence: 12 slots an hour
    # the window holding the gap, in the panel over time: a dip to 50 %
    over = run_panel(sc, uid, "Record completeness over time")["series"]
    lg2 = next(s for s in over if s["tags"]["source"] == "north/coldroom-1/lg-2")
    assert [v for _, v in lg2["values"] if v is not None and v < 100] == [50]
    # the API agrees: same share, the gap from the last reading before it to the first after
    api = sc.api_completeness
    assert api["slots"] == 8 and api["filled"] == 7 and api["share"] == pytest.approx(0.875)
    [gap] = api["gaps"]
    assert gap["duration_s"] == 66 * 60 and gap["missed_slots"] == 1
    assert api["cadence"]["rule"] == "vaccine_2_8.record_gap"
    gateways = run_panel(sc, uid, "Gateways", ref="E")["series"]
    assert [s["tags"]["gateway"] for s in gateways] == ["test-gw"]
    online = run_panel(sc, uid, "Gateways online")["series"][0]["values"][0][1]
    assert online == 1


def test_cycle_panel_shows_f0_and_verdict(scenario: Scenario) -> None:
    sc = scenario
    c = sc.cycle
    [s] = run_panel(sc, "vigil-production-line", "Cycles")["series"]
    row = dict(zip(s["columns"], s["values"][0], strict=True))
    assert s["tags"] == {"equipment": "AC-01", "batch": c.batch}
    assert row["time"] == c.end_ns // 1_000_000
    assert row["f0_min"] == pytest.approx(c.f0_min) and row["f0_min"] > 0
    assert row["verdict"] == (1 if c.verdict == PASS else 0)
    assert row["hold_s"] > 0
    phases = run_panel(sc, "vigil-production-line", "Batch and phase")["series"]
    assert {s["tags"]["phase"] for s in phases} >= {"heat_up", "hold", "cool_down"}
