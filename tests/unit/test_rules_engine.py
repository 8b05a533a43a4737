"""RulesEngine end to end on an injected clock: event time, retrospective batches, restarts,
and each rule kind through the built-in packs."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_rules import (
    AlertState,
    AlertStore,
    EventKind,
    ManualClock,
    RulesConfig,
    RulesEngine,
    alert_event_readings,
)
from alert_rules.kpi import KPI_MEASUREMENT
from gateway.core.reading import Reading
from gateway.core.schema import ALERT

S = 1_000_000_000
MIN = 60 * S
H = 60 * MIN
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z


def make_engine(
    path: Path | str, bindings: list[dict[str, Any]], clock: ManualClock | None = None, **cfg: Any
) -> RulesEngine:
    config = RulesConfig.model_validate({"bindings": bindings, **cfg})
    return RulesEngine(config, AlertStore(path), clock or ManualClock(T0))


def rd(
    ts: int,
    device: str = "lg-1",
    received: int | None = None,
    *,
    asset: str = "fridge-1",
    site: str = "wh1",
    measurement: str = "coldchain",
    tags: dict[str, str] | None = None,
    **fields: Any,
) -> Reading:
    t = {"site": site, "asset": asset, "device": device, **(tags or {})}
    return Reading(measurement, t, fields, ts, received if received is not None else ts + S)


def feed(engine: RulesEngine, readings: list[Reading]) -> list[Any]:
    """Feed one reading at a time with the clock at its receive time (live data)."""
    events = []
    for r in readings:
        engine.clock.set(r.received_ns)  # type: ignore[attr-defined]
        events += engine.process([r])
    return events


def of_rule(engine: RulesEngine, rule: str) -> list[Any]:
    return sorted(engine.store.list_alerts(rule=rule), key=lambda a: a.id)


VACCINE = [{"site": "wh1", "profile": "vaccine_2_8"}]


@pytest.mark.parametrize(("dip_min", "alarm"), [(59, False), (61, True)])
def test_freeze_dip_59_vs_61_minutes(tmp_path: Path, dip_min: int, alarm: bool) -> None:
    engine = make_engine(tmp_path / "a.db", VACCINE)
    temps = [5.0] * 30 + [-1.0] * dip_min + [5.0] * 30
    feed(engine, [rd(T0 + i * MIN, temp_c=t) for i, t in enumerate(temps)])
    alerts = of_rule(engine, "vaccine_2_8.freeze_alarm")
    if not alarm:
        assert alerts == []
        assert of_rule(engine, "vaccine_2_8.low")  # the instant GSP alarm still fired
        return
    [a] = alerts
    dip_start = T0 + 30 * MIN
    assert a.started_at == dip_start
    assert a.raised_at == dip_start + 60 * MIN
    assert a.ended_at == a.cleared_at == dip_start + dip_min * MIN
    assert a.state is AlertState.RTN_UNACKNOWLEDGED
    assert a.severity == "critical" and a.latching and not a.retrospective
    assert a.peak == -1.0 and a.source == "wh1/fridge-1/lg-1"
    assert "≤ -0.5 °C for 1h" in a.message


def shipment_readings(
    pieces_min: list[int], gap_min: int = 60, shipment: str = "S1", start: int = T0
) -> tuple[list[Reading], list[tuple[int, int]]]:
    """Readings every 5 min: 5 °C, then each piece at 30 °C separated by 5 °C gaps."""
    out, spans, t = [], [], start
    step = 5 * MIN

    def add(temp: float, minutes: int) -> None:
        nonlocal t
        for _ in range(minutes // 5):
            out.append(
                rd(
                    t,
                    "truck-7",
                    asset="truck-7",
                    site="road",
                    tags={"shipment": shipment},
                    temp_c=temp,
                )
            )
            t += step

    add(5.0, gap_min)
    for p in pieces_min:
        spans.append((t, t + p * MIN))
        add(30.0, p)
        add(5.0, gap_min)
    return out, spans


SHIPPING = [{"site": "road", "profile": "who_shipping_indicator"}]


def test_ten_cumulative_hours_at_30c_split_in_pieces(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", SHIPPING)
    readings, spans = shipment_readings([180, 150, 240, 30, 45])  # 10 h 45 min in five pieces
    feed(engine, readings)
    [a] = of_rule(engine, "who_shipping_indicator.heat_30_10h")
    assert a.started_at == spans[0][0]
    assert a.raised_at == spans[3][1]  # 3 h + 2.5 h + 4 h + 0.5 h = 10 h exactly
    assert a.active and a.state is AlertState.UNACKNOWLEDGED
    assert a.tags["shipment"] == "S1"
    assert "in shipment S1" in a.message
    assert of_rule(engine, "who_shipping_indicator.heat_45_1h") == []
    # the next shipment starts from zero and returns the indicator to normal
    more, _ = shipment_readings([60], shipment="S2", start=readings[-1].ts_ns + 5 * MIN)
    feed(engine, more)
    [a] = of_rule(engine, "who_shipping_indicator.heat_30_10h")
    assert not a.active and a.cleared_at == more[0].ts_ns


def test_nine_hours_fifty_five_at_30c_does_not_alarm(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", SHIPPING)
    readings, _ = shipment_readings([180, 150, 240, 25])
    feed(engine, readings)
    assert of_rule(engine, "who_shipping_indicator.heat_30_10h") == []


def test_batch_uploaded_hours_late_gives_retrospective_alert_with_true_times(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    engine = make_engine(tmp_path / "a.db", SHIPPING, clock)
    live = [
        rd(T0 + i * MIN, "truck-7", asset="truck-7", site="road", temp_c=5.0) for i in range(10)
    ]
    feed(engine, live)
    # truck goes offline for six hours; the stale rule notices on the wall clock
    clock.set(T0 + 10 * MIN + 5 * MIN)
    assert engine.tick() == []
    clock.set(T0 + 10 * MIN + 7 * MIN)
    [stale] = engine.tick()
    assert stale.kind is EventKind.RAISED and stale.alert.rule == "who_shipping_indicator.stale"
    # then uploads its buffer in one batch, received now; a 90-min freeze hides inside
    upload_at = T0 + 6 * H + 10 * MIN
    clock.set(upload_at)
    batch = []
    for i in range(10, 6 * 60 + 10):
        temp = -2.0 if 100 <= i < 190 else 5.0
        batch.append(
            rd(T0 + i * MIN, "truck-7", upload_at, asset="truck-7", site="road", temp_c=temp)
        )
    random.Random(7).shuffle(batch)  # order inside a batch does not matter
    events = engine.process(batch)
    kinds = [(e.kind, e.alert.rule) for e in events]
    assert (EventKind.CLEARED, "who_shipping_indicator.stale") in kinds
    [a] = of_rule(engine, "who_shipping_indicator.freeze_1h")
    assert a.started_at == T0 + 100 * MIN
    assert a.raised_at == T0 + 160 * MIN
    assert a.ended_at == T0 + 190 * MIN
    assert a.retrospective and a.detected_at == upload_at
    assert a.state is AlertState.RTN_UNACKNOWLEDGED
    raised = [e for e in events if e.alert.id == a.id and e.kind is EventKind.RAISED]
    assert raised[0].at_ns == T0 + 160 * MIN and raised[0].alert.retrospective


def test_live_alert_is_not_retrospective_even_with_long_on_delay(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", SHIPPING)
    feed(
        engine,
        [rd(T0 + i * MIN, "truck-7", asset="truck-7", site="road", temp_c=-1.0) for i in range(70)],
    )
    [a] = of_rule(engine, "who_shipping_indicator.freeze_1h")
    assert not a.retrospective


TIMERS = {
    "profiles": {
        "t": {
            "rules": [
                {
                    "id": "hi",
                    "kind": "threshold",
                    "field": "temp_c",
                    "high": 8,
                    "deadband": 0.5,
                    "on_delay": "3m",
                    "off_delay": "2m",
                },
                {
                    "id": "single",
                    "kind": "duration",
                    "field": "temp_c",
                    "low": 2,
                    "timer": "single",
                    "duration": "5m",
                },
                {
                    "id": "cum",
                    "kind": "duration",
                    "field": "temp_c",
                    "high": 8,
                    "timer": "cumulative",
                    "duration": "7m",
                    "window": "30m",
                },
            ]
        }
    },
    "bindings": [{"profile": "t"}],
}


def alert_key(a: Any) -> tuple[Any, ...]:
    return (a.rule, a.started_at, a.raised_at, a.ended_at, a.cleared_at, a.activations)


def run_timers(readings: list[Reading], lateness: str = "0s") -> list[tuple[Any, ...]]:
    engine = RulesEngine(
        RulesConfig.model_validate({**TIMERS, "lateness": lateness}),
        AlertStore(":memory:"),
        ManualClock(T0),
    )
    for r in readings:
        engine.process([r])
    engine.flush()
    return sorted(alert_key(a) for a in engine.store.list_alerts())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from([0.0, 1.5, 5.0, 7.8, 8.0, 9.5, 12.0]), min_size=5, max_size=60),
    st.integers(1, 6),
    st.randoms(use_true_random=False),
)
def test_arrival_order_within_lateness_does_not_change_alerts(
    temps: list[float], lateness_min: int, rnd: random.Random
) -> None:
    """Readings shuffled by at most `lateness` give the alerts of the in-order series."""
    readings = [rd(T0 + i * MIN, temp_c=t) for i, t in enumerate(temps)]
    expected = run_timers(readings)
    jitter = sorted(readings, key=lambda r: r.ts_ns + rnd.uniform(0, lateness_min * MIN))
    assert run_timers(jitter, f"{lateness_min}m") == expected


def test_reading_later_than_the_bound_is_skipped_and_counted(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path / "a.db", TIMERS["bindings"], lateness="2m", profiles=TIMERS["profiles"]
    )
    feed(engine, [rd(T0 + i * MIN, temp_c=5.0) for i in range(10)])
    engine.process([rd(T0 + 2 * MIN, temp_c=30.0)])
    engine.flush()
    assert engine.stats["late"] == 1
    assert engine.store.list_alerts() == []


def test_reorder_buffer_releases_on_the_wall_clock(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine = make_engine(
        tmp_path / "a.db",
        [{"profile": "p"}],
        clock,
        lateness="30s",
        profiles={
            "p": {"rules": [{"id": "hot", "kind": "threshold", "field": "temp_c", "high": 8}]}
        },
    )
    clock.set(T0 + S)
    assert engine.process([rd(T0, temp_c=9.0, received=T0 + S)]) == []  # held
    clock.set(T0 + 20 * S)
    assert engine.tick() == []
    clock.set(T0 + 31 * S)
    [e] = engine.tick()
    assert e.kind is EventKind.RAISED and e.alert.raised_at == T0


def test_restart_resumes_a_running_timer(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    readings = [rd(T0 + i * MIN, temp_c=-1.0 if i >= 10 else 5.0) for i in range(100)]
    first = make_engine(db, VACCINE)
    feed(first, readings[:40])  # 30 min into the dip
    first.close()
    first.store.close()
    second = make_engine(db, VACCINE)
    feed(second, readings[40:])
    [a] = of_rule(second, "vaccine_2_8.freeze_alarm")
    assert (a.started_at, a.raised_at) == (T0 + 10 * MIN, T0 + 70 * MIN)


def test_crash_replay_from_resume_point_raises_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    readings = [
        rd(T0 + i * MIN, temp_c=9.5 if 20 <= i < 40 or 60 <= i < 70 else 5.0) for i in range(90)
    ]
    first = make_engine(db, VACCINE)
    feed(first, readings[:30])
    first.snapshot()
    feed(first, readings[30:])  # ... and the process dies here without close()
    before = sorted(alert_key(a) for a in first.store.list_alerts())
    first.store.db.close()
    second = make_engine(db, VACCINE)
    assert second.resume_from_ns is not None
    replay = [r for r in readings if r.received_ns >= second.resume_from_ns]
    assert len(replay) < len(readings)
    events = feed(second, replay)
    assert [e for e in events if e.kind in (EventKind.RAISED, EventKind.REACTIVATED)] == []
    assert sorted(alert_key(a) for a in second.store.list_alerts()) == before


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([1.0, 5.0, 8.0, 9.0, 12.0]), min_size=2, max_size=50), st.data())
def test_restart_anywhere_gives_the_same_alerts(temps: list[float], data: st.DataObject) -> None:
    readings = [rd(T0 + i * MIN, temp_c=t) for i, t in enumerate(temps)]
    expected = run_timers(readings)
    cut = data.draw(st.integers(0, len(readings)))
    with tempfile.TemporaryDirectory() as d:
        cfg = RulesConfig.model_validate(TIMERS)
        a = RulesEngine(cfg, AlertStore(Path(d) / "x.db"), ManualClock(T0))
        for r in readings[:cut]:
            a.process([r])
        a.close()
        a.store.close()
        b = RulesEngine(cfg, AlertStore(Path(d) / "x.db"), ManualClock(T0))
        for r in readings[cut:]:
            b.process([r])
        got = sorted(alert_key(x) for x in b.store.list_alerts())
        b.store.close()
    assert got == expected


HEALTH = [{"site": "wh1", "profile": "device_health"}]


def test_stale_data_on_the_wall_clock(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine = make_engine(tmp_path / "a.db", HEALTH, clock)
    feed(engine, [rd(T0, temp_c=5.0, received=T0)])
    clock.set(T0 + 90 * S)
    assert engine.tick() == []  # 60 s interval + 30 s grace, not yet exceeded
    clock.set(T0 + 91 * S)
    [e] = engine.tick()
    assert e.alert.rule == "device_health.stale" and e.alert.started_at == T0
    assert e.alert.raised_at == T0 + 90 * S and not e.alert.retrospective
    assert engine.tick() == []  # one alert, not one per tick
    [c] = feed(engine, [rd(T0 + 120 * S, temp_c=5.0, received=T0 + 120 * S)])
    assert c.kind is EventKind.CLEARED and c.new_state is AlertState.RTN_UNACKNOWLEDGED


def test_sensor_fault_range_and_flatline(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", HEALTH)
    events = feed(
        engine, [rd(T0, temp_c=5.0), rd(T0 + MIN, temp_c=-200.0), rd(T0 + 2 * MIN, temp_c=5.1)]
    )
    faults = [e for e in events if e.alert.rule == "device_health.temp_sensor_fault"]
    assert [e.kind for e in faults] == [EventKind.RAISED, EventKind.CLEARED]
    assert "outside the sensor's range" in faults[0].alert.message
    flat = [rd(T0 + (3 + i) * MIN, "lg-2", temp_c=4.0) for i in range(6 * 60 + 1)]
    feed(engine, flat)
    [a] = [
        x
        for x in engine.store.list_alerts(rule="device_health.temp_sensor_fault")
        if x.source.endswith("lg-2")
    ]
    assert a.started_at == T0 + 3 * MIN and a.raised_at == T0 + 3 * MIN + 6 * H
    assert "flat at 4" in a.message


def test_rh_out_of_physical_range_is_a_sensor_fault(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", HEALTH)
    feed(engine, [rd(T0, rh_pct=104.0)])
    assert [a.rule for a in engine.store.list_alerts()] == ["device_health.rh_sensor_fault"]


def test_door_power_and_battery(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", HEALTH)
    door = [rd(T0 + i * MIN, door_open=i < 4) for i in range(6)]  # 4 min: fine
    door += [rd(T0 + (10 + i) * MIN, door_open=i < 6) for i in range(8)]  # 6 min: too long
    feed(engine, door)
    [d] = engine.store.list_alerts(rule="device_health.door_open")
    assert (d.started_at, d.raised_at, d.ended_at) == (T0 + 10 * MIN, T0 + 15 * MIN, T0 + 16 * MIN)
    feed(engine, [rd(T0 + 30 * MIN, power_ok=True), rd(T0 + 31 * MIN, power_ok=False)])
    [p] = engine.store.list_alerts(rule="device_health.power_failure")
    assert p.active and p.raised_at == T0 + 31 * MIN and p.severity == "high"
    feed(
        engine, [rd(T0 + (40 + i) * MIN, battery_pct=b) for i, b in enumerate([30, 20, 22, 24, 26])]
    )
    [b] = engine.store.list_alerts(rule="device_health.battery_low")
    assert b.raised_at == T0 + 41 * MIN  # 20 % inclusive
    assert b.cleared_at == T0 + 44 * MIN  # above 20 + 5 deadband


def test_rate_of_change(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path / "a.db",
        [{"profile": "r"}],
        profiles={
            "r": {
                "rules": [
                    {
                        "id": "ramp",
                        "kind": "rate_of_change",
                        "field": "temp_c",
                        "max_rise": 0.5,
                        "window": "5m",
                    }
                ]
            }
        },
    )
    temps = [5.0] * 10 + [5.0 + 0.8 * i for i in range(1, 8)] + [10.6] * 10
    feed(engine, [rd(T0 + i * MIN, temp_c=t) for i, t in enumerate(temps)])
    [a] = engine.store.list_alerts()
    # rate against the reading 5 min earlier: 0.16, 0.32, 0.48, then 0.64 °C/min at minute 13
    assert (a.started_at, a.raised_at) == (T0 + 8 * MIN, T0 + 13 * MIN)
    assert a.value == pytest.approx(0.64)
    assert a.cleared_at == T0 + 18 * MIN and not a.active


def test_suppressed_by_design_while_in_operation(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", [{"line": "L1", "profile": "cleanroom_grade_b"}])

    def pr(i: int, particles: float, phase: str) -> Reading:
        return Reading(
            "process",
            {"line": "L1", "equipment": "roomB", "device": "pc-1", "phase": phase},
            {"particles_05um_m3": particles},
            T0 + i * MIN,
            T0 + i * MIN + S,
        )

    events = feed(engine, [pr(0, 1000, "at_rest"), pr(1, 9000, "at_rest")])
    [e] = [x for x in events if x.alert.rule == "cleanroom_grade_b.particles_at_rest"]
    assert e.annunciate and e.alert.source == "L1/roomB/pc-1"
    engine.ack(e.alert.id, "op")
    events = feed(engine, [pr(2, 50_000, "operation")])
    [s] = events
    assert s.kind is EventKind.SUPPRESSED and not s.annunciate
    engine.close()
    engine.store.close()
    engine = make_engine(tmp_path / "a.db", [{"line": "L1", "profile": "cleanroom_grade_b"}])
    [u] = feed(engine, [pr(3, 50_000, "at_rest")])  # suppression state survived the restart
    assert (u.kind, u.new_state) == (EventKind.UNSUPPRESSED, AlertState.UNACKNOWLEDGED)
    feed(engine, [pr(4, 1000, "operation"), pr(5, 1000, "at_rest")])
    [a] = engine.store.list_alerts(rule="cleanroom_grade_b.particles_at_rest")
    assert a.state is AlertState.NORMAL  # cleared while suppressed, then ended


def test_alert_events_become_alert_readings(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", VACCINE)
    events = feed(engine, [rd(T0, temp_c=5.0), rd(T0 + MIN, temp_c=9.0)])
    [e] = [x for x in events if x.alert.rule == "vaccine_2_8.high"]
    [r] = alert_event_readings(e, "gw-1")
    assert r.measurement == ALERT.name == "alert"
    assert r.tags == {
        "rule": "vaccine_2_8.high",
        "severity": "high",
        "source": "wh1/fridge-1/lg-1",
        "gateway": "gw-1",
    }
    assert set(r.fields) <= set(ALERT.fields) and set(r.tags) == set(ALERT.tags)
    assert r.fields["state"] == "unacknowledged" and r.fields["value"] == 9.0
    assert r.fields["event"] == "raised" and r.fields["end_ms"] == 0
    assert r.ts_ns == T0 + MIN


def test_alert_points_span_each_excursion_from_its_true_start_to_its_end(tmp_path: Path) -> None:
    """With an on-delay the alert is raised 5 minutes into the excursion: its point is at the
    excursion's start all the same; the clear completes it with the true end and the peak, and
    its own point carries the value that cleared it. A re-activation is an excursion of its own."""
    engine = make_engine(
        tmp_path / "a.db",
        [{"profile": "p"}],
        profiles={
            "p": {
                "rules": [
                    {"id": "hot", "kind": "threshold", "field": "temp_c", "high": 8},
                    {"id": "slow", "kind": "threshold", "field": "temp_c", "high": 8,
                     "on_delay": "5m"},
                ]
            }
        },
    )  # fmt: skip
    temps = [5.0] + [9.0, 9.5, 11.0, 10.0, 9.0, 9.0, 9.0] + [6.0] * 5 + [9.0] * 7 + [5.5]
    events = feed(engine, [rd(T0 + i * MIN, temp_c=t) for i, t in enumerate(temps)])
    slow = [e for e in events if e.alert.rule == "p.slow"]
    assert [e.kind for e in slow] == [
        EventKind.RAISED,
        EventKind.CLEARED,
        EventKind.REACTIVATED,
        EventKind.CLEARED,
    ]
    points = [r for e in slow for r in alert_event_readings(e, "gw-1")]
    by_time: dict[int, dict[str, Any]] = {}
    for r in points:  # InfluxDB merges the fields of points with the same series and time
        by_time.setdefault(r.ts_ns, {}).update(r.fields)
    first, second = T0 + 1 * MIN, T0 + 13 * MIN
    assert by_time[first]["event"] == "raised" and by_time[first]["value"] == 9.0
    assert by_time[first]["end_ms"] == (T0 + 8 * MIN) // 1_000_000
    assert by_time[first]["peak"] == 11.0
    assert by_time[T0 + 8 * MIN]["event"] == "cleared" and by_time[T0 + 8 * MIN]["value"] == 6.0
    assert by_time[second]["event"] == "reactivated"
    assert by_time[second]["end_ms"] == (T0 + 20 * MIN) // 1_000_000
    assert by_time[T0 + 20 * MIN]["value"] == 5.5
    [a] = of_rule(engine, "p.slow")
    assert a.raised_at == first + 5 * MIN  # raised after the on-delay, drawn from the start


def test_kpis_flood_chattering_and_stale(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine = make_engine(
        tmp_path / "a.db",
        [{"profile": "p"}],
        clock,
        profiles={
            "p": {"rules": [{"id": "hot", "kind": "threshold", "field": "temp_c", "high": 8}]}
        },
    )
    # 12 devices go hot within 10 minutes: a flood
    feed(engine, [rd(T0 + i * 10 * S, f"d{i}", temp_c=9.0) for i in range(12)])
    # one device chatters: 3 activations within a minute
    feed(
        engine,
        [rd(T0 + 200 * S + i * 10 * S, "ch", temp_c=9.0 if i % 2 == 0 else 5.0) for i in range(5)],
    )
    k = engine.kpis(T0 + 5 * MIN)
    assert k.alarms_10min == 15 and k.flood and k.chattering == 1 and k.stale == 0
    assert k.unacknowledged == 13 and k.active == 13
    # open alerts by severity, for the fleet dashboard: the rule's priority is medium
    assert (k.open_critical, k.open_high, k.open_medium, k.open_low) == (0, 0, 13, 0)
    later = engine.kpis(T0 + 25 * H)
    assert later.alarms_10min == 0 and not later.flood and later.stale == 13
    r = engine.kpi_reading(T0 + 5 * MIN, gateway="gw1")
    assert r is not None and r.measurement == KPI_MEASUREMENT and r.tags == {"gateway": "gw1"}
    assert r.fields["flood"] is True and r.fields["alarms_10min"] == 15
    assert engine.kpi_reading(T0 + 5 * MIN + 30 * S) is None  # once per kpi_interval
    assert engine.kpi_reading(T0 + 6 * MIN) is not None


def test_unbound_series_are_ignored_cheaply(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", VACCINE)
    assert feed(engine, [rd(T0, site="other", temp_c=50.0)]) == []
    assert engine.rules_of("coldchain", "lg-1") == []


def test_mkt_is_exposed_per_series(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db", VACCINE)
    feed(engine, [rd(T0 + i * MIN, temp_c=5.0) for i in range(120)])
    [(value, coverage)] = engine.mkt("coldchain", "lg-1").values()
    assert value == pytest.approx(5.0, abs=1e-9) and 0 < coverage < 0.1


def test_periodic_snapshot_from_tick_lets_a_crashed_gateway_resume(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    clock = ManualClock(T0)
    first = make_engine(db, VACCINE, clock, snapshot_interval="10s")
    readings = [rd(T0 + i * MIN, temp_c=-1.0 if i >= 10 else 5.0) for i in range(100)]
    feed(first, readings[:40])
    first.tick(clock.now_ns() + 10 * S)  # snapshot round (one chunk for one series)
    first.store.db.close()  # crash: no close()
    second = make_engine(db, VACCINE, clock)
    assert second.resume_from_ns == readings[39].received_ns - 60 * S
    feed(second, [r for r in readings if r.received_ns >= second.resume_from_ns])
    [a] = of_rule(second, "vaccine_2_8.freeze_alarm")
    assert (a.started_at, a.raised_at) == (T0 + 10 * MIN, T0 + 70 * MIN)
    assert (second.stats["late"], second.stats["replayed"]) == (0, 1)
