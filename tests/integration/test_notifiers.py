"""Notifiers against real servers: mail to aiosmtpd, a signed webhook to a local aiohttp server,
retained alert state on Mosquitto. Alert events come from the real rules engine on a manual
clock. Servers start late or answer 500 on purpose: submit() must stay immediate, the queue
bounded, and delivery must happen once the server is there."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from alert_rules import AlertEvent, AlertStore, EventKind, ManualClock, RulesConfig, RulesEngine
from collectors.mqtt import MqttBrokerConfig, client_for
from gateway.core.reading import Reading
from gateway.notifiers import MqttLink, Notifier, NotifiersConfig
from tests.services import Mosquitto, apoll, free_port

pytestmark = pytest.mark.integration

S = 1_000_000_000
MIN = 60 * S
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z
THREE = ["qa@wh1.example", "pharmacist@wh1.example", "manager@wh1.example"]
SECRET = "s3cret-webhook-key"
FAST = {"retry_min_s": 0.05, "retry_max_s": 0.2, "timeout_s": 2}


async def until(predicate: Callable[[], Any], deadline_s: float = 15.0, what: str = "it") -> Any:
    """Poll without blocking the event loop (the notifier runs on it) until a deadline."""
    return await apoll(predicate, deadline_s, what=what)


class Fridges:
    """The real rules engine with the vaccine_2_8 profile on site wh1, fed one reading at a time."""

    def __init__(self, path: Path) -> None:
        config = RulesConfig.model_validate(
            {"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]}
        )
        self.clock = ManualClock(T0)
        self.engine = RulesEngine(config, AlertStore(path), self.clock)

    def temps(self, asset: str, start_min: int, temps: list[float]) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        tags = {"site": "wh1", "asset": asset, "device": f"lg-{asset}"}
        for i, t in enumerate(temps):
            ts = T0 + (start_min + i) * MIN
            self.clock.set(ts + S)
            events += self.engine.process([Reading("coldchain", tags, {"temp_c": t}, ts, ts + S)])
        return events

    def alert_id(self, rule: str, asset: str) -> int:
        [a] = [a for a in self.engine.store.list_alerts(rule=rule) if a.tags["asset"] == asset]
        return a.id


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Notifier], Awaitable[Notifier]]]:
    """Start notifiers' workers; whatever a test leaves running is closed at teardown."""
    started: list[tuple[Notifier, asyncio.Task[None]]] = []

    async def start(n: Notifier) -> Notifier:
        started.append((n, asyncio.create_task(n.run())))
        await asyncio.sleep(0)
        return n

    yield start
    for n, task in started:
        await n.close(timeout=0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
    n = await running(Notifier(config, gateway="gw-test"))
    fridges = Fridges(tmp_path / "alerts.db")
    events = fridges.temps("fridge-3", 0, [5.0, 5.0, 9.4])
    [raised] = [e for e in events if e.kind is EventKind.RAISED]
    for e in events:
        n.submit(e)
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
        n = await running(
            Notifier(webhook_config(port), gateway="gw-test", env={"VIGIL_WEBHOOK_SECRET": SECRET})
        )
        fridges = Fridges(tmp_path / "alerts.db")
        events = fridges.temps("fridge-1", 0, [5.0, -1.0])  # < 2 °C: vaccine_2_8.low
        assert [e.kind for e in events] == [EventKind.RAISED]
        n.submit(events[0])
        await until(lambda: n.stats["sms"]["sent"] == 1, what="delivery")
        assert await n.close(timeout=2)  # nothing left: no further attempt will follow
    finally:
        await receiver.stop()
    assert n.stats["sms"] == {
        "sent": 1, "failed": 0, "retried": 2, "dropped": 0, "superseded": 0, "queued": 0
    }  # fmt: skip
    assert len(receiver.requests) == 3
    [doc] = receiver.accepted
    ids = {h["X-Vigil-Delivery"] for h, _ in receiver.requests}
    assert ids == {doc["delivery_id"]}  # the same delivery, three attempts
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


async def test_server_down_never_blocks_submit_and_delivers_when_up(
    tmp_path: Path, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    port = free_port()  # nothing listens here yet: connection refused
    n = await running(
        Notifier(
            webhook_config(port, max_queue=5, give_up_after_s=None),
            env={"VIGIL_WEBHOOK_SECRET": SECRET},
        )
    )
    fridges = Fridges(tmp_path / "alerts.db")
    events = []
    for i in range(8):  # eight fridges go out of range: eight alarms
        events += fridges.temps(f"fridge-{i}", 0, [5.0, 9.0])
    assert len(events) == 8

    took = []
    for e in events:
        t = time.perf_counter()
        n.submit(e)
        took.append(time.perf_counter() - t)
    assert max(took) < 0.05, took  # never awaits, never waits for the network
    stats = n.stats["sms"]
    assert stats["queued"] == 5 and stats["dropped"] == 3  # bounded; the rest counted
    assert n.notifications_dropped == 3

    await until(lambda: n.stats["sms"]["retried"] >= 3, what="retries against a dead server")
    t = time.perf_counter()
    n.submit(fridges.temps("fridge-9", 0, [5.0, 9.5])[0])  # fits: one is in flight
    assert time.perf_counter() - t < 0.02
    assert n.stats["sms"]["queued"] == 6 and n.notifications_dropped == 3

    receiver = Receiver()
    await receiver.start(port)
    try:
        await until(lambda: n.stats["sms"]["sent"] == 6, what="the backlog delivered")
    finally:
        await receiver.stop()
    got = sorted(d["asset"] for d in receiver.accepted)
    assert got == ["fridge-0", "fridge-1", "fridge-2", "fridge-3", "fridge-4", "fridge-9"]
    assert n.stats["sms"]["failed"] == 0


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


def mqtt_notifier(broker_url: str, smtp_port: int) -> Notifier:
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
    return Notifier(config, link, gateway="gw-test")


def topic(asset: str, rule: str) -> str:
    return f"{PREFIX}/wh1/{asset}/lg-{asset}/vaccine_2_8.{rule}"


async def test_retained_state_per_open_alert_cleared_when_closed(
    tmp_path: Path, mosquitto: Mosquitto, running: Callable[[Notifier], Awaitable[Notifier]]
) -> None:
    n = await running(mqtt_notifier(mosquitto.url, free_port()))
    fridges = Fridges(tmp_path / "alerts.db")
    sent = 0

    async def submit(events: list[AlertEvent]) -> None:
        nonlocal sent
        for e in events:
            n.submit(e)
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
    n = await running(mqtt_notifier(mosquitto.url, free_port()))
    fridges = Fridges(tmp_path / "alerts.db")
    events = fridges.temps("fridge-1", 0, [5.0, 9.0, 9.2, 5.0])  # high raised, then cleared
    events += fridges.temps("fridge-2", 0, [5.0, 9.3])
    fridges.clock.set(T0 + 10 * MIN)
    events.append(
        fridges.engine.ack(fridges.alert_id("vaccine_2_8.high", "fridge-1"), "olga").event
    )
    t = time.perf_counter()
    for ev in events:
        n.submit(ev)
    assert time.perf_counter() - t < 0.05
    await until(lambda: n.stats["state"]["retried"] >= 2, what="reconnect attempts")
    assert n.stats["state"]["superseded"] >= 1  # fridge-1's older states were replaced

    mosquitto.start()
    await until(lambda: n.stats["state"]["queued"] == 0, what="the state published")
    state = await retained(mosquitto.port, "late-after-outage")
    assert set(state) == {topic("fridge-2", "high")}
    assert state[topic("fridge-2", "high")]["value"] == 9.3
