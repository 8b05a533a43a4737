"""The lots API in process (httpx ASGI transport): lots, legs with past times and reasons,
shipments as transport legs, the chain, the signed release decision, the chain report."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.api import create_app
from gateway.records.users import Role
from tests.api_rig import PASSWORDS, Rig, coldchain, make_rig

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path, rules={"bindings": []})  # no bindings: only legs bind rules
    yield r
    r.close()


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def iso(ns: int) -> str:
    """Exact to the microsecond (a float of seconds is not)."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).isoformat()


async def test_a_lot_through_legs_to_a_signed_release(client: httpx.AsyncClient, rig: Rig) -> None:
    op, qa, view = rig.headers(Role.OPERATOR), rig.headers(Role.QA), rig.headers(Role.VIEWER)
    lot = {
        "id": "L-2026-11",
        "product": "MMR 麻腮风疫苗",
        "profile": "vaccine_2_8",
        "expiry": "2027-06-30",
        "codes": ["81234567890123456789"],
    }
    r = await client.post("/api/v1/lots", headers=op, json={**lot, "profile": "nope"})
    assert r.status_code == 422 and "unknown product profile" in r.json()["detail"]
    r = await client.post("/api/v1/lots", headers=view, json=lot)
    assert r.status_code == 403
    r = await client.post("/api/v1/lots", headers=op, json=lot)
    assert r.status_code == 201, r.text
    assert r.json()["lot"]["retention_until"] == "2032-06-30"
    assert (await client.post("/api/v1/lots", headers=op, json=lot)).status_code == 409
    now = time.time_ns()
    t0 = now - 8 * HOUR
    store = {
        "lots": ["L-2026-11"],
        "kind": "storage",
        "site": "wh1",
        "asset": "room-b",
        "started_at": iso(t0),
    }
    r = await client.post("/api/v1/legs", headers=op, json=store)
    assert r.status_code == 422 and "give a reason" in r.json()["detail"]
    r = await client.post("/api/v1/legs", headers=op, json={**store, "reason": "received at 08:00"})
    assert r.status_code == 201, r.text
    store_id = r.json()["leg"]["id"]
    row = rig.ctx.audit.last(action="leg.open")
    assert row is not None and row.reason == "received at 08:00"
    rig.feed([coldchain(5.0, t0 + i * 30 * MIN, asset="room-b", device="lg-b") for i in range(8)])
    # the truck left at t0 + 4 h: recorded after the fact, as a shipment of the lot
    t1 = t0 + 4 * HOUR
    r = await client.post(
        "/api/v1/shipments",
        headers=op,
        json={
            "asset": "truck-9",
            "lots": ["L-2026-11"],
            "id": "SHP-9",
            "started_at": iso(t1),
            "reason": "departure time from the waybill",
        },
    )
    assert r.status_code == 201, r.text
    ship = r.json()["shipment"]
    assert ship["lots"] == ["L-2026-11"] and ship["profile"] == "vaccine_2_8"
    assert ship["start_reason"] == "departure time from the waybill"
    closed = rig.ctx.audit.last(action="leg.close")
    assert closed is not None and closed.entity_id == store_id
    # the excursion on the truck: the lot's profile binds its rules to the truck for the leg
    events = rig.feed(
        [
            coldchain(
                12.0 if 30 <= i < 90 else 5.0,
                t1 + i * MIN,  # GSP: every 2 min at most while out of range
                site="road",
                asset="truck-9",
                device="lg-9",
            )
            for i in range(120)
        ]
    )
    assert any(e.kind == "raised" and e.alert.rule == "vaccine_2_8.high" for e in events)
    r = await client.post(
        "/api/v1/shipments/SHP-9/stop", headers=op, json={"stopped_at": iso(t1 + 2 * HOUR)}
    )
    assert r.status_code == 422 and "give a reason" in r.json()["detail"]
    r = await client.post(
        "/api/v1/shipments/SHP-9/stop",
        headers=op,
        json={"stopped_at": iso(t1 + 2 * HOUR), "reason": "arrived, POD"},
    )
    assert r.status_code == 200 and r.json()["shipment"]["stopped_at"].startswith(
        iso(t1 + 2 * HOUR)[:19]
    )
    r = await client.post(
        "/api/v1/legs",
        headers=op,
        json={
            "lots": ["L-2026-11"],
            "kind": "destination",
            "site": "hosp",
            "asset": "fridge-3",
            "started_at": iso(t1 + 2 * HOUR),
            "reason": "received at the hospital",
        },
    )
    assert r.status_code == 201, r.text
    rig.feed(
        [
            coldchain(
                4.0, t1 + 2 * HOUR + i * 30 * MIN, site="hosp", asset="fridge-3", device="lg-h"
            )
            for i in range(5)
        ]
    )
    chain = (await client.get("/api/v1/lots/L-2026-11/chain", headers=view)).json()
    kinds = [leg["leg"]["kind"] for leg in chain["legs"]]
    assert kinds == ["storage", "transport", "destination"]
    truck = chain["legs"][1]
    assert truck["summary"]["max_c"] == 12.0
    assert truck["summary"]["out_of_range_s"]["> 8 °C"] == 3600
    assert truck["alert_ids"], "the truck's alert belongs to the leg"
    assert chain["totals"]["readings"] == 8 + 120 + 5
    assert chain["totals"]["gaps_between_legs"] == []
    warm = chain["budget"]["bands"][0]
    assert (warm["name"], warm["consumed_s"], warm["allowed_s"]) == ("warm", 3600, 72 * 3600)
    assert chain["verdict"] == "pass", chain["reasons"]
    detail = (await client.get("/api/v1/lots/L-2026-11", headers=view)).json()
    assert detail["budget"]["bands"][0]["remaining_s"] == 71 * 3600
    # QA releases with a signature
    sign = {"decision": "release", "password": PASSWORDS[Role.QA], "meaning": "released for use"}
    r = await client.post("/api/v1/lots/L-2026-11/decision", headers=op, json=sign)
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/lots/L-2026-11/decision", headers=qa, json={**sign, "password": "wrong-password"}
    )
    assert r.status_code == 403
    r = await client.post("/api/v1/lots/L-2026-11/decision", headers=qa, json=sign)
    assert r.status_code == 200, r.text
    decision = r.json()["decision"]
    assert decision["signer_name"] == "Quinn Quality" and not decision["needs_review"]
    row = rig.ctx.audit.last(action="lot.release")
    assert row is not None and row.signature["meaning"] == "released for use"
    assert row.new_value["evidence_sha256"] == decision["evidence_sha256"]
    # a late upload inside the truck leg marks it
    late = coldchain(9.0, t1 + 30 * MIN + 30 * S, site="road", asset="truck-9", device="lg-9")
    late.received_ns = time.time_ns() + S
    rig.feed([late])
    detail = (await client.get("/api/v1/lots/L-2026-11", headers=view)).json()
    assert detail["decision"]["needs_review"] and detail["decision"]["evidence_unchanged"] is False
    csv_text = (
        await client.get(
            "/api/v1/reports/lots/L-2026-11",
            headers=view,
            params={"format": "csv", "tz": "Asia/Shanghai"},
        )
    ).text
    assert "decision,status,release" in csv_text and "decision,needs_review,yes" in csv_text
    # the language as asked (?lang=), times in gateway.timezone unless ?tz= says otherwise
    for lang, title in (
        ("zh-CN", "vigil 全程温度追溯报告，批号 L-2026-11"),
        ("en", "vigil chain report, lot L-2026-11"),
    ):
        text = (
            await client.get(
                "/api/v1/reports/lots/L-2026-11",
                headers=view,
                params={"format": "csv", "lang": lang},
            )
        ).text
        assert text.startswith("\ufeffreport,title,"), text[:80]
        assert next(csv.reader(io.StringIO(text[1:]))) == ["report", "title", title]
        assert "report,time_zone,Asia/Shanghai" in text and "decision,status,release" in text
    r = await client.get("/api/v1/reports/lots/L-2026-11", headers=view)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    r = await client.get("/api/v1/reports/lots/L-2026-11", headers=view, params={"tz": "Mars/X"})
    assert r.status_code == 422 and "unknown time zone" in r.json()["detail"]
    assert (await client.get("/api/v1/lots/nope/chain", headers=view)).status_code == 404
    legs = (await client.get("/api/v1/legs", headers=view, params={"status": "active"})).json()
    assert [g["asset"] for g in legs] == ["fridge-3"]
    listed = (
        await client.get("/api/v1/lots", headers=view, params={"code": "81234567890123456789"})
    ).json()
    assert [x["id"] for x in listed] == ["L-2026-11"]
    assert (listed[0]["decision"], listed[0]["needs_review"]) == ("release", True)


async def test_planned_geofence_leg_and_manual_start(client: httpx.AsyncClient, rig: Rig) -> None:
    op = rig.headers(Role.OPERATOR)
    await client.post(
        "/api/v1/lots",
        headers=op,
        json={"id": "L1", "product": "p", "profile": "vaccine_2_8", "expiry": "2027-01-01"},
    )
    r = await client.post(
        "/api/v1/legs",
        headers=op,
        json={
            "lots": ["L1"],
            "kind": "transport",
            "asset": "truck-1",
            "origin": "a",
            "destination": "b",
            "geofence": True,
            "planned": True,
        },
    )
    assert r.status_code == 422 and "has no geofence" in r.json()["detail"]
    r = await client.post(
        "/api/v1/legs",
        headers=op,
        json={"lots": ["L1"], "kind": "transport", "asset": "truck-1", "id": "T-1"},
    )
    assert r.status_code == 201 and r.json()["shipment"] == "T-1"
    r = await client.post("/api/v1/legs/T-1/start", headers=op)
    assert r.status_code == 409 and "started already" in r.json()["detail"]
    r = await client.post("/api/v1/legs/T-1/close", headers=op, json={"reason": "arrived"})
    assert r.status_code == 200 and r.json()["leg"]["status"] == "closed"
    assert rig.ctx.shipments.require("T-1").stop_reason == "arrived"
    got = (await client.get("/api/v1/legs/T-1", headers=rig.headers(Role.VIEWER))).json()
    assert got["stages"] == [] and got["lots"] == ["L1"]
