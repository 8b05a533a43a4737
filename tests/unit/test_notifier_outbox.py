"""The durable outbox: notifications are written in the alert transition's own transaction,
keyed for idempotency, coalesced for state channels, bounded; and the texts SMS and chat
channels send (template parameters clipped, times in the display zone with their offset)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from alert_rules import Alert, AlertEvent, AlertState, EventKind, Priority
from collectors.mqtt import MqttBrokerConfig, client_for
from gateway.core.i18n import fmt_time
from gateway.notifiers import MqttLink, Notifier, NotifiersConfig
from gateway.notifiers.message import SMS_PARAMS, chat_message, sms_params
from gateway.notifiers.outbox import Outbox, delivery_key, event_from_json, event_to_json
from tests import notify_rig
from tests.notify_rig import MIN, T0, Fridges, until

running = notify_rig.running

PHONES = ["+8613800000001", "+8613800000002", "+8613800000003"]
ENV = {"A": "a", "B": "b", "H": "h"}


def config(**channels: dict[str, object]) -> NotifiersConfig:
    return NotifiersConfig.model_validate(
        {
            "channels": {
                "sms": {"kind": "aliyun_sms", "access_key_id_env": "A",
                        "access_key_secret_env": "B", "sign_name": "某医药",
                        "template_code": "SMS_1", "phone_numbers": PHONES},
                "hook": {"kind": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "H",
                         "max_queue": 2},
                **channels,
            },
            "routes": {"gsp": {"channels": ["sms", "hook"], "sites": ["wh1"]}},
        }
    )  # fmt: skip


def test_notifications_commit_with_the_alert_transition(tmp_path: Path) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    n = fridges.notifier(config(), gateway="gw", env=ENV)
    other = sqlite3.connect(tmp_path / "alerts.db")
    seen_inside: list[tuple[int, int]] = []

    def look(event: AlertEvent, transition: int) -> None:
        # after the notifier's rows, before the engine commits: another reader sees neither
        alerts = other.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
        rows = other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        seen_inside.append((alerts, rows))

    fridges.engine.alerts.listeners.append(look)
    [raised] = fridges.temps("fridge-1", 0, [5.0, 9.0])
    assert seen_inside == [(0, 0)]
    # committed together: the alert, its history row and one delivery per number and channel
    assert other.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 1
    rows = other.execute("SELECT channel, recipients, key, transition FROM outbox ORDER BY id")
    got = rows.fetchall()
    [transition] = [h["id"] for h in fridges.engine.store.history(raised.alert.id)]
    assert [(c, r) for c, r, _, _ in got] == [
        ("sms", '["+8613800000001"]'),
        ("sms", '["+8613800000002"]'),
        ("sms", '["+8613800000003"]'),
        ("hook", "[]"),
    ]
    assert {t for *_, t in got} == {transition}
    assert [k for _, _, k, _ in got] == [
        delivery_key("gw", raised.alert.id, transition, "sms", (p,)) for p in PHONES
    ] + [delivery_key("gw", raised.alert.id, transition, "hook", ())]
    assert n.stats["sms"]["queued"] == 3 and n.stats["hook"]["queued"] == 1
    other.close()


async def test_rows_of_a_removed_channel_are_given_up_when_the_workers_start(
    tmp_path: Path, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    fridges.notifier(config(), gateway="gw", env=ENV)
    [raised] = fridges.temps("fridge-1", 0, [5.0, 9.0])
    hook_only = NotifiersConfig.model_validate(
        {"channels": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/h",
                               "secret_env": "H", "recipients": ["a", "b", "c"]}},
         "routes": {"gsp": {"channels": ["hook"], "sites": ["wh1"]}}}
    )  # fmt: skip
    n = Notifier(hook_only, fridges.engine.store, gateway="gw", env=ENV)  # a reload's new one
    outbox = Outbox(fridges.engine.store)
    assert outbox.count("sms") == 3  # the notifier it replaces may still deliver them
    await running(n)
    await until(lambda: outbox.count("sms") == 0, what="the SMS rows given up")
    gave_up = [h for h in outbox.history(raised.alert.id) if h["outcome"] == "gave_up"]
    assert [h["channel"] for h in gave_up] == ["sms"] * 3
    assert all(h["detail"] == "channel 'sms' is no longer configured" for h in gave_up)


def test_the_key_is_stable_and_distinct_per_part() -> None:
    base = delivery_key("gw", 17, 42, "sms", ("+8613800000001",))
    assert base == delivery_key("gw", 17, 42, "sms", ("+8613800000001",))
    assert len(base) == 32 and int(base, 16) >= 0
    others = {
        delivery_key("gw2", 17, 42, "sms", ("+8613800000001",)),
        delivery_key("gw", 18, 42, "sms", ("+8613800000001",)),
        delivery_key("gw", 17, 43, "sms", ("+8613800000001",)),
        delivery_key("gw", 17, 42, "ding", ("+8613800000001",)),
        delivery_key("gw", 17, 42, "sms", ("+8613800000002",)),
    }
    assert base not in others and len(others) == 5


def test_a_full_channel_drops_and_records_it_others_carry_on(tmp_path: Path) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    n = fridges.notifier(config(), gateway="gw", env=ENV)
    for i in range(3):
        fridges.temps(f"fridge-{i}", 0, [5.0, 9.0])
    assert n.stats["hook"]["queued"] == 2 and n.stats["hook"]["dropped"] == 1
    assert n.stats["sms"]["queued"] == 9 and n.stats["sms"]["dropped"] == 0
    third = fridges.alert_id("vaccine_2_8.high", "fridge-2")
    [h] = n.history(third)
    assert (h["channel"], h["outcome"]) == ("hook", "dropped")
    assert n.notifications_dropped == 1


def test_state_channels_keep_the_newest_state_per_alert(tmp_path: Path) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    cfg = NotifiersConfig.model_validate(
        {"channels": {**config().model_dump(by_alias=True)["channels"], "state": {"kind": "mqtt"}},
         "routes": {"gsp": {"channels": ["sms", "state"], "sites": ["wh1"]}}}
    )  # fmt: skip
    broker = MqttBrokerConfig()
    link = MqttLink(broker.url, "gw", lambda cid: client_for(broker, client_id=cid))
    n = fridges.notifier(cfg, link, gateway="gw", env=ENV)
    fridges.temps("fridge-1", 0, [5.0, 9.0, 5.0])  # raised, then cleared
    fridges.clock.set(T0 + 5 * MIN)
    fridges.engine.ack(fridges.alert_id("vaccine_2_8.high", "fridge-1"), "olga")
    outbox = Outbox(fridges.engine.store)
    [row] = [outbox.get(i) for i in outbox.ids("state")]
    assert row is not None and row.event.kind is EventKind.ACKED  # only the newest waits
    assert n.stats["state"]["superseded"] == 2 and n.stats["state"]["queued"] == 1
    state_history = [h["outcome"] for h in n.history(row.alert_id) if h["channel"] == "state"]
    assert state_history == ["superseded", "superseded"]
    assert n.stats["sms"]["queued"] == 6  # people: raised and cleared (not acked) x 3 numbers


def test_events_survive_the_outbox_as_they_were(tmp_path: Path) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    [raised] = fridges.temps("fridge-1", 0, [5.0, 9.0])
    assert event_from_json(event_to_json(raised)) == raised


# -- what SMS and chat messages say -----------------------------------------------------------


def test_times_in_messages_state_their_zone() -> None:
    ns = 1_763_798_400 * 10**9  # 2025-11-22T08:00:00Z
    assert fmt_time(ns, "Asia/Shanghai") == "2025-11-22 16:00:00 UTC+08:00"
    assert fmt_time(ns, "UTC", seconds=False) == "2025-11-22 08:00 UTC"


@given(st.integers(1, 60), st.text(min_size=0, max_size=300))
def test_sms_parameters_are_strings_within_the_limit(limit: int, message: str) -> None:
    a = Alert(
        id=7, rule="vaccine_2_8.high", source="wh1/fridge-1/lg-1", severity=Priority.HIGH,
        kind="threshold", state=AlertState.UNACKNOWLEDGED, active=True, started_at=T0,
        raised_at=T0, activated_at=T0, detected_at=T0, message=message, value=9.25,
        tags={"site": "wh1", "asset": "fridge-1", "device": "lg-1"},
    )  # fmt: skip
    event = AlertEvent(EventKind.RAISED, a, None, a.state, T0, T0)
    params = sms_params(event, "gw", lang="en", tz="Asia/Shanghai", max_chars=limit)
    assert all(isinstance(v, str) and len(v) <= limit for v in params.values())
    assert set(params) == set(SMS_PARAMS)
    if limit >= 35:
        assert params["value"] == "9.25" and params["time"] == "2025-11-22 16:00 UTC+08:00"


def test_chat_message_carries_facts_times_and_mentions(tmp_path: Path) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    [raised] = fridges.temps("fridge-1", 0, [5.0, 9.4])
    title, text = chat_message(raised, "gw", mentions=["13800000001"], tz="Asia/Shanghai")
    assert title == "[high · alarm] fridge-1/lg-fridge-1 at wh1"
    assert text.startswith("### **high · alarm**\n")
    assert "- Raised at: 2025-11-22 16:01:00 UTC+08:00" in text and text.endswith("@13800000001")
    assert f"- Alert id: #{raised.alert.id} · gw" in text
    _, plain = chat_message(raised, "gw", markdown=False, tz="UTC")
    assert plain.startswith("[high · alarm]\nWhere: fridge-1/lg-fridge-1 at wh1")
    # in Chinese, the gateway's default language
    title, text = chat_message(raised, "gw", lang="zh-CN", tz="Asia/Shanghai")
    assert title.startswith("[高 · 报警] ") and "- 报警时间: 2025-11-22 16:01:00 UTC+08:00" in text
    zh = sms_params(raised, "gw", lang="zh-CN", tz="Asia/Shanghai")
    assert (zh["severity"], zh["event"], zh["time"]) == ("高", "报警", "2025-11-22 16:01 UTC+08:00")
