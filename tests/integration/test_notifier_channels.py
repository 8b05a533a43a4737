"""Every channel kind end to end against a local stand-in that checks the vendor's signature and
body (tests/standins.py): Alibaba Cloud SMS, Tencent Cloud SMS, DingTalk, WeCom; retries keep
the idempotency key, refusals are recorded with the vendor's answer in the alert's history and
the audit trail, a channel that keeps failing raises its own alarm through another channel, and
the siren coil on a pymodbus server follows the alert."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer

from gateway.api import create_app
from gateway.core.reading import Reading
from gateway.notifiers import Notifier, NotifiersConfig
from gateway.notifiers.outbox import Outbox
from gateway.records.audit import AuditTrail
from gateway.records.users import Role
from simulators.plc.spec import FaultSpec
from tests import notify_rig, standins
from tests.api_rig import AUTOCLAVE_CYCLE_S, autoclave, coldchain, make_rig
from tests.integration import modbus_fixtures as mf
from tests.notify_rig import FAST, MIN, T0, Fridges, S, until

pytestmark = pytest.mark.integration

register_server = mf.register_server
running = notify_rig.running

PHONES = ["+8613800000001", "13800000002", "+86 138 0000 0003"]
ENV = {
    "ALI_ID": standins.ALIYUN_KEY_ID,
    "ALI_SECRET": standins.ALIYUN_SECRET,
    "TC_ID": standins.TENCENT_ID,
    "TC_KEY": standins.TENCENT_KEY,
    "DING_TOKEN": standins.DINGTALK_TOKEN,
    "DING_SECRET": standins.DINGTALK_SECRET,
    "WECOM_KEY": standins.WECOM_KEY,
    "HOOK_SECRET": standins.WEBHOOK_SECRET,
}
Start = Callable[[Notifier], Awaitable[Notifier]]


@pytest.fixture
async def stand() -> AsyncIterator[dict[str, standins.StandIn]]:
    s: dict[str, standins.StandIn] = {
        "aliyun": standins.AliyunSms(),
        "tencent": standins.TencentSms(),
        "dingtalk": standins.DingTalk(),
        "wecom": standins.WeCom(),
        "hook": standins.Webhook(),
    }
    for x in s.values():
        await x.start()
    yield s
    for x in s.values():
        await x.stop()


def channel(kind: str, s: dict[str, standins.StandIn], **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {**FAST, **kw}
    if kind == "aliyun_sms":
        return {"kind": kind, "endpoint": s["aliyun"].url.rstrip("/"),
                "access_key_id_env": "ALI_ID", "access_key_secret_env": "ALI_SECRET",
                "sign_name": "某某医药", "template_code": "SMS_465870123", "phone_numbers": PHONES,
                "template_params": {"level": "severity", "where": "where", "time": "time",
                                    "value": "value"}, **base}  # fmt: skip
    if kind == "tencent_sms":
        return {"kind": kind, "endpoint": s["tencent"].url.rstrip("/"), "secret_id_env": "TC_ID",
                "secret_key_env": "TC_KEY", "sms_sdk_app_id": "1400006666",
                "sign_name": "某某医药", "template_id": "1110", "phone_numbers": PHONES,
                "template_params": ["severity", "where", "time"], **base}  # fmt: skip
    if kind == "dingtalk":
        return {"kind": kind, "url": s["dingtalk"].url, "access_token_env": "DING_TOKEN",
                "secret_env": "DING_SECRET", "at_mobiles": ["13800000001", "13800000002",
                                                            "13800000003"], **base}  # fmt: skip
    if kind == "wecom":
        return {"kind": kind, "url": s["wecom"].url, "key_env": "WECOM_KEY",
                "mentioned_mobiles": ["13800000001", "13800000002", "13800000003"],
                **base}  # fmt: skip
    assert kind == "webhook"
    return {"kind": kind, "url": s["hook"].url, "secret_env": "HOOK_SECRET",
            "recipients": ["ops-a", "ops-b", "ops-c"], **base}  # fmt: skip


def notifier(
    fridges: Fridges, channels: dict[str, Any], routes: dict[str, Any], **kw: Any
) -> Notifier:
    config = NotifiersConfig.model_validate({"channels": channels, "routes": routes})
    return fridges.notifier(config, gateway="gw-test", env=ENV, timezone="Asia/Shanghai", **kw)


async def test_aliyun_sms_one_signed_request_per_number(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    audit = AuditTrail(tmp_path / "audit.sqlite")
    n = await running(
        notifier(
            fridges,
            {"sms": channel("aliyun_sms", stand)},
            {"gsp": {"channels": ["sms"], "sites": ["wh1"]}},
            audit=audit,
        )
    )
    [raised] = fridges.temps("fridge-3", 0, [5.0, 9.4])
    await until(lambda: n.stats["sms"]["sent"] == 3, what="three SMS")
    ali = stand["aliyun"]
    assert [s.problem for s in ali.requests] == ["", "", ""]  # signature and body as documented
    docs = [s.doc for s in ali.accepted]
    # as the vendor wants them: digits, and a leading + where written
    assert sorted(d["PhoneNumbers"] for d in docs) == [
        "+8613800000001",
        "+8613800000003",
        "13800000002",
    ]
    for d in docs:
        assert d["SignName"] == "某某医药" and d["TemplateCode"] == "SMS_465870123"
        assert d["TemplateParam"] == {
            "level": "high",
            "where": "fridge-3/lg-fridge-3 at wh1",
            "time": "2025-11-22 16:01 UTC+08:00",  # raised 08:01Z, shown in Beijing time
            "value": "9.4",
        }
    keys = {s.key for s in ali.accepted}
    assert len(keys) == 3  # one idempotency key (OutId) per number
    history = Outbox(fridges.engine.store).history(raised.alert.id)
    assert {h["key"] for h in history} == keys
    assert [h["outcome"] for h in history] == ["sent"] * 3
    assert all(h["detail"].startswith("OK BizId=") for h in history)
    await until(lambda: len(audit.rows(action="notification.sent")) == 3, what="audit rows")
    row = audit.rows(action="notification.sent")[0]
    assert row.entity == "alert" and row.entity_id == str(raised.alert.id)
    assert row.new_value["channel"] == "sms" and row.new_value["key"] in keys
    assert row.new_value["answer"].startswith("OK BizId=")
    audit.close()


async def test_tencent_sms_signed_body_with_session_context(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(
        notifier(
            fridges,
            {"sms": channel("tencent_sms", stand, phone_numbers=PHONES[:1])},
            {"gsp": {"channels": ["sms"], "sites": ["wh1"], "recipients": {"sms": PHONES}}},
        )
    )  # the route's numbers replace the channel's
    [raised] = fridges.temps("fridge-1", 0, [5.0, 1.0])
    await until(lambda: n.stats["sms"]["sent"] == 3, what="three SMS")
    tc = stand["tencent"]
    assert [s.problem for s in tc.requests] == ["", "", ""]
    assert sorted(s.doc["PhoneNumberSet"][0] for s in tc.accepted) == [
        "+8613800000001", "+8613800000002", "+8613800000003"
    ]  # fmt: skip
    doc = tc.accepted[0].doc
    assert doc["TemplateParamSet"] == [
        "high",
        "fridge-1/lg-fridge-1 at wh1",
        "2025-11-22 16:01 UTC+08:00",
    ]
    assert doc["SmsSdkAppId"] == "1400006666" and doc["TemplateId"] == "1110"
    history = Outbox(fridges.engine.store).history(raised.alert.id)
    assert {h["key"] for h in history} == {s.key for s in tc.accepted}
    assert all(h["detail"].startswith("Ok SerialNo=") for h in history)


async def test_dingtalk_markdown_mentions_the_people_on_duty(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(
        notifier(
            fridges,
            {"ding": channel("dingtalk", stand)},
            {"gsp": {"channels": ["ding"], "sites": ["wh1"]}},
        )
    )
    [raised] = fridges.temps("fridge-2", 0, [5.0, 9.1])
    await until(lambda: n.stats["ding"]["sent"] == 1, what="the DingTalk message")
    [seen] = stand["dingtalk"].accepted
    doc = seen.doc
    assert doc["msgtype"] == "markdown" and doc["at"]["isAtAll"] is False
    assert doc["at"]["atMobiles"] == ["13800000001", "13800000002", "13800000003"]
    text = doc["markdown"]["text"]
    assert "@13800000001 @13800000002 @13800000003" in text
    assert "vaccine_2_8.high" in text and "2025-11-22 16:01:00 UTC+08:00" in text
    assert doc["markdown"]["title"].startswith("[high · alarm] fridge-2/lg-fridge-2 at wh1")
    [h] = Outbox(fridges.engine.store).history(raised.alert.id)
    assert seen.key == h["key"] and h["detail"] == "errcode 0 ok"


async def test_wecom_markdown_then_a_text_mention(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(
        notifier(
            fridges,
            {"wx": channel("wecom", stand)},
            {"gsp": {"channels": ["wx"], "sites": ["wh1"]}},
            language="zh-CN",  # the gateway's default language
        )
    )
    fridges.temps("fridge-2", 0, [5.0, 9.1])
    await until(lambda: n.stats["wx"]["sent"] == 1, what="the WeCom messages")
    wx = stand["wecom"]
    assert [s.problem for s in wx.requests] == ["", ""]
    md, mention = (s.doc for s in wx.accepted)
    assert md["msgtype"] == "markdown" and '<font color="warning">' in md["markdown"]["content"]
    assert mention["msgtype"] == "text"
    assert mention["text"]["mentioned_mobile_list"] == ["13800000001", "13800000002", "13800000003"]
    content = md["markdown"]["content"]
    assert '<font color="warning">高 · 报警</font>' in content
    assert "- 报警时间: 2025-11-22 16:01:00 UTC+08:00" in content
    assert mention["text"]["content"].startswith(
        "[高] vaccine_2_8.high wh1 的 fridge-2/lg-fridge-2"
    )


async def test_busy_vendor_is_retried_with_the_same_key_a_refusal_is_recorded(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    audit = AuditTrail(tmp_path / "audit.sqlite")
    ding = stand["dingtalk"]
    ding.mode = "busy"  # 130101: more than 20 messages a minute
    n = await running(
        notifier(
            fridges,
            {"ding": channel("dingtalk", stand, retry_min_s=0.05)},
            {"gsp": {"channels": ["ding"], "sites": ["wh1"]}},
            audit=audit,
        )
    )
    # DingTalk asks for a minute's pause after 130101; keep the test short
    n.channels["ding"].config = n.channels["ding"].config.model_copy(update={"retry_max_s": 0.1})
    [first] = fridges.temps("fridge-1", 0, [5.0, 9.2])
    await until(lambda: len(ding.requests) >= 2, what="a retry")
    ding.mode = "ok"
    await until(lambda: n.stats["ding"]["sent"] == 1, what="the message once the robot takes it")
    assert len({s.key for s in ding.requests}) == 1  # every attempt: the same msgUuid
    outcomes = [h["outcome"] for h in Outbox(fridges.engine.store).history(first.alert.id)]
    assert outcomes[-1] == "sent" and set(outcomes[:-1]) == {"retry"}
    assert "130101" in Outbox(fridges.engine.store).history(first.alert.id)[0]["detail"]

    ding.mode = "refuse"  # e.g. 310000: keyword or IP not allowed
    [second] = fridges.temps("fridge-2", 0, [5.0, 9.3])
    await until(lambda: n.stats["ding"]["failed"] == 1, what="the refusal")
    [h] = Outbox(fridges.engine.store).history(second.alert.id)
    assert h["outcome"] == "failed" and "310000" in h["detail"]
    assert Outbox(fridges.engine.store).count("ding") == 0  # not retried
    await until(lambda: audit.rows(action="notification.failed"), what="the audit row")
    [row] = audit.rows(action="notification.failed")
    assert row.entity_id == str(second.alert.id) and "310000" in row.new_value["answer"]
    audit.close()


async def test_the_retry_budget_gives_up_and_says_so(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    stand["tencent"].mode = "busy"
    n = await running(
        notifier(
            fridges,
            {"sms": channel("tencent_sms", stand, give_up_after_s=0.3, retry_max_s=0.1)},
            {"gsp": {"channels": ["sms"], "sites": ["wh1"]}},
        )
    )
    [raised] = fridges.temps("fridge-1", 0, [5.0, 9.2])
    await until(lambda: n.stats["sms"]["gave_up"] == 3, what="giving up on three numbers")
    history = Outbox(fridges.engine.store).history(raised.alert.id)
    gave_up = [h for h in history if h["outcome"] == "gave_up"]
    assert len(gave_up) == 3 and all("RequestLimitExceeded" in h["detail"] for h in gave_up)
    assert Outbox(fridges.engine.store).count("sms") == 0


async def test_a_channel_that_keeps_failing_raises_its_own_alarm_elsewhere(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    health: list[Reading] = []

    async def sink(rs: list[Reading]) -> None:
        health.extend(rs)

    stand["dingtalk"].mode = "refuse"
    n = await running(
        notifier(
            fridges,
            {"ding": channel("dingtalk", stand, alarm_after_failures=2),
             "hook": channel("webhook", stand)},
            {"gsp": {"channels": ["ding", "hook"], "sites": ["wh1"]},
             "ops": {"channels": ["ding", "hook"], "rules": ["gateway_health.*"]}},
            health=sink,
        )
    )  # fmt: skip
    fridges.temps("fridge-1", 0, [5.0, 9.2])
    fridges.temps("fridge-2", 0, [5.0, 9.3])
    await until(lambda: n.stats["ding"]["failing"] == 1, what="the channel declared failing")
    failing = [r for r in health if r.fields["notifier_failing"] == 1.0]
    [r] = failing
    assert r.measurement == "vigil_gateway" and r.tags["device"] == "notifier:ding"
    assert r.fields["notifier_failures"] == 2.0
    fridges.clock.set(r.ts_ns)
    [alarm] = fridges.engine.process([r])  # what the journal writer hands the rules
    assert alarm.alert.rule == "gateway_health.notifier_failing"
    assert alarm.alert.source == "notifier:ding" and alarm.alert.severity == "high"
    hook = stand["hook"]
    await until(
        lambda: any(s.doc.get("rule") == "gateway_health.notifier_failing" for s in hook.accepted),
        what="the alarm through the webhook",
    )
    await asyncio.sleep(0.3)
    ding_docs = [s for s in stand["dingtalk"].requests if s.doc.get("msgtype")]
    assert all("notifier_failing" not in str(s.doc) for s in ding_docs)  # never via itself
    # the robot accepts again: the next message succeeds and the alarm clears
    stand["dingtalk"].mode = "ok"
    fridges.temps("fridge-3", 0, [5.0, 9.4])
    await until(lambda: health[-1].fields["notifier_failing"] == 0.0, what="the channel recovered")
    fridges.clock.set(health[-1].ts_ns)
    [cleared] = fridges.engine.process([health[-1]])
    assert cleared.kind == "cleared" and cleared.alert.id == alarm.alert.id


# -- the siren --------------------------------------------------------------------------------


async def coil(port: int, address: int) -> bool:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        rr = await client.read_coils(address, count=1, device_id=1)
        return bool(rr.bits[0])
    finally:
        client.close()


async def test_siren_coil_follows_the_alert_until_acknowledged_and_normal(
    tmp_path: Path,
    stand: dict[str, standins.StandIn],
    register_server: ModbusTcpServer,
    running: Start,
) -> None:
    port = mf.server_port(register_server)
    fridges = Fridges(tmp_path / "alerts.db")
    channels = {
        "siren": {"kind": "modbus_output", "dedicated": True, "host": "127.0.0.1", "port": port,
                  "unit": 1, "coil": 3, "refresh_s": 0.5, **FAST},
        "hook": channel("webhook", stand),
    }  # fmt: skip
    routes = {"gsp": {"channels": ["siren", "hook"], "sites": ["wh1"]}}
    n = await running(notifier(fridges, channels, routes))
    await until(lambda: n.stats["siren"]["sent"] >= 1, what="the output written at start")
    assert await coil(port, 3) is False

    [raised] = fridges.temps("fridge-1", 0, [5.0, 9.2])
    await until(lambda: coil(port, 3), what="the siren on with the alarm")
    fridges.clock.set(T0 + 90 * S)
    fridges.engine.ack(raised.alert.id, "olga")  # acknowledged, still above 8 °C
    await asyncio.sleep(0.8)  # a refresh later it is still on
    assert await coil(port, 3) is True
    # back to normal after acknowledgement (a minute on: no record gap): the alert ends
    fridges.temps("fridge-1", 2, [5.0])
    await until(lambda: _not(coil(port, 3)), what="the siren off")

    # back to normal first, acknowledged later: on until the acknowledgement
    [again] = fridges.temps("fridge-2", 10, [9.5])
    await until(lambda: coil(port, 3), what="on again")
    fridges.temps("fridge-2", 11, [5.0])
    await asyncio.sleep(0.8)
    assert await coil(port, 3) is True  # returned to normal, not acknowledged yet
    fridges.clock.set(T0 + 15 * MIN)
    fridges.engine.ack(again.alert.id, "olga")
    await until(lambda: _not(coil(port, 3)), what="off after the acknowledgement")
    assert n.stats["siren"]["failing"] == 0


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


# -- the API: delivery results in the alert's history, per-cycle alarms ------------------------


async def test_alert_detail_lists_delivery_results_and_its_cycle(
    tmp_path: Path, stand: dict[str, standins.StandIn], running: Start
) -> None:
    rig = make_rig(tmp_path)
    try:
        config = NotifiersConfig.model_validate(
            {"channels": {"hook": channel("webhook", stand)},
             "routes": {"all": {"channels": ["hook"]}}}
        )  # fmt: skip
        assert rig.ctx.engine is not None
        n = Notifier(config, rig.ctx.engine.store, gateway="test-gw", env=ENV)
        n.attach(rig.ctx.engine.alerts)
        rig.ctx.notification_history = n.history
        hook = stand["hook"]
        hook.mode = "busy"
        await running(n)
        now = time.time_ns()
        rig.feed([coldchain(5.0, now - 60 * S), coldchain(12.0, now)])
        await until(lambda: len(hook.requests) >= 1, what="a first attempt")
        hook.mode = "ok"
        await until(lambda: n.stats["hook"]["sent"] >= 1, what="delivery")
        transport = httpx.ASGITransport(app=create_app(rig.ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            h = rig.headers(Role.VIEWER)
            [a] = (await http.get("/api/v1/alerts", headers=h)).json()
            detail = (await http.get(f"/api/v1/alerts/{a['id']}", headers=h)).json()
            notes = detail["notifications"]
            assert [x["outcome"] for x in notes] == ["retry", "sent"]
            assert notes[0]["detail"].endswith("HTTP 503 try later")
            assert notes[1]["detail"] == "HTTP 200 ok" and notes[1]["attempts"] == 2
            assert {x["key"] for x in notes} == {s.key for s in hook.requests}
            assert notes[1]["transition"] == rig.ctx.engine.store.history(a["id"])[0]["id"]
            assert notes[1]["channel"] == "hook" and notes[1]["event"] == "raised"
            assert a["cycle_id"] is None

            # per-cycle alarms: each failed load links to its own alert and back
            t0 = now - 3 * 3600 * S
            short = FaultSpec(kind="short_hold", hold_s=300)
            rig.feed(autoclave(t0, 2 * AUTOCLAVE_CYCLE_S + 200, faults=[short]))
            f0 = (await http.get("/api/v1/alerts", params={"rule": "steam_steriliser.f0"},
                                 headers=h)).json()  # fmt: skip
            cycles = (await http.get("/api/v1/cycles", headers=h)).json()
            failed = {c["id"]: c for c in cycles if c["verdict"] == "fail"}
            assert len(f0) == len(failed) >= 2
            for alert in f0:
                assert failed[alert["cycle_id"]]["alert_ids"] == [alert["id"]]
            await n.close(timeout=1)
    finally:
        rig.close()
