"""The pure thermal model: healthy cycling, doors, failures, excursions, determinism."""

from __future__ import annotations

import itertools
import math

import pytest

from simulators.thermal import (
    ASSET_KINDS,
    AssetFaults,
    AssetKind,
    Excursion,
    ThermalModel,
    ThermalState,
    Window,
    default_params,
)

H = 3600.0


def run(model: ThermalModel, start: float, end: float, every: float = 60.0) -> list[ThermalState]:
    return [model.state_at(start + i * every) for i in range(int((end - start) / every))]


@pytest.mark.parametrize("kind", ASSET_KINDS)
def test_healthy_unit_cycles_and_stays_in_band(kind: AssetKind) -> None:
    params = default_params(kind, door_openings_per_hour=0)
    lo_band, hi_band = {"fridge": (2, 8), "truck": (2, 8), "warehouse_room": (15, 25)}[kind]
    states = run(ThermalModel(params, seed=3, day_offset_s=6 * H), 0, 48 * H)
    temps = [s.temp_c for s in states]
    assert lo_band < min(temps) and max(temps) < hi_band
    # It really cycles: the compressor starts many times and the swing fills most of the dead band.
    starts = sum(
        1 for a, b in itertools.pairwise(states) if b.compressor_on and not a.compressor_on
    )
    assert starts >= 10
    assert max(temps) - min(temps) >= 0.8 * params.hysteresis_c
    assert all(s.power_ok and not s.door_open for s in states)


def test_heating_mode_holds_a_room_in_winter() -> None:
    params = default_params("warehouse_room", ambient_c=2.0, door_openings_per_hour=0)
    temps = [s.temp_c for s in run(ThermalModel(params, seed=1), 0, 24 * H)]
    assert 15 < min(temps) and max(temps) < 25


def test_door_opening_raises_temperature_then_recovers() -> None:
    params = default_params("fridge", door_openings_per_hour=0)
    door = Window(2 * H, 2 * H + 600)
    model = ThermalModel(params, seed=5, faults=AssetFaults(door_open=(door,)))
    before = model.state_at(2 * H - 60)
    inside = [model.state_at(2 * H + s) for s in range(0, 600, 60)]
    assert not before.door_open and all(s.door_open for s in inside)
    temps = [s.temp_c for s in inside]
    assert temps == sorted(temps), "temperature rises all the time the door is open"
    assert temps[-1] > before.temp_c + 4 and temps[-1] > 8
    assert inside[-1].rh_pct > before.rh_pct
    after = model.state_at(2 * H + 600)
    assert not after.door_open
    assert 2 < model.state_at(3 * H).temp_c < 8, "recovers within the hour"


def test_random_door_openings_happen_at_about_the_configured_rate() -> None:
    params = default_params("fridge", door_openings_per_hour=2, door_open_min_s=30)
    model = ThermalModel(params, seed=9)
    opens = [model.state_at(t).door_open for t in range(0, int(48 * H), 10)]
    openings = sum(1 for a, b in itertools.pairwise(opens) if b and not a)
    assert 60 <= openings <= 140  # Poisson, 96 expected


@pytest.mark.parametrize("fault", ["compressor_failure", "power_failure"])
def test_unit_failure_drifts_to_ambient(fault: str) -> None:
    params = default_params("truck", door_openings_per_hour=0, ambient_swing_c=0)
    w = Window(H, math.inf)
    faults = AssetFaults(**{fault: (w,)})  # type: ignore[arg-type]
    model = ThermalModel(params, seed=2, faults=faults)
    states = run(model, H, H + 6 * params.tau_leak_s, every=600)
    temps = [s.temp_c for s in states]
    assert all(b >= a for a, b in itertools.pairwise(temps)), "monotonic warming"
    assert not any(s.compressor_on for s in states)
    assert abs(temps[-1] - params.ambient_c) < 0.5
    assert states[6].temp_c > states[0].temp_c + 2.5  # an insulated trailer: ~3 C/h
    assert states[12].temp_c > 8
    assert all(s.power_ok is (fault != "power_failure") for s in states)


def test_failure_window_ends_and_unit_recovers() -> None:
    params = default_params("fridge", door_openings_per_hour=0)
    faults = AssetFaults(compressor_failure=(Window(H, 2 * H),))
    model = ThermalModel(params, seed=2, faults=faults)
    assert model.state_at(2 * H - 1).temp_c > 8
    assert 2 < model.state_at(3 * H).temp_c < 8


def test_excursion_is_exact_and_leaves_the_rest_untouched() -> None:
    params = default_params("fridge", door_openings_per_hour=0)
    dip = Excursion(Window(H, H + 70 * 60), target_c=-2.0)
    healthy = ThermalModel(params, seed=4)
    faulty = ThermalModel(params, seed=4, faults=AssetFaults(excursions=(dip,)))
    for t in range(0, int(4 * H), 30):
        h, f = healthy.state_at(t), faulty.state_at(t)
        if t in dip.window:
            assert f.temp_c == -2.0
        else:
            assert f.temp_c == h.temp_c


def test_excursion_ramps_in_and_out() -> None:
    params = default_params("fridge", door_openings_per_hour=0, initial_c=5.0)
    e = Excursion(Window(H, 3 * H), target_c=12.0, ramp_s=600)
    model = ThermalModel(params, seed=4, faults=AssetFaults(excursions=(e,)))
    healthy = ThermalModel(params, seed=4)
    mid_in = model.state_at(H + 300).temp_c
    assert mid_in == pytest.approx((healthy.state_at(H + 300).temp_c + 12) / 2)
    assert model.state_at(H + 600).temp_c == 12.0
    assert model.state_at(3 * H - 600).temp_c == 12.0
    mid_out = model.state_at(3 * H - 300).temp_c
    assert mid_out == pytest.approx((healthy.state_at(3 * H - 300).temp_c + 12) / 2)


def test_deterministic_and_independent_of_query_times() -> None:
    params = default_params("fridge")  # random door openings on
    coarse = ThermalModel(params, seed=42)
    fine = ThermalModel(params, seed=42)
    fine_states = {t: fine.state_at(t) for t in range(0, int(12 * H), 7)}
    for t in range(0, int(12 * H), 7 * 60):
        assert coarse.state_at(t) == fine_states[t]
    other = ThermalModel(params, seed=43)
    times = range(0, int(12 * H), 7 * 60)
    assert [other.state_at(t).temp_c for t in times] != [fine_states[t].temp_c for t in times]


def test_time_must_not_go_backwards() -> None:
    model = ThermalModel(default_params("fridge"), seed=1)
    model.state_at(3600)
    with pytest.raises(ValueError, match="backwards"):
        model.state_at(100)


def test_a_unit_too_weak_for_its_ambient_is_rejected() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        default_params("fridge", capacity_c_per_s=0.001)
    with pytest.raises(ValueError, match="empty"):
        default_params("fridge", band=(8.0, 2.0))
