"""MQTT notifier: one retained state message per open alert, so a late subscriber (a dashboard,
a control-room display, another system) sees exactly the alerts that are open right now.

Topic `{topic_prefix}/{source}/{rule}`, e.g. `vigil/alerts/wh1/fridge-3/lg-1/vaccine_2_8.high`:
there is at most one open alert per (rule, source), and sites can be picked with wildcards
(`vigil/alerts/wh1/#`). Payload: the JSON document of `message.payload`. When the alert ends
(state `normal`: acknowledged and back to normal, or closed) an empty retained message clears it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from alert_rules.model import Alert, AlertEvent, AlertState
from gateway.notifiers.base import Delivery, TransientError
from gateway.notifiers.config import MqttChannel
from gateway.notifiers.message import payload, to_json

log = logging.getLogger("vigil.notifiers.mqtt")

_BAD = re.compile(r"[+#\x00]")


def _segment(s: str) -> str:
    s = _BAD.sub("_", s)
    return "_" + s[1:] if s.startswith("$") else (s or "_")


def state_topic(prefix: str, alert: Alert) -> str:
    parts = [_segment(p) for p in alert.source.split("/")] if alert.source else ["_"]
    return "/".join([prefix, *parts, _segment(alert.rule)])


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

    def key(self, event: AlertEvent) -> str:
        return state_topic(self.config.topic_prefix, event.alert)

    async def send(self, delivery: Delivery) -> None:
        event = delivery.event
        topic = delivery.key or self.key(event)
        body = (
            b""
            if event.new_state is AlertState.NORMAL
            else to_json(payload(event, self.gateway, lang=delivery.lang, tz=delivery.tz))
        )
        client = await self._connect()
        try:
            await client.publish(
                topic, body, qos=self.config.qos, retain=True, timeout=self.config.timeout_s
            )
        except (aiomqtt.MqttError, OSError, TimeoutError) as e:
            await self._drop()
            raise TransientError(f"publish to {topic} failed: {e}") from None

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
