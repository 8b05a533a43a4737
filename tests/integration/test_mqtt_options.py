"""Broker options a site really uses: MQTT 3.1.1, TLS with a private CA, username/password."""

from __future__ import annotations

import ssl
import time

import orjson
import paho.mqtt.client as paho
import pytest

from tests.gateway_proc import Publisher, logger_messages
from tests.services import SecureMosquitto, poll


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_protocol_versions(mosquitto, make_gateway, protocol):
    gw = make_gateway(
        mosquitto.url,
        None,
        mqtt={"url": mosquitto.url, "protocol": protocol, "client_id": f"gw-{protocol}"},
    )
    gw.start()
    msgs, _expected = logger_messages(200, devices=4)
    pub = Publisher(mosquitto.port)
    pub.publish_all(msgs)
    poll(
        lambda: (
            gw.query("SELECT COUNT(*) FROM readings WHERE line LIKE 'coldchain,%'")[0][0] == 200
        ),
        20,
        what="200 readings journaled",
    )
    assert gw.stop() == 0
    pub.close()


def test_tls_and_password(tmp_path_factory, make_gateway):
    broker = SecureMosquitto(
        tmp_path_factory.mktemp("secure"), {"gateway": "s3cret-pw", "logger": "lg-pw"}
    )
    broker.start()
    try:
        gw = make_gateway(
            broker.url,
            None,
            mqtt={
                "url": broker.url,
                "username": "gateway",
                "client_id": "gw-tls",
                "tls": {"ca_file": str(broker.ca_file)},
            },
        )
        gw.env_extra = {"VIGIL_MQTT_PASSWORD": "s3cret-pw"}
        gw.start()
        assert b"s3cret-pw" not in gw.log.read_bytes()  # secrets never logged

        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tls-pub")
        pub.tls_set(ca_certs=str(broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        pub.username_pw_set("logger", "lg-pw")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        ts = int(time.time() * 1000)
        info = pub.publish(
            "vigil/s/a/tls-dev/telemetry", orjson.dumps({"ts": ts, "temp_c": 4.2}), qos=1
        )
        info.wait_for_publish(10)
        poll(
            lambda: gw.query("SELECT line FROM readings WHERE line LIKE '%tls-dev%'"),
            20,
            what="the TLS reading journaled",
        )
        pub.loop_stop()
        assert gw.stop() == 0
    finally:
        broker.stop()
        broker.remove()


def test_wrong_password_is_retried_not_fatal(tmp_path_factory, make_gateway):
    broker = SecureMosquitto(tmp_path_factory.mktemp("secure"), {"gateway": "right"})
    broker.start()
    try:
        gw = make_gateway(
            broker.url,
            None,
            mqtt={
                "url": broker.url,
                "username": "gateway",
                "client_id": "gw-bad",
                "tls": {"ca_file": str(broker.ca_file)},
                "reconnect_max_s": 1,
            },
        )
        gw.env_extra = {"VIGIL_MQTT_PASSWORD": "pw-Xq9-bad"}
        gw.start(wait_subscribed=False)
        poll(
            lambda: gw.log.read_bytes().count(b"MQTT connection lost; reconnecting") >= 2,
            20,
            what="reconnect attempts logged",
        )
        assert gw.alive()
        assert b"pw-Xq9-bad" not in gw.log.read_bytes()
        assert gw.stop() == 0
    finally:
        broker.stop()
        broker.remove()
