"""The MQTT collector: subscribe, parse, journal, and only then acknowledge.

QoS 1 messages are acknowledged to the broker after their readings are committed to the journal,
so a crash at any point loses nothing: the broker redelivers what was not acknowledged (manual
acknowledgement: collectors/mqtt/broker.py). A broker restart is survived by reconnecting with
backoff; the fixed client id and persistent session bring back what was queued meanwhile. The
connection's state (online, since when, the last error) and each device's liveness (a message
within its expected interval: collectors/mqtt/liveness.py) are the collector's status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import aiomqtt

from collectors.mqtt.broker import GatewayClient, client_for
from collectors.mqtt.config import MqttCollectorConfig
from collectors.mqtt.liveness import Liveness
from collectors.mqtt.parse import MessageParser
from collectors.mqtt.topics import TopicRouter
from gateway.core.metrics import Counters
from gateway.core.ports import Ingest, SourceStatus
from gateway.core.reading import DeadLetter, Reading, internal_error
from gateway.core.supervisor import raise_if_cancelled

log = logging.getLogger("vigil.mqtt")


def _payload_bytes(payload: object) -> bytes:
    """aiomqtt hands payloads as bytes, or bytearray, str, int, float, None."""
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8", "backslashreplace")


class MqttCollector:
    kind = "mqtt"

    def __init__(
        self, config: MqttCollectorConfig, ingest: Ingest, counters: Counters | None = None
    ) -> None:
        if config.broker is None:
            raise ValueError(f"collector {config.name!r}: no broker (the `mqtt:` section)")
        self.config = config
        self.name = config.name
        self.broker = config.broker
        self.ingest = ingest
        self.counters = counters or Counters()
        self.router = TopicRouter(config.subscriptions)
        self.parser = MessageParser(
            config.max_payload_bytes, config.max_future_skew_s, config.min_event_time
        )
        self.connected = asyncio.Event()
        self._status = SourceStatus(self.name, self.kind, self.broker.url)
        self.liveness = Liveness(config.liveness)
        self._session = 0
        """Bumped on each connection: an acknowledgement is only valid on the one it came on."""

    def status(self) -> list[SourceStatus]:
        st = self._status
        lost = f"broker connection lost: {st.last_error}" if st.online is False else ""
        return [st, *self.liveness.statuses(self.name, st.address, time.time_ns(), lost)]

    def _set_online(self, online: bool, error: str = "") -> None:
        st = self._status
        if st.online is not online:
            st.online, st.since_ns = online, time.time_ns()
        if error:
            st.last_error = error

    async def run(self) -> None:
        backoff = self.broker.reconnect_min_s
        client_id = self.broker.client_id
        if self.config.name != "mqtt":
            client_id = f"{client_id}-{self.config.name}"
        try:
            while True:
                client = client_for(self.broker, client_id=client_id, manual_ack=True)
                try:
                    async with client:
                        self._session += 1
                        topics: list[tuple[str, int]] = [
                            (s.mqtt_filter, s.qos) for s in self.config.subscriptions
                        ]
                        await client.subscribe(topics)
                        raise_if_cancelled()  # aiomqtt's wait_for may have swallowed a stop
                        log.info("connected and subscribed", extra={"broker": self.broker.url})
                        self._set_online(True)
                        self.connected.set()
                        backoff = self.broker.reconnect_min_s
                        await self._consume(client, self._session)
                except aiomqtt.MqttError as e:
                    self.connected.clear()
                    self._set_online(False, str(e))
                    self.counters.reconnects += 1
                    delay = backoff * random.uniform(0.8, 1.2)
                    log.warning(
                        "MQTT connection lost; reconnecting",
                        extra={"broker": self.broker.url, "error": str(e), "retry_in_s": delay},
                    )
                    await asyncio.sleep(delay)
                    backoff = min(backoff * 2, self.broker.reconnect_max_s)
                finally:
                    self._session += 1
        finally:
            self.connected.clear()
            self._set_online(False)

    async def _consume(self, client: GatewayClient, session: int) -> None:
        """Hand messages to the journal in batches of what has arrived, then acknowledge them.

        aiomqtt costs a task per awaited message; taking whatever else is already queued at
        once keeps that cost per batch, not per message.
        """
        match, parse, submit = self.router.match, self.parser.parse, self.ingest.submit
        counters = self.counters
        status = self._status
        max_batch = self.config.max_batch_messages
        seen = self.liveness.seen

        async for first in client.messages:
            batch = [first, *client.take_ready(max_batch - 1)]
            counters.received += len(batch)
            readings: list[Reading] = []
            dead: list[DeadLetter] = []
            acks: list[tuple[int, int]] = []
            received_ns = status.last_seen_ns = time.time_ns()
            for msg in batch:
                # Whatever goes wrong with one message dead-letters that message: raising out of
                # this loop would restart the collector, and the broker would redeliver the same
                # unacknowledged message to crash it again.
                topic, payload = "", b""
                try:
                    topic = msg.topic.value
                    payload = msg.payload
                    if not isinstance(payload, bytes):
                        payload = _payload_bytes(payload)
                    route = match(topic)
                    if route is None:
                        dead.append(
                            DeadLetter(
                                topic,
                                payload,
                                "no subscription template matches this topic",
                                received_ns,
                            )
                        )
                    elif route.problem:
                        dead.append(DeadLetter(topic, payload, route.problem, received_ns))
                    else:
                        r, d = parse(route.sub, topic, route.tags, payload, received_ns)
                        readings += r
                        if d:
                            dead += d
                        if r:
                            last = r[-1]
                            seen(
                                last.measurement,
                                last.tags,
                                received_ns,
                                route.sub.expected_interval_s,
                            )
                except Exception as e:
                    body = payload if isinstance(payload, bytes) else b""
                    dead.append(DeadLetter(str(topic), body, internal_error(e), received_ns))
                try:
                    if msg.qos:  # a dead-lettered message is as durable as a reading: acked
                        acks.append((msg.mid, msg.qos))
                except Exception:
                    log.exception("cannot read a message's id; it will be redelivered")
            counters.readings_parsed += len(readings)
            await submit(readings, dead, self._acker(client, session, acks) if acks else None)

    def _acker(
        self, client: GatewayClient, session: int, acks: list[tuple[int, int]]
    ) -> Callable[[], None]:
        def ack() -> None:
            if self._session == session:  # ids are only valid on the connection they came on
                client.ack_all(acks)

        return ack
