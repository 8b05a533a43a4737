"""`record_gap` (GSP recording cadence) and the cadence-aware completeness it gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_rules import AlertState, AlertStore, EventKind, ManualClock, RulesConfig, RulesEngine
from alert_rules.completeness import completeness
from alert_rules.kinds.record_gap import RecordGapRule
from gateway.core.reading import Reading

S = 1_000_000_000
MIN = 60 * S
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z


def test_defaults_are_the_gsp_cadences() -> None:
    """China GSP annex on automatic temperature monitoring: a record at least every 30 minutes
    in storage, 5 minutes in transport, 2 minutes while out of range."""
    rule = RecordGapRule(id="r")
    assert rule.storage_cadence == 30 * 60
    assert rule.transport_cadence == 5 * 60
    assert rule.out_of_range_cadence == 2 * 60
    assert rule.cadence_ns(5.0, {}) == 30 * MIN
    assert rule.cadence_ns(5.0, {"shipment": "SH-1"}) == 5 * MIN
    banded = RecordGapRule(id="r", low=2, high=8)
    assert banded.cadence_ns(8.5, {"shipment": "SH-1"}) == 2 * MIN
    assert banded.cadence_ns(8.0, {}) == 30 * MIN  # the limits are inside the range
    assert RecordGapRule(id="r", context="transport").cadence_ns(5.0, {}) == 5 * MIN
    with pytest.raises(ValueError, match="above high"):
        RecordGapRule(id="r", low=8, high=2)


def engine(tmp_path: Path, **overrides: Any) -> RulesEngine:
    binding: dict[str, Any] = {"profile": "vaccine_2_8", "measurement": "coldchain"}
    if overrides:
        binding["overrides"] = {"record_gap": overrides}
    config = RulesConfig.model_validate({"bindings": [binding]})
    return RulesEngine(config, AlertStore(tmp_path / "a.db"), ManualClock(T0))


def rd(minute: float, temp: float = 5.0, **tags: str) -> Reading:
    t = {"site": "wh1", "asset": "room-1", "device": "lg-1", **tags}
    ts = T0 + int(minute * MIN)
    return Reading("coldchain", t, {"temp_c": temp}, ts, ts + S)


def gaps(e: RulesEngine, readings: list[Reading]) -> list[Any]:
    events = []
    for r in readings:
        e.clock.set(r.received_ns)  # type: ignore[attr-defined]
        events += e.process([r])
    return [x for x in events if x.alert.rule == "vaccine_2_8.record_gap"]


def test_a_storage_gap_over_30_minutes_is_an_alert_spanning_it(tmp_path: Path) -> None:
    e = engine(tmp_path)
    events = gaps(e, [rd(0), rd(30), rd(61), rd(62)])  # 30 min is fine, 31 is not
    assert [x.kind for x in events] == [EventKind.RAISED, EventKind.CLEARED]
    raised, cleared = events
    assert raised.excursion_start_ns == T0 + 30 * MIN and raised.at_ns == T0 + 61 * MIN
    assert cleared.alert.ended_at == T0 + 61 * MIN and raised.value == 31 * 60
    assert cleared.new_state is AlertState.RTN_UNACKNOWLEDGED  # history, to acknowledge
    assert "31m" in raised.alert.message and "every 30m" in raised.alert.message
    assert raised.alert.source == "wh1/room-1/lg-1"


def test_transport_and_out_of_range_cadences(tmp_path: Path) -> None:
    e = engine(tmp_path)
    # on a truck (readings tagged with a shipment): 5 minutes
    assert gaps(e, [rd(0, shipment="SH-1"), rd(5, shipment="SH-1")]) == []
    assert len(gaps(e, [rd(11, shipment="SH-1")])) == 2
    # out of 2-8 °C: 2 minutes, judged from the reading that was out
    assert gaps(e, [rd(12, 9.0), rd(14, 9.0)]) == []
    assert len(gaps(e, [rd(17, 5.0)])) == 2


def test_context_per_binding(tmp_path: Path) -> None:
    e = engine(tmp_path, context="transport", transport_cadence="10m")
    assert gaps(e, [rd(0), rd(10)]) == []
    assert len(gaps(e, [rd(21)])) == 2


def test_state_survives_a_restart(tmp_path: Path) -> None:
    e = engine(tmp_path)
    gaps(e, [rd(0), rd(1)])
    e.close()
    e.store.close()
    again = engine(tmp_path)
    assert len(gaps(again, [rd(40)])) == 2  # the gap since minute 1, from the snapshot


times = st.lists(st.integers(0, 600), max_size=60, unique=True).map(sorted)


@settings(max_examples=200, deadline=None)
@given(times=times, cadence=st.integers(1, 90), since=st.integers(0, 100), span=st.integers(0, 600))
def test_one_cadence_after_every_reading_is_the_plain_completeness(
    times: list[int], cadence: int, since: int, span: int
) -> None:
    readings = [(t * S, 5.0) for t in times]
    plain = completeness(readings, since * S, (since + span) * S, cadence * S)
    after = completeness(
        readings,
        since * S,
        (since + span) * S,
        cadence * S,
        cadence_after=[cadence * S] * len(readings),
    )
    assert after == plain


@settings(max_examples=200, deadline=None)
@given(
    times=times,
    transport=st.lists(st.booleans(), min_size=60, max_size=60),
    span=st.integers(1, 700),
)
def test_cadence_aware_completeness_is_consistent(
    times: list[int], transport: list[bool], span: int
) -> None:
    rule = RecordGapRule(id="r", storage_cadence=30, transport_cadence=5, low=2, high=8)
    samples = [
        (t * S, 9.0 if t % 7 == 0 else 5.0, {"shipment": "SH"} if transport[i] else {})
        for i, t in enumerate(times)
    ]
    c = rule.completeness(samples, 0, span * S)
    assert 0 <= c.filled <= c.slots and 0.0 <= c.share <= 1.0
    assert sum(g.missed_slots for g in c.gaps) == c.slots - c.filled
    inside = [t for t in times if t < span]
    assert c.filled <= len(inside)
    for g in c.gaps:
        assert 0 <= g.start_ns < g.end_ns <= span * S
        assert not any(g.start_ns < t * S < g.end_ns for t in inside)  # a gap holds no reading


def test_transport_readings_are_judged_on_the_transport_cadence() -> None:
    rule = RecordGapRule(id="r")
    every4 = [(m * MIN, 5.0, {"shipment": "SH-1"}) for m in range(0, 60, 4)]
    every6 = [(m * MIN, 5.0, {"shipment": "SH-1"}) for m in range(0, 60, 6)]
    stored6 = [(m * MIN, 5.0, {}) for m in range(0, 60, 6)]
    assert rule.completeness(every4, 0, 60 * MIN).share == 1.0
    assert rule.completeness(every6, 0, 60 * MIN).share < 1.0
    assert rule.completeness(stored6, 0, 60 * MIN).share == 1.0
    c = rule.completeness(every6, 0, 60 * MIN)
    assert c.slots > 2  # 5-minute slots, not 30
