"""The gateway_health pack: `journal_fill` readings of `vigil_gateway` raise alerts like any other
rule, through the same engine, store and notifier routes (issue 14: a full journal was only a log
line, /ready and /metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alert_rules import AlertStore, EventKind, ManualClock, RulesConfig, RulesEngine, source_of
from alert_rules.config import GATEWAY_MEASUREMENT
from alert_rules.kinds.threshold import ThresholdRule
from gateway.core.reading import Reading
from gateway.notifiers.config import NotifiersConfig
from gateway.notifiers.router import Router

S = 1_000_000_000
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z
GW = {"gateway": "gw-1"}
HEALTH = ("journal_80", "journal_95", "journal_full")


def engine_for(tmp_path: Path, **cfg: Any) -> RulesEngine:
    config = RulesConfig.model_validate(cfg)
    return RulesEngine(config, AlertStore(tmp_path / "alerts.db"), ManualClock(T0))


def fill(engine: RulesEngine, i: int, value: float) -> list[Any]:
    ts = T0 + i * 10 * S
    engine.clock.set(ts)  # type: ignore[attr-defined]
    return engine.process([Reading(GATEWAY_MEASUREMENT, GW, {"journal_fill": value}, ts, ts)])


def test_journal_fill_raises_80_95_and_full_alerts_and_clears_them(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)  # no binding of our own: the implicit one does it
    assert fill(engine, 0, 0.5) == []
    [e80] = fill(engine, 1, 0.83)
    assert (e80.kind, e80.alert.rule, str(e80.alert.severity)) == (
        EventKind.RAISED,
        "gateway_health.journal_80",
        "medium",
    )
    assert e80.alert.message == "journal at 83% of its size budget"
    assert e80.alert.source == "gw-1"
    [e95] = fill(engine, 2, 0.96)
    assert (e95.alert.rule, str(e95.alert.severity)) == ("gateway_health.journal_95", "high")
    assert e95.alert.message == "journal at 96% of its size budget"
    [full] = fill(engine, 3, 1.0)
    assert (full.alert.rule, str(full.alert.severity)) == (
        "gateway_health.journal_full",
        "critical",
    )
    assert full.alert.message == "journal full: readings are not being acknowledged"
    assert fill(engine, 4, 1.0) == []  # still full: nothing new
    cleared = fill(engine, 5, 0.3)
    assert {(e.kind, e.alert.rule) for e in cleared} == {
        (EventKind.CLEARED, f"gateway_health.{r}")
        for r in ("journal_80", "journal_95", "journal_full")
    }


def test_catch_all_bindings_leave_the_gateway_alone(tmp_path: Path) -> None:
    """A binding without `measurement` (here: every cold-chain series gets vaccine_2_8 with its
    stale rule) must not bind to the gateway's own readings; only gateway_health does."""
    engine = engine_for(tmp_path, bindings=[{"profile": "vaccine_2_8"}])
    fill(engine, 0, 0.5)
    rules = engine.rules_of(GATEWAY_MEASUREMENT, "")
    assert sorted(rules) == [
        "gateway_health.backup_failed",
        "gateway_health.clock_ahead",
        "gateway_health.clock_behind",
        "gateway_health.clock_unsynchronised",
        "gateway_health.journal_80",
        "gateway_health.journal_95",
        "gateway_health.journal_full",
        "gateway_health.notifier_failing",
    ]
    lib = engine.library
    assert lib.rules_for("coldchain", {"site": "x"})  # the catch-all still binds devices
    star = RulesConfig.model_validate(
        {"bindings": [{"profile": "vaccine_2_8", "measurement": "*"}]}
    ).library()
    assert star.rules_for(GATEWAY_MEASUREMENT, GW)
    assert all(r.profile == "gateway_health" for r in star.rules_for(GATEWAY_MEASUREMENT, GW))


def test_the_implicit_binding_can_be_switched_off_or_overridden(tmp_path: Path) -> None:
    off = RulesConfig.model_validate({"gateway_health": False}).library()
    assert off.rules_for(GATEWAY_MEASUREMENT, GW) == []
    own = RulesConfig.model_validate(
        {
            "gateway_health": False,
            "bindings": [
                {
                    "profile": "gateway_health",
                    "measurement": GATEWAY_MEASUREMENT,
                    "overrides": {"journal_80": {"high": 0.7}},
                }
            ],
        }
    ).library()
    [r80] = [r for r in own.rules_for(GATEWAY_MEASUREMENT, GW) if r.id.endswith("journal_80")]
    assert r80.spec.high == 0.7  # type: ignore[attr-defined]
    no_packs = RulesConfig.model_validate({"builtin_packs": False}).library()
    assert no_packs.rules_for(GATEWAY_MEASUREMENT, GW) == []  # no profile, no binding


def test_source_of_gateway_tags() -> None:
    assert source_of({"gateway": "gw-1"}) == "gw-1"
    assert source_of({"gateway": "gw-1", "device": "d"}) == "d"
    assert source_of({"site": "s", "asset": "a", "device": "d"}) == "s/a/d"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{value:q}", "message: "),
        ("{value.real}", "unknown placeholder"),
    ],
)
def test_message_templates_are_checked(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ThresholdRule(id="x", field="f", high=1, message=template)


def test_message_is_not_part_of_the_state_fingerprint() -> None:
    lib = RulesConfig().library()
    a = lib.compile("p", ThresholdRule(id="x", field="f", high=1))
    b = lib.compile("q", ThresholdRule(id="x", field="f", high=1, message="at {value}"))
    assert a.fingerprint == b.fingerprint


def test_health_alerts_are_routable_by_rule_without_the_gsp_recipient_rule() -> None:
    """A route for `gateway_health.*` reaches the ops people; cold-chain routes scoped to sites
    do not carry it. Such a route cannot carry cold-chain alarms, so the 3-recipient rule does
    not apply to it."""
    config = NotifiersConfig.model_validate(
        {
            "channels": {
                "ops": {"kind": "webhook", "url": "http://ops.example/hook", "secret_env": "S",
                        "recipients": ["+15550001"]},
                "sms": {"kind": "webhook", "url": "http://sms.example/hook", "secret_env": "T",
                        "recipients": ["+1", "+2", "+3"]},
            },
            "routes": {
                "health": {"rules": ["gateway_health.*"], "channels": ["ops"]},
                "coldchain": {"sites": ["wh*"], "channels": ["sms"]},
            },
        }
    )  # fmt: skip
    engine_events: list[Any] = []
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        engine = engine_for(Path(d))
        engine_events += fill(engine, 0, 1.0)
        engine.store.close()
    router = Router(config)
    plans = {e.alert.rule: router.plan(e) for e in engine_events}
    assert plans["gateway_health.journal_full"] == {"ops": ("+15550001",)}
    assert set(plans) == {
        f"gateway_health.{r}" for r in ("journal_80", "journal_95", "journal_full")
    }
    with pytest.raises(ValueError, match="can carry cold-chain alarms"):
        NotifiersConfig.model_validate(
            {
                "channels": {"ops": {"kind": "webhook", "url": "http://o/h", "secret_env": "S",
                                     "recipients": ["+15550001"]}},
                "routes": {"all": {"rules": ["gateway_health.*", "vaccine_2_8.*"],
                                   "channels": ["ops"]}},
            }
        )  # fmt: skip
