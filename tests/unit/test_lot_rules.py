"""Rules that follow lots: a leg's profile bound for the leg's duration, `scope: lot` timers,
stability budget alerts at the configured shares and the decision's review (rules engine on an
injected clock, lot registry and budget tracker in a temporary directory)."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from alert_rules import AlertStore, ManualClock, RulesConfig, RulesEngine
from gateway.core.reading import Reading
from gateway.records import Records
from gateway.records.budgets import BudgetTracker

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S


def engine_for(path: Path, clock: ManualClock, **rules: Any) -> RulesEngine:
    return RulesEngine(RulesConfig.model_validate(rules), AlertStore(path), clock)


def rd(ts: int, temp: float, **tags: str) -> Reading:
    base = {"site": "fleet", "asset": "truck-1", "device": "lg1"}
    return Reading("coldchain", {**base, **tags}, {"temp_c": temp}, ts, ts + S)


def test_a_legs_profile_binds_its_rules_only_for_the_leg(tmp_path: Path) -> None:
    t0 = 1_795_000_000 * S
    clock = ManualClock(t0)
    engine = engine_for(
        tmp_path / "a.sqlite",
        clock,
        bindings=[
            {
                "asset": "truck-*",
                "profile": "device_health",
                "overrides": {"stale": {"expected_interval": "15m"}},
            }
        ],
    )
    outside = rd(t0, 9.5)
    engine.process([outside])
    assert "vaccine_2_8.high" not in engine.rules_of("coldchain", "lg1")
    inside = [rd(t0 + i * MIN, 9.5, profile="vaccine_2_8", lot="L1") for i in range(1, 4)]
    events = engine.process(inside)
    assert "vaccine_2_8.high" in engine.rules_of("coldchain", "lg1")
    raised = [e for e in events if e.kind == "raised"]
    assert [e.alert.rule for e in raised] == ["vaccine_2_8.high"]
    assert raised[0].alert.tags.get("lot") == "L1"
    # the binding's override of the inherited stale rule still applies inside the leg
    stale = next(
        r for r in engine.library.rules_for("coldchain", inside[0].tags) if r.id.endswith(".stale")
    )
    assert stale.spec.expected_interval == 900  # type: ignore[attr-defined]
    engine.process([rd(t0 + 10 * MIN, 9.5)])  # the leg is over: its rules are unbound
    assert "vaccine_2_8.high" not in engine.rules_of("coldchain", "lg1")
    assert engine.library.rules_for("coldchain", {"asset": "x", "profile": "no_such,crt"})
    engine.store.close()


def test_scope_lot_counts_while_the_device_carries_the_same_lots(tmp_path: Path) -> None:
    t0 = 1_795_000_000 * S
    clock = ManualClock(t0)
    rule = {
        "id": "heat",
        "kind": "duration",
        "field": "temp_c",
        "high": 30,
        "timer": "cumulative",
        "scope": "lot",
        "duration": "1h",
    }
    engine = engine_for(
        tmp_path / "b.sqlite",
        clock,
        profiles={"indicator": {"rules": [rule]}},
        bindings=[{"asset": "truck-*", "profile": "indicator"}],
    )
    # 40 min hot with lot A, then 40 min hot with lot B: neither reaches 1 h
    batch = [rd(t0 + i * 5 * MIN, 31.0, lot="A") for i in range(8)]
    batch += [rd(t0 + 40 * MIN + i * 5 * MIN, 31.0, lot="B") for i in range(8)]
    events = engine.process(batch)
    assert not [e for e in events if e.kind == "raised"]
    # 20 more minutes with lot B: 1 h in lot B
    more = [rd(t0 + 80 * MIN + i * 5 * MIN, 31.0, lot="B") for i in range(5)]
    raised = [e for e in engine.process(more) if e.kind == "raised"]
    assert len(raised) == 1
    a = raised[0].alert
    assert a.raised_at == t0 + 100 * MIN and a.started_at == t0 + 40 * MIN
    assert "in lot B" in a.message
    engine.store.close()


def test_budget_alerts_fire_at_the_configured_share_and_when_exhausted(tmp_path: Path) -> None:
    now = time.time_ns()
    clock = ManualClock(now)
    profiles = {
        "insulin": {
            "extends": ["vaccine_2_8"],
            "budget": {
                "bands": [{"name": "warm", "above": 8, "at_most": 25, "allow": "2h"}],
                "alert_at": [0.4],
            },
        }
    }
    engine = engine_for(tmp_path / "c.sqlite", clock, profiles=profiles)
    records = Records.open(tmp_path / "data")
    lots = records.lots
    lots.create_lot("L1", "insulin pens", "insulin", date(2027, 1, 1), "olga")
    t0 = now - 10 * HOUR
    leg = lots.open_leg(
        ["L1"], "storage", "room-b", "olga", site="wh", started_at_ns=t0, reason="received"
    ).new
    tracker = BudgetTracker(lots, engine.library)

    def feed(rs: list[Reading]) -> list[Any]:
        lots.enrich(rs)
        lots.record(rs)
        events = engine.process(rs)
        return events + engine.process(tracker.readings(now))

    room = {"site": "wh", "asset": "room-b", "device": "lg-b"}
    # 1 h at 5 °C, then 1 h at 10 °C (half the budget): the 40 % alert at 48 min into it
    rs = [
        Reading("coldchain", room, {"temp_c": 5.0 if i < 12 else 10.0}, t0 + i * 5 * MIN, now)
        for i in range(24)
    ]
    raised = [e.alert for e in feed(rs) if e.kind == "raised"]
    budget_alerts = [a for a in raised if "budget" in a.rule]
    assert [(a.rule, a.source, a.raised_at) for a in budget_alerts] == [
        ("insulin.budget_40pct", "L1/warm", t0 + HOUR + 48 * MIN)
    ]
    assert budget_alerts[0].tags == {"lot": "L1", "budget": "warm", "device": "L1/warm"}
    assert "40% consumed" in budget_alerts[0].message
    # the room's own alerts come from the lot's profile (bound for the leg)
    assert "vaccine_2_8.high" in {a.rule for a in raised}  # inherited: its own name
    # another hour at 10 °C: exhausted at 2 h
    rs = [
        Reading("coldchain", room, {"temp_c": 10.0}, t0 + 2 * HOUR + i * 5 * MIN, now)
        for i in range(12)
    ]
    raised = [e.alert for e in feed(rs) if e.kind == "raised"]
    assert [(a.rule, a.raised_at) for a in raised if "budget" in a.rule] == [
        ("insulin.budget_exhausted", t0 + 3 * HOUR)
    ]
    # nothing new, nothing written
    assert tracker.readings(now) == []
    # a decision, then a late upload inside the leg: the review alert
    lots.decide(
        "L1", "quarantine", "quinn", "Quinn Q", "held for assessment", "ab" * 32, now_ns=now
    )
    assert [r.fields for r in tracker.readings(now)] == [{"review": 0.0}]
    late = [Reading("coldchain", room, {"temp_c": 5.0}, t0 + 3 * HOUR + 2 * MIN, now + MIN)]
    raised = [e.alert for e in feed(late) if e.kind == "raised"]
    assert [(a.rule, a.source) for a in raised] == [("insulin.decision_review", "L1/decision")]
    assert leg.id in {g.id for g in lots.legs_of("L1")}
    records.close()
    engine.store.close()
