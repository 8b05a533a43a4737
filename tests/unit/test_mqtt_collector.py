"""The MQTT collector's receive loop: one poison message never raises out of it (issue 14).

Before, a RecursionError or OverflowError escaped `_consume`, the supervisor restarted the
collector, the broker redelivered the same unacknowledged message, and it crashed again for ever.
Here the loop runs over a stand-in for aiomqtt's client; every message ends as readings or a dead
letter, and every one is acknowledged once committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson

from collectors.mqtt import MqttBrokerConfig
from collectors.mqtt.collector import MqttCollector
from collectors.mqtt.config import MqttCollectorConfig
from gateway.core.metrics import Counters
from gateway.core.reading import DeadLetter, Reading

GOOD = orjson.dumps({"ts": 1_700_000_000_000, "temp_c": 4.0})


class Topic:
    def __init__(self, value: str | None) -> None:
        self._value = value

    @property
    def value(self) -> str:
        if self._value is None:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return self._value


class Message:
    def __init__(self, mid: int, topic: str | None, payload: Any) -> None:
        self.mid, self.qos, self.topic, self.payload = mid, 1, Topic(topic), payload


class Client:
    """What `_consume` uses of the collector's client (collectors/mqtt/broker.py GatewayClient):
    `messages`, `take_ready`, `ack_all`."""

    def __init__(self, messages: list[Message]) -> None:
        self.acked: list[int] = []
        self._first = messages[0]
        self._rest = messages[1:]

    @property
    async def messages(self) -> AsyncIterator[Message]:
        yield self._first

    def take_ready(self, limit: int) -> list[Message]:
        out, self._rest = self._rest[:limit], self._rest[limit:]
        return out

    def ack_all(self, acks: Sequence[tuple[int, int]]) -> None:
        self.acked += [mid for mid, _ in acks]


class Ingest:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.dead: list[DeadLetter] = []

    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        self.readings += readings
        self.dead += dead
        if on_committed is not None:
            on_committed()


async def test_every_poison_message_is_dead_lettered_and_acknowledged() -> None:
    ingest = Ingest()
    config = MqttCollectorConfig.model_validate({"kind": "mqtt"})
    config.broker = MqttBrokerConfig()
    col = MqttCollector(config, ingest, Counters())
    real_parse = col.parser.parse

    def parse(sub: Any, topic: str, tags: Any, payload: bytes, received_ns: int) -> Any:
        if payload == b"boom":
            raise AssertionError("a bug")  # as if parse itself had a hole
        return real_parse(sub, topic, tags, payload, received_ns)

    col.parser.parse = parse  # type: ignore[method-assign]
    t = "vigil/s/a/{}/telemetry"
    messages = [
        Message(1, t.format("d1"), GOOD),
        Message(2, t.format("d2"), b"[" * 100_000 + b"]" * 100_000),
        Message(3, None, GOOD),  # the topic cannot even be read
        Message(4, t.format("d4"), b"boom"),
        Message(5, t.format("d5"), b'{"ts": 1e303, "temp_c": 5}'),
        Message(6, t.format("d6"), b'{"ts": "0001-01-01T00:00:00+14:00", "temp_c": 5}'),
        Message(7, t.format("d\n7"), GOOD),
        Message(8, t.format("d8"), bytearray(GOOD)),  # not bytes: converted
        Message(9, t.format("d9"), GOOD),
    ]
    client = Client(messages)
    async with asyncio.timeout(10):
        await col._consume(client, col._session)  # type: ignore[arg-type]
    assert client.acked == list(range(1, 10))  # every message, once committed
    assert sorted(r.tags["device"] for r in ingest.readings) == ["d1", "d8", "d9"]
    reasons = {d.source.split("/")[3] if d.source.count("/") == 4 else d.source: d.reason
               for d in ingest.dead}  # fmt: skip
    assert len(ingest.dead) == 6
    assert reasons["d2"].startswith("JSON nested too deep")
    assert reasons[""] == (
        "internal error: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0:"
        " invalid start byte"
    )
    assert reasons["d4"] == "internal error: AssertionError: a bug"
    assert "the end of the stored time range" in reasons["d5"]
    assert "(min_event_time)" in reasons["d6"]
    assert reasons["d\n7"].startswith("topic segment tag 'device' contains a control character")
    assert col.counters.received == 9 and col.counters.readings_parsed == 3
