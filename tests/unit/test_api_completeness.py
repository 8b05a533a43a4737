"""GET /api/v1/devices/{source}/completeness: the GSP record completeness of one device."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.api import create_app
from gateway.core.reading import Reading
from gateway.records.users import Role
from tests.api_rig import Rig, coldchain, make_rig

S = 1_000_000_000
MIN = 60 * S
T0 = 1_795_003_200 * S  # 2026-11-18T12:00:00Z


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path)
    # logger-1 records every 5 minutes for 3 hours, but not from minute 60 to 129
    r.feed([coldchain(5.0, T0 + m * MIN) for m in range(0, 180, 5) if not 60 <= m < 130])
    # a truck's logger on the road (readings tagged with a shipment): every 6 minutes, which
    # misses the 5-minute transport cadence
    tags = {"site": "road", "asset": "truck-7", "device": "lg-t", "shipment": "S1"}
    r.feed([Reading("coldchain", tags, {"temp_c": 5.0}, T0 + m * MIN, T0) for m in range(0, 60, 6)])
    yield r
    r.close()


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_share_of_slots_and_the_gaps(rig: Rig, client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/v1/devices/wh1/fridge-1/logger-1/completeness",
        params={"since": iso(T0), "until": iso(T0 + 180 * MIN)},
        headers=rig.headers(Role.VIEWER),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "wh1/fridge-1/logger-1" and body["measurement"] == "coldchain"
    # six 30-minute storage slots; nothing from minute 55 to 130: two of them empty
    assert (body["slots"], body["filled"], body["share"]) == (6, 4, pytest.approx(4 / 6))
    [gap] = body["gaps"]
    assert gap["start"] == "2026-11-18T12:55:00Z" and gap["end"] == "2026-11-18T14:10:00Z"
    assert gap["duration_s"] == 75 * 60 and gap["missed_slots"] == 2
    assert body["cadence"] == {
        "rule": "vaccine_2_8.record_gap",
        "context": None,
        "storage_s": 1800.0,
        "transport_s": 300.0,
        "out_of_range_s": 120.0,
        "low": 2.0,
        "high": 8.0,
        "field": "temp_c",
    }
    assert body["readings"] == 22 and body["since"] == body["requested_since"]


async def test_transport_cadence_and_errors(rig: Rig, client: httpx.AsyncClient) -> None:
    h = rig.headers(Role.VIEWER)
    window = {"since": iso(T0), "until": iso(T0 + 60 * MIN)}
    r = await client.get("/api/v1/devices/road/truck-7/lg-t/completeness", params=window, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["slots"] == 12 and r.json()["filled"] == 10  # 5-minute slots
    r = await client.get("/api/v1/devices/wh1/fridge-1/nobody/completeness", headers=h)
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    backwards = {"since": iso(T0 + MIN), "until": iso(T0)}
    r = await client.get(
        "/api/v1/devices/wh1/fridge-1/logger-1/completeness", params=backwards, headers=h
    )
    assert r.status_code == 422
    r = await client.get("/api/v1/devices/wh1/fridge-1/logger-1/completeness")
    assert r.status_code == 401
