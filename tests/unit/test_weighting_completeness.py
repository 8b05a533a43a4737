"""Hold-time weighting (reports, budgets) and GSP record completeness, against published values
and brute-force references."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_rules import RulesConfig
from alert_rules.completeness import completeness
from alert_rules.mkt import mkt_c
from alert_rules.weighting import hold_ns, learned_interval_ns
from gateway.core.reading import Reading
from gateway.core.standards import (
    GSP_RECORD_OUT_OF_RANGE_S,
    GSP_RECORD_STORAGE_S,
    GSP_RECORD_TRANSPORT_S,
)
from gateway.records.reports import report_for
from gateway.records.shipments import ShipmentRegistry

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
T0 = 1_795_000_000 * S
LIB = RulesConfig().library()


def mkt_of_shipment(tmp_path: Path, temps: list[float], step: int, stop_after_last: int) -> float:
    reg = ShipmentRegistry(tmp_path / f"s{stop_after_last}.sqlite")
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    rs = [
        Reading("coldchain", {"asset": "truck-7", "device": "lg"}, {"temp_c": t}, T0 + i * step)
        for i, t in enumerate(temps)
    ]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + (len(temps) - 1) * step + stop_after_last)
    mkt = report_for(reg, reg.require(s.id), [], LIB, now_ns=T0).series[0].mkt
    reg.close()
    assert mkt is not None
    return mkt


@pytest.mark.parametrize("stop_after_last", [1 * S, 5 * MIN, HOUR, 6 * HOUR])
def test_mkt_of_hourly_readings_does_not_depend_on_the_stop(
    tmp_path: Path, stop_after_last: int
) -> None:
    # USP <1079.2>-style vector: MKT of 4, 4, 4, 4, 16 °C (equal intervals) is 8.109 °C
    assert mkt_of_shipment(tmp_path, [4, 4, 4, 4, 16], HOUR, stop_after_last) == pytest.approx(
        8.109, abs=5e-4
    )


@pytest.mark.parametrize("stop_after_last", [1 * S, HOUR, 12 * HOUR])
def test_mkt_of_18_h_at_5_and_6_h_at_14(tmp_path: Path, stop_after_last: int) -> None:
    temps = [5.0] * 18 + [14.0] * 6
    assert mkt_of_shipment(tmp_path, temps, HOUR, stop_after_last) == pytest.approx(8.285, abs=5e-4)


def test_constant_5_gives_5(tmp_path: Path) -> None:
    assert mkt_of_shipment(tmp_path, [5.0] * 30, 5 * MIN, 3 * HOUR) == pytest.approx(5.0, abs=1e-9)


def test_a_reading_holds_for_the_interval_capped_by_the_gap_limit() -> None:
    ts = [0, 5 * MIN, 10 * MIN, 3 * HOUR, 3 * HOUR + 5 * MIN]
    assert learned_interval_ns(ts) == 5 * MIN
    assert hold_ns(ts, HOUR) == [5 * MIN, 5 * MIN, 5 * MIN, 5 * MIN, 5 * MIN]
    assert hold_ns(ts, HOUR, interval_ns=30 * MIN) == [
        5 * MIN,
        5 * MIN,
        30 * MIN,
        5 * MIN,
        30 * MIN,
    ]
    assert hold_ns([0], HOUR) == [HOUR]
    assert hold_ns([], HOUR) == []


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=60, unique=True).map(sorted),
    st.integers(1, 10**5),
)
def test_holds_never_exceed_the_spacing_or_the_cap(ts: list[int], gap: int) -> None:
    holds = hold_ns(ts, gap)
    assert len(holds) == len(ts)
    for i, h in enumerate(holds):
        assert 0 <= h <= gap
        if i + 1 < len(ts):
            assert h <= ts[i + 1] - ts[i]


def test_gsp_cadences_are_the_published_ones() -> None:
    assert (GSP_RECORD_STORAGE_S, GSP_RECORD_TRANSPORT_S, GSP_RECORD_OUT_OF_RANGE_S) == (
        1800,
        300,
        120,
    )


def test_completeness_of_storage_record_with_a_two_hour_gap() -> None:
    cadence = 30 * MIN
    pts = [(T0 + i * 10 * MIN, 5.0) for i in range(36) if not 6 <= i < 18]  # 6 h, 1-3 h missing
    c = completeness(pts, T0, T0 + 6 * HOUR, cadence)
    assert c.slots == 12 and c.filled == 8 and c.share == pytest.approx(8 / 12)
    [gap] = c.gaps
    assert (gap.start_ns, gap.end_ns, gap.missed_slots) == (T0 + 50 * MIN, T0 + 3 * HOUR, 4)


def test_out_of_range_records_are_needed_every_two_minutes() -> None:
    def oor(v: float) -> bool:
        return not 2.0 <= v <= 8.0

    pts = [(T0, 5.0), (T0 + 10 * MIN, 9.0), (T0 + 20 * MIN, 9.0), (T0 + 30 * MIN, 5.0)]
    c = completeness(pts, T0, T0 + 40 * MIN, 5 * MIN, oor, 2 * MIN)
    # 5-min slots until the excursion is seen, then 2-min slots until it is over
    assert c.gaps[0].start_ns == T0 and c.gaps[0].end_ns == T0 + 10 * MIN
    excursion_gaps = [g for g in c.gaps if T0 + 10 * MIN <= g.start_ns < T0 + 30 * MIN]
    # slots [15,17) [17,19) and [21,23) .. [27,29) minutes: 2-min slots without a record
    assert [(g.start_ns, g.end_ns, g.missed_slots) for g in excursion_gaps] == [
        (T0 + 10 * MIN, T0 + 20 * MIN, 2),
        (T0 + 20 * MIN, T0 + 30 * MIN, 4),
    ]
    assert (c.slots, c.filled) == (13, 4)


def brute_force(
    pts: list[tuple[int, float]], since: int, until: int, cadence: int
) -> tuple[int, int]:
    slots = filled = 0
    t = since
    while t < until:
        end = min(t + cadence, until)
        slots += 1
        filled += any(t <= ts < end for ts, _ in pts)
        t = end
    return slots, filled


@given(
    st.lists(st.integers(0, 10_000), max_size=50, unique=True).map(sorted),
    st.integers(0, 5_000),
    st.integers(1, 10_000),
    st.integers(1, 3_000),
)
def test_completeness_matches_a_brute_force_count(
    times: list[int], since: int, span: int, cadence: int
) -> None:
    pts = [(t, 5.0) for t in times]
    c = completeness(pts, since, since + span, cadence)
    assert (c.slots, c.filled) == brute_force(pts, since, since + span, cadence)
    assert sum(g.missed_slots for g in c.gaps) == c.slots - c.filled
    assert 0.0 <= c.share <= 1.0


def test_mkt_published_vectors_directly() -> None:
    assert mkt_c([4, 4, 4, 4, 16]) == pytest.approx(8.109, abs=5e-4)
    assert mkt_c([5.0] * 18 + [14.0] * 6) == pytest.approx(8.285, abs=5e-4)
