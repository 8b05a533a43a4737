"""The MQTT client's reliance on aiomqtt/paho internals: checked, and loud when one moves."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.mqtt import MqttBrokerConfig, client_for
from collectors.mqtt.broker import RECV_BYTES, MqttInternalsMoved, _BufferedRecv, check_internals

BROKER = MqttBrokerConfig(url="mqtt://127.0.0.1:1", client_id="vigil-test")


async def test_the_installed_libraries_have_every_internal_we_use() -> None:
    client = client_for(BROKER, manual_ack=True)
    check_internals(client)
    assert client.take_ready(10) == []


@pytest.mark.parametrize(
    "name", ["_packet_read", "_loop_rc_handle", "_sock_recv", "_packet_queue", "_easy_log"]
)
async def test_a_moved_paho_internal_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delattr(mqtt.Client, name)
    with pytest.raises(MqttInternalsMoved, match=name):
        client_for(BROKER)


async def test_manual_acknowledgement_is_switched_on() -> None:
    client = client_for(BROKER, manual_ack=True)
    assert client._paho._manual_ack is True  # paho's own flag behind manual_ack_set
    assert client_for(BROKER)._paho._manual_ack is False


async def test_acknowledgements_of_a_batch_go_out_as_one_write() -> None:
    client = client_for(BROKER, manual_ack=True)
    paho = client._paho
    paho._out_packet.clear()
    client.ack_all([(1, 1), (2, 1), (65535, 1)])
    assert len(paho._out_packet) == 1
    packet = paho._out_packet[0]
    # what paho's own ack() queues for each: PUBACK, remaining length 2, the message id
    assert packet["packet"] == b"\x40\x02\x00\x01" + b"\x40\x02\x00\x02" + b"\x40\x02\xff\xff"
    assert packet["to_process"] == 12
    one = client_for(BROKER, manual_ack=True)._paho
    one._out_packet.clear()
    one.ack(7, 1)
    assert one._out_packet[0]["packet"] == b"\x40\x02\x00\x07"


async def test_nothing_is_acknowledged_without_manual_acknowledgement() -> None:
    client = client_for(BROKER)
    client._paho._out_packet.clear()
    client.ack_all([(1, 1)])
    assert not client._paho._out_packet  # paho acknowledged it itself on receipt


class _Socket:
    """Delivers a byte stream in the given chunks, then says there is nothing more."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.asked: list[int] = []

    def recv(self, n: int) -> bytes:
        self.asked.append(n)
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)


@given(
    stream=st.binary(min_size=1, max_size=2000),
    cuts=st.lists(st.integers(1, 300), max_size=30),
    asks=st.lists(st.integers(1, 500), min_size=1, max_size=50),
)
def test_buffered_recv_serves_the_stream_as_sent(
    stream: bytes, cuts: list[int], asks: list[int]
) -> None:
    """However the socket chunks it and paho asks for it, paho gets the bytes in order, never
    more than it asked for, and BlockingIOError only once everything read is served."""
    chunks, rest = [], stream
    for c in cuts:
        if rest:
            chunks.append(rest[:c])
            rest = rest[c:]
    if rest:
        chunks.append(rest)
    sock = _Socket(chunks)
    recv = _BufferedRecv(sock.recv)
    got = b""
    i = 0
    while True:
        n = asks[i % len(asks)]
        i += 1
        try:
            part = recv(n)
        except BlockingIOError:
            assert not recv.buffered
            break
        assert 0 < len(part) <= n
        got += part
    assert got == stream
    assert all(n == RECV_BYTES for n in sock.asked)


def test_buffered_recv_passes_a_closed_connection_on() -> None:
    recv = _BufferedRecv(_Socket([b"\x30", b""]).recv)
    assert recv(1) == b"\x30"
    assert recv(1) == b""  # paho: connection lost


async def test_per_topic_callbacks_are_refused_not_ignored() -> None:
    client = client_for(BROKER, manual_ack=True)
    with pytest.raises(NotImplementedError):
        client._paho.message_callback_add("a/#", lambda *a: None)
