"""Stability budgets and exposure (alert_rules/budget.py, exposure.py): hand computations, the
published MKT vectors across legs, brute-force references, the rules they bind."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from alert_rules import RulesConfig
from alert_rules.budget import BudgetBand, LegSeries, StabilityBudget, consume, level_id
from alert_rules.exposure import (
    entries,
    held_segments,
    max_window_mkt,
    mkt_of,
    reach_time,
    time_in,
)
from alert_rules.mkt import mkt_c
from gateway.config import ConfigError, parse_config

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
T0 = 1_795_000_000 * S

BUDGET = StabilityBudget.model_validate(
    {
        "bands": [
            {"name": "warm", "above": 8, "at_most": 25, "allow": "4h"},
            {"name": "frozen", "below": 0, "allow": "0h"},
        ],
        "freeze_thaw": {"below": 0, "max": 1},
        "mkt": {"limit": 8, "window": "24h"},
        "alert_at": [0.4, 0.8],
    }
)


def series(start: int, step: int, temps: list[float]) -> list[tuple[int, float]]:
    return [(start + i * step, t) for i, t in enumerate(temps)]


def test_consumption_over_legs_matches_a_hand_computation() -> None:
    # storage 6 h at 5 °C (every 30 min); truck 1: 20 min at 9 °C then 5 °C; truck 2 (two
    # loggers): 2 h at 12 °C on one, 1 h on the other; destination 5 °C. Readings every 5 min.
    storage = LegSeries("store", T0, {"room": series(T0, 30 * MIN, [5.0] * 12)})
    t1 = T0 + 6 * HOUR
    truck1 = LegSeries("truck1", t1, {"a": series(t1, 5 * MIN, [9.0] * 4 + [5.0] * 20)})
    t2 = t1 + 3 * HOUR  # an hour on the cross-dock, not a leg of this budget
    truck2 = LegSeries(
        "truck2",
        t2,
        {
            "b": series(t2, 5 * MIN, [5.0] * 12 + [12.0] * 24 + [5.0] * 12),
            "c": series(t2, 5 * MIN, [5.0] * 12 + [12.0] * 12 + [5.0] * 24),
        },
    )
    use = consume(BUDGET, [truck2, storage, truck1], HOUR)
    warm = use.bands[0]
    # 20 min on truck 1 + 2 h on truck 2's worst logger
    assert warm.per_leg == {"store": 0, "truck1": 20 * MIN, "truck2": 2 * HOUR}
    assert warm.worst_device["truck2"] == "b"
    assert warm.consumed_ns == 2 * HOUR + 20 * MIN
    assert warm.remaining_ns == 4 * HOUR - warm.consumed_ns
    assert warm.share == pytest.approx((2 * 60 + 20) / 240)
    assert not warm.exhausted
    # 40 % of 4 h = 96 min: 20 min on truck 1, then 76 min into truck 2's excursion (at 1 h)
    assert warm.crossings == {0.4: t2 + HOUR + 76 * MIN}
    assert use.bands[1].consumed_ns == 0 and not use.bands[1].exhausted
    assert use.freeze_thaw is not None and use.freeze_thaw.count == 0
    assert use.exhausted == []


def test_a_zero_allowance_is_exhausted_by_any_time_in_its_band() -> None:
    leg = LegSeries("x", T0, {"a": series(T0, 5 * MIN, [5.0] * 6 + [-1.0] + [5.0] * 5)})
    use = consume(BUDGET, [leg], HOUR)
    frozen = use.bands[1]
    assert frozen.consumed_ns == 5 * MIN and frozen.exhausted and frozen.share == 1.0
    assert frozen.crossings == {0.4: T0 + 30 * MIN, 0.8: T0 + 30 * MIN, 1.0: T0 + 30 * MIN}
    assert use.freeze_thaw is not None
    assert (use.freeze_thaw.count, use.freeze_thaw.events) == (1, (T0 + 30 * MIN,))
    assert "frozen" in use.exhausted and "freeze_thaw" not in use.exhausted  # 1 allowed


def test_a_lot_still_frozen_when_it_moves_on_is_one_freeze() -> None:
    a = LegSeries("a", T0, {"x": series(T0, 10 * MIN, [5.0, 5.0, -2.0, -2.0, -2.0, -2.0])})
    b = LegSeries("b", T0 + HOUR, {"y": series(T0 + HOUR, 10 * MIN, [-2.0, 5.0, -1.0])})
    use = consume(BUDGET, [a, b], HOUR)
    assert use.freeze_thaw is not None
    assert use.freeze_thaw.events == (T0 + 20 * MIN, T0 + HOUR + 20 * MIN)
    assert use.freeze_thaw.exhausted  # 2 freezes, 1 allowed


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_chain_mkt_of_published_vectors_does_not_depend_on_where_legs_meet(cut: int) -> None:
    # USP <1079.2>: 4, 4, 4, 4, 16 °C at equal intervals → 8.109 °C, whichever legs hold them
    budget = StabilityBudget.model_validate({"mkt": {"limit": 25}})
    pts = series(T0, HOUR, [4.0, 4.0, 4.0, 4.0, 16.0])
    legs = [
        LegSeries("a", T0, {"x": pts[:cut]}, HOUR),
        LegSeries("b", pts[cut][0], {"y": pts[cut:]}, HOUR),
    ]
    use = consume(budget, legs, 2 * HOUR)
    assert use.mkt is not None and use.mkt.mkt_c == pytest.approx(8.109, abs=5e-4)
    pts = series(T0, HOUR, [5.0] * 18 + [14.0] * 6)
    legs = [
        LegSeries("c", T0, {"z": pts[: cut * 5]}, HOUR),
        LegSeries("d", pts[cut * 5][0], {"z": pts[cut * 5 :]}, HOUR),
    ]
    use = consume(budget, legs, 2 * HOUR)
    assert use.mkt is not None and use.mkt.mkt_c == pytest.approx(8.285, abs=5e-4)
    legs = [LegSeries("e", T0, {"z": series(T0, 5 * MIN, [5.0] * 100)})]
    use = consume(budget, legs, HOUR)
    assert use.mkt is not None and use.mkt.mkt_c == pytest.approx(5.0, abs=1e-9)


def test_max_window_mkt_finds_the_worst_day() -> None:
    # 3 days hourly at 5 °C with 6 h at 14 °C on day 2: the worst 24 h holds the excursion
    temps = [5.0] * 30 + [14.0] * 6 + [5.0] * 36
    segs = held_segments(series(T0, HOUR, temps), 2 * HOUR)
    value, a, b = max_window_mkt(segs, 24 * HOUR) or (0.0, 0, 0)
    assert value == pytest.approx(8.285, abs=5e-4)
    assert b - a == 24 * HOUR and a <= T0 + 30 * HOUR and b >= T0 + 36 * HOUR


@given(
    st.lists(
        st.tuples(st.integers(1, 600), st.floats(-5, 30, allow_nan=False)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 900),
    st.integers(0, 900),
)
def test_time_in_band_and_reach_time_match_a_second_by_second_count(
    steps: list[tuple[int, float]], gap_s: int, target_s: int
) -> None:
    pts = []
    t = 0
    for dt, v in steps:
        t += dt
        pts.append((t * S, round(v, 1)))
    until = pts[-1][0] + 2 * gap_s * S
    band = BudgetBand(name="warm", above=8, at_most=25, allow=1)
    segs = held_segments(pts, gap_s * S)
    # brute force, each half second (a learned median interval may be a half second): the
    # last reading before it holds if the instant is within its hold time
    half = S // 2
    holds = {s.start: s.end for s in segs}
    inside = []
    for k in range(pts[0][0] // half, until // half):
        last = max((p for p in pts if p[0] <= k * half), default=None)
        assert last is not None
        held = k * half < holds.get(last[0], last[0])
        inside.append(held and band.contains(last[1]))
    assert time_in(segs, band.contains) == sum(inside) * half
    at = reach_time(segs, band.contains, target_s * S)
    if sum(inside) < 2 * target_s or (target_s == 0 and not any(inside)):
        assert at is None
    else:
        assert at is not None
        assert sum(inside[: (at - pts[0][0]) // half]) == 2 * target_s


@given(st.lists(st.floats(-30, 40, allow_nan=False), min_size=1, max_size=50))
def test_mkt_of_equal_holds_is_the_usp_formula(temps: list[float]) -> None:
    segs = held_segments(series(T0, 5 * MIN, temps), HOUR)
    assert mkt_of(segs) == pytest.approx(mkt_c(temps), abs=1e-6)


def test_entries_count_transitions_only() -> None:
    segs = held_segments(series(T0, MIN, [5, -1, -2, 3, -1, 4]), HOUR)
    assert entries(segs, lambda v: v < 0) == [T0 + MIN, T0 + 4 * MIN]
    assert entries(segs[1:], lambda v: v < 0, before=True) == [T0 + 4 * MIN]


def test_budget_config_errors_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="not both"):
        BudgetBand(name="x", above=8, at_least=8, allow=1)
    with pytest.raises(ValidationError, match="must be below"):
        BudgetBand(name="x", above=25, at_most=8, allow=1)
    with pytest.raises(ValidationError, match="needs a bound"):
        BudgetBand(name="x", allow=1)
    with pytest.raises(ValidationError, match="reserved"):
        BudgetBand(name="mkt", above=8, allow=1)
    with pytest.raises(ValidationError, match="between 0 and 1"):
        StabilityBudget.model_validate(
            {"bands": [{"name": "w", "above": 8, "allow": 1}], "alert_at": [1.5]}
        )
    with pytest.raises(ValidationError, match="duplicate band"):
        StabilityBudget.model_validate(
            {
                "bands": [
                    {"name": "w", "above": 8, "allow": 1},
                    {"name": "w", "below": 0, "allow": 1},
                ]
            }
        )
    bad = {"profiles": {"p": {"budget": {"bands": [{"name": "w", "above": 8, "allow": "x"}]}}}}
    with pytest.raises(ConfigError) as err:
        parse_config({"rules": bad}, "vigil.yaml", env={})
    assert "vigil.yaml: rules.profiles.p.budget.bands[0].allow: expected a duration" in str(
        err.value
    )


def test_budget_rules_bind_to_lot_budget_readings_only() -> None:
    lib = RulesConfig.model_validate(
        {
            "profiles": {
                "insulin": {
                    "extends": ["vaccine_2_8"],
                    "budget": BUDGET.model_dump(),
                },
                "child": {"extends": ["insulin"]},
            },
            "bindings": [{"profile": "crt"}],  # a catch-all binding must not reach lot budgets
        }
    ).library()
    assert lib.budget("child") == BUDGET  # inherited
    assert lib.budget("vaccine_2_8") is not None and lib.budget("crt") is None
    ids = {
        r.id
        for r in lib.rules_for(
            "lot_budget", {"lot": "L1", "profile": "insulin", "budget": "warm", "device": "L1/warm"}
        )
    }
    assert ids == {
        "insulin.budget_40pct",
        "insulin.budget_80pct",
        "insulin.budget_exhausted",
        "insulin.budget_mkt",
        "insulin.decision_review",
    }
    assert level_id(0.875) == "budget_87_5pct"
    crt = {r.id for r in lib.rules_for("lot_budget", {"profile": "crt", "device": "x"})}
    assert crt == {"crt.decision_review"}  # no budget: only the decision's review
    assert lib.rules_for("lot_budget", {"device": "x"}) == []
    assert not math.isnan(BUDGET.levels[-1]) and BUDGET.levels == [0.4, 0.8, 1.0]
