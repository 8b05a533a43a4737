"""The collector's MQTT client against a real broker: a burst read through the buffered socket
and the wake-up limit arrives whole and in order, and acknowledgements written as one packet per
batch are taken by the broker (nothing is redelivered to the persistent session)."""

from __future__ import annotations

import asyncio

import pytest

from collectors.mqtt import MqttBrokerConfig, broker, client_for
from tests.gateway_proc import Publisher
from tests.services import Mosquitto


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_a_burst_arrives_whole_and_its_batched_acks_hold(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    # a small wake-up limit leaves packets in the buffer with nothing more on the socket
    monkeypatch.setattr(broker, "MAX_PACKETS_PER_WAKEUP", 7)
    cfg = MqttBrokerConfig(url=mosquitto.url, client_id=f"burst-{protocol}", protocol=protocol)
    n = 3000
    msgs = [(f"t/d{i % 3}", str(i).encode()) for i in range(n)]
    got: list[tuple[str, int]] = []
    async with asyncio.timeout(30):
        async with client_for(cfg, manual_ack=True) as client:
            await client.subscribe("t/#", qos=1)
            pub = Publisher(mosquitto.port, client_id=f"burst-pub-{protocol}")
            await asyncio.to_thread(pub.publish_all, msgs)
            pub.close()
            async for first in client.messages:
                batch = [first, *client.take_ready(500)]
                got += [(m.topic.value, int(m.payload)) for m in batch]  # type: ignore[arg-type]
                client.ack_all([(m.mid, m.qos) for m in batch])
                if len(got) >= n:
                    break
            # the broker handles a connection's packets in order: its SUBACK for this means it
            # has taken every acknowledgement written before (a session taken over at once by
            # a new connection may lose what the old one had not yet read)
            await client.subscribe("t/sync", qos=1)
        assert sorted(i for _, i in got) == list(range(n))
        for d in range(3):  # per topic, in the order published
            seq = [i for t, i in got if t == f"t/d{d}"]
            assert seq == sorted(seq)

        # the same session again: a marker published now must be the first thing it gets, as
        # the broker would resend every unacknowledged message first
        async with client_for(cfg, manual_ack=True) as client:
            await client.subscribe("t/#", qos=1)
            pub = Publisher(mosquitto.port, client_id=f"burst-pub2-{protocol}")
            await asyncio.to_thread(pub.publish_all, [("t/marker", b"-1")])
            pub.close()
            async for m in client.messages:
                assert (m.topic.value, m.payload) == ("t/marker", b"-1")
                client.ack_all([(m.mid, m.qos)])
                break
