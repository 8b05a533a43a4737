"""Production rule kinds one by one, through the engine: phase_threshold, saturated_steam,
pressure_cascade, particles, fill_weight; their config errors; the production pack and docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alert_rules import Alert, AlertState, ManualClock, RulesConfig, RulesEngine
from alert_rules.kinds import RULE_KINDS
from alert_rules.kinds.particles import ParticlesRule
from alert_rules.kinds.saturated_steam import psat_kpa, tsat_c
from alert_rules.store import AlertStore
from gateway.core.reading import Reading
from simulators.plc import steam as antoine

S = 1_000_000_000
MIN = 60 * S
T0 = 1_763_798_400 * S
REPO = Path(__file__).resolve().parents[2]
PRODUCTION_KINDS = (
    "phase_threshold",
    "cycle",
    "f0",
    "hold",
    "saturated_steam",
    "pressure_cascade",
    "particles",
    "fill_weight",
)


def make_engine(tmp_path: Path, rules: list[dict[str, Any]], builtin: bool = False) -> RulesEngine:
    config = RulesConfig.model_validate(
        {
            "builtin_packs": builtin,
            "profiles": {"p": {"rules": rules}},
            "bindings": [{"line": "L1", "profile": "p"}],
        }
    )
    return RulesEngine(config, AlertStore(tmp_path / "alerts.db"), ManualClock(T0))


def rd(t_s: float, phase: str | None = None, **fields: Any) -> Reading:
    tags = {"line": "L1", "equipment": "eq-1", "device": "D1"}
    if phase is not None:
        tags["phase"] = phase
    ts = T0 + round(t_s * S)
    return Reading("process", tags, fields, ts, ts)


def run(engine: RulesEngine, readings: list[Reading]) -> None:
    for r in readings:
        engine.clock.set(r.received_ns)  # type: ignore[attr-defined]
        engine.process([r])


def alerts(engine: RulesEngine, rule: str = "p.r") -> list[Alert]:
    return sorted(engine.store.list_alerts(rule=rule), key=lambda a: a.id)


def at(t_s: float) -> int:
    return T0 + round(t_s * S)


# -- phase_threshold ---------------------------------------------------------------------------


def test_phase_threshold_judges_only_inside_its_phases(tmp_path: Path) -> None:
    rule = {
        "id": "r",
        "kind": "phase_threshold",
        "field": "t",
        "phases": ["hold"],
        "low": 121,
        "inclusive": False,
        "on_delay": "5s",
        "unit": " °C",
    }
    engine = make_engine(tmp_path, [rule])
    # a dip below 121 during heat-up is expected; during the hold it is an excursion
    seq = [rd(i, "heat_up", t=100.0) for i in range(0, 20, 2)]
    seq += [
        rd(20 + i, "hold", t=v)
        for i, v in enumerate(
            [121.5, 120.5, 120.6, 120.4, 120.8, 120.9, 120.7, 121.3, 120.2, 120.1]
        )
    ]
    seq += [rd(30, "cool_down", t=110.0)]
    run(engine, seq)
    [a] = alerts(engine)
    assert a.started_at == at(21) and a.raised_at == at(26)
    assert a.ended_at == at(27)  # 121.3 is back to normal
    assert "phase hold: t < 121 °C for 5s" in a.message
    engine.ack(a.id, "op")  # ends the alert: the next dip is a new one
    run(engine, [rd(40, "hold", t=120.0), rd(50, "hold", t=120.0), rd(52, "cool_down", t=100.0)])
    [b] = [x for x in alerts(engine) if x.started_at == at(40)]
    assert b.raised_at == at(45)
    assert b.ended_at == at(52)  # leaving the phase ends the excursion: the limit no longer applies


def test_phase_threshold_band_and_settle(tmp_path: Path) -> None:
    band = {
        "id": "r",
        "kind": "phase_threshold",
        "field": "p",
        "phases": ["primary_drying"],
        "low": 0.02,
        "high": 1,
        "inclusive": False,
        "settle": "20m",
        "unit": " mbar",
    }
    engine = make_engine(tmp_path, [band])
    # pump-down: far above the band inside the settle time, then inside the band
    seq = [rd(i * 60, "primary_drying", p=1000.0 / (i + 1)) for i in range(20)]
    seq += [rd(1200 + i * 60, "primary_drying", p=v) for i, v in enumerate([1.0, 0.02, 0.5])]
    run(engine, seq)
    assert alerts(engine) == []  # the limits themselves are inside an exclusive band
    run(
        engine,
        [
            rd(1500, "primary_drying", p=1.01),
            rd(1560, "primary_drying", p=0.019),
            rd(1620, "primary_drying", p=0.1),
        ],
    )
    [a] = alerts(engine)
    assert (a.started_at, a.raised_at, a.ended_at) == (at(1500), at(1500), at(1620))
    assert "phase primary_drying: p outside 0.02..1 mbar" in a.message
    assert a.peak is None  # a band has no single "worse" direction


def test_phase_threshold_settle_restarts_with_each_phase(tmp_path: Path) -> None:
    rule = {
        "id": "r",
        "kind": "phase_threshold",
        "field": "shelf",
        "phases": ["freezing"],
        "high": -40,
        "inclusive": False,
        "settle": "1h",
        "on_delay": "5m",
    }
    engine = make_engine(tmp_path, [rule])
    seq = [rd(i * 300, "loading", shelf=20.0) for i in range(3)]
    seq += [rd(900 + i * 300, "freezing", shelf=-30.0) for i in range(20)]
    run(engine, seq)
    [a] = alerts(engine)
    assert a.started_at == at(900 + 3600)  # first judged reading: the phase began at 900 s
    assert a.raised_at == at(900 + 3600 + 300)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"phases": ["hold"]}, "give 'low', 'high' or both"),
        ({"phases": ["hold"], "low": 2, "high": 1}, "'low' must be below 'high'"),
        ({"phases": [], "low": 1}, "at least 1 item"),
    ],
)
def test_phase_threshold_config_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RULE_KINDS["phase_threshold"].model_validate({"id": "r", "field": "x", **rule})


# -- saturated steam ---------------------------------------------------------------------------


def test_if97_saturation_line_matches_the_standards_verification_values() -> None:
    # IAPWS-IF97 tables 35 and 36
    assert tsat_c(100.0) + 273.15 == pytest.approx(372.755919, abs=1e-6)
    assert tsat_c(1000.0) + 273.15 == pytest.approx(453.035632, abs=1e-6)
    assert tsat_c(10000.0) + 273.15 == pytest.approx(584.149488, abs=1e-6)
    assert psat_kpa(300 - 273.15) == pytest.approx(3.53658941, rel=1e-8)
    assert psat_kpa(500 - 273.15) == pytest.approx(2638.89776, rel=1e-8)
    assert psat_kpa(600 - 273.15) == pytest.approx(12344.3146, rel=1e-8)
    for t in range(5, 300, 7):
        assert tsat_c(psat_kpa(t)) == pytest.approx(t, abs=1e-6)
    # the simulator's Antoine fit agrees within 0.3 K where autoclaves work (well inside 2 K)
    for t in (100.0, 110.0, 121.1, 134.0, 140.0):
        assert tsat_c(antoine.psat_kpa(t)) == pytest.approx(t, abs=0.3)


def steam_rule(**kw: Any) -> dict[str, Any]:
    return {"id": "r", "kind": "saturated_steam", "on_delay": "10s", **kw}


@pytest.mark.parametrize(
    ("pressure_c", "alarm", "why"),
    [
        (121.5, False, ""),
        (123.3, False, ""),  # 1.8 K: inside EN 285's 2 K
        (124.0, True, "air or non-condensable gas"),  # pressure of 124 °C steam, 121.5 °C inside
        (119.0, True, "superheated"),
    ],
)
def test_saturated_steam_compares_temperature_with_the_pressures_saturation(
    tmp_path: Path, pressure_c: float, alarm: bool, why: str
) -> None:
    engine = make_engine(tmp_path, [steam_rule()])
    p = psat_kpa(pressure_c)
    run(engine, [rd(i, "hold", chamber_temp_c=121.5, chamber_pressure_kpa=p) for i in range(15)])
    found = alerts(engine)
    assert bool(found) is alarm
    if alarm:
        [a] = found
        assert a.raised_at == at(10)
        assert why in a.message and f"{p:.1f} kPa" in a.message
        assert a.value == pytest.approx(121.5 - pressure_c, abs=0.01)


def test_saturated_steam_not_judged_outside_its_phases_or_without_steam(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, [steam_rule(phases=["hold"], pressure_unit="bar", gauge=True)])
    wrong = psat_kpa(130.0)
    seq = [rd(i, "heat_up", chamber_temp_c=121.5, chamber_pressure_kpa=wrong) for i in range(20)]
    seq += [rd(20 + i, "hold", chamber_temp_c=95.0, chamber_pressure_kpa=wrong) for i in range(20)]
    run(engine, seq)
    assert alerts(engine) == []
    # gauge bar: 1.0 bar(g) = 202.325 kPa absolute, saturation 120.6 °C: consistent with 121.5
    run(
        engine,
        [rd(40 + i, "hold", chamber_temp_c=121.5, chamber_pressure_kpa=1.0) for i in range(20)],
    )
    assert alerts(engine) == []
    run(
        engine,
        [rd(60 + i, "hold", chamber_temp_c=121.5, chamber_pressure_kpa=1.5) for i in range(20)],
    )
    [a] = alerts(engine)
    assert "air" in a.message and a.started_at == at(60)


# -- pressure cascade --------------------------------------------------------------------------


def cascade(engine: RulesEngine, start: float, dips: list[tuple[float, bool]]) -> None:
    """Readings every 5 s: (dp, door_open) pairs from `start`, then recovery."""
    run(
        engine,
        [rd(start + 5 * i, None, dp_pa=dp, door_open=door) for i, (dp, door) in enumerate(dips)],
    )


def test_pressure_cascade_short_delay_with_door_closed_long_with_door_open(
    tmp_path: Path,
) -> None:
    engine = make_engine(tmp_path, [{"id": "r", "kind": "pressure_cascade"}])
    ok = (15.0, False)
    cascade(engine, 0, [ok, (9.0, False), (9.5, False), (9.9, False), ok])
    [a] = alerts(engine)
    assert (a.started_at, a.raised_at, a.ended_at) == (at(5), at(15), at(20))
    assert "for 10s" in a.message
    engine.ack(a.id, "op")
    # a door opening collapses the cascade for 50 s: expected, no alarm
    cascade(engine, 100, [ok, *[(2.0, True)] * 4, *[(6.0, False)] * 6, ok])
    assert len(alerts(engine)) == 1
    # ... but 75 s without recovery alarms once the door delay has passed
    cascade(engine, 200, [ok, *[(2.0, True)] * 8, *[(8.0, False)] * 8, ok])
    b = alerts(engine)[-1]
    assert (b.started_at, b.raised_at) == (at(205), at(265))
    assert "door opened" in b.message and b.peak == 2.0


def test_pressure_cascade_limit_deadband_and_door_seen_late(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, [{"id": "r", "kind": "pressure_cascade", "deadband": 1}])
    cascade(engine, 0, [(10.0, False)] * 10)  # exactly 10 Pa is enough
    assert alerts(engine) == []
    # low with the door closed for 15 s, then the door opens: the closed-door delay had passed
    cascade(
        engine,
        100,
        [
            (15.0, False),
            (9.0, False),
            (9.0, False),
            (9.0, False),
            (5.0, True),
            (10.5, False),
            (11.0, False),
        ],
    )
    [a] = alerts(engine)
    assert a.raised_at == at(115)
    assert a.ended_at == at(130)  # 10.5 is inside the deadband, 11 is back


def test_pressure_cascade_rejects_a_door_delay_below_the_on_delay() -> None:
    with pytest.raises(ValidationError, match="'door_delay' must be at least 'on_delay'"):
        RULE_KINDS["pressure_cascade"].model_validate(
            {"id": "r", "on_delay": "2m", "door_delay": "1m"}
        )


# -- particles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "size", "limits"),
    [
        ("A", 0.5, (3_520, 3_520)),
        ("B", 0.5, (3_520, 352_000)),
        ("B", 5, (29, 2_930)),
        ("C", 0.5, (352_000, 3_520_000)),
        ("C", 5, (2_930, 29_300)),
        ("D", 0.5, (3_520_000, None)),
        ("D", 5, (29_300, None)),
    ],
)
def test_particle_action_levels_are_annex_1s(
    grade: str, size: float, limits: tuple[float, float | None]
) -> None:
    rule = ParticlesRule.model_validate({"id": "r", "grade": grade, "size": size})
    assert rule.limits() == limits
    assert rule.field == ("particles_05um_m3" if size == 0.5 else "particles_5um_m3")
    assert rule.priority == "high"
    alert = ParticlesRule.model_validate(
        {"id": "r", "grade": grade, "size": size, "level": "alert", "fraction": 0.5}
    )
    assert alert.limits() == tuple(None if x is None else x / 2 for x in limits)
    assert alert.priority == "medium"


def test_particles_follow_the_occupancy_state(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, [{"id": "r", "kind": "particles", "grade": "B", "size": 0.5}])
    seq = [
        rd(0, "operation", particles_05um_m3=40_000),
        rd(60, "operation", particles_05um_m3=352_000),
    ]
    seq += [rd(120, "at_rest", particles_05um_m3=40_000)]  # same count, stricter limit
    seq += [rd(180, "operation", particles_05um_m3=40_000), rd(240, None, particles_05um_m3=3_600)]
    run(engine, seq)
    [a] = alerts(engine)
    log = [(h["kind"], h["at_ns"]) for h in engine.store.history(a.id)]
    assert log == [("raised", at(120)), ("cleared", at(180)), ("reactivated", at(240))]
    assert "grade B at rest" in a.message and "above the action level 3 520/m³" in a.message
    # the reactivation at 240 s: no state tag, judged at rest


def test_particles_consecutive_alert_level_and_grade_d_in_operation(tmp_path: Path) -> None:
    rules = [
        {
            "id": "r",
            "kind": "particles",
            "grade": "A",
            "size": 5,
            "level": "alert",
            "at_rest": 10,
            "in_operation": 10,
            "consecutive": 2,
            "max_gap": "5m",
        },
        {"id": "d", "kind": "particles", "grade": "D", "size": 0.5},
    ]
    engine = make_engine(tmp_path, rules)
    counts = [0, 12, 0, 12, 0, 12, 12, 13, 0]
    run(
        engine,
        [
            rd(60 * i, "operation", particles_5um_m3=c, particles_05um_m3=9e9)
            for i, c in enumerate(counts)
        ],
    )
    [a] = alerts(engine)
    assert (a.started_at, a.raised_at, a.ended_at) == (at(300), at(360), at(480))
    assert "in 2 consecutive readings" in a.message and a.peak == 13
    assert alerts(engine, "p.d") == []  # grade D in operation: no predetermined limit
    # readings further apart than max_gap are not consecutive
    run(
        engine,
        [rd(1000, "operation", particles_5um_m3=12), rd(1400, "operation", particles_5um_m3=12)],
    )
    assert len(alerts(engine)) == 1


def test_particles_config_errors() -> None:
    with pytest.raises(ValidationError, match="an alert level needs"):
        ParticlesRule.model_validate({"id": "r", "grade": "B", "size": 0.5, "level": "alert"})
    with pytest.raises(ValidationError, match=r"'size' must be 0\.5 or 5"):
        ParticlesRule.model_validate({"id": "r", "grade": "B", "size": 1})
    with pytest.raises(ValidationError, match="'fraction' applies to alert levels only"):
        ParticlesRule.model_validate({"id": "r", "grade": "B", "size": 5, "fraction": 0.5})


# -- fill weight -------------------------------------------------------------------------------


def test_fill_weight_k_of_n_against_the_recipe_target(tmp_path: Path) -> None:
    rule = {
        "id": "r",
        "kind": "fill_weight",
        "target_field": "target_weight_g",
        "tolerance_pct": 3,
        "count": 3,
        "window": 5,
        "phases": ["filling"],
    }
    engine = make_engine(tmp_path, [rule])
    w = [10.0, 10.31, 10.0, 9.69, 10.0, 10.0, 10.0, 10.0]  # 10.31 and 9.69: out (± 0.3 g)
    seq = [rd(i, "setup", fill_weight_g=0.0, target_weight_g=10.0) for i in range(5)]
    seq += [rd(10 + i, "filling", fill_weight_g=x, target_weight_g=10.0) for i, x in enumerate(w)]
    run(engine, seq)
    assert alerts(engine) == []  # two of five
    w = [10.4, 10.0, 9.5, 10.35, 10.0, 10.0, 10.0, 10.0]
    run(
        engine,
        [rd(20 + i, "filling", fill_weight_g=x, target_weight_g=10.0) for i, x in enumerate(w)],
    )
    [a] = alerts(engine)
    assert a.started_at == at(20) and a.raised_at == at(23)
    assert a.ended_at == at(25)  # 10.4 left the window
    assert "3 of the last 5 weights outside 10 ± 0.3 g" in a.message
    assert a.peak == pytest.approx(-0.5)
    # leaving the phase resets the window: setup readings (0 g) never count
    run(
        engine,
        [
            rd(40, "filling", fill_weight_g=11.0, target_weight_g=10.0),
            rd(41, "filling", fill_weight_g=11.0, target_weight_g=10.0),
            rd(42, "setup", fill_weight_g=0.0, target_weight_g=10.0),
            rd(43, "filling", fill_weight_g=11.0, target_weight_g=10.0),
        ],
    )
    assert len(alerts(engine)) == 1


def test_fill_weight_fixed_target_every_vial(tmp_path: Path) -> None:
    rule = {"id": "r", "kind": "fill_weight", "target": 2.0, "tolerance": 0.05}
    engine = make_engine(tmp_path, [rule])
    run(
        engine,
        [
            rd(0, None, fill_weight_g=2.05),
            rd(1, None, fill_weight_g=2.06),
            rd(2, None, fill_weight_g=2.0),
        ],
    )
    [a] = alerts(engine)
    assert (a.raised_at, a.ended_at, a.state) == (at(1), at(2), AlertState.RTN_UNACKNOWLEDGED)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"tolerance": 1}, "exactly one of 'target' or 'target_field'"),
        ({"target": 1, "target_field": "x", "tolerance": 1}, "exactly one of 'target'"),
        ({"target": 1}, "exactly one of 'tolerance' or 'tolerance_pct'"),
        ({"target": 1, "tolerance": 1, "count": 3, "window": 2}, "'count' must be at most"),
    ],
)
def test_fill_weight_config_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RULE_KINDS["fill_weight"].model_validate({"id": "r", **rule})


# -- the pack and the docs ---------------------------------------------------------------------


def test_production_pack_loads_and_carries_the_reference_numbers() -> None:
    lib = RulesConfig().library()
    steam = {rid: spec for rid, (_o, spec) in lib.profiles["steam_steriliser"].items()}
    f0 = steam["f0"]
    assert (f0.kind, f0.temp, f0.duration, f0.target, f0.z, f0.t_ref) == (  # type: ignore[attr-defined]
        "f0",
        121.0,
        900.0,
        15.0,
        10.0,
        121.1,
    )
    assert steam["steam_saturation"].tolerance == 2.0  # type: ignore[attr-defined]
    dry = lib.profiles["dry_heat_oven"]["hold"][1]
    assert (dry.temp, dry.duration, dry.inclusive) == (160.0, 7200.0, True)  # type: ignore[attr-defined]
    depyro = lib.profiles["depyrogenation_oven"]["hold"][1]
    assert (depyro.temp, depyro.inclusive) == (220.0, False)  # type: ignore[attr-defined]
    for grade in "ABCD":
        prof = lib.profiles[f"annex1_grade_{grade.lower()}"]
        assert prof["dp_low"][1].min_dp == 10.0  # type: ignore[attr-defined]
        assert prof["p05_action"][1].grade == grade  # type: ignore[attr-defined]
    lyo = lib.profiles["freeze_dryer"]
    assert (lyo["primary_pressure"][1].low, lyo["primary_pressure"][1].high) == (0.02, 1.0)  # type: ignore[attr-defined]
    assert lyo["freeze_shelf"][1].high == -40.0  # type: ignore[attr-defined]
    used = {spec.kind for prof in lib.profiles.values() for _o, spec in prof.values()}  # type: ignore[attr-defined]
    assert set(PRODUCTION_KINDS) <= used


def test_docs_describe_every_production_kind_and_link_from_the_rules_reference() -> None:
    doc = (REPO / "docs" / "production_rules.md").read_text()
    for kind in PRODUCTION_KINDS:
        assert re.search(rf"^### `{kind}`", doc, re.M), kind
    for key in ("f0_min", "verdict", "list_cycles", "get_cycle", "drain_readings"):
        assert key in doc
    assert "production_rules.md" in (REPO / "docs" / "rules.md").read_text()
