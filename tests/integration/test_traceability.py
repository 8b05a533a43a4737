"""A lot through its whole chain, end to end: simulated loggers (a warehouse room, two trucks, one
with GPS, a cross-dock, a hospital fridge) → real Mosquitto → `vigil run` → the HTTP API.

Warehouse storage (recorded after the fact), truck 1 on a geofence-driven leg (it starts when the
truck leaves the warehouse's fence and ends inside the cross-dock's), the cross-dock, truck 2 on
a shipment recorded with backdated times while its logger is offline (it uploads on arrival),
with a 2 h excursion at 12 °C, and the hospital. Then: the chain, the budget against a hand
computation, the budget alert at its configured share, the chain PDF, QA's signed release, and a
late upload that flags the decision."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from gateway.records.users import UserStore
from simulators.fleet import Fleet
from simulators.protocol import encode_reading, format_ts, topic
from simulators.scenario import parse_scenario
from tests.gateway_proc import GatewayProcess, Publisher
from tests.services import poll

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
WH = (31.2, 121.5)
XD = (31.31, 121.61)
FRIDGE = {"door_openings_per_hour": 0, "ambient_swing_c": 0}
PROFILES = {
    "vax_test": {
        "extends": ["vaccine_2_8"],
        "description": "a 2-8 °C vaccine: 4 h allowed in 8-25 °C, none below 0 °C",
        "budget": {
            "bands": [
                {"name": "warm", "above": 8, "at_most": 25, "allow": "4h"},
                {"name": "frozen", "below": 0, "allow": "0h"},
            ],
            "alert_at": [0.4],
        },
    }
}
SITES = {
    "wh": {"name": "上海仓", "geofence": {"circle": {"lat": WH[0], "lon": WH[1], "radius_m": 500}}},
    "xd": {
        "name": "苏州中转",
        "geofence": {
            "polygon": [[31.30, 121.60], [31.30, 121.62], [31.32, 121.62], [31.32, 121.60]]
        },
    },
    "hosp": {
        "name": "hospital",
        "geofence": {"circle": {"lat": 31.4, "lon": 121.7, "radius_m": 300}},
    },
}


def scenario() -> dict[str, Any]:
    fridge = {"kind": "fridge", "thermal": FRIDGE}
    one_minute = {"interval": "1m", "noise_c": 0}
    five_minutes = {"interval": "5m", "noise_c": 0}
    return {
        "name": "chain",
        "seed": 13,
        "duration": "10h",
        "speed": "max",
        "sites": [
            {
                "id": "wh",
                "assets": [
                    {"id": "room-b", **fridge, "devices": [{"id": "lg-room", **five_minutes}]}
                ],
            },
            {
                "id": "xd",
                "assets": [
                    {"id": "dock-a", **fridge, "devices": [{"id": "lg-dock", **five_minutes}]}
                ],
            },
            {
                "id": "hosp",
                "assets": [
                    {"id": "fridge-3", **fridge, "devices": [{"id": "lg-hosp", **five_minutes}]}
                ],
            },
            {
                "id": "fleet",
                "assets": [
                    {
                        "id": "truck-1",
                        "kind": "truck",
                        "thermal": FRIDGE,
                        "route": [
                            {"at": 0, "lat": WH[0], "lon": WH[1]},
                            {"at": "3h", "lat": WH[0], "lon": WH[1]},
                            {"at": "5h", "lat": XD[0], "lon": XD[1]},
                        ],
                        "devices": [{"id": "lg-t1", **one_minute}],
                    },
                    {
                        "id": "truck-2",
                        "kind": "truck",
                        "thermal": FRIDGE,
                        "devices": [
                            {
                                "id": "lg-t2",
                                **one_minute,
                                "faults": [{"kind": "offline", "start": "5h30m", "duration": "3h"}],
                            }
                        ],
                        "faults": [
                            {
                                "kind": "heat_excursion",
                                "start": "6h",
                                "duration": "2h",
                                "target_c": 12.0,
                            }
                        ],
                    },
                ],
            },
        ],
    }


def iso(ns: int) -> str:
    """As the API writes times: RFC 3339 UTC."""
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    return dt.isoformat().replace("+00:00", "Z")


def _readings(payload: bytes) -> list[Any]:
    obj = orjson.loads(payload)
    return obj["readings"] if isinstance(obj, dict) and "readings" in obj else [obj]


def journaled(gw: GatewayProcess) -> int:
    return int(gw.query("SELECT COUNT(*) FROM readings WHERE line LIKE 'coldchain,%'")[0][0])


def alerts(api: httpx.Client, rule: str) -> list[dict[str, Any]]:
    return [a for a in api.get("/api/v1/alerts", params={"rule": rule}).json()]


def test_a_lot_from_warehouse_to_hospital(mosquitto, make_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw: GatewayProcess = make_gateway(
        mosquitto.url,
        None,
        rules={"profiles": PROFILES, "bindings": [{"site": "wh", "profile": "vaccine_2_8"}]},
        traceability={"sites": SITES, "budget_interval_s": 0.3},
    )
    users = UserStore(gw.data / "users.sqlite")
    users.add("otto", "Otto Operator", "operator", "operator password 1")
    users.add("quinn", "Quinn Quality", "qa", "quality password 1")
    users.close()
    gw.start()
    base = f"http://127.0.0.1:{yaml.safe_load(gw.config_path.read_text())['api']['port']}"

    def client(user: str, password: str) -> httpx.Client:
        token = httpx.post(f"{base}/auth/login", json={"username": user, "password": password})
        assert token.status_code == 200, token.text
        return httpx.Client(
            base_url=base,
            timeout=30,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )

    op = client("otto", "operator password 1")
    qa = client("quinn", "quality password 1")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)
    fleet = Fleet(parse_scenario(scenario()), start=start)
    s0 = fleet.start_epoch_ms * 1_000_000
    messages = fleet.messages()
    pub = Publisher(mosquitto.port, client_id="chain-loggers")

    def publish_until(t_ms: int | None) -> None:
        batch = []
        for out in messages:
            batch.append((out.topic, out.payload))
            if t_ms is not None and out.t_ms >= t_ms:
                break
        before = journaled(gw)
        pub.publish_all(batch)
        want = before + sum(len(_readings(p)) for _t, p in batch)
        poll(
            lambda: journaled(gw) >= want,
            60,
            what=f"{want} readings journaled",
            show=lambda: journaled(gw),
        )

    # the lot, its storage leg (recorded after the fact) and truck 1's leg, planned on geofences
    r = op.post(
        "/api/v1/lots",
        json={
            "id": "LOT-2026-001",
            "product": "麻腮风疫苗 MMR",
            "profile": "vax_test",
            "expiry": "2027-06-30",
            "codes": ["81000000000000000001"],
        },
    )
    assert r.status_code == 201, r.text
    r = op.post(
        "/api/v1/legs",
        json={
            "lots": ["LOT-2026-001"],
            "kind": "storage",
            "site": "wh",
            "asset": "room-b",
            "started_at": iso(s0),
            "reason": "received at 08:00, goods receipt GR-77",
        },
    )
    assert r.status_code == 201, r.text
    r = op.post(
        "/api/v1/legs",
        json={
            "lots": ["LOT-2026-001"],
            "kind": "transport",
            "asset": "truck-1",
            "origin": "wh",
            "destination": "xd",
            "geofence": True,
            "planned": True,
            "id": "T1",
        },
    )
    assert r.status_code == 201 and r.json()["leg"]["status"] == "planned", r.text

    # up to 8h25: truck 1 drives to the cross-dock; truck 2 left at 5h30 and is offline
    publish_until(8 * 3_600_000 + 25 * 60_000)
    t1 = poll(
        lambda: (g := op.get("/api/v1/legs/T1").json())["status"] == "closed" and g,
        20,
        what="truck 1's leg closed by the geofence",
    )
    # 134 m a minute from the warehouse: 402 m at 3h03 (inside 500 m), 536 m at 3h04
    assert t1["started_at"] == iso(s0 + 3 * HOUR + 4 * MIN) and t1["started_by"] == "geofence"
    # the cross-dock square starts at 31.30/121.60: reached between 4h49 and 4h50
    assert t1["stopped_at"] == iso(s0 + 4 * HOUR + 50 * MIN)
    assert [st["stage"] for st in t1["stages"]] == ["origin", "transit", "destination"]
    # its rules were bound for the leg: its readings in the journal carry the lot's profile
    tagged = gw.query(
        "SELECT COUNT(*) FROM readings WHERE line LIKE 'coldchain,asset=truck-1,%'"
        " AND line LIKE '%,profile=vax_test,%' AND line LIKE '%,shipment=T1,%'"
    )
    assert tagged[0][0] == 106  # 3h04 .. 4h49, one a minute
    # the cross-dock from truck 1's arrival; truck 2's trip, recorded from the waybill
    r = op.post(
        "/api/v1/legs",
        json={
            "lots": ["LOT-2026-001"],
            "kind": "cross_dock",
            "site": "xd",
            "asset": "dock-a",
            "started_at": t1["stopped_at"],
            "reason": "unloaded from T1",
        },
    )
    assert r.status_code == 201, r.text
    r = op.post(
        "/api/v1/shipments",
        json={
            "asset": "truck-2",
            "lots": ["LOT-2026-001"],
            "id": "T2",
            "origin": "xd",
            "destination": "hosp",
            "started_at": iso(s0 + 5 * HOUR + 30 * MIN),
            "reason": "departure from waybill WB-9; logger uploads on arrival",
        },
    )
    assert r.status_code == 201, r.text

    # the rest: truck 2 reconnects at 8h30 and uploads its three hours
    publish_until(None)
    r = op.post(
        "/api/v1/shipments/T2/stop",
        json={"stopped_at": iso(s0 + 8 * HOUR + 30 * MIN), "reason": "arrival, proof of delivery"},
    )
    assert r.status_code == 200, r.text
    r = op.post(
        "/api/v1/legs",
        json={
            "lots": ["LOT-2026-001"],
            "kind": "destination",
            "site": "hosp",
            "asset": "fridge-3",
            "started_at": iso(s0 + 8 * HOUR + 30 * MIN),
            "reason": "received by the hospital pharmacy",
        },
    )
    assert r.status_code == 201, r.text

    # the excursion was found in the upload by the lot's rules, bound to truck 2 for the leg
    [high] = poll(lambda: alerts(op, "vaccine_2_8.high"), 20, what="truck 2's excursion alert")
    assert high["source"] == "fleet/truck-2/lg-t2" and high["retrospective"]
    assert high["started_at"] == iso(s0 + 6 * HOUR)
    # the budget alert at 40 % of 4 h: 96 min into the excursion
    [share] = poll(lambda: alerts(op, "vax_test.budget_40pct"), 20, what="the 40 % budget alert")
    assert share["source"] == "LOT-2026-001/warm"
    assert share["raised_at"] == iso(s0 + 6 * HOUR + 96 * MIN)
    assert not alerts(op, "vax_test.budget_exhausted")

    chain = op.get("/api/v1/lots/LOT-2026-001/chain").json()
    legs = [(g["leg"]["kind"], g["leg"]["asset"]) for g in chain["legs"]]
    assert legs == [
        ("storage", "room-b"),
        ("transport", "truck-1"),
        ("cross_dock", "dock-a"),
        ("transport", "truck-2"),
        ("destination", "fridge-3"),
    ]
    starts = [g["leg"]["started_at"] for g in chain["legs"]]
    stops = [g["leg"]["stopped_at"] for g in chain["legs"]]
    assert stops[:4] == starts[1:]  # one after the other, no gap
    assert chain["totals"]["gaps_between_legs"] == []
    truck2 = chain["legs"][3]
    assert truck2["summary"]["readings"] == 180 and truck2["summary"]["max_c"] == 12.0
    assert truck2["summary"]["out_of_range_s"]["> 8 °C"] == 7200
    [exc] = truck2["summary"]["excursions"]
    assert (exc["start"], exc["seconds"]) == (iso(s0 + 6 * HOUR), 7200)
    assert high["id"] in truck2["alert_ids"]
    assert chain["totals"]["readings"] == sum(g["summary"]["readings"] for g in chain["legs"])
    assert chain["totals"]["excursions"] == 1 and chain["totals"]["completeness"] == 1.0
    # hand computation: 120 one-minute readings at 12 °C, each held a minute: 2 h of 4 h
    warm = chain["budget"]["bands"][0]
    assert (warm["consumed_s"], warm["remaining_s"], warm["share"]) == (7200, 7200, 0.5)
    assert warm["per_leg_s"] == {
        g["leg"]["id"]: (7200 if g["leg"]["id"] == "T2" else 0) for g in chain["legs"]
    }
    assert chain["verdict"] == "pass", chain["reasons"]
    assert share["id"] in chain["lot_alert_ids"]

    pdf = tmp_path / "chain.pdf"
    r = op.get("/api/v1/reports/lots/LOT-2026-001", params={"tz": "Asia/Shanghai", "lang": "en"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for needed in (
        "Route",
        "上海仓",
        "苏州中转",
        "Verdict",
        "PASS",
        "LOT-2026-001",
        "transport",
        "cross-dock",
        "Stability budget",
        "2:00:00",
        "Asia/Shanghai",
    ):
        assert needed in text, needed

    # QA releases it, signed
    sign = {
        "decision": "release",
        "password": "quality password 1",
        "meaning": "chain reviewed, lot released",
    }
    r = qa.post("/api/v1/lots/LOT-2026-001/decision", json=sign)
    assert r.status_code == 200, r.text
    evidence = r.json()["decision"]["evidence_sha256"]
    audit = qa.get("/api/v1/audit", params={"action": "lot.release"}).json()
    assert audit[0]["signature"]["name"] == "Quinn Quality"

    # a late upload inside truck 2's leg: the decision needs review, and an alert says so
    late = {"ts": format_ts(s0 // 1_000_000 + 7 * 3_600_000 + 30_000), "temp_c": 12.5}
    pub.publish_all([(topic("fleet", "truck-2", "lg-t2"), encode_reading(late))])
    lot = poll(
        lambda: (d := op.get("/api/v1/lots/LOT-2026-001").json())["decision"]["needs_review"] and d,
        20,
        what="the decision flagged for review",
    )
    assert lot["decision"]["evidence_unchanged"] is False
    assert lot["decision"]["evidence_sha256"] == evidence
    [review] = poll(lambda: alerts(op, "vax_test.decision_review"), 20, what="the review alert")
    assert review["source"] == "LOT-2026-001/decision"
    pub.close()
    op.close()
    qa.close()
    assert gw.stop() == 0
