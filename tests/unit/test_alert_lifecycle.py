"""ISA-18.2 lifecycle: acknowledgement, latching, shelving with expiry, escalation, re-alarm,
out-of-service, closing, and persistence of alerts across a restart — on an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alert_rules import (
    AlertActionError,
    AlertNotFound,
    AlertState,
    AlertStore,
    EventKind,
    ManualClock,
    RulesConfig,
    RulesEngine,
)
from gateway.core.reading import Reading

S = 1_000_000_000
MIN = 60 * S
T0 = 1_763_798_400 * S
St = AlertState


def rule(**kw: Any) -> dict[str, Any]:
    return {"id": "hot", "kind": "threshold", "field": "temp_c", "high": 8, **kw}


class Rig:
    """One engine with a single threshold rule, a manual clock, and a helper to send readings."""

    def __init__(self, path: Path, clock: ManualClock | None = None, **rule_kw: Any) -> None:
        self.path = path
        self.clock = clock or ManualClock(T0)
        self.cfg = RulesConfig.model_validate(
            {
                "profiles": {"p": {"rules": [rule(**rule_kw)]}},
                "bindings": [{"profile": "p"}],
                "max_shelve": "8h",
                "escalation": {"after": "15m", "max_tier": 2},
            }
        )
        self.engine = RulesEngine(self.cfg, AlertStore(path), self.clock)
        self.t = T0

    def send(self, temp: float, device: str = "d1") -> list[Any]:
        self.t += MIN
        self.clock.set(self.t + S)
        return self.engine.process(
            [
                Reading(
                    "coldchain",
                    {"site": "s", "asset": "a", "device": device},
                    {"temp_c": temp},
                    self.t,
                    self.t + S,
                )
            ]
        )

    def hot(self, device: str = "d1") -> int:
        [e] = self.send(9.0, device)
        assert e.kind in (EventKind.RAISED, EventKind.REACTIVATED)
        return e.alert.id

    def state(self, alert_id: int) -> AlertState:
        a = self.engine.store.get_alert(alert_id)
        assert a is not None
        return a.state

    def restart(self) -> None:
        self.engine.close()
        self.engine.store.close()
        self.engine = RulesEngine(self.cfg, AlertStore(self.path), self.clock)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "alerts.db")


def test_ack_then_return_to_normal_ends_the_alert(rig: Rig) -> None:
    aid = rig.hot()
    res = rig.engine.ack(aid, "olga", "checking the fridge")
    assert (res.old.state, res.new.state) == (St.UNACKNOWLEDGED, St.ACKNOWLEDGED)
    assert res.new.acked_by == "olga" and res.new.acked_at == rig.clock.now_ns()
    assert res.event.kind is EventKind.ACKED and res.event.reason == "checking the fridge"
    [e] = rig.send(5.0)
    assert (e.kind, e.old_state, e.new_state) == (EventKind.CLEARED, St.ACKNOWLEDGED, St.NORMAL)
    assert rig.hot() != aid  # the next excursion is a new alert
    kinds = [h["kind"] for h in rig.engine.store.history(aid)]
    assert kinds == ["raised", "acked", "cleared"]


def test_return_to_normal_unacknowledged_then_ack(rig: Rig) -> None:
    aid = rig.hot()
    [e] = rig.send(5.0)
    assert e.new_state is St.RTN_UNACKNOWLEDGED
    assert rig.engine.ack(aid, "olga").new.state is St.NORMAL
    with pytest.raises(AlertActionError, match="only unacknowledged"):
        rig.engine.ack(aid, "olga")


def test_one_open_alert_per_rule_and_source(rig: Rig) -> None:
    aid = rig.hot()
    rig.send(5.0)  # rtn unacknowledged, still open
    [e] = rig.send(9.0)
    assert e.kind is EventKind.REACTIVATED and e.alert.id == aid
    assert e.alert.activations == 2 and e.new_state is St.UNACKNOWLEDGED
    other = rig.hot("d2")
    assert other != aid  # another source gets its own alert
    assert len(rig.engine.store.list_alerts(open_only=True)) == 2


def test_latching_alarm_stays_until_closed(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "a.db", latching=True)
    aid = rig.hot()
    rig.engine.ack(aid, "olga")
    [e] = rig.send(5.0)
    assert e.new_state is St.ACKNOWLEDGED and not e.alert.active  # latched
    with pytest.raises(AlertActionError, match="reason"):
        rig.engine.close_alert(aid, "qa-anna", " ")
    res = rig.engine.close_alert(aid, "qa-anna", "product assessed, no impact")
    assert res.new.state is St.NORMAL and res.new.closed_by == "qa-anna"
    assert res.old.state is St.ACKNOWLEDGED
    with pytest.raises(AlertActionError, match="already closed"):
        rig.engine.close_alert(aid, "qa-anna", "again")


def test_latching_rtn_unack_acknowledged_stays_latched(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "a.db", latching=True)
    aid = rig.hot()
    rig.send(5.0)
    assert rig.engine.ack(aid, "olga").new.state is St.ACKNOWLEDGED


def test_close_refuses_an_active_alert_and_unknown_ids(rig: Rig) -> None:
    aid = rig.hot()
    with pytest.raises(AlertActionError, match="still active"):
        rig.engine.close_alert(aid, "qa", "done")
    with pytest.raises(AlertNotFound):
        rig.engine.ack(999, "olga")


def test_closing_a_finished_alert_records_the_review(rig: Rig) -> None:
    aid = rig.hot()
    rig.send(5.0)
    rig.engine.ack(aid, "olga")  # normal now
    res = rig.engine.close_alert(aid, "qa", "reviewed")
    assert res.old.state is St.NORMAL and res.new.closed_at is not None


def test_shelve_needs_reason_and_respects_the_maximum(rig: Rig) -> None:
    aid = rig.hot()
    with pytest.raises(AlertActionError, match="reason"):
        rig.engine.shelve(aid, "olga", "")
    with pytest.raises(AlertActionError, match="exceeds the maximum 8h"):
        rig.engine.shelve(aid, "olga", "defrost", duration_s=9 * 3600)
    res = rig.engine.shelve(aid, "olga", "defrost cycle")
    assert res.new.state is St.SHELVED
    assert res.new.shelved_until == rig.clock.now_ns() + 8 * 3600 * S


def test_shelving_expires_on_the_clock_and_reannunciates(rig: Rig) -> None:
    aid = rig.hot()
    rig.engine.shelve(aid, "olga", "defrost cycle", duration_s=1800)
    shelved_at = rig.clock.now_ns()
    assert rig.send(5.0)[0].annunciate is False  # cleared while shelved: not announced
    [again] = rig.send(9.5)  # re-activation while shelved stays shelved
    assert (again.kind, again.new_state, again.annunciate) == (
        EventKind.REACTIVATED,
        St.SHELVED,
        False,
    )
    assert rig.engine.tick(shelved_at + 1799 * S) == []
    [e] = rig.engine.tick(shelved_at + 1800 * S)
    assert (e.kind, e.by, e.new_state) == (EventKind.UNSHELVED, "system", St.UNACKNOWLEDGED)
    assert e.annunciate and e.reason == "maximum shelve time reached"


def test_shelved_alert_that_cleared_ends_on_expiry(rig: Rig) -> None:
    aid = rig.hot()
    rig.engine.shelve(aid, "olga", "door being repaired", duration_s=600)
    rig.send(5.0)
    [e] = rig.engine.tick(rig.clock.now_ns() + 600 * S)
    assert e.new_state is St.NORMAL
    assert rig.engine.store.list_alerts(open_only=True) == []


def test_manual_unshelve(rig: Rig) -> None:
    aid = rig.hot()
    rig.engine.shelve(aid, "olga", "nuisance")
    res = rig.engine.unshelve(aid, "olga")
    assert res.new.state is St.UNACKNOWLEDGED and res.new.shelved_until is None
    with pytest.raises(AlertActionError, match="not shelved"):
        rig.engine.unshelve(aid, "olga")


def test_rule_may_forbid_shelving(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "a.db", shelvable=False)
    aid = rig.hot()
    with pytest.raises(AlertActionError, match="may not be shelved"):
        rig.engine.shelve(aid, "olga", "please")


def test_escalation_to_the_next_tier_until_acknowledged(rig: Rig) -> None:
    aid = rig.hot()
    t = rig.clock.now_ns()
    assert rig.engine.tick(t + 14 * MIN) == []
    [e1] = rig.engine.tick(t + 15 * MIN)
    assert (e1.kind, e1.tier, e1.alert.id) == (EventKind.ESCALATED, 1, aid)
    assert rig.engine.tick(t + 29 * MIN) == []
    [e2] = rig.engine.tick(t + 30 * MIN)
    assert e2.tier == 2
    assert rig.engine.tick(t + 60 * MIN) == []  # max_tier reached
    rig.clock.set(t + 61 * MIN)
    rig.engine.ack(aid, "olga")
    assert rig.engine.tick(t + 120 * MIN) == []


def test_escalation_after_per_rule_and_rtn_unack_escalates_too(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "a.db", escalate_after="2m")
    rig.hot()
    rig.send(5.0)  # returned to normal but nobody acknowledged
    [e] = rig.engine.tick(rig.clock.now_ns() + 2 * MIN)
    assert e.kind is EventKind.ESCALATED and e.old_state is St.RTN_UNACKNOWLEDGED


def test_realarm_when_acknowledged_but_still_active(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "a.db", realarm_after="30m")
    aid = rig.hot()
    rig.engine.ack(aid, "olga")
    acked = rig.clock.now_ns()
    assert rig.engine.tick(acked + 29 * MIN) == []
    [e] = rig.engine.tick(acked + 30 * MIN)
    assert (e.kind, e.new_state, e.annunciate) == (EventKind.REALARMED, St.UNACKNOWLEDGED, True)


def test_out_of_service_hides_and_returns(rig: Rig) -> None:
    aid = rig.hot()
    [res] = rig.engine.set_out_of_service("s/a/d1", "tech", "probe replaced")
    assert res.new.state is St.OUT_OF_SERVICE and not res.event.annunciate
    rig.send(5.0)
    [e] = rig.send(9.0)
    assert e.new_state is St.OUT_OF_SERVICE and not e.annunciate
    [back] = rig.engine.set_out_of_service("s/a/d1", "tech", "done", out=False)
    assert back.new.state is St.UNACKNOWLEDGED and back.new.id == aid
    # a point out of service before any alert records new alerts without announcing them
    rig.engine.set_out_of_service("s/a/d9", "tech", "calibration")
    [n] = rig.send(9.0, "d9")
    assert n.kind is EventKind.RAISED and n.new_state is St.OUT_OF_SERVICE and not n.annunciate


def test_actions_are_not_repeated_in_the_event_stream(rig: Rig) -> None:
    aid = rig.hot()
    rig.engine.ack(aid, "olga")
    assert rig.engine.tick() == []
    assert rig.send(9.0) == []


def test_alerts_and_states_survive_a_restart(rig: Rig) -> None:
    aid = rig.hot()
    rig.engine.shelve(aid, "olga", "defrost", duration_s=600)
    shelved_at = rig.clock.now_ns()
    other = rig.hot("d2")
    rig.restart()
    assert rig.state(aid) is St.SHELVED
    [e] = rig.engine.tick(shelved_at + 600 * S)
    assert e.alert.id == aid and e.new_state is St.UNACKNOWLEDGED
    assert rig.engine.ack(other, "olga").new.state is St.ACKNOWLEDGED
    # the restored timer knows d2 is still hot: no second alert while it stays hot
    assert rig.send(9.0, "d2") == []
    [c] = rig.send(5.0, "d2")
    assert c.alert.id == other and c.new_state is St.NORMAL


def test_list_alerts_filters(rig: Rig) -> None:
    a1 = rig.hot("d1")
    a2 = rig.hot("d2")
    store = rig.engine.store
    assert [a.id for a in store.list_alerts(source="s/a/d2")] == [a2]
    assert {a.id for a in store.list_alerts(source="s/a/*")} == {a1, a2}
    assert [a.id for a in store.list_alerts(state="unacknowledged", since_ns=T0 + 2 * MIN)] == [a2]
    assert rig.engine.store.get_alert(a1).to_dict()["state"] == "unacknowledged"
