"""The periodic `completeness` measurement: windows, late readings, silent devices, restarts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alert_rules import RulesConfig
from gateway.core.reading import Reading
from gateway.core.schema import COMPLETENESS
from gateway.pipeline.completeness import (
    CompletenessConfig,
    CompletenessTracker,
    CompletenessWriter,
)
from gateway.pipeline.journal import Journal

S = 1_000_000_000
MIN = 60 * S
H = 60 * MIN
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z, on the hour

LIBRARY = RulesConfig.model_validate(
    {
        "bindings": [
            {"profile": "vaccine_2_8", "measurement": "coldchain", "site": "wh1"},
            {"profile": "steam_steriliser", "measurement": "process"},
        ]
    }
).library()


def rd(minute: float, device: str = "lg-1", temp: float = 5.0, site: str = "wh1") -> Reading:
    ts = T0 + int(minute * MIN)
    return Reading(
        "coldchain", {"site": site, "asset": "room-1", "device": device}, {"temp_c": temp}, ts, ts
    )


def tracker(**cfg: float) -> CompletenessTracker:
    config = CompletenessConfig.model_validate({"settle_s": 0, **cfg})
    return CompletenessTracker(config, LIBRARY, "gw-1")


def shares(points: list[Reading]) -> dict[tuple[str, int], float]:
    return {
        (p.tags["device"], (p.ts_ns - T0) // H): p.fields["share"]  # type: ignore[misc]
        for p in points
    }


def test_a_point_per_device_and_window_once_the_window_has_ended() -> None:
    t = tracker()
    t.observe([rd(m) for m in range(0, 120)], now_ns=T0 + 2 * H)
    assert t.due(T0 + H - 1) == []  # the first hour has not ended
    [p] = t.due(T0 + H)
    assert p.measurement == COMPLETENESS.name and p.ts_ns == T0
    assert p.tags == {
        "site": "wh1",
        "asset": "room-1",
        "device": "lg-1",
        "source": "wh1/room-1/lg-1",
        "gateway": "gw-1",
    }
    assert p.fields == {
        "share": 1.0,
        "slots": 2,
        "filled": 2,
        "missed": 0,
        "readings": 60,
        "gaps": 0,
        "longest_gap_s": 0.0,
        "cadence_s": 1800.0,
    }
    assert set(p.fields) == set(COMPLETENESS.fields) and set(p.tags) <= set(COMPLETENESS.tags)
    assert [x.ts_ns for x in t.due(T0 + 2 * H)] == [T0 + H]
    assert t.due(T0 + 2 * H) == []


def test_settle_delays_the_first_write() -> None:
    t = tracker(settle_s=300)
    t.observe([rd(m) for m in range(60)], now_ns=T0 + H)
    assert t.due(T0 + H + 299 * S) == []
    assert len(t.due(T0 + H + 300 * S)) == 1


def test_a_late_reading_rewrites_its_window() -> None:
    t = tracker()
    t.observe([rd(m) for m in range(0, 25)] + [rd(m) for m in range(65, 120)], now_ns=T0 + 2 * H)
    first = shares(t.due(T0 + 2 * H))
    assert first == {("lg-1", 0): 0.5, ("lg-1", 1): 1.0}
    t.observe([rd(m) for m in range(40, 65)], now_ns=T0 + 2 * H)  # a truck's buffer, late
    assert shares(t.due(T0 + 2 * H)) == {("lg-1", 0): 1.0, ("lg-1", 1): 1.0}
    assert t.due(T0 + 2 * H) == []


def test_a_silent_device_gets_empty_windows_then_is_forgotten() -> None:
    t = tracker(forget_after_s=3 * 3600)
    t.observe([rd(0), rd(10)], now_ns=T0 + H)
    points = t.due(T0 + 6 * H)
    # windows starting before it had been silent for 3 h (its last reading: minute 10)
    assert [(p.ts_ns - T0) // H for p in points] == [0, 1, 2, 3]
    assert [p.fields["filled"] for p in points] == [1, 0, 0, 0]
    assert points[1].fields["longest_gap_s"] == 3600.0
    assert t.devices == {}
    t.observe([rd(400)], now_ns=T0 + 7 * H)  # it speaks again: tracked again
    assert len(t.devices) == 1


def test_only_devices_with_a_record_gap_rule_count() -> None:
    t = tracker()
    process = Reading(
        "process", {"line": "l1", "equipment": "AC-01", "device": "AC-01"}, {"f0_min": 1.0}, T0, T0
    )
    t.observe([rd(0, site="elsewhere"), process, rd(0)], now_ns=T0)
    assert [d.tags["device"] for d in t.devices.values()] == ["lg-1"]


def test_readings_older_than_revise_are_left_alone() -> None:
    t = tracker(revise_s=3600)
    t.observe([rd(0)], now_ns=T0 + 5 * H)
    assert t.devices == {}


async def test_writer_seeds_from_the_journal_and_submits_points(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    now = T0 + 3 * H
    journal.append([rd(m) for m in range(180)], [])
    submitted: list[Reading] = []

    async def submit(points: list[Reading]) -> None:
        submitted.extend(points)

    config = CompletenessConfig(settle_s=0, revise_s=2 * 3600)
    writer = CompletenessWriter(CompletenessTracker(config, LIBRARY, "gw-1"), submit)
    assert writer.seed(journal, now) == 179  # received after now - revise - window
    assert await writer.write_due(now) == 2
    # readings older than revise_s are not tracked; the windows after are rewritten
    assert [(p.ts_ns - T0) // H for p in submitted] == [1, 2]
    assert [p.fields["share"] for p in submitted] == [1.0, 1.0]
    journal.close()


@settings(max_examples=100, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 3 * 3600), min_size=1, max_size=400).map(sorted),
    transport=st.booleans(),
)
def test_the_measurement_agrees_with_the_rule_on_every_reading(
    offsets: list[int], transport: bool
) -> None:
    """Readings closer than a quarter of the shortest cadence are thinned to the first and last
    of each such span; the share and gaps stay those of the full record."""
    tags = {"site": "wh1", "asset": "room-1", "device": "lg-1"}
    if transport:
        tags["shipment"] = "SH-1"
    readings = [Reading("coldchain", tags, {"temp_c": 5.0}, T0 + o * S, T0) for o in offsets]
    t = tracker()
    t.observe(readings, now_ns=T0 + 3 * H)
    points = {p.ts_ns: p for p in t.due(T0 + 3 * H)}
    [dev] = t.devices.values()
    rule = dev.rule
    samples = [(r.ts_ns, 5.0, r.tags) for r in readings]
    for start, p in points.items():
        exact = rule.completeness(samples, max(start, T0 + offsets[0] * S), start + H)
        assert (p.fields["slots"], p.fields["filled"]) == (exact.slots, exact.filled)
        assert p.fields["gaps"] == len(exact.gaps)


def test_a_fast_device_costs_two_readings_a_bucket() -> None:
    t = tracker()
    t.observe([rd(s / 60) for s in range(2 * 3600)], now_ns=T0 + 2 * H)  # every second
    [dev] = t.devices.values()
    assert len(dev.times) <= 2 * (2 * 3600 // 30) + 2  # 30 s: a quarter of the 2-minute cadence
    assert [p.fields["share"] for p in t.due(T0 + 2 * H)] == [1.0, 1.0]
