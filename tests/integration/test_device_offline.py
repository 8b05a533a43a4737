"""Offline devices are alarms: the gateway in process, a simulated PLC over Modbus TCP unplugged
and plugged back, `device_offline` raised within its configured time, shown on /api/v1/devices
and /metrics, cleared when the PLC answers again; and an MQTT logger that goes silent."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
import yaml

from collectors.mqtt.collector import MqttCollector
from collectors.mqtt.config import MqttCollectorConfig
from gateway.api import create_app
from gateway.app import Gateway
from gateway.config import load_config
from gateway.core.metrics import Counters
from gateway.core.ports import SourceStatus
from gateway.records.users import Role
from tests.integration import modbus_fixtures as mf
from tests.services import Mosquitto, apoll, free_port

pytestmark = pytest.mark.integration
plc_factory = mf.plc_factory

ON_DELAY_S = 2.0
S = 1_000_000_000


async def test_a_plc_that_stops_answering_raises_device_offline_and_clears_when_back(
    tmp_path: Path, plc_factory: mf.PlcFactory
) -> None:
    (plc,) = await plc_factory([{"name": "G1", "kind": "generic", "params": {"float32": 2}}])
    fast = {"interval_s": 0.2, "timeout_s": 0.3, "retries": 0, "offline_after": 2}
    config: dict[str, Any] = {
        "gateway": {"name": "gw-offline", "data_dir": str(tmp_path / "data")},
        "api": {"enabled": True, "port": free_port()},
        "mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}"},
        "collectors": [
            {"kind": "modbus", "name": "line1", "defaults": {"line": "L1", **fast},
             "profiles": {"generic": plc.profile()},
             "devices": [plc.device_config(profile="generic", equipment="mixer-1")]}
        ],
        "rules": {"bindings": [
            {"profile": "liveness", "line": "L1",
             "overrides": {"device_offline": {"on_delay": f"{ON_DELAY_S}s"}}}
        ]},
    }  # fmt: skip
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = Gateway(load_config(path, env={}))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop, config_path=path))
    try:
        assert gw.api is not None and gw.alerting is not None
        gw.records.users.add("reg", "Regina Regulator", Role.VIEWER, "viewer-password-1")
        token = gw.api.tokens.issue("reg")[0]
        transport = httpx.ASGITransport(app=create_app(gw.api))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            h = {"Authorization": f"Bearer {token}"}

            async def device() -> dict[str, Any]:
                r = await http.get("/api/v1/devices", headers=h)
                return {d["device"]: d for d in r.json()}.get("G1", {})

            async def offline_alerts() -> list[dict[str, Any]]:
                q = {"rule": "liveness.device_offline"}
                return (await http.get("/api/v1/alerts", params=q, headers=h)).json()

            await apoll(lambda: _is(device(), "online", True), 15, what="the PLC online")
            # its first readings reach the live view a moment after the first good poll
            await apoll(lambda: _is(device(), "state", "ok"), 15, what="the PLC's state ok")

            unplugged = time.time_ns()
            plc.inject("unplug")
            [alert] = await apoll(offline_alerts, 15, what="device_offline raised")
            got = await device()
            assert got["online"] is False and got["state"] == "alarm"  # an open alert on it
            since = _ns(got["online_since"])
            assert got["last_error"] and got["address"].startswith("modbus://127.0.0.1:")
            # raised `on_delay` after the collector declared it offline, seen at the next tick
            assert alert["source"] == "L1/mixer-1/G1" and alert["severity"] == "high"
            assert abs(_ns(alert["raised_at"]) - since - ON_DELAY_S * S) < 1_000_000  # (µs in JSON)
            assert abs(_ns(alert["started_at"]) - since) < 1_000_000
            detail = (await http.get(f"/api/v1/alerts/{alert['id']}", headers=h)).json()
            detected = _ns(detail["history"][0]["wall"])
            assert since - unplugged < 2 * S  # two failed polls of 0.2 s (0.3 s timeout)
            assert detected - since <= (ON_DELAY_S + 1.5) * S  # + one 1 s rules tick
            assert alert["message"].startswith("device offline since ")
            metrics = (await http.get("/metrics")).text
            assert any(
                line.startswith("vigil_source_online{") and 'device="G1"' in line
                and line.endswith(" 0.0")
                for line in metrics.splitlines()
            )  # fmt: skip

            plc.clear("unplug")

            async def cleared() -> bool:
                [a] = await offline_alerts()
                return a["active"] is False

            await apoll(cleared, 15, what="device_offline cleared")
            [a] = await offline_alerts()
            assert a["state"] == "rtn_unacknowledged" and a["id"] == alert["id"]
            back = await device()
            assert back["online"] is True
            assert abs(_ns(a["ended_at"]) - _ns(back["online_since"])) < 1_000_000
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


async def _is(d: Any, key: str, value: object) -> bool:
    return bool((await d).get(key) == value)


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e9 + 0.5)


async def test_a_silent_logger_goes_offline_after_its_expected_interval(
    mosquitto: Mosquitto,
) -> None:
    """The MQTT collector on a real broker: a logger publishing every 0.5 s (configured) is
    offline after 3 intervals without a message, online again with its next one."""
    config = MqttCollectorConfig.model_validate(
        {"kind": "mqtt", "name": "loggers",
         "broker": {"url": mosquitto.url, "client_id": "vigil-liveness-test"},
         "subscriptions": [{"topic": "vigil/{site}/{asset}/{device}/telemetry",
                            "expected_interval_s": 0.5}]}
    )  # fmt: skip
    ingest = mf.RecordingIngest()
    col = MqttCollector(config, ingest, Counters())
    task = asyncio.create_task(col.run())
    topic = "vigil/wh1/fridge-1/lg-1/telemetry"
    try:
        await apoll(lambda: col.connected.is_set(), 15, what="subscribed")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="logger-1") as logger:

            async def publish() -> None:
                await logger.publish(topic, orjson.dumps({"temp_c": 5.0}), qos=1)

            def lg1() -> SourceStatus | None:
                return next((s for s in col.status() if s.device == "lg-1"), None)

            await publish()
            await apoll(lambda: lg1() is not None, 10, what="the logger known")
            st = lg1()
            assert st is not None and st.online is True and st.kind == "mqtt"
            assert st.measurement == "coldchain"
            assert st.tags == {"site": "wh1", "asset": "fridge-1", "device": "lg-1"}
            last = st.last_seen_ns
            await apoll(lambda: lg1().online is False, 10, what="offline after 1.5 s of silence")  # type: ignore[union-attr]
            st = lg1()
            assert st is not None and st.since_ns == last + 1_500_000_000
            assert "no message for" in st.last_error and "(expected every 0.5 s)" in st.last_error
            await publish()
            await apoll(lambda: lg1().online is True, 10, what="online again")  # type: ignore[union-attr]
            assert lg1().since_ns > last + 1_500_000_000  # type: ignore[union-attr]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
