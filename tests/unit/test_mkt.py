"""Mean kinetic temperature: the formula, the rolling window against a brute-force reference,
and the `mkt` rule kind."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_rules.context import EvalContext
from alert_rules.kinds.mkt import MktRule
from alert_rules.mkt import RollingMKT, mkt_c
from gateway.core.i18n import Text

S = 1_000_000_000


def textbook_mkt(temps_c: list[float], delta_h: float = 83.144) -> float:
    """USP <1079.2> as printed: ΔH/R over -ln of the mean of exp(-ΔH/RT), R = 8.3144 J/mol/K."""
    k = delta_h * 1000 / 8.3144
    mean = sum(math.exp(-k / (t + 273.15)) for t in temps_c) / len(temps_c)
    return k / -math.log(mean) - 273.15


def test_constant_5c_is_5_000c() -> None:
    assert f"{mkt_c([5.0] * 1440):.3f}" == "5.000"
    assert mkt_c([5.0] * 1440) == pytest.approx(5.0, abs=1e-9)
    roll = RollingMKT(24 * 3600 * S, 120 * S, 83.144, 3600 * S)
    for i in range(24 * 60 + 1):
        roll.add(i * 60 * S, 5.0)
    assert f"{roll.value():.3f}" == "5.000"


def test_default_delta_h_gives_10000_kelvin() -> None:
    # ΔH/R = 10 000 K: a 50/50 mix of 20 °C and 30 °C by hand.
    t1, t2 = 293.15, 303.15
    expected = 10000 / -math.log((math.exp(-10000 / t1) + math.exp(-10000 / t2)) / 2) - 273.15
    assert mkt_c([20.0, 30.0]) == pytest.approx(expected, abs=1e-9)
    assert 25.0 < expected < 30.0  # MKT weights the warm half more than the mean does


def test_delta_h_changes_the_result() -> None:
    temps = [5.0] * 20 + [25.0] * 4
    assert mkt_c(temps, delta_h=60.0) < mkt_c(temps, delta_h=83.144) < mkt_c(temps, delta_h=120.0)


@given(st.lists(st.floats(-30, 60), min_size=1, max_size=50), st.floats(40, 150))
def test_mkt_matches_the_textbook_formula(temps: list[float], delta_h: float) -> None:
    assert mkt_c(temps, delta_h=delta_h) == pytest.approx(textbook_mkt(temps, delta_h), abs=1e-7)


def ref_rolling(
    samples: list[tuple[int, float]], k: int, bucket: int, n: int, max_gap: int
) -> tuple[float | None, float]:
    """MKT and covered seconds at samples[k]'s time, from scratch."""
    t = samples[k][0]
    lo = (t // bucket - n + 1) * bucket
    temps, weights = [], []
    for i in range(k):
        ti, temp = samples[i]
        if temp != temp:
            continue
        end = min(samples[i + 1][0], ti + max_gap)
        w = max(0, min(end, t) - max(ti, lo)) / S
        if w > 0:
            temps.append(temp)
            weights.append(w)
    if not weights:
        return None, 0.0
    return mkt_c(temps, weights), sum(weights)


@st.composite
def logger_series(draw: st.DrawFn) -> list[tuple[int, float]]:
    t = draw(st.integers(0, 10_000)) * S
    out = []
    for _ in range(draw(st.integers(1, 60))):
        temp = draw(
            st.one_of(st.floats(-5, 45), st.just(math.nan))
            if draw(st.booleans())
            else st.floats(-5, 45)
        )
        out.append((t, temp))
        t += draw(st.integers(1, 7200)) * S
    return out


@settings(max_examples=200, deadline=None)
@given(
    logger_series(),
    st.sampled_from([60, 600, 900]),
    st.integers(1, 30),
    st.sampled_from([1800, 3600, 10_800]),
)
def test_rolling_mkt_matches_brute_force(
    samples: list[tuple[int, float]], bucket_s: int, n: int, max_gap_s: int
) -> None:
    roll = RollingMKT(n * bucket_s * S, bucket_s * S, 83.144, max_gap_s * S)
    for k, (t, temp) in enumerate(samples):
        roll.add(t, temp)
        want, covered = ref_rolling(samples, k, bucket_s * S, n, max_gap_s * S)
        assert roll.covered_s() == pytest.approx(covered, abs=1e-6)
        got = roll.value()
        if want is None:
            assert got is None or covered == pytest.approx(0, abs=1e-6)
        else:
            assert got == pytest.approx(want, abs=1e-6)


def test_rolling_mkt_survives_dump_and_load() -> None:
    a = RollingMKT(86400 * S, 120 * S, 83.144, 3600 * S)
    for i in range(500):
        a.add(i * 300 * S, 4.0 + (i % 7))
    b = RollingMKT(86400 * S, 120 * S, 83.144, 3600 * S)
    b.load(a.dump())
    for i in range(500, 700):
        a.add(i * 300 * S, 9.0)
        b.add(i * 300 * S, 9.0)
    assert b.value() == a.value()


CTX = EvalContext(0, 0, {})


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, float | None]] = []

    def activate(
        self,
        ctx: EvalContext,
        started: int,
        at: int,
        value: float | None,
        peak: float | None,
        message: Text,
    ) -> None:
        self.events.append(("on", at, value))
        self.message = str(message)

    def clear(
        self, ctx: EvalContext, ended: int, at: int, value: float | None, peak: float | None
    ) -> None:
        self.events.append(("off", at, value))


def test_mkt_rule_alerts_above_limit_after_enough_coverage() -> None:
    """24 h at 5 °C then a warm spell: raised when the 24 h MKT passes 8 °C, cleared after."""
    sink = Sink()
    ev = MktRule(id="mkt", limit=8.0, window="24h").build(sink)
    minute = 60 * S
    t = 0
    for _ in range(24 * 60):
        ev.feed(CTX, t, 5.0, None)  # type: ignore[arg-type]
        t += minute
    assert sink.events == []
    while not sink.events:
        ev.feed(CTX, t, 25.0, None)  # type: ignore[arg-type]
        t += minute
    on_at, mkt_value = sink.events[0][1], sink.events[0][2]
    assert mkt_value is not None and 8.0 < mkt_value < 8.2
    assert "MKT over 1d" in sink.message
    for _ in range(48 * 60):
        ev.feed(CTX, t, 5.0, None)  # type: ignore[arg-type]
        t += minute
    assert [e[0] for e in sink.events] == ["on", "off"]
    assert sink.events[1][1] > on_at


def test_mkt_rule_waits_for_coverage() -> None:
    sink = Sink()
    ev = MktRule(id="mkt", limit=8.0, window="24h", min_coverage=0.5).build(sink)
    for i in range(11 * 60):  # 11 h at 30 °C: under half the window
        ev.feed(CTX, i * 60 * S, 30.0, None)  # type: ignore[arg-type]
    assert sink.events == []
    for i in range(11 * 60, 13 * 60):
        ev.feed(CTX, i * 60 * S, 30.0, None)  # type: ignore[arg-type]
    assert len(sink.events) == 1
