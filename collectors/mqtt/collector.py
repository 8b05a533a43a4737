"""The MQTT collector: subscribe, parse, journal, and only then acknowledge.

QoS 1 messages are acknowledged to the broker after their readings are committed to the journal,
so a crash at any point loses nothing: the broker redelivers what was not acknowledged. aiomqtt
does not expose paho-mqtt 2's manual acknowledgement, so we switch it on the paho client aiomqtt
wraps (`manual_ack_set`, `ack`), both public paho API. A broker restart is survived by reconnecting
with backoff; the fixed client id and persistent session bring back what was queued meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.mqtt.config import MqttCollectorConfig
from collectors.mqtt.parse import MessageParser
from collectors.mqtt.topics import TopicRouter
from gateway.config import MqttBrokerConfig
from gateway.metrics import Counters
from gateway.ports import Ingest
from gateway.reading import DeadLetter, Reading, internal_error

log = logging.getLogger("vigil.mqtt")


MAX_PACKETS_PER_WAKEUP = 1000


class DrainingClient(aiomqtt.Client):
    """aiomqtt, reading every packet already buffered each time the socket is readable.

    Stock aiomqtt lets paho parse one packet per event-loop wake-up, which bounds receive at a
    fraction of what paho parses (docs/benchmarks.md: ~12.8k against ~32k msg/s). This reads
    until paho reports no more data (bounded, so other tasks still run). It leans on paho's
    `_packet_read`/`_loop_rc_handle` and aiomqtt's socket hook; when those are missing (another
    version), the stock behaviour is kept.
    """

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if not (hasattr(client, "_packet_read") and hasattr(client, "_loop_rc_handle")):
            super()._on_socket_open(client, userdata, sock)
            return

        def drain() -> None:
            try:
                for _ in range(MAX_PACKETS_PER_WAKEUP):
                    rc = client._packet_read()
                    if rc == mqtt.MQTT_ERR_AGAIN:
                        break
                    if rc > 0:
                        client._loop_rc_handle(rc)
                        break
            except Exception as exc:  # a broken socket: aiomqtt reports it as a disconnect
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def create_misc_task() -> None:
            self._misc_task = self._loop.create_task(self._misc_loop())

        self._loop.call_soon_threadsafe(self._loop.add_reader, sock.fileno(), drain)
        self._loop.call_soon_threadsafe(create_misc_task)


def client_for(broker: MqttBrokerConfig, *, client_id: str | None = None) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker with a persistent session."""
    kwargs: dict[str, Any] = {}
    if broker.uses_tls:
        tls = broker.tls
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls and tls.ca_file else None)
        if tls and tls.cert_file:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        if tls and tls.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        kwargs["tls_context"] = ctx
    if broker.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = broker.session_expiry_s
        props.ReceiveMaximum = broker.receive_maximum
        kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
    else:
        kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
    return DrainingClient(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=client_id or broker.client_id,
        keepalive=broker.keepalive_s,
        timeout=10,
        **kwargs,
    )


def _payload_bytes(payload: object) -> bytes:
    """aiomqtt hands payloads as bytes, or bytearray, str, int, float, None."""
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8", "backslashreplace")


class MqttCollector:
    def __init__(
        self,
        config: MqttCollectorConfig,
        broker: MqttBrokerConfig,
        ingest: Ingest,
        counters: Counters,
    ) -> None:
        self.config = config
        self.broker = broker
        self.ingest = ingest
        self.counters = counters
        self.router = TopicRouter(config.subscriptions)
        self.parser = MessageParser(
            config.max_payload_bytes, config.max_future_skew_s, config.min_event_time
        )
        self.connected = asyncio.Event()
        self._session = 0
        """Bumped on each connection: an acknowledgement is only valid on the one it came on."""

    async def run(self) -> None:
        backoff = self.broker.reconnect_min_s
        client_id = self.broker.client_id
        if self.config.name != "mqtt":
            client_id = f"{client_id}-{self.config.name}"
        while True:
            client = client_for(self.broker, client_id=client_id)
            client._client.manual_ack_set(True)  # see module docstring
            try:
                async with client:
                    self._session += 1
                    await client.subscribe(
                        [(s.mqtt_filter, s.qos) for s in self.config.subscriptions]
                    )
                    log.info("connected and subscribed", extra={"broker": self.broker.url})
                    self.connected.set()
                    backoff = self.broker.reconnect_min_s
                    await self._consume(client, self._session)
            except aiomqtt.MqttError as e:
                self.connected.clear()
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

    async def _consume(self, client: aiomqtt.Client, session: int) -> None:
        """Hand messages to the journal in batches of what has arrived, then acknowledge them.

        aiomqtt costs a task per awaited message; taking whatever else is already queued at
        once (its queue, below its public iterator) keeps that cost per batch, not per message.
        """
        paho = client._client
        queue = client._queue
        match, parse, submit = self.router.match, self.parser.parse, self.ingest.submit
        counters = self.counters
        max_batch = self.config.max_batch_messages

        async for first in client.messages:
            batch = [first]
            while len(batch) < max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            counters.received += len(batch)
            readings: list[Reading] = []
            dead: list[DeadLetter] = []
            acks: list[tuple[int, int]] = []
            received_ns = time.time_ns()
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
                except Exception as e:
                    body = payload if isinstance(payload, bytes) else b""
                    dead.append(DeadLetter(str(topic), body, internal_error(e), received_ns))
                try:
                    if msg.qos:  # a dead-lettered message is as durable as a reading: acked
                        acks.append((msg.mid, msg.qos))
                except Exception:
                    log.exception("cannot read a message's id; it will be redelivered")
            counters.readings_parsed += len(readings)
            await submit(readings, dead, self._acker(paho, session, acks) if acks else None)

    def _acker(self, paho: Any, session: int, acks: list[tuple[int, int]]) -> Any:
        def ack() -> None:
            if self._session == session:  # ids are only valid on the connection they came on
                for mid, qos in acks:
                    paho.ack(mid, qos)

        return ack
