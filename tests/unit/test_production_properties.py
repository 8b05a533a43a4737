"""Property tests: F0 integration and hold timers against brute-force references.

* F0: the engine (batches of any size, restarts from the snapshot at any point) equals a direct
  trapezoid sum over the samples, with phase filtering and capped gaps; for a finely sampled
  linear ramp it equals the analytic integral of the lethal rate.
* Hold: the longest run at or above the hold temperature equals a second-by-second rasterisation
  of the sample-and-hold signal (a sample holds until the next one, at most max_gap).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_rules import AlertStore, ManualClock, RulesConfig, RulesEngine
from alert_rules.kinds.f0 import lethal_rate
from alert_rules.kinds.hold import HoldMeter
from gateway.core.reading import Reading

S = 1_000_000_000
T0 = 1_763_798_400 * S
MAX_GAP_S = 60
CYCLE_PHASES = ["heat_up", "hold", "cool_down"]
F0_PHASES = ["hold", "cool_down"]
HOLD_TEMP = 121.0

PROFILE = {
    "ster": {
        "rules": [
            {"id": "cycle", "kind": "cycle", "phases": CYCLE_PHASES},
            {
                "id": "f0",
                "kind": "f0",
                "field": "t",
                "temp": HOLD_TEMP,
                "duration": "5m",
                "target": 1,
                "phases": F0_PHASES,
                "max_gap": MAX_GAP_S,
                "hold_phase": "hold",
            },
        ]
    }
}

Sample = tuple[int, float, str]  # (seconds, °C, phase)


def open_engine(path: Path) -> RulesEngine:
    config = RulesConfig.model_validate(
        {"builtin_packs": False, "profiles": PROFILE, "bindings": [{"profile": "ster"}]}
    )
    return RulesEngine(config, AlertStore(path), ManualClock(T0))


def reading(t_s: int, temp: float, phase: str, batch: str | None) -> Reading:
    tags = {"device": "X", "phase": phase}
    if batch:
        tags["batch"] = batch
    ts = T0 + t_s * S
    return Reading("process", tags, {"t": temp}, ts, ts)


def reference_f0(samples: list[Sample], end: tuple[int, float]) -> float:
    """Σ over intervals whose left sample is in F0_PHASES: trapezoid, or a gap's capped credit."""
    pts = [(t, temp) for t, temp, _ in samples] + [end]
    total = 0.0
    for (t1, a), (t2, b), (_, _, phase) in zip(pts, pts[1:], samples, strict=False):
        if phase not in F0_PHASES:
            continue
        la, lb = lethal_rate(a), lethal_rate(b)
        dt = (t2 - t1) * S
        if dt > MAX_GAP_S * S:
            total += min(la, lb) * MAX_GAP_S * S / 60e9
        else:
            total += (la + lb) / 2 * dt / 60e9
    return total


def raster_hold(samples: list[Sample], end_s: int) -> int:
    """Longest run of whole seconds in which the held sample was in phase and ≥ HOLD_TEMP."""
    best = run = 0
    i = 0
    for t in range(samples[0][0], end_s):
        while i + 1 < len(samples) and samples[i + 1][0] <= t:
            i += 1
        ts, temp, phase = samples[i]
        on = phase in F0_PHASES and temp >= HOLD_TEMP and t < ts + MAX_GAP_S
        run = run + 1 if on else 0
        best = max(best, run)
    return best


temps = st.one_of(st.floats(110.0, 126.0, allow_nan=False), st.sampled_from([HOLD_TEMP, 121.1]))
samples_st = st.lists(
    st.tuples(st.integers(1, 2 * MAX_GAP_S), temps, st.sampled_from(CYCLE_PHASES)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    steps=samples_st,
    end=st.tuples(st.integers(1, 2 * MAX_GAP_S), temps),
    cuts=st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=4),
)
def test_f0_and_hold_through_the_engine_match_brute_force(
    steps: list[tuple[int, float, str]],
    end: tuple[int, float],
    cuts: list[tuple[int, bool]],
) -> None:
    samples: list[Sample] = []
    t = 0
    for dt, temp, phase in steps:
        t += dt
        samples.append((t, temp, phase))
    end_s = t + end[0]
    readings = [reading(ts, temp, ph, "B1") for ts, temp, ph in samples]
    readings.append(reading(end_s, end[1], "idle", None))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        engine = open_engine(path)
        start = 0
        for cut, restart in [*sorted(cuts), (len(readings), False)]:
            cut = min(cut, len(readings))
            if cut > start:
                chunk = readings[start:cut]
                engine.clock.set(chunk[-1].received_ns)  # type: ignore[attr-defined]
                engine.process(chunk)
                start = cut
            if restart:
                engine.close()
                engine.store.close()
                engine = open_engine(path)
        [c] = engine.list_cycles()
        res = c.results["ster.f0"]
        engine.store.close()
    assert c.end_ns == T0 + end_s * S
    assert res["f0_min"] == pytest.approx(reference_f0(samples, (end_s, end[1])), rel=1e-12)
    assert res["hold_s"] == raster_hold(samples, end_s)
    gaps = [
        b[0] - a[0]
        for a, b in zip(samples, [*samples[1:], (end_s, 0.0, "")], strict=True)
        if a[2] in F0_PHASES and b[0] - a[0] > MAX_GAP_S
    ]
    assert res["gaps"] == len(gaps)
    assert res["gap_s"] == sum(g - MAX_GAP_S for g in gaps)
    passed = res["hold_s"] >= 300 and res["f0_min"] >= 1 and not gaps
    assert res["passed"] is passed and c.verdict == ("pass" if passed else "fail")


@settings(max_examples=40, deadline=None)
@given(
    start=st.floats(100.0, 125.0),
    slope=st.floats(-0.05, 0.05).filter(lambda k: abs(k) > 1e-4),
    duration=st.integers(60, 1800),
    step=st.sampled_from([1, 2, 5]),
)
def test_f0_of_a_linear_ramp_equals_the_analytic_integral(
    start: float, slope: float, duration: int, step: int
) -> None:
    ts = list(range(0, duration + 1, step))
    if ts[-1] != duration:
        ts.append(duration)
    readings = [reading(t, start + slope * t, "hold", "B1") for t in ts[:-1]]
    readings.append(reading(duration, start + slope * duration, "idle", None))
    with tempfile.TemporaryDirectory() as d:
        engine = open_engine(Path(d) / "a.db")
        engine.process(readings)
        [c] = engine.list_cycles()
        engine.store.close()
    # ∫ 10^((T0 + k t - 121.1)/z) dt = z / (k ln 10) · (L(T_end) - L(T_0)), in minutes
    exact = (
        10.0
        / (slope * math.log(10))
        * (lethal_rate(start + slope * duration) - lethal_rate(start))
        / 60
    )
    # the trapezoid rule over-counts a convex exponential by exactly x·coth(x) - 1 per full
    # interval of length h (x = c·h/2, c = k·ln10/z); a shorter last interval by less
    x = abs(slope) * math.log(10) / 10.0 * step / 2
    bound = x / math.tanh(x) - 1
    assert c.f0_min is not None and c.f0_min >= exact * (1 - 1e-12)
    assert (c.f0_min - exact) / exact <= bound * (1 + 1e-6) + 1e-12
    assert c.f0_min == pytest.approx(exact, rel=3e-4)


def test_f0_of_a_constant_temperature_is_its_lethal_rate_times_the_time() -> None:
    readings = [reading(t, 121.1, "hold", "B1") for t in range(0, 900, 7)]
    readings.append(reading(903, 121.1, "idle", None))
    with tempfile.TemporaryDirectory() as d:
        engine = open_engine(Path(d) / "a.db")
        engine.process(readings)
        [c] = engine.list_cycles()
        engine.store.close()
    assert c.f0_min == pytest.approx(903 / 60, rel=1e-12)
    assert lethal_rate(131.1) == pytest.approx(10.0) and lethal_rate(111.1) == pytest.approx(0.1)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 30), st.booleans()), min_size=1, max_size=60),
    tail=st.integers(0, 30),
    max_gap=st.integers(1, 20),
)
def test_hold_meter_equals_rasterised_sample_and_hold(
    steps: list[tuple[int, bool]], tail: int, max_gap: int
) -> None:
    meter = HoldMeter(max_gap * S)
    samples: list[tuple[int, bool]] = []
    t = 0
    for dt, on in steps:
        t += dt
        samples.append((t, on))
        meter.feed(t * S, on)
    end = t + tail
    meter.feed(end * S, False)
    best = run = 0
    i = 0
    for sec in range(samples[0][0], end):
        while i + 1 < len(samples) and samples[i + 1][0] <= sec:
            i += 1
        ts, on = samples[i]
        run = run + 1 if on and sec < ts + max_gap else 0
        best = max(best, run)
    assert meter.best_len == best * S
    if best:
        assert meter.best_end - meter.best_start == best * S  # type: ignore[operator]
