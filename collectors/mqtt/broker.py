"""The MQTT broker connection: its config, TLS, and the one client class vigil uses.

Every use of aiomqtt's and paho-mqtt's private internals is in this file, and nowhere else:

- manual acknowledgement: paho 2 can hold QoS 1 acknowledgements until we say so
  (`manual_ack_set`, `ack`, both public paho API), but aiomqtt keeps its paho client private
  (`Client._client`). The collector acknowledges a message only after the journal commit.
- draining the socket: aiomqtt lets paho parse one packet per event-loop wake-up, which bounds
  receive at a fraction of what paho parses (docs/benchmarks.md). `_on_socket_open` is replaced
  by one that reads until paho reports no more data (paho's `_packet_read`, `_loop_rc_handle`;
  aiomqtt's `_loop`, `_disconnected`, `_misc_loop`, `_misc_task`).
- the per-message cost on the event loop, which bounds a burst (one core parses every packet):
  paho reads a packet with three or more `recv` calls (command byte, each length byte, body), so
  `_sock_recv` is wrapped to read what the socket holds at once and serve paho from memory; the
  acknowledgements of a committed batch go out as one write (`_packet_queue` with the PUBACKs
  joined) instead of one queued packet and one `send` each; paho's lookup of per-topic
  callbacks (`_on_message_filtered`, vigil registers none) is skipped; and its per-packet debug
  log calls (`_easy_log`) are dropped while the `mqtt` logger is not at DEBUG.
- the PUBLISH fast path: on MQTT 3.1.1 with manual acknowledgement, complete QoS 0 and 1
  PUBLISH packets in the read buffer are cut out and queued as aiomqtt Messages directly, between
  two of paho's packets (`_in_packet` at a packet boundary; `_last_bytes_received` kept for the
  keepalive). paho decodes such a packet into its own message, looks up callbacks, logs and
  hands it to aiomqtt to copy again: most of a single-reading burst's receive cost. Anything
  else (QoS 2, CONNACK, SUBACK, a packet cut by the read, a topic that is not UTF-8) goes through
  paho as before.

Both libraries are pinned below their next minor version in pyproject.toml, and
`check_internals()` fails loudly (tests/unit/test_mqtt_broker.py runs it) when one of these names
moves, instead of silently falling back to the slow path. Batches are taken from aiomqtt's queue
through its public `queue_type=` hook.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt import __version__ as paho_version
from paho.mqtt.enums import LogLevel
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PACKETS_PER_WAKEUP = 1000
RECV_BYTES = 256 * 1024
"""What one read of the socket may take (paho is then served from memory)."""

PAHO_INTERNALS = ("_packet_read", "_loop_rc_handle", "_sock_recv", "_packet_queue", "_easy_log")
PAHO_FIELDS = (
    "_on_message_filtered",
    "_logger",
    "on_log",
    "_manual_ack",
    "_in_packet",
    "_last_bytes_received",
    "_msgtime_mutex",
)
_PUBACK = struct.Struct("!BBH")
AIOMQTT_METHODS = ("_misc_loop", "_on_socket_open")
AIOMQTT_FIELDS = ("_client", "_loop", "_disconnected")


class MqttInternalsMoved(RuntimeError):
    """aiomqtt or paho-mqtt no longer has an internal this module relies on."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    """Skip hostname verification (test benches only)."""


class MqttBrokerConfig(_Strict):
    url: str = "mqtt://127.0.0.1:1883"
    """mqtt://host:port, or mqtts://host:port for TLS."""
    username: str | None = None
    password: str | None = Field(None, repr=False)
    client_id: str = Field(default_factory=lambda: f"vigil-{socket.gethostname()}")
    """Fixed, so the broker keeps this gateway's session while it is down."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    """3.1.1 by default: with manual acknowledgement the gateway ran ~1.5x faster on it than on 5
    (docs/benchmarks.md). With 3.1.1 the broker bounds unacknowledged messages in flight
    (mosquitto: max_inflight_messages; set it to ~1000, its default of 20 throttles)."""
    keepalive_s: int = Field(30, gt=0)
    session_expiry_s: int = Field(7 * 86_400, ge=0)
    """MQTT 5: how long the broker keeps the session (and queued messages) while we are away."""
    receive_maximum: int = Field(2000, gt=0, le=65535)
    """MQTT 5: unacknowledged QoS 1 messages in flight; bounds memory while the journal is busy."""
    tls: TlsConfig | None = None
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise ValueError("expected mqtt://host:port or mqtts://host:port")
        try:
            u.port  # noqa: B018  (raises on a bad port)
        except ValueError as e:
            raise ValueError(f"bad port in {v!r}: {e}") from None
        return v

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def uses_tls(self) -> bool:
        return urlparse(self.url).scheme in ("mqtts", "ssl") or self.tls is not None

    @property
    def port(self) -> int:
        return urlparse(self.url).port or (8883 if self.uses_tls else 1883)


def check_internals(client: aiomqtt.Client | None = None) -> None:
    """Raise MqttInternalsMoved naming what is missing; see the module docstring."""
    missing = [f"paho Client.{n}" for n in PAHO_INTERNALS if not hasattr(mqtt.Client, n)]
    missing += [f"aiomqtt Client.{n}" for n in AIOMQTT_METHODS if not hasattr(aiomqtt.Client, n)]
    if client is not None:
        missing += [f"aiomqtt Client().{n}" for n in AIOMQTT_FIELDS if not hasattr(client, n)]
        paho_client = getattr(client, "_client", None)
        missing += [f"paho Client().{n}" for n in PAHO_FIELDS if not hasattr(paho_client, n)]
    if missing:
        raise MqttInternalsMoved(
            f"collectors/mqtt/broker.py relies on internals that aiomqtt {aiomqtt.__version__} "
            f"/ paho-mqtt {paho_version} lacks: {', '.join(missing)}"
        )


class _NoTopicCallbacks(MQTTMatcher):
    """paho looks up per-topic callbacks (`message_callback_add`) for every message; vigil adds
    none, so the lookup finds nothing, at a cost."""

    def __setitem__(self, key: str, value: Any) -> None:
        raise NotImplementedError("GatewayClient has no per-topic callbacks")

    def iter_match(self, topic: str) -> Iterator[Any]:
        return iter(())


class _BufferedRecv:
    """paho's `_sock_recv` served from one large read of the socket. paho asks for a byte or a
    packet's rest at a time; an empty buffer is refilled through paho's own method, so its
    error handling (TLS wants, a closed socket) is unchanged."""

    __slots__ = ("data", "pos", "recv")

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self.recv = recv
        self.data = b""
        self.pos = 0

    def __call__(self, bufsize: int) -> bytes:
        if self.pos >= len(self.data):
            self.data = self.recv(RECV_BYTES)  # BlockingIOError when there is nothing
            self.pos = 0
            if not self.data:
                return self.data
        out = self.data[self.pos : self.pos + bufsize]
        self.pos += len(out)
        return out

    @property
    def buffered(self) -> bool:
        return self.pos < len(self.data)


def cut_publishes(data: bytes, pos: int, put: Callable[[aiomqtt.Message], None]) -> int:
    """Queue the complete MQTT 3.1.1 QoS 0/1 PUBLISH packets of `data` from `pos` on, in order, as
    aiomqtt Messages; stop at the first packet that is anything else, cut off by the end of the
    data, or not well formed (paho then reads it as usual). Returns the position reached."""
    end = len(data)
    while pos < end:
        b0 = data[pos]
        if b0 & 0xF0 != 0x30 or b0 & 0x06 > 0x02:  # not a PUBLISH of QoS 0 or 1
            break
        i, mult, length = pos + 1, 1, 0
        while i < end and i - pos <= 4:
            b = data[i]
            i += 1
            length += (b & 0x7F) * mult
            mult <<= 7
            if not b & 0x80:
                break
        else:
            break  # length cut off, or over 4 bytes (paho reports the protocol error)
        stop = i + length
        if stop > end or length < 2:
            break
        j = i + 2 + ((data[i] << 8) | data[i + 1])
        qos = (b0 >> 1) & 3
        mid = 0
        if qos:
            if j + 2 > stop:
                break
            mid = (data[j] << 8) | data[j + 1]
            j += 2
        elif j > stop:
            break
        try:
            msg = aiomqtt.Message(
                data[i + 2 : j - 2 * qos].decode(), data[j:stop], qos, bool(b0 & 1), mid, None
            )
        except ValueError:  # not UTF-8, or not a topic: paho's handling
            break
        put(msg)
        pos = stop
    return pos


class GatewayClient(aiomqtt.Client):
    """aiomqtt's client with manual acknowledgement, socket draining and batch taking."""

    def __init__(self, *args: Any, manual_ack: bool = False, **kwargs: Any) -> None:
        queues: list[asyncio.Queue[aiomqtt.Message]] = []

        class _Queue(asyncio.Queue[aiomqtt.Message]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                queues.append(self)

        super().__init__(*args, queue_type=_Queue, **kwargs)
        check_internals(self)
        self._batch_queue = queues[0]
        self._paho: mqtt.Client = self._client
        if manual_ack:
            self._paho.manual_ack_set(True)
        v311 = kwargs.get("protocol", aiomqtt.ProtocolVersion.V311) == aiomqtt.ProtocolVersion.V311
        self._fast_publish = manual_ack and v311
        """PUBLISH fast path (module docstring): paho would acknowledge by itself without manual
        acknowledgement, and MQTT 5 packets carry properties."""
        paho = self._paho
        self._recv = _BufferedRecv(paho._sock_recv)
        paho._sock_recv = self._recv  # type: ignore[method-assign]
        paho._on_message_filtered = _NoTopicCallbacks()
        logger = paho._logger
        if paho.on_log is None and not (logger and logger.isEnabledFor(logging.DEBUG)):
            log_packet = paho._easy_log

            def easy_log(level: LogLevel, fmt: str, *args: Any) -> None:
                if level != LogLevel.MQTT_LOG_DEBUG:
                    log_packet(level, fmt, *args)

            paho._easy_log = easy_log  # type: ignore[method-assign]

    def take_ready(self, limit: int) -> list[aiomqtt.Message]:
        """Messages already received and waiting, up to `limit`, without waiting for more."""
        q = self._batch_queue
        out: list[aiomqtt.Message] = []
        while len(out) < limit and not q.empty():
            out.append(q.get_nowait())
        return out

    def ack_all(self, acks: Sequence[tuple[int, int]]) -> None:
        """Acknowledge messages received with manual acknowledgement on: the QoS 1 ones (PUBACK,
        the same 4 bytes paho sends on 3.1.1 and 5) in one write, QoS 2 ones one by one."""
        paho = self._paho
        if not paho._manual_ack:
            return
        pack = _PUBACK.pack
        packet = b"".join([pack(mqtt.PUBACK, 2, mid) for mid, qos in acks if qos == 1])
        if packet:
            paho._packet_queue(mqtt.PUBACK, packet, 0, 1)
        for mid, qos in acks:
            if qos == 2:
                paho.ack(mid, qos)

    def _cut_publishes(self) -> None:
        """The PUBLISH fast path over what the read buffer holds, between two paho packets."""
        recv, paho = self._recv, self._paho
        if paho._in_packet["command"] != 0 or not recv.buffered:
            return
        pos = cut_publishes(recv.data, recv.pos, self._batch_queue.put_nowait)
        if pos != recv.pos:
            recv.pos = pos
            with paho._msgtime_mutex:
                paho._last_bytes_received = time.monotonic()

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        recv = self._recv
        fast = self._cut_publishes if self._fast_publish else None

        def drain() -> None:
            try:
                for _ in range(MAX_PACKETS_PER_WAKEUP):
                    if fast is not None:
                        fast()
                    rc = client._packet_read()
                    if rc == mqtt.MQTT_ERR_AGAIN:
                        break
                    if rc > 0:
                        client._loop_rc_handle(rc)
                        break
                else:
                    if recv.buffered:  # the socket may say nothing more: come back for these
                        self._loop.call_soon(drain)
            except Exception as exc:  # a broken socket: aiomqtt reports it as a disconnect
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def create_misc_task() -> None:
            self._misc_task = self._loop.create_task(self._misc_loop())

        self._loop.call_soon_threadsafe(self._loop.add_reader, sock.fileno(), drain)
        self._loop.call_soon_threadsafe(create_misc_task)


def client_for(
    broker: MqttBrokerConfig, *, client_id: str | None = None, manual_ack: bool = False
) -> GatewayClient:
    """A client for the configured broker with a persistent session."""
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
    return GatewayClient(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=client_id or broker.client_id,
        keepalive=broker.keepalive_s,
        timeout=10,
        manual_ack=manual_ack,
        **kwargs,
    )
