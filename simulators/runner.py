"""Publish a scenario's traffic to an MQTT broker, paced by the simulated clock.

The fleet says what to send and at which simulated instant; this module maps simulated time to
wall time (`speed`), publishes with a bounded window of unacknowledged messages (order kept: paho
sends in call order), and counts what the broker acknowledged. If the connection drops after it
was once up, it reconnects with backoff and resends the unacknowledged messages first, in order
(at-least-once, like a real QoS 1 device); a broker that is unreachable at the start is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, urlsplit

import aiomqtt

from simulators.fleet import Fleet
from simulators.loggers import Outgoing
from simulators.scenario import Scenario

log = logging.getLogger("vigil.simulators")

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
PUBLISH_TIMEOUT_S = 30.0
"""Per-message acknowledgement deadline; a dropped connection is noticed sooner (see _Session)."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_mqtt_url(url: str) -> BrokerAddress:
    """mqtt://[user:pass@]host[:port] or mqtts://... (default ports 1883 / 8883)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"mqtt", "mqtts", "tcp", "ssl"} or not parts.hostname:
        raise ValueError(f"not an MQTT URL: {url!r} (expected mqtt://host:port or mqtts://...)")
    tls = scheme in {"mqtts", "ssl"}
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as e:
        raise ValueError(f"bad port in MQTT URL {url!r}: {e}") from None
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(slots=True)
class DeviceStats:
    """What the broker acknowledged for one device."""

    topic: str
    readings: int = 0
    """Readings published, live and inside batches."""
    messages: int = 0
    """MQTT messages published, malformed ones included."""
    batches: int = 0
    malformed: int = 0
    buffered: int = 0
    """Readings still in the device's offline buffer at the end (never uploaded)."""
    dropped: int = 0
    """Readings lost to a full offline buffer."""


@dataclass(slots=True)
class SimStats:
    devices: dict[str, DeviceStats]
    """Keyed by "site/asset/device"."""
    start: datetime
    """Simulated time of t=0; reading timestamps are start + t."""
    sim_seconds: float = 0.0
    """Simulated time covered (the duration, unless stopped early)."""
    wall_seconds: float = 0.0
    reconnects: int = 0
    stopped: bool = False
    """Ended by the stop event rather than by reaching the duration."""

    @property
    def readings(self) -> int:
        return sum(d.readings for d in self.devices.values())

    @property
    def messages(self) -> int:
        return sum(d.messages for d in self.devices.values())

    def record(self, out: Outgoing) -> None:
        d = self.devices[out.device]
        d.messages += 1
        d.readings += out.readings
        if out.kind == "batch":
            d.batches += 1
        elif out.kind == "malformed":
            d.malformed += 1


class _Broken(Exception):
    """The connection dropped; the session's unacknowledged messages must be resent."""


class _Session:
    """One connection: publishes with at most `window` unacknowledged messages."""

    def __init__(
        self, client: aiomqtt.Client, qos: int, window: int, on_acked: Callable[[Outgoing], None]
    ) -> None:
        self._client = client
        self._qos = qos
        self._sem = asyncio.Semaphore(window)
        self._on_acked = on_acked
        self._seq = 0
        self.unacked: dict[int, Outgoing] = {}
        """Insertion (= send) order: resent in this order after a reconnect."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.error: BaseException | None = None
        self.callback_error: Exception | None = None
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        # aiomqtt's message iterator raises when the connection drops; nothing is subscribed.
        try:
            async for _ in self._client.messages:
                pass
        except aiomqtt.MqttError as e:
            self._break(e)

    def _break(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            for t in self._tasks:
                t.cancel()

    async def send(self, out: Outgoing) -> None:
        self._seq += 1
        seq = self._seq
        self.unacked[seq] = out
        await self._sem.acquire()
        if self.callback_error is not None:
            self._sem.release()
            raise self.callback_error
        if self.error is not None:
            self._sem.release()
            raise _Broken from self.error
        task = asyncio.create_task(self._publish(seq, out))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, seq: int, out: Outgoing) -> None:
        try:
            await self._client.publish(
                out.topic, out.payload, qos=self._qos, timeout=PUBLISH_TIMEOUT_S
            )
        except aiomqtt.MqttError as e:
            self._break(e)
        else:
            del self.unacked[seq]
            try:
                self._on_acked(out)
            except Exception as e:  # the caller's bug: surface it, do not lose it in a task
                self.callback_error = self.callback_error or e
        finally:
            self._sem.release()

    async def drain(self) -> None:
        """Wait for every acknowledgement; _Broken if the connection dropped meanwhile."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.callback_error is not None:
            raise self.callback_error
        if self.error is not None:
            raise _Broken from self.error

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        self._watcher.cancel()
        await asyncio.gather(self._watcher, *list(self._tasks), return_exceptions=True)


class _Pacer:
    """Maps simulated ms to wall time; speed 0 means no waiting."""

    def __init__(self, speed: float, stop: asyncio.Event) -> None:
        self.speed = speed
        self.stop = stop
        self.t0 = time.monotonic()
        self._since_yield = 0

    async def wait_until(self, t_ms: int) -> None:
        if self.speed == 0:
            self._since_yield += 1
            if self._since_yield >= 256:  # let acknowledgements and the stop event in
                self._since_yield = 0
                await asyncio.sleep(0)
            return
        delay = self.t0 + t_ms / 1000.0 / self.speed - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stop.wait()


async def run_scenario(
    scenario: Scenario,
    mqtt_url: str,
    *,
    stop: asyncio.Event | None = None,
    on_publish: Callable[[Outgoing], None] | None = None,
    username: str | None = None,
    password: str | None = None,
    start: datetime | None = None,
) -> SimStats:
    """Run the scenario against the broker until its duration has passed or `stop` is set.

    `on_publish` is called with every message once the broker has acknowledged it (QoS >= 1).
    `start` fixes the simulated start (default: fleet.resolve_start). Counts in the returned
    SimStats are acknowledged messages; after a reconnect the broker may have seen a few twice.
    """
    address = parse_mqtt_url(mqtt_url)
    stop = stop or asyncio.Event()
    fleet = Fleet(scenario, start=start)
    stats = SimStats(
        devices={lg.key: DeviceStats(topic=lg.topic) for lg in fleet.loggers},
        start=fleet.start,
    )
    if scenario.plcs:
        log.info("%d PLCs in the scenario are left to simulators.plc", len(scenario.plcs))

    def acked(out: Outgoing) -> None:
        stats.record(out)
        if on_publish is not None:
            on_publish(out)

    pacer = _Pacer(scenario.speed, stop)
    last_t = await _publish_all(
        scenario, address, username, password, fleet.messages(), pacer, stop, acked, stats
    )
    stats.wall_seconds = time.monotonic() - pacer.t0
    stats.stopped = stop.is_set() and last_t is not None
    stats.sim_seconds = scenario.duration if last_t is None else last_t / 1000.0
    for key, (buffered, dropped) in fleet.pending().items():
        stats.devices[key].buffered = buffered
        stats.devices[key].dropped = dropped
    log.info(
        "scenario %s: %d messages, %d readings from %d devices in %.1f s",
        scenario.name,
        stats.messages,
        stats.readings,
        len(stats.devices),
        stats.wall_seconds,
    )
    return stats


def _client(
    scenario: Scenario, address: BrokerAddress, username: str | None, password: str | None
) -> aiomqtt.Client:
    window = scenario.broker.max_inflight
    client = aiomqtt.Client(
        address.host,
        address.port,
        username=username or address.username,
        password=password or address.password,
        identifier=scenario.broker.client_id,
        clean_session=True,
        timeout=PUBLISH_TIMEOUT_S,
        max_inflight_messages=window,
        tls_context=ssl.create_default_context() if address.tls else None,
    )
    client.pending_calls_threshold = window + 16  # the window is intended, not a warning
    return client


async def _publish_all(
    scenario: Scenario,
    address: BrokerAddress,
    username: str | None,
    password: str | None,
    messages: Iterator[Outgoing],
    pacer: _Pacer,
    stop: asyncio.Event,
    acked: Callable[[Outgoing], None],
    stats: SimStats,
) -> int | None:
    """Publish everything; the simulated ms reached when stopped early, None when complete."""
    resend: list[Outgoing] = []
    connected_once = False
    backoff = 0.1
    last_t = 0
    while True:
        session: _Session | None = None
        try:
            async with _client(scenario, address, username, password) as client:
                connected_once = True
                backoff = 0.1
                session = _Session(client, scenario.broker.qos, scenario.broker.max_inflight, acked)
                queue = deque(resend)
                try:
                    while queue:
                        await session.send(queue[0])
                        queue.popleft()
                    for out in messages:
                        last_t = out.t_ms
                        await pacer.wait_until(out.t_ms)
                        if stop.is_set():
                            await session.drain()
                            return last_t
                        await session.send(out)
                    await session.drain()
                    return None
                finally:
                    resend = [*session.unacked.values(), *queue]
                    await session.close()
        except (aiomqtt.MqttError, _Broken) as e:
            if not connected_once:
                raise
            stats.reconnects += 1
            log.warning(
                "MQTT connection to %s:%d lost (%s); %d messages to resend",
                address.host,
                address.port,
                e,
                len(resend),
            )
            if stop.is_set():
                return last_t
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stop.wait()
            backoff = min(backoff * 2, 5.0)
