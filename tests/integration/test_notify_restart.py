"""The durable outbox across a crash: the real gateway (`vigil run`) raises an alarm from an MQTT
reading, the webhook, SMS and DingTalk stand-ins answer "busy" so nothing is delivered, the
gateway is killed with SIGKILL, the receivers recover, the gateway restarts: each receiver gets
the notification, with the idempotency key it saw before the crash. A config reload hands the
notifiers over without losing a transition."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from gateway.app import Gateway
from gateway.config import load_config
from gateway.core.reading import Reading
from tests import standins
from tests.gateway_proc import GatewayProcess, Publisher
from tests.services import Mosquitto, apoll, poll

pytestmark = pytest.mark.integration

PHONES = ["13800000001", "13800000002", "13800000003"]
RETRY = {"retry_min_s": 0.2, "retry_max_s": 0.5, "timeout_s": 2}


def notifiers(hook: str, ali: str, ding: str) -> dict[str, Any]:
    return {
        "channels": {
            "hook": {"kind": "webhook", "url": hook, "secret_env": "HOOK_SECRET",
                     "recipients": ["duty-desk"], **RETRY},
            "sms": {"kind": "aliyun_sms", "endpoint": ali, "access_key_id_env": "ALI_ID",
                    "access_key_secret_env": "ALI_SECRET", "sign_name": "某某医药",
                    "template_code": "SMS_465870123", "phone_numbers": PHONES, **RETRY},
            "ding": {"kind": "dingtalk", "url": ding, "access_token_env": "DING_TOKEN",
                     "secret_env": "DING_SECRET", "at_mobiles": PHONES, **RETRY},
        },
        "routes": {"gsp": {"channels": ["hook", "sms", "ding"], "sites": ["wh1"]}},
    }  # fmt: skip


def db_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the table is not there yet
        return []
    finally:
        db.close()


def test_notifications_survive_sigkill_before_delivery(
    mosquitto: Mosquitto, make_gateway: Callable[..., GatewayProcess]
) -> None:
    hook, ali, ding = standins.Webhook(), standins.AliyunSms(), standins.DingTalk()
    for s in (hook, ali, ding):
        s.mode = "busy"  # a 503 / ServiceUnavailable / 130101: retried, never delivered
    with standins.InThread(hook, ali, ding):
        gw = make_gateway(
            mosquitto.url,
            None,
            rules={"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]},
            notifiers=notifiers(hook.url, ali.url.rstrip("/"), ding.url),
        )
        gw.env_extra = {
            "HOOK_SECRET": standins.WEBHOOK_SECRET,
            "ALI_ID": standins.ALIYUN_KEY_ID,
            "ALI_SECRET": standins.ALIYUN_SECRET,
            "DING_TOKEN": standins.DINGTALK_TOKEN,
            "DING_SECRET": standins.DINGTALK_SECRET,
        }
        gw.start()
        alerts_db = gw.data / "alerts.sqlite"
        pub = Publisher(mosquitto.port, client_id="fridge-publisher")
        now = int(time.time() * 1000)
        topic = "vigil/wh1/fridge-1/lg-1/telemetry"
        pub.publish_all(
            [(topic, orjson.dumps({"ts": now - 60_000, "temp_c": 5.0})),
             (topic, orjson.dumps({"ts": now, "temp_c": 9.6}))]
        )  # fmt: skip
        pub.close()

        def attempted() -> bool:
            return (
                len(hook.requests) >= 1
                and len({s.key for s in ali.requests}) == 3
                and (len(ding.requests) >= 1)
            )

        poll(attempted, 30, what="a refused attempt at every receiver")
        assert not hook.accepted and not ali.accepted and not ding.accepted
        waiting = db_rows(alerts_db, "SELECT channel, key FROM outbox")
        assert sorted(c for c, _ in waiting) == ["ding", "hook", "sms", "sms", "sms"]
        keys = {c: {k for cc, k in waiting if cc == c} for c in ("hook", "sms", "ding")}
        assert {s.key for s in hook.requests} == keys["hook"]
        assert {s.key for s in ali.requests} == keys["sms"]
        assert {s.key for s in ding.requests} == keys["ding"]

        gw.kill9()  # before any delivery: only the outbox knows what is owed
        for s in (hook, ali, ding):
            s.mode = "ok"
        gw.start()

        def delivered() -> bool:
            return len(hook.accepted) >= 1 and len(ali.accepted) >= 3 and len(ding.accepted) >= 1

        poll(delivered, 30, what="every receiver served after the restart")
        assert {s.key for s in hook.accepted} == keys["hook"]  # the same idempotency keys
        assert {s.key for s in ali.accepted} == keys["sms"]
        assert {s.key for s in ding.accepted} == keys["ding"]
        assert sorted(s.doc["PhoneNumbers"] for s in ali.accepted) == PHONES
        [doc] = [s.doc for s in hook.accepted]
        assert doc["rule"] == "vaccine_2_8.high" and doc["value"] == 9.6
        poll(lambda: not db_rows(alerts_db, "SELECT 1 FROM outbox"), 15, what="an empty outbox")
        sent = db_rows(alerts_db, "SELECT channel, key FROM notification_log WHERE outcome='sent'")
        assert sorted(sent) == sorted((c, k) for c, ks in keys.items() for k in ks)
        poll(
            lambda: len(db_rows(gw.data / "audit.sqlite",
                                "SELECT 1 FROM audit WHERE action = 'notification.sent'")) == 5,
            15, what="five audited deliveries",
        )  # fmt: skip
        audit = db_rows(
            gw.data / "audit.sqlite",
            "SELECT entity_id, new_value FROM audit WHERE action = 'notification.sent'",
        )
        assert {json.loads(v)["key"] for _, v in audit} == set().union(*keys.values())
        assert gw.stop() == 0


async def test_a_reload_hands_the_notifiers_over_without_losing_a_transition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload that changes the notifiers: the old notifier drains (its receiver is busy), and a
    transition during that drain is stored by the new one and delivered. A channel whose secret
    is missing from the environment refuses the reload: the running notifier stays."""
    monkeypatch.setenv("HOOK_SECRET", standins.WEBHOOK_SECRET)
    hook = standins.Webhook()
    await hook.start()
    path = tmp_path / "vigil.yaml"

    def write(secret_env: str = "HOOK_SECRET", **retry: float) -> None:
        channel = {
            "kind": "webhook",
            "url": hook.url,
            "secret_env": secret_env,
            "recipients": ["duty-a", "duty-b", "duty-c"],
            **RETRY,
            **retry,
        }
        doc = {
            "gateway": {"name": "gw-reload", "data_dir": str(tmp_path / "data"),
                        "clock": {"sync_check_s": 0}},
            "api": {"enabled": False},
            "rules": {"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]},
            "notifiers": {"channels": {"hook": channel},
                          "routes": {"gsp": {"channels": ["hook"], "sites": ["wh1"]}}},
        }  # fmt: skip
        path.write_text(yaml.safe_dump(doc))

    def reading(temp: float, ts_ns: int) -> Reading:
        tags = {"site": "wh1", "asset": "fridge-1", "device": "lg-1"}
        return Reading("coldchain", tags, {"temp_c": temp}, ts_ns, ts_ns)

    write()
    gw = Gateway(load_config(path))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop, config_path=path))
    try:
        assert gw.alerting is not None and gw.notifier is not None
        engine, old = gw.alerting.engine, gw.notifier
        t = time.time_ns() - 120 * 10**9
        hook.mode = "busy"
        await gw.writer.submit([reading(5.0, t), reading(9.6, t + 60 * 10**9)])
        await apoll(lambda: hook.requests, 15, what="a refused first attempt")

        write(secret_env="NOT_SET")
        refused = await gw.reload("tester", "test")
        assert not refused.ok and "NOT_SET" in refused.problems[0]
        assert gw.notifier is old and engine.alerts.listeners.count(old.enqueue) == 1

        write(retry_max_s=0.4)
        reload = asyncio.create_task(gw.reload("tester", "test"))
        await apoll(lambda: old._closed, 5, what="the old notifier draining")
        seen = engine.stats["readings"]
        # below 2 °C: the first alarm clears and a second one is raised
        await gw.writer.submit([reading(1.0, t + 90 * 10**9)])
        await apoll(lambda: engine.stats["readings"] > seen, 5, what="the 1 °C reading")
        assert not reload.done()  # it happened while the old notifier was still draining
        outcome = await reload
        assert outcome.ok and outcome.changed == ["notifiers"] and gw.notifier is not old
        hook.mode = "ok"
        want = {("vaccine_2_8.high", "raised"), ("vaccine_2_8.high", "cleared"),
                ("vaccine_2_8.low", "raised")}  # fmt: skip
        await apoll(
            lambda: {(s.doc["rule"], s.doc["event"]) for s in hook.accepted} == want,
            15,
            what="the first alarm, and the clear and the alarm stored during the drain",
            show=lambda: [(s.doc["rule"], s.doc["event"]) for s in hook.accepted],
        )
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task
        await hook.stop()
