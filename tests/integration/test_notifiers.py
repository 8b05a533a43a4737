"""Notifiers against real servers: mail to aiosmtpd, a signed webhook to a local aiohttp server,
retained alert state on Mosquitto. Alert events come from the real rules engine on a manual
clock, with the notifier attached to it (every transition stores its notifications in the
outbox). Servers start late or answer 500 on purpose: the engine must never wait for them, the
outbox stays bounded, and delivery happens once the server is there."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from alert_rules import AlertEvent, EventKind
from collectors.mqtt import MqttBrokerConfig, client_for
from gateway.notifiers import MqttLink, Notifier, NotifiersConfig
from gateway.notifiers.outbox import Outbox, delivery_key
from tests import notify_rig
from tests.notify_rig import FAST, MIN, T0, Fridges, until
from tests.services import Mosquitto, free_port

pytestmark = pytest.mark.integration

THREE = ["qa@wh1.example", "pharmacist@wh1.example", "manager@wh1.example"]
SECRET = "s3cret-webhook-key"
running = notify_rig.running


# -- email -----------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


async def test_email_reaches_a_real_smtp_server_after_it_comes_up(
    tmp_path: Path, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    port = free_port()
    config = NotifiersConfig.model_validate(
        {
            "channels": {
                "mail": {"kind": "email", "host": "127.0.0.1", "port": port, "tls": "none",
                         "from": "Vigil <vigil@wh1.example>", **FAST},
            },
            "routes": {"gsp": {"channels": ["mail"], "sites": ["wh*"], "recipients": THREE}},
        }
    )  # fmt: skip
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(fridges.notifier(config, gateway="gw-test"))
    events = fridges.temps("fridge-3", 0, [5.0, 5.0, 9.4])
    [raised] = [e for e in events if e.kind is EventKind.RAISED]
    await until(lambda: n.stats["mail"]["retried"] >= 1, what="a failed attempt (server down)")

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        await until(lambda: n.stats["mail"]["sent"] == 1, what="the mail sent")
    finally:
        await asyncio.to_thread(controller.stop)
    [env] = mailbox.envelopes
    assert env.mail_from == "vigil@wh1.example"
    assert sorted(env.rcpt_tos) == sorted(THREE)
    msg = email.message_from_bytes(env.content, policy=email.policy.default)
    subject = str(msg["Subject"])
    assert subject.startswith("[HIGH] vaccine_2_8.high fridge-3/lg-fridge-3 at wh1: temp_c > 8 °C")
    assert "(value 9.4 °C)" in subject
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith(subject + "\n\n")
    facts = dict(
        (k, v.strip()) for k, v in (line.split(":", 1) for line in body.splitlines()[2:] if line)
    )
    assert facts["Alert id"] == str(raised.alert.id) and facts["Event"] == "raised"
    assert facts["Raised at (UTC)"] == "2025-11-22T08:02:00.000Z"
    assert facts["Value"] == "9.4" and facts["Gateway"] == "gw-test"
    assert facts["Source"] == "wh1/fridge-3/lg-fridge-3" and facts["Asset"] == "fridge-3"
    assert facts["Retrospective"] == "no" and facts["State"] == "unacknowledged"
    assert msg["X-Vigil-Alert-Id"] == str(raised.alert.id)
    assert n.stats["mail"]["failed"] == 0


# -- webhook ---------------------------------------------------------------------------------


class Receiver:
    """A local HTTP endpoint that answers `fail_first` requests with 500, then 200."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Vigil-Signature", ""), expected):
            return web.Response(status=401, text="bad signature")
        if len(self.requests) <= self.fail_first:
            return web.Response(status=500, text="try later")
        self.accepted.append(json.loads(body))
        return web.Response(status=200)

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def webhook_config(port: int, **channel: Any) -> NotifiersConfig:
    return NotifiersConfig.model_validate(
        {
            "channels": {
                "sms": {"kind": "webhook", "url": f"http://127.0.0.1:{port}/hook",
                        "secret_env": "VIGIL_WEBHOOK_SECRET",
                        "recipients": ["+8613800000001", "+8613800000002", "+8613800000003"],
                        **FAST, **channel},
            },
            "routes": {"gsp": {"channels": ["sms"], "sites": ["wh1"]}},
        }
    )  # fmt: skip


async def test_webhook_is_signed_retried_and_delivered_once(
    tmp_path: Path, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    port = free_port()
    receiver = Receiver(fail_first=2)
    await receiver.start(port)
    try:
        fridges = Fridges(tmp_path / "alerts.db")
        env = {"VIGIL_WEBHOOK_SECRET": SECRET}
        n = await running(fridges.notifier(webhook_config(port), gateway="gw-test", env=env))
        events = fridges.temps("fridge-1", 0, [5.0, -1.0])  # < 2 °C: vaccine_2_8.low
        assert [e.kind for e in events] == [EventKind.RAISED]
        await until(lambda: n.stats["sms"]["sent"] == 1, what="delivery")
        assert await n.close(timeout=2)  # nothing left: no further attempt will follow
    finally:
        await receiver.stop()
    assert n.stats["sms"] == {
        "sent": 1, "failed": 0, "gave_up": 0, "retried": 2, "dropped": 0, "superseded": 0,
        "failing": 0, "queued": 0,
    }  # fmt: skip
    assert len(receiver.requests) == 3
    [doc] = receiver.accepted
    ids = {h["X-Vigil-Delivery"] for h, _ in receiver.requests}
    assert ids == {doc["delivery_id"]}  # the same delivery, three attempts
    [transition] = [h["id"] for h in fridges.engine.store.history(doc["alert_id"])]
    phones = ("+8613800000001", "+8613800000002", "+8613800000003")
    assert doc["delivery_id"] == delivery_key("gw-test", doc["alert_id"], transition, "sms", phones)
    # the history: two failed attempts with the receiver's answer, then sent; nothing waits
    history = Outbox(fridges.engine.store).history(doc["alert_id"])
    assert [(h["outcome"], h["attempts"]) for h in history] == [
        ("retry", 1),
        ("retry", 2),
        ("sent", 3),
    ]
    assert "HTTP 500 try later" in history[0]["detail"] and history[2]["detail"] == "HTTP 200"
    assert {h["key"] for h in history} == {doc["delivery_id"]}
    assert Outbox(fridges.engine.store).count("sms") == 0
    assert len({b for _, b in receiver.requests}) == 1  # the same signed bytes each time
    headers = receiver.requests[-1][0]
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Vigil-Event"] == "raised"
    assert doc["rule"] == "vaccine_2_8.low" and doc["severity"] == "high"
    assert doc["state"] == "unacknowledged" and doc["event"] == "raised"
    assert doc["source"] == "wh1/fridge-1/lg-fridge-1" and doc["site"] == "wh1"
    assert doc["asset"] == "fridge-1" and doc["device"] == "lg-fridge-1"
    assert doc["value"] == -1.0 and doc["retrospective"] is False
    assert doc["raised_at"] == "2025-11-22T08:01:00.000Z"
    assert doc["recipients"] == ["+8613800000001", "+8613800000002", "+8613800000003"]
    assert doc["subject"].startswith("[HIGH] vaccine_2_8.low fridge-1/lg-fridge-1 at wh1: ")


async def test_server_hanging_never_blocks_the_engine_and_delivers_when_up(
    tmp_path: Path, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    # a server that accepts connections and never answers: a sender waiting on it inline would
    # hold every alarm for its 2 s timeout
    hang = await asyncio.start_server(lambda r, w: asyncio.sleep(3600), "127.0.0.1", 0)
    port = hang.sockets[0].getsockname()[1]
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(
        fridges.notifier(
            webhook_config(port, max_queue=5, give_up_after_s=None),
            env={"VIGIL_WEBHOOK_SECRET": SECRET},
        )
    )
    took = []
    for i in range(8):  # eight fridges go out of range: eight alarms
        t = time.perf_counter()
        assert len(fridges.temps(f"fridge-{i}", 0, [5.0, 9.0])) == 1
        took.append(time.perf_counter() - t)
        await asyncio.sleep(0)  # the worker gets to its first (hanging) attempt
    assert max(took) < 0.5, took  # two readings and a commit each, never a network wait
    stats = n.stats["sms"]
    assert stats["queued"] == 5 and stats["dropped"] == 3  # bounded; the rest counted
    assert n.notifications_dropped == 3
    dropped = [fridges.alert_id("vaccine_2_8.high", f"fridge-{i}") for i in (5, 6, 7)]
    for alert_id in dropped:  # and recorded in the alert's history
        [h] = Outbox(fridges.engine.store).history(alert_id)
        assert h["outcome"] == "dropped" and "outbox full (5 waiting)" in h["detail"]

    hang.close()
    await until(lambda: n.stats["sms"]["retried"] >= 2, what="retries against a dead server")
    receiver = Receiver()
    await receiver.start(port)
    try:
        await until(lambda: n.stats["sms"]["sent"] == 5, what="the backlog delivered")
    finally:
        await receiver.stop()
    got = sorted(d["asset"] for d in receiver.accepted)
    assert got == ["fridge-0", "fridge-1", "fridge-2", "fridge-3", "fridge-4"]
    assert n.stats["sms"]["failed"] == 0 and n.stats["sms"]["queued"] == 0


# -- MQTT retained state ---------------------------------------------------------------------


PREFIX = "vigil/alerts"


async def retained(port: int, client_id: str) -> dict[str, dict[str, Any]]:
    """What a subscriber arriving now gets: {topic: state} of every retained alert.

    After subscribing it publishes a marker on its own connection; the broker sends the retained
    messages in response to the subscription before it routes the marker, so everything before
    the marker is the complete retained set."""
    marker = f"{PREFIX}/_marker/{client_id}"
    out: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id) as c:
        await c.subscribe(f"{PREFIX}/#", qos=1)
        await c.publish(marker, b"end", qos=1)
        async with asyncio.timeout(10):
            async for m in c.messages:
                topic = m.topic.value
                if topic == marker:
                    break
                assert m.retain, topic
                assert isinstance(m.payload, bytes) and m.payload, topic  # cleared ones absent
                out[topic] = json.loads(m.payload)
    return out


def mqtt_notifier(fridges: Fridges, broker_url: str, smtp_port: int) -> Notifier:
    """Alarms go to the MQTT state channel and to mail; the mail server is down throughout, which
    must not hold up the MQTT state."""
    config = NotifiersConfig.model_validate(
        {
            "channels": {
                "state": {"kind": "mqtt", **FAST},
                "mail": {"kind": "email", "host": "127.0.0.1", "port": smtp_port, "tls": "none",
                         "from": "vigil@wh1.example", "recipients": THREE, **FAST},
            },
            "routes": {"all_sites": {"channels": ["state", "mail"], "sites": ["*"]}},
        }
    )  # fmt: skip
    broker = MqttBrokerConfig.model_validate({"url": broker_url, "client_id": "vigil-test-gw"})
    link = MqttLink(broker.url, broker.client_id, lambda cid: client_for(broker, client_id=cid))
    return fridges.notifier(config, link, gateway="gw-test")


def topic(asset: str, rule: str) -> str:
    return f"{PREFIX}/wh1/{asset}/lg-{asset}/vaccine_2_8.{rule}"


async def test_retained_state_per_open_alert_cleared_when_closed(
    tmp_path: Path, mosquitto: Mosquitto, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(mqtt_notifier(fridges, mosquitto.url, free_port()))
    await until(lambda: n.stats["state"]["failing"] == 0 and n.channels["state"].failing is False,
                what="the startup sync")  # fmt: skip
    sent = 0

    async def submit(events: list[AlertEvent]) -> None:
        """Wait until these events' states went out (or were replaced by newer ones)."""
        nonlocal sent
        sent += len(events)
        await until(lambda: n.stats["state"]["sent"] + n.stats["state"]["superseded"] == sent,
                    what=f"{sent} state messages published")  # fmt: skip

    # fridge-1 freezes for 61 min (low + the latching WHO freeze alarm), then recovers;
    # fridge-2 goes above 8 °C and stays there.
    await submit(fridges.temps("fridge-1", 0, [5.0] + [-1.0] * 61 + [5.0]))
    await submit(fridges.temps("fridge-2", 0, [5.0, 9.1]))
    assert n.stats["mail"]["sent"] == 0 and n.stats["mail"]["retried"] >= 1  # mail is down

    state = await retained(mosquitto.port, "late-1")
    assert set(state) == {topic("fridge-1", "low"), topic("fridge-1", "freeze_alarm"),
                          topic("fridge-2", "high")}  # fmt: skip
    freeze = state[topic("fridge-1", "freeze_alarm")]
    assert freeze["state"] == "rtn_unacknowledged" and freeze["severity"] == "critical"
    assert freeze["raised_at"] == "2025-11-22T09:01:00.000Z" and freeze["latching"] is True
    assert state[topic("fridge-2", "high")]["state"] == "unacknowledged"
    assert state[topic("fridge-2", "high")]["value"] == 9.1

    # acknowledging ends the non-latching low alarm; the latched freeze alarm stays (acknowledged)
    e = fridges.engine
    fridges.clock.set(T0 + 70 * MIN)
    await submit([e.ack(fridges.alert_id("vaccine_2_8.low", "fridge-1"), by="olga").event])
    freeze_id = fridges.alert_id("vaccine_2_8.freeze_alarm", "fridge-1")
    await submit([e.ack(freeze_id, by="olga").event])
    state = await retained(mosquitto.port, "late-2")
    assert set(state) == {topic("fridge-1", "freeze_alarm"), topic("fridge-2", "high")}
    assert state[topic("fridge-1", "freeze_alarm")]["state"] == "acknowledged"
    assert state[topic("fridge-1", "freeze_alarm")]["acked_by"] == "olga"

    # QA closes the freeze alarm: its retained state is cleared; the open one stays
    closed = e.close_alert(freeze_id, by="qa-lin", reason="product quarantined, CAPA-17")
    assert closed.event.kind is EventKind.CLOSED
    await submit([closed.event])
    state = await retained(mosquitto.port, "late-3")
    assert set(state) == {topic("fridge-2", "high")}
    assert n.stats["state"]["failed"] == 0 and n.stats["state"]["dropped"] == 0


async def test_broker_down_keeps_latest_state_per_alert_and_publishes_when_up(
    tmp_path: Path, mosquitto: Mosquitto, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    mosquitto.stop()
    fridges = Fridges(tmp_path / "alerts.db")
    n = await running(mqtt_notifier(fridges, mosquitto.url, free_port()))
    await until(lambda: n.stats["state"]["retried"] >= 2, what="reconnect attempts")
    fridges.temps("fridge-1", 0, [5.0, 9.0, 9.2, 5.0])  # high raised, then cleared
    fridges.temps("fridge-2", 0, [5.0, 9.3])
    fridges.clock.set(T0 + 10 * MIN)
    fridges.engine.ack(fridges.alert_id("vaccine_2_8.high", "fridge-1"), "olga")
    assert n.stats["state"]["superseded"] >= 2  # fridge-1's older states were replaced
    assert n.stats["state"]["queued"] == 2  # one state per alert waits

    mosquitto.start()
    await until(lambda: n.stats["state"]["queued"] == 0, what="the state published")
    state = await retained(mosquitto.port, "late-after-outage")
    assert set(state) == {topic("fridge-2", "high")}
    assert state[topic("fridge-2", "high")]["value"] == 9.3


async def test_startup_republishes_open_alerts_and_clears_what_ended_meanwhile(
    tmp_path: Path, mosquitto: Mosquitto, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    fridges = Fridges(tmp_path / "alerts.db")
    first = mqtt_notifier(fridges, mosquitto.url, free_port())
    task = asyncio.create_task(first.run())
    await until(lambda: first.channels["state"].failing is False, what="the first sync")
    fridges.temps("fridge-1", 0, [5.0, 9.0])
    fridges.temps("fridge-2", 0, [5.0, 9.3])
    await until(lambda: first.stats["state"]["sent"] == 2, what="two states published")
    await first.close(timeout=1)
    await asyncio.gather(task, return_exceptions=True)
    assert set(await retained(mosquitto.port, "before")) == {
        topic("fridge-1", "high"),
        topic("fridge-2", "high"),
    }

    # the gateway is down: nobody tells the broker that fridge-1's alarm ended ...
    fridges.engine.alerts.listeners.clear()
    fridges.temps("fridge-1", 2, [5.0])
    fridges.clock.set(T0 + 5 * MIN)
    fridges.engine.ack(fridges.alert_id("vaccine_2_8.high", "fridge-1"), "olga")
    assert (
        fridges.engine.store.get_alert(fridges.alert_id("vaccine_2_8.high", "fridge-1")).state
        == "normal"
    )  # type: ignore[union-attr]
    other = f"{PREFIX}/wh9/room/lg-9/vaccine_2_8.high"
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="meddler") as c:
        # ... the broker lost fridge-2's state (a restart without persistence) ...
        await c.publish(topic("fridge-2", "high"), b"", qos=1, retain=True, timeout=10)
        # ... and another gateway keeps its own alerts under the same prefix
        doc = json.dumps({"gateway": "gw-other"}).encode()
        await c.publish(other, doc, qos=1, retain=True, timeout=10)

    second = await running(mqtt_notifier(fridges, mosquitto.url, free_port()))
    await until(lambda: second.channels["state"].failing is False, what="the startup sync")
    state = await retained(mosquitto.port, "after")
    assert set(state) == {topic("fridge-2", "high"), other}
    assert state[topic("fridge-2", "high")]["state"] == "unacknowledged"
    assert state[topic("fridge-2", "high")]["value"] == 9.3
    assert state[other] == {"gateway": "gw-other"}  # not ours: left alone
