"""The MQTT client's reliance on aiomqtt/paho internals: checked, and loud when one moves."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from collectors.mqtt import MqttBrokerConfig, client_for
from collectors.mqtt.broker import MqttInternalsMoved, check_internals

BROKER = MqttBrokerConfig(url="mqtt://127.0.0.1:1", client_id="vigil-test")


async def test_the_installed_libraries_have_every_internal_we_use() -> None:
    client = client_for(BROKER, manual_ack=True)
    check_internals(client)
    assert client.take_ready(10) == []


@pytest.mark.parametrize("name", ["_packet_read", "_loop_rc_handle"])
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
