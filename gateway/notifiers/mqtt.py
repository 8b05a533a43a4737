"""MQTT notifier: one retained state message per open alert, so a late subscriber (a dashboard,
a control-room display, another system) sees exactly the alerts that are open right now.

Topic `{topic_prefix}/{source}/{rule}`, e.g. `vigil/alerts/wh1/fridge-3/lg-1/vaccine_2_8.high`
(`/cycle-{id}` appended for a per-cycle alarm): there is at most one open alert per (rule,
source, cycle), and sites can be picked with wildcards
(`vigil/alerts/wh1/#`). Payload: the JSON document of `message.payload`. When the alert ends
(state `normal`: acknowledged and back to normal, or closed) an empty retained message clears it.

At startup `sync` makes the broker's retained state match the alert store: it reads what is
retained under the prefix (a marker published after subscribing ends the retained burst),
publishes the state of every open alert and clears the topics of this gateway's alerts that
ended while it was down (or whose clearing was lost).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiomqtt

from alert_rules.model import Alert, AlertEvent, AlertState
from gateway.notifiers.base import Delivery, TransientError, one_unit
from gateway.notifiers.config import MqttChannel
from gateway.notifiers.message import payload, to_json

log = logging.getLogger("vigil.notifiers.mqtt")

_BAD = re.compile(r"[+#\x00]")
SYNC_TIMEOUT_S = 10.0


def _segment(s: str) -> str:
    s = _BAD.sub("_", s)
    return "_" + s[1:] if s.startswith("$") else (s or "_")


def state_topic(prefix: str, alert: Alert) -> str:
    """`{prefix}/{source}/{rule}`, and `/cycle-{id}` for an alarm on one production cycle
    (each failed load has its own alert, open side by side)."""
    parts = [_segment(p) for p in alert.source.split("/")] if alert.source else ["_"]
    topic = "/".join([prefix, *parts, _segment(alert.rule)])
    return topic if alert.cycle_id is None else f"{topic}/cycle-{alert.cycle_id}"


@dataclass(frozen=True, slots=True)
class MqttLink:
    """How mqtt channels reach the gateway's broker; the gateway builds it from its `mqtt:`
    section (TLS and credentials included), so notifiers need not know the collectors."""

    url: str
    client_id: str
    """The gateway's client id; a channel's own is derived from it."""
    client: Callable[[str], aiomqtt.Client]
    """A new, unconnected client with the given client id."""


class MqttSender:
    kind = "mqtt"

    def __init__(self, name: str, config: MqttChannel, link: MqttLink, gateway: str) -> None:
        self.name = name
        self.config = config
        self.link = link
        self.gateway = gateway
        self.client_id = config.client_id or f"{link.client_id}-notify-{name}"
        self._client: aiomqtt.Client | None = None

    units = staticmethod(one_unit)

    def key(self, event: AlertEvent) -> str:
        return state_topic(self.config.topic_prefix, event.alert)

    def body(self, event: AlertEvent, lang: str, tz: str | None) -> bytes:
        if event.new_state is AlertState.NORMAL:
            return b""
        return to_json(payload(event, self.gateway, lang=lang, tz=tz))

    async def send(self, delivery: Delivery) -> str:
        topic = self.key(delivery.event)
        await self._publish(topic, self.body(delivery.event, delivery.lang, delivery.tz))
        return f"published to {topic}"

    async def _publish(self, topic: str, body: bytes) -> None:
        client = await self._connect()
        try:
            await client.publish(
                topic, body, qos=self.config.qos, retain=True, timeout=self.config.timeout_s
            )
        except (aiomqtt.MqttError, OSError, TimeoutError) as e:
            await self._drop()
            raise TransientError(f"publish to {topic} failed: {e}") from None

    async def sync(
        self, open_alerts: Mapping[str, AlertEvent], lang: str = "en", tz: str | None = None
    ) -> tuple[int, int]:
        """Publish `open_alerts` ({topic: latest event}) and clear the retained topics of this
        gateway's alerts that are no longer open. Returns (published, cleared)."""
        retained = await self.retained()
        stale = [t for t, gw in retained.items() if t not in open_alerts and gw == self.gateway]
        for topic, event in open_alerts.items():
            await self._publish(topic, self.body(event, lang, tz))
        for topic in stale:
            await self._publish(topic, b"")
        return len(open_alerts), len(stale)

    async def retained(self) -> dict[str, str | None]:
        """{topic: gateway named in its payload} of what the broker retains under the prefix."""
        prefix = self.config.topic_prefix
        marker = f"{prefix}/_sync/{uuid.uuid4().hex}"
        found: dict[str, str | None] = {}
        client = self.link.client(f"{self.client_id}-sync")
        try:
            async with client, asyncio.timeout(SYNC_TIMEOUT_S):
                await client.subscribe(f"{prefix}/#", qos=0)
                await client.publish(marker, b"", qos=1)
                async for m in client.messages:
                    topic = m.topic.value
                    if topic == marker:
                        break
                    if m.retain and isinstance(m.payload, bytes) and m.payload:
                        found[topic] = _gateway_of(m.payload)
                await client.unsubscribe(f"{prefix}/#")
        except (aiomqtt.MqttError, OSError, TimeoutError) as e:
            raise TransientError(f"reading retained alert state failed: {e}") from None
        return found

    async def _connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        client = self.link.client(self.client_id)
        try:
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError, TimeoutError) as e:
            raise TransientError(f"cannot connect to {self.link.url}: {e}") from None
        log.info("notifier connected", extra={"channel": self.name, "broker": self.link.url})
        self._client = client
        return client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except Exception:  # already broken: nothing more to do with it
                pass

    async def close(self) -> None:
        await self._drop()


def _gateway_of(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    gw = doc.get("gateway") if isinstance(doc, dict) else None
    return gw if isinstance(gw, str) else None
