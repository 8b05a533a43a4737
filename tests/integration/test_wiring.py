"""The gateway's wiring (gateway/app.py), run in-process: records do not depend on the API, and
every collector kind reports its devices' status through /api/v1/devices and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.api import create_app
from gateway.app import Gateway
from gateway.config import load_config
from gateway.core.reading import Reading
from gateway.records.users import Role
from tests.integration import modbus_fixtures as mf
from tests.services import apoll, free_port

plc_factory = mf.plc_factory


def write_config(tmp_path: Path, extra: dict[str, Any]) -> Path:
    doc: dict[str, Any] = {
        "gateway": {"name": "gw-wiring", "data_dir": str(tmp_path / "data")},
        "rules": {"enabled": False},
        **extra,
    }
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@contextlib.asynccontextmanager
async def running(path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(load_config(path, env={}))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop, config_path=path))
    try:
        yield gw
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


async def test_without_the_api_readings_get_their_shipment_tag_and_config_is_audited(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, {"api": {"enabled": False}})
    now = time.time_ns()
    async with running(path) as gw:
        assert gw.api is None
        gw.records.shipments.start(
            "truck-1", "vaccine_2_8", "tester", shipment_id="S-1", now_ns=now - 60 * 10**9
        )
        tags = {"site": "dc", "asset": "truck-1", "device": "lg-1"}
        await gw.writer.submit([Reading("coldchain", tags, {"temp_c": 5.0}, now, now)])

        def tagged() -> bool:
            return any("shipment=S-1" in row.line for row in gw.journal.read_after(0, 100))

        await apoll(tagged, 10, what="a journal line with the shipment tag")
        await apoll(
            lambda: gw.records.shipments.reading_count("S-1") == 1,
            10,
            what="the reading kept for the shipment report",
        )
        rows = gw.records.audit.rows(action="config.change")
        assert [r.entity_id for r in rows] == [str(path)]


async def test_devices_and_metrics_show_plc_and_broker_connection_status(
    tmp_path: Path, plc_factory: mf.PlcFactory
) -> None:
    (plc,) = await plc_factory([{"name": "G1", "kind": "generic", "params": {"float32": 2}}])
    dead_port = free_port()
    fast = {"interval_s": 0.2, "timeout_s": 0.3, "retries": 0, "offline_after": 1}
    modbus = {
        "kind": "modbus",
        "name": "line1",
        "defaults": {"line": "L1", **fast},
        "profiles": {"generic": plc.profile()},
        "devices": [
            plc.device_config(profile="generic"),
            {**plc.device_config(profile="generic"), "name": "DEAD", "port": dead_port},
        ],
    }
    mqtt = {"kind": "mqtt", "name": "loggers"}
    path = write_config(
        tmp_path,
        {
            "api": {"enabled": True, "port": free_port()},
            "mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}", "reconnect_max_s": 1},
            "collectors": [modbus, mqtt],
        },
    )
    async with running(path) as gw:
        assert gw.api is not None
        gw.records.users.add("reg", "Regina Regulator", Role.VIEWER, "viewer-password-1")
        token = gw.api.tokens.issue("reg")[0]
        transport = httpx.ASGITransport(app=create_app(gw.api))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            headers = {"Authorization": f"Bearer {token}"}

            async def by_name() -> dict[str, dict[str, Any]]:
                r = await http.get("/api/v1/devices", headers=headers)
                assert r.status_code == 200, r.text
                return {d["device"]: d for d in r.json()}

            seen: dict[str, dict[str, Any]] = {}

            async def decided() -> bool:
                seen.update(await by_name())
                return (
                    seen.get("G1", {}).get("online") is True
                    and seen.get("DEAD", {}).get("online") is False
                    and seen.get("loggers", {}).get("online") is False
                )

            await apoll(decided, 15, what="PLC online, dead PLC and broker offline")
            assert seen["G1"]["state"] == "ok" and seen["G1"]["collector"] == "line1"
            dead = seen["DEAD"]
            assert dead["state"] == "offline"
            assert dead["address"] == f"modbus://127.0.0.1:{dead_port}/1"
            assert "connect" in dead["last_error"] and dead["online_since"] is not None
            broker = seen["loggers"]
            assert broker["kind"] == "connection" and broker["state"] == "offline"
            assert broker["last_error"] and broker["address"].startswith("mqtt://127.0.0.1:")
            metrics = (await http.get("/metrics")).text
        dead_line = (
            f'vigil_source_online{{address="modbus://127.0.0.1:{dead_port}/1",'
            'collector="line1",device="DEAD",kind="modbus"} 0.0'
        )
        assert dead_line in metrics.splitlines()
        assert 'vigil_component_events_total{component="collector:line1",counter="polls_ok"}' in (
            metrics
        )
        point = gw.counters.point("gw-wiring", 0)
        assert point.fields["received"] >= 1  # Modbus polls count as received messages too
