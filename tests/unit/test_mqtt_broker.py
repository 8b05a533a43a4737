"""The MQTT client's reliance on aiomqtt/paho internals: checked, and loud when one moves."""

from __future__ import annotations

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt._packet import decode_publish
from paho.mqtt.enums import MQTTProtocolVersion

from collectors.mqtt import MqttBrokerConfig, client_for
from collectors.mqtt.broker import (
    RECV_BYTES,
    MqttInternalsMoved,
    _BufferedRecv,
    check_internals,
    cut_publishes,
)

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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = n >> 7, n & 0x7F
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish(topic: bytes, payload: bytes, qos: int, retain: bool, mid: int) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += payload
    return bytes([0x30 | qos << 1 | retain]) + _varint(len(body)) + body


_TOPICS = st.text(
    st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)), min_size=1
).map(str.encode)
_PUBLISHES = st.tuples(
    _TOPICS, st.binary(max_size=300), st.sampled_from([0, 1]), st.booleans(), st.integers(1, 65535)
)
_OTHERS = st.sampled_from(
    [
        b"\x40\x02\x00\x07",  # PUBACK
        b"\xd0\x00",  # PINGRESP
        _publish(b"a/b", b"qos 2", 2, False, 9),
        _publish(b"", b"empty topic", 1, False, 3),
        _publish(b"\xff\xfe", b"not UTF-8", 1, False, 4),
        _publish(b"a/+", b"a wildcard", 0, False, 0),
    ]
)


def _as_paho(packet: bytes) -> tuple[str, bytes, int, bool, int]:
    i = 1
    while packet[i] & 0x80:
        i += 1
    p = decode_publish(packet[0], packet[i + 1 :], MQTTProtocolVersion.MQTTv311)
    return p.topic.decode(), p.payload, p.qos, p.retain, p.mid


def _fields(m: aiomqtt.Message) -> tuple[str, bytes, int, bool, int]:
    assert isinstance(m.payload, bytes)
    return m.topic.value, m.payload, m.qos, m.retain, m.mid


@given(st.lists(_PUBLISHES.map(lambda t: (_publish(*t), True)) | _OTHERS.map(lambda p: (p, False))))
def test_the_publish_fast_path_reads_what_paho_reads_and_leaves_the_rest(
    stream: list[tuple[bytes, bool]],
) -> None:
    """QoS 0/1 PUBLISHes are cut out as paho decodes them, up to the first packet that is
    anything else (QoS 2, another packet type, a topic paho refuses), which is left, with all
    after it, for paho."""
    data = b"xx" + b"".join(p for p, _ in stream)
    got: list[aiomqtt.Message] = []
    pos = cut_publishes(data, 2, got.append)
    plain = []
    for packet, ok in stream:
        if not ok:
            break
        plain.append(packet)
    assert pos == 2 + sum(map(len, plain))
    assert [_fields(m) for m in got] == [_as_paho(p) for p in plain]


@given(st.lists(_PUBLISHES, min_size=1, max_size=10), st.data())
def test_a_packet_cut_off_by_the_read_is_left_for_paho(
    publishes: list[tuple[bytes, bytes, int, bool, int]], data: st.DataObject
) -> None:
    packets = [_publish(*t) for t in publishes]
    stream = b"".join(packets)
    cut = data.draw(st.integers(0, len(stream)))
    got: list[aiomqtt.Message] = []
    pos = cut_publishes(stream[:cut], 0, got.append)
    ends = [sum(map(len, packets[: k + 1])) for k in range(len(packets))]
    whole = [e for e in ends if e <= cut]
    assert pos == (whole[-1] if whole else 0)
    assert [_fields(m) for m in got] == [_as_paho(p) for p in packets[: len(whole)]]


async def test_the_fast_path_is_on_only_where_paho_would_not_acknowledge_by_itself() -> None:
    assert client_for(BROKER, manual_ack=True)._fast_publish
    assert not client_for(BROKER)._fast_publish
    v5 = MqttBrokerConfig(url="mqtt://127.0.0.1:1", client_id="vigil-test", protocol="5")
    assert not client_for(v5, manual_ack=True)._fast_publish
