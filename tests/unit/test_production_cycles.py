"""Cycles end to end through the engine: F0 and hold verdicts, summaries in the store, the
`cycle` reading, restarts mid-cycle, aborted cycles, data gaps and sensor faults.

The readings come from the simulated autoclave's process model (simulators/plc/models.py),
stepped in simulated time without a server: the same physics the integration test polls."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from alert_rules import AlertStore, ManualClock, RulesConfig, RulesEngine
from alert_rules.cycles import COMPLETE, FAIL, PASS, RUNNING
from gateway.core.lineprotocol import decode, encode
from gateway.core.reading import Reading
from gateway.core.schema import CYCLE
from simulators.plc.layout import AUTOCLAVE_PHASES
from simulators.plc.models import Autoclave
from simulators.plc.spec import FaultSpec

S = 1_000_000_000
T0 = 1_763_798_400 * S
STEAM = [{"line": "L1", "equipment": "autoclave-*", "profile": "steam_steriliser"}]


def make_engine(path: Path, bindings: list[dict[str, Any]] = STEAM, **cfg: Any) -> RulesEngine:
    config = RulesConfig.model_validate({"bindings": bindings, **cfg})
    return RulesEngine(config, AlertStore(path), ManualClock(T0))


def autoclave(
    until_s: int,
    step_s: float = 2.0,
    faults: list[FaultSpec] = (),  # type: ignore[assignment]
    drop: tuple[float, float] | None = None,
    **params: Any,
) -> list[Reading]:
    """Readings of one simulated autoclave every `step_s` (none inside `drop`: a data gap)."""
    params = {"start_delay_s": 10, "idle_s": 600, **params}

    def fault(kind: str, t: float) -> FaultSpec | None:
        return next((f for f in faults if f.kind == kind and f.active(t)), None)

    model = Autoclave("AC-01", params, random.Random(7), fault)
    out = []
    for i in range(int(until_s / step_s) + 1):
        t = i * step_s
        model.advance(t)
        if drop is not None and drop[0] <= t < drop[1]:
            continue
        v = model.values()
        tags = {
            "line": "L1",
            "equipment": "autoclave-1",
            "device": "AC-01",
            "phase": AUTOCLAVE_PHASES[int(v.pop("phase"))],
        }
        batch = v.pop("batch")
        if batch:
            tags["batch"] = str(batch)
        ts = T0 + round(t * S)
        out.append(Reading("process", tags, v, ts, ts))
    return out


def feed(engine: RulesEngine, readings: list[Reading]) -> None:
    for r in readings:
        engine.clock.set(r.received_ns)  # type: ignore[attr-defined]
        engine.process([r])


CYCLE_S = 10 + 600 + 900 + 600 + 60  # start delay, heat-up, hold, cool-down, complete


def test_a_good_cycle_passes_with_f0_and_a_full_summary(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db")
    readings = autoclave(CYCLE_S + 10)
    feed(engine, readings)
    [c] = engine.list_cycles()
    assert (c.status, c.verdict, c.reasons, c.batch) == (COMPLETE, PASS, [], "AC01-0001")
    assert (c.device, c.line, c.equipment, c.rule) == (
        "AC-01",
        "L1",
        "autoclave-1",
        "steam_steriliser.cycle",
    )
    assert c.start_ns == T0 + 10 * S and c.end_ns == T0 + CYCLE_S * S
    assert [p["phase"] for p in c.phases] == ["heat_up", "hold", "cool_down", "complete"]
    durations = [(p["end_ns"] - p["start_ns"]) / S for p in c.phases]
    assert durations == pytest.approx([600, 900, 600, 60], abs=2.1)
    hold = c.phases[1]
    assert 121.0 < hold["min"]["chamber_temp_c"] < hold["max"]["chamber_temp_c"] < 122.0
    assert c.max["chamber_temp_c"] == hold["max"]["chamber_temp_c"]
    assert set(c.min) == {"chamber_temp_c", "chamber_pressure_kpa", "drain_temp_c", "f0_min"}
    # the PLC integrates F0 itself (1 s left Riemann sums): both agree
    plc_f0 = max(r.fields["f0_min"] for r in readings)  # type: ignore[type-var]
    assert c.f0_min == pytest.approx(plc_f0, rel=0.01)
    assert 16.0 < c.f0_min < 19.0  # type: ignore[operator]
    res = c.results["steam_steriliser.f0"]
    assert res["passed"] is True and res["hold_s"] == pytest.approx(904, abs=4)
    assert res["gaps"] == 0 and c.data_gaps == 0 and c.alert_ids == []
    assert engine.store.list_alerts() == []  # no false alarms from hold band or steam quality
    # the cycle reading: schema fields, event time = cycle end, line protocol round trip
    [r] = engine.drain_readings()
    assert engine.drain_readings() == []
    assert r.measurement == CYCLE.name and set(r.fields) <= set(CYCLE.fields)
    assert set(r.tags) <= set(CYCLE.tags)
    assert r.ts_ns == c.end_ns and r.tags["batch"] == "AC01-0001"
    assert r.fields["verdict"] == 1 and r.fields["f0_min"] == c.f0_min
    assert decode(encode(r), r.received_ns).fields == r.fields
    assert engine.get_cycle(c.id) == c


def test_a_short_hold_fails_and_raises_the_alert_when_the_hold_ends(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db")
    feed(engine, autoclave(CYCLE_S - 300, faults=[FaultSpec(kind="short_hold", hold_s=300)]))
    [c] = engine.list_cycles()
    assert c.verdict == FAIL
    assert c.reasons[0].startswith("steam_steriliser.f0: chamber_temp_c ≥ 121 °C held 5m")
    assert c.reasons[1].startswith("steam_steriliser.f0: F0 ") and "< 15 min" in c.reasons[1]
    [a] = engine.store.list_alerts(rule="steam_steriliser.f0")
    hold_end = c.phases[1]["end_ns"]
    assert hold_end <= a.raised_at < hold_end + 10 * S  # at once, not at the end of the cycle
    assert a.started_at == c.start_ns and a.raised_at < c.end_ns
    assert "cycle AC01-0001: short hold" in a.message and a.tags["batch"] == "AC01-0001"
    assert a.severity == "critical" and a.latching
    assert c.alert_ids == [a.id]
    assert a.value == pytest.approx(c.f0_min, rel=0.3)  # F0 so far when it was raised
    [r] = engine.drain_readings()
    assert r.fields["verdict"] == 0 and r.fields["alerts"] == 1


def test_restart_in_the_middle_of_a_cycle_gives_the_same_summary(tmp_path: Path) -> None:
    readings = autoclave(CYCLE_S, faults=[FaultSpec(kind="short_hold", hold_s=600)])
    whole = make_engine(tmp_path / "whole.db")
    feed(whole, readings)
    [expected] = whole.list_cycles()
    cut = len(readings) // 2  # in the hold
    first = make_engine(tmp_path / "split.db")
    feed(first, readings[:cut])
    assert first.list_cycles()[0].status == RUNNING
    first.close()
    first.store.close()
    second = make_engine(tmp_path / "split.db")
    feed(second, readings[cut - 20 : cut])  # journal replay overlap: skipped, harmless
    feed(second, readings[cut:])
    [got] = second.list_cycles()
    assert got.f0_min == pytest.approx(expected.f0_min, rel=1e-12)
    assert (got.id, got.verdict, got.reasons, got.phases, got.min, got.max) == (
        expected.id,
        expected.verdict,
        expected.reasons,
        expected.phases,
        expected.min,
        expected.max,
    )
    assert len(got.alert_ids) == 1 and got.verdict == FAIL


def test_an_aborted_cycle_fails_on_its_required_phase(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db")
    readings = autoclave(400)
    # the operator aborts during heat-up: the PLC goes back to idle and clears the batch
    abort = readings[-1].ts_ns + 2 * S
    feed(
        engine,
        [
            *readings,
            Reading(
                "process",
                {"line": "L1", "equipment": "autoclave-1", "device": "AC-01", "phase": "idle"},
                {"chamber_temp_c": 90.0},
                abort,
                abort,
            ),
        ],
    )
    [c] = engine.list_cycles()
    assert c.verdict == FAIL and c.end_ns == abort
    assert "phase(s) hold never reached (aborted cycle)" in c.reasons
    [a] = engine.store.list_alerts(rule="steam_steriliser.cycle")
    assert a.raised_at == abort and "aborted" in a.message
    assert a.tags["batch"] == "AC01-0001"  # alerts about a cycle carry its batch
    assert a.id in c.alert_ids


def test_a_data_gap_adds_no_lethality_and_fails_the_cycle(tmp_path: Path) -> None:
    gap = (10 + 600 + 300, 10 + 600 + 500)  # 200 s of the hold without readings
    engine = make_engine(tmp_path / "a.db")
    feed(engine, autoclave(CYCLE_S, drop=gap))
    [c] = engine.list_cycles()
    full = make_engine(tmp_path / "b.db")
    feed(full, autoclave(CYCLE_S))
    [ref] = full.list_cycles()
    res = c.results["steam_steriliser.f0"]
    assert res["gaps"] == 1 and c.data_gaps == 1
    assert res["gap_s"] == pytest.approx(200 + 2 - 30, abs=0.01)
    # the 202 s interval credits 30 s (max_gap) at the lower end temperature
    lost = ref.f0_min - c.f0_min  # type: ignore[operator]
    assert lost == pytest.approx(172 / 60 * 10 ** ((121.5 - 121.1) / 10), rel=0.05)
    assert c.verdict == FAIL
    assert any("1 data gap(s) longer than 30s" in why for why in c.reasons)
    assert res["hold_s"] < 600  # the gap also breaks the continuous hold


def test_an_implausible_reading_is_a_sensor_fault_not_lethality(tmp_path: Path) -> None:
    readings = autoclave(CYCLE_S)
    spike = next(i for i, r in enumerate(readings) if r.tags["phase"] == "cool_down")
    readings[spike].fields["chamber_temp_c"] = 900.0
    engine = make_engine(tmp_path / "a.db")
    feed(engine, readings)
    [c] = engine.list_cycles()
    res = c.results["steam_steriliser.f0"]
    assert res["sensor_faults"] == 1 and res["f0_min"] < 20
    assert c.verdict == FAIL and any("outside the sensor range" in w for w in c.reasons)


def test_a_participant_without_a_cycle_rule_gets_the_default_by_batch(tmp_path: Path) -> None:
    profiles = {
        "dry": {
            "rules": [
                {
                    "id": "hold",
                    "kind": "hold",
                    "field": "chamber_temp_c",
                    "temp": 120,
                    "duration": "10m",
                    "hold_phase": None,
                }
            ]
        }
    }
    engine = make_engine(
        tmp_path / "a.db",
        [{"equipment": "autoclave-*", "profile": "dry"}],
        builtin_packs=False,
        profiles=profiles,
    )
    feed(engine, autoclave(CYCLE_S + 10))
    assert "vigil.cycle" in engine.rules_of("process", "AC-01")
    [c] = engine.list_cycles()
    assert c.rule == "vigil.cycle" and c.verdict == PASS and c.f0_min is None
    # the default delimits by batch: the PLC keeps its batch id through `complete`
    assert [p["phase"] for p in c.phases] == ["heat_up", "hold", "cool_down", "complete"]


def test_start_phase_splits_cycles_without_idle_or_batch(tmp_path: Path) -> None:
    profiles = {
        "ac": {
            "rules": [
                {
                    "id": "cycle",
                    "kind": "cycle",
                    "batch": False,
                    "phases": ["heat_up", "hold", "cool_down", "complete"],
                    "start_phases": ["heat_up"],
                }
            ]
        }
    }
    engine = make_engine(
        tmp_path / "a.db",
        [{"device": "*", "profile": "ac"}],
        builtin_packs=False,
        profiles=profiles,
    )
    seq = ["idle", "hold", "cool_down", "heat_up", "hold", "complete", "heat_up", "heat_up", "hold"]
    feed(
        engine,
        [
            Reading("process", {"device": "X", "phase": p}, {"t": float(i)}, T0 + i * S, T0 + i * S)
            for i, p in enumerate(seq)
        ],
    )
    cycles = sorted(engine.list_cycles(device="X"), key=lambda c: c.start_ns)
    assert [(c.start_ns - T0) // S for c in cycles] == [1, 3, 6]
    assert [c.status for c in cycles] == [COMPLETE, COMPLETE, RUNNING]
    first = cycles[0]  # seen from its middle: cannot be judged a good cycle
    assert first.verdict == FAIL and "cycle start not seen" in first.reasons[0]
    assert cycles[1].verdict is None  # nothing judged it
    assert cycles[1].min == {"t": 3.0} and cycles[1].max == {"t": 5.0}


def test_list_cycles_filters(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db")
    feed(
        engine,
        autoclave(
            2 * CYCLE_S + 600,
            idle_s=60,
            faults=[FaultSpec(kind="short_hold", at_s=2000, hold_s=300)],
        ),
    )
    cycles = engine.list_cycles()
    assert [(c.batch, c.verdict) for c in cycles] == [
        ("AC01-0003", None),
        ("AC01-0002", FAIL),
        ("AC01-0001", PASS),
    ]
    assert [c.batch for c in engine.list_cycles(verdict=FAIL)] == ["AC01-0002"]
    assert [c.batch for c in engine.list_cycles(batch="AC01-0001")] == ["AC01-0001"]
    assert [c.batch for c in engine.list_cycles(status=RUNNING)] == ["AC01-0003"]
    assert len(engine.list_cycles(since_ns=cycles[1].start_ns)) == 2
    assert engine.list_cycles(device="AC-02") == []
    assert len(engine.list_cycles(limit=1)) == 1
    assert engine.get_cycle(999) is None
    assert len(engine.drain_readings()) == 2


def test_three_failed_loads_give_three_alerts_each_linked_from_its_own_cycle(
    tmp_path: Path,
) -> None:
    """Back-to-back short holds: each load's f0 alarm is its own alert (not a re-activation of
    the first load's, still open and unacknowledged), and each cycle record names its alert."""
    engine = make_engine(tmp_path / "a.db")
    one = 10 + 600 + 300 + 600 + 60  # start delay, heat-up, short hold, cool-down, complete
    idle = 120
    feed(
        engine,
        autoclave(
            one + 2 * (idle + one - 10) + 20,
            idle_s=idle,
            faults=[FaultSpec(kind="short_hold", hold_s=300)],
        ),
    )
    cycles = sorted(engine.list_cycles(), key=lambda c: c.start_ns)
    assert [c.batch for c in cycles] == ["AC01-0001", "AC01-0002", "AC01-0003"]
    assert [c.verdict for c in cycles] == [FAIL, FAIL, FAIL]
    alerts = sorted(engine.store.list_alerts(rule="steam_steriliser.f0"), key=lambda a: a.id)
    assert len(alerts) == 3 and len({a.id for a in alerts}) == 3
    for c, a in zip(cycles, alerts, strict=True):
        assert a.cycle_id == c.id and a.tags["batch"] == c.batch
        assert c.alert_ids == [a.id], (c.batch, c.alert_ids)
        assert c.results["steam_steriliser.f0"]["alerted"] is True
        assert a.activations == 1 and c.start_ns <= a.raised_at <= c.end_ns
    # all three wait for acknowledgement, each on its own
    assert {str(a.state) for a in alerts} == {"rtn_unacknowledged"}
    assert len(engine.alerts.open) == 3
    engine.ack(alerts[1].id, "qa")  # latching: acknowledged until QA closes it
    assert engine.store.get_alert(alerts[0].id).state == "rtn_unacknowledged"  # type: ignore[union-attr]
    engine.close_alert(alerts[1].id, "qa", "load 2 rejected and re-sterilised")
    assert {a.id for a in engine.alerts.open.values()} == {alerts[0].id, alerts[2].id}
    # a restart keeps them apart (open alerts are keyed by cycle in the store too)
    engine.close()
    engine.store.close()
    again = make_engine(tmp_path / "a.db")
    assert {a.key for a in again.alerts.open.values()} == {
        ("steam_steriliser.f0", alerts[0].source, cycles[0].id),
        ("steam_steriliser.f0", alerts[2].source, cycles[2].id),
    }
