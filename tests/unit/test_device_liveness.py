"""Device liveness: the MQTT collector's per-device view (learned or configured interval) and the
`device_offline` rule fed from the collectors' statuses at each rules tick (on-delay, clear,
restart, bindings)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alert_rules import AlertStore, ManualClock, RulesConfig, RulesEngine
from collectors.mqtt.config import LivenessConfig
from collectors.mqtt.liveness import Liveness
from gateway.core.ports import SourceStatus
from gateway.core.reading import Reading

S = 1_000_000_000
T0 = 1_763_798_400 * S
PLC = {"line": "L1", "equipment": "autoclave-1", "device": "AC-01"}


def engine_at(path: Path, **rules: object) -> RulesEngine:
    return RulesEngine(RulesConfig.model_validate(rules), AlertStore(path), ManualClock(T0))


def plc(online: bool | None, since_ns: int, error: str = "") -> SourceStatus:
    return SourceStatus(
        "line1", "modbus", "modbus://127.0.0.1:5020/1", "AC-01", online, since_ns, error, 0,
        "process", dict(PLC),
    )  # fmt: skip


def test_offline_device_alarms_after_the_on_delay_and_clears_when_back(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "a.db")
    off = T0 + 10 * S
    assert engine.tick(T0, [plc(None, 0)]) == []  # not decided yet
    assert engine.tick(off + 59 * S, [plc(False, off, "timeout")]) == []  # within the on-delay
    [raised] = engine.tick(off + 60 * S, [plc(False, off, "timeout")])
    a = raised.alert
    assert (raised.kind, a.rule, a.source) == (
        "raised",
        "liveness.device_offline",
        "L1/autoclave-1/AC-01",
    )
    assert a.severity == "high" and a.started_at == off and a.raised_at == off + 60 * S
    assert "device offline since" in a.message and a.message.endswith(": timeout")
    assert a.tags == PLC and a.value == 60.0
    # never a reading from it: the device was bound from its status alone
    assert engine.rules_of("process", "AC-01") == ["liveness.device_offline"]
    assert engine.tick(off + 90 * S, [plc(False, off, "timeout")]) == []  # raised once
    back = off + 120 * S
    [cleared] = engine.tick(back + S, [plc(True, back)])
    assert cleared.kind == "cleared" and cleared.alert.ended_at == back


def test_a_short_outage_does_not_alarm(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "a.db")
    off = T0
    assert engine.tick(off + 30 * S, [plc(False, off)]) == []
    assert engine.tick(off + 40 * S, [plc(True, off + 35 * S)]) == []
    assert engine.tick(off + 200 * S, [plc(True, off + 35 * S)]) == []
    assert engine.store.list_alerts() == []


def test_the_alarm_survives_a_restart_without_a_second_raise(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "a.db")
    off = T0
    assert len(engine.tick(off + 61 * S, [plc(False, off)])) == 1
    engine.close()
    engine.store.close()
    again = engine_at(tmp_path / "a.db")
    # after a restart the collector decides anew: a new "since" for the same outage
    assert again.tick(off + 200 * S, [plc(False, off + 150 * S)]) == []
    assert again.tick(off + 300 * S, [plc(False, off + 150 * S)]) == []
    [cleared] = again.tick(off + 400 * S, [plc(True, off + 390 * S)])
    assert cleared.kind == "cleared"
    assert len(again.store.list_alerts()) == 1


def test_bindings_change_the_on_delay_and_the_builtin_binding_can_be_turned_off(
    tmp_path: Path,
) -> None:
    engine = engine_at(
        tmp_path / "a.db",
        bindings=[
            {"profile": "liveness", "line": "L1", "overrides": {"device_offline": {"on_delay": 5}}}
        ],
    )
    assert len(engine.tick(T0 + 5 * S, [plc(False, T0)])) == 1
    off = engine_at(tmp_path / "b.db", device_liveness=False)
    assert off.tick(T0 + 3600 * S, [plc(False, T0)]) == []
    assert off.rules_of("process", "AC-01") == []


def test_readings_alone_do_not_bind_the_liveness_rule(tmp_path: Path) -> None:
    """Only devices a collector reports get `device_offline` (a series fed from elsewhere, a
    test or a replay, stays unbound)."""
    engine = engine_at(tmp_path / "a.db")
    engine.process([Reading("process", dict(PLC), {"chamber_temp_c": 20.0}, T0, T0)])
    assert engine.rules_of("process", "AC-01") == []
    engine.tick(T0 + S, [plc(True, T0)])
    assert engine.rules_of("process", "AC-01") == ["liveness.device_offline"]


# -- MQTT: liveness from message arrival -----------------------------------------------------

TAGS = {"site": "wh1", "asset": "fridge-1", "device": "lg-1"}


def test_mqtt_device_interval_is_learned_as_the_median_gap() -> None:
    live = Liveness(LivenessConfig(learn_samples=3, missed_intervals=3, initial_interval_s=300))
    t = T0
    live.seen("coldchain", TAGS, t)
    [d] = live.devices.values()
    assert live.interval_s(d) == 300  # not learned yet
    for gap in (60, 61, 59, 600):  # one long gap: the median is robust to it
        t += gap * S
        live.seen("coldchain", TAGS, t)
    assert live.interval_s(d) == 60.5
    [st_] = live.statuses("loggers", "mqtt://b", t + 181 * S)
    assert st_.online is True and st_.measurement == "coldchain" and st_.tags == TAGS
    [st_] = live.statuses("loggers", "mqtt://b", t + 182 * S)
    assert st_.online is False and st_.since_ns == t + int(3 * 60.5 * S)
    assert "no message for 182 s (expected every 60.5 s)" in st_.last_error
    [st_] = live.statuses("loggers", "mqtt://b", t + 182 * S, "broker connection lost: x")
    assert st_.last_error == "broker connection lost: x"
    # back: online since its first message after the silence
    live.seen("coldchain", TAGS, t + 500 * S)
    [st_] = live.statuses("loggers", "mqtt://b", t + 501 * S)
    assert st_.online is True and st_.since_ns == t + 500 * S


def test_mqtt_configured_interval_wins_and_bursts_are_not_the_rhythm() -> None:
    live = Liveness(LivenessConfig(learn_samples=1, min_interval_s=10))
    live.seen("coldchain", TAGS, T0, expected_s=30)
    for i in range(1, 20):  # a buffered upload: 19 messages within a second
        live.seen("coldchain", TAGS, T0 + i * 40_000_000, expected_s=30)
    [d] = live.devices.values()
    assert live.interval_s(d) == 30 and len(d.gaps) == 0
    d.configured_s = None
    live.seen("coldchain", TAGS, T0 + 2 * S)
    assert live.interval_s(d) == 10  # a learned gap of ~1.2 s, but at least min_interval_s


def test_mqtt_devices_without_a_device_tag_or_beyond_the_limit_are_not_tracked() -> None:
    live = Liveness(LivenessConfig(max_devices=1))
    live.seen("coldchain", {"site": "wh1"}, T0)
    live.seen("coldchain", TAGS, T0)
    live.seen("coldchain", {**TAGS, "device": "lg-2"}, T0)
    assert list(live.devices) == [("coldchain", "lg-1")] and live.untracked == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 3_600), min_size=1, max_size=30),
    st.integers(0, 20_000),
    st.integers(1, 8),
)
def test_mqtt_liveness_is_consistent_whatever_the_arrivals(
    gaps_s: list[int], later_s: int, learn: int
) -> None:
    cfg = LivenessConfig(learn_samples=learn, min_interval_s=10, missed_intervals=3)
    live = Liveness(cfg)
    t = T0
    for g in gaps_s:
        t += g * S
        live.seen("coldchain", TAGS, t)
    [d] = live.devices.values()
    now = t + later_s * S
    [status] = live.statuses("c", "mqtt://b", now)
    interval = live.interval_s(d)
    assert interval >= cfg.min_interval_s or interval == cfg.initial_interval_s
    limit = int(interval * 3 * S)
    assert status.online is (later_s * S <= limit)
    assert status.since_ns <= now
    if not status.online:
        assert status.since_ns == t + limit and status.last_error
    assert status.last_seen_ns == t
