"""The HTTP API in process (httpx ASGI transport, same event loop as the alert store):
login and rate limiting, alert actions with audit rows and signatures, cycle summaries,
shipments and reports, devices, users, health, metrics and the offline docs pages."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api import create_app
from gateway.records.users import Role
from simulators.plc.spec import FaultSpec
from tests.api_rig import (
    AUTOCLAVE_CYCLE_S,
    PASSWORDS,
    USERS,
    Rig,
    autoclave,
    coldchain,
    make_rig,
)

S = 1_000_000_000


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path)
    yield r
    r.close()


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def raise_alert(rig: Rig, temp: float = 12.0, device: str = "logger-1") -> int:
    """A real alert from the rules engine: a reading above the 8 °C limit."""
    now = time.time_ns()
    rig.feed([coldchain(5.0, now - 60 * S, device=device)])
    events = rig.feed([coldchain(temp, now, device=device)])
    raised = [e for e in events if e.kind == "raised" and e.alert.rule == "vaccine_2_8.high"]
    assert raised, events
    return raised[0].alert.id


def clear_alert(rig: Rig, device: str = "logger-1") -> None:
    rig.feed([coldchain(5.0, time.time_ns() + S, device=device)])


def run_autoclaves(rig: Rig) -> int:
    """Real cycles through the engine (steam_steriliser binding), event time 3 h ago:
    AC-01 runs a good load then one with a 5 min hold (fails, raises the f0 alert), AC-02 a
    good load an hour later, AC-03 is in its hold (running). Returns AC-02's start."""
    t0 = time.time_ns() - 3 * 3600 * S
    second = 60 + 120 + 300 + 120 + 20
    short = FaultSpec(kind="short_hold", at_s=AUTOCLAVE_CYCLE_S, hold_s=300)
    rig.feed(autoclave(t0, AUTOCLAVE_CYCLE_S + second + 5, faults=[short]))
    rig.feed(
        autoclave(t0 + 3600 * S, AUTOCLAVE_CYCLE_S + 5, device="AC-02", equipment="autoclave-2")
    )
    rig.feed(autoclave(t0 + 7200 * S, 600, device="AC-03", equipment="autoclave-3"))
    return t0 + 3600 * S + 10 * S


# -- login ------------------------------------------------------------------------------------
async def test_login_gives_a_working_token_and_is_audited(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    r = await client.post("/auth/login", json={"username": "qa1", "password": PASSWORDS[Role.QA]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["user"]["role"] == "qa"
    assert "alert.close" in body["user"]["permissions"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["name"] == "Quinn Quality"
    row = rig.ctx.audit.last(action="login")
    assert row is not None and row.actor == "qa1" and row.client == "127.0.0.1"


async def test_failed_logins_are_audited_then_rate_limited(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    for _ in range(5):
        r = await client.post("/auth/login", json={"username": "qa1", "password": "guess-guess"})
        assert r.status_code == 401
    assert len(rig.ctx.audit.rows(action="login.failed")) == 5
    r = await client.post("/auth/login", json={"username": "qa1", "password": PASSWORDS[Role.QA]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    metrics = (await client.get("/metrics")).text
    assert 'vigil_api_logins_total{result="failed"} 5.0' in metrics
    assert 'vigil_api_logins_total{result="rate_limited"} 1.0' in metrics


async def test_logout_revokes_and_disabling_a_user_stops_its_token(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    h = rig.headers(Role.OPERATOR)
    assert (await client.get("/api/v1/me", headers=h)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=h)).status_code == 204
    assert (await client.get("/api/v1/me", headers=h)).status_code == 401
    h2 = {"Authorization": f"Bearer {rig.ctx.tokens.issue(USERS[Role.VIEWER])[0]}"}
    assert (await client.get("/api/v1/me", headers=h2)).status_code == 200
    r = await client.post(
        "/api/v1/users/viewer1/disable",
        headers=rig.headers(Role.ADMIN),
        json={"reason": "left the company"},
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert (await client.get("/api/v1/me", headers=h2)).status_code == 401
    row = rig.ctx.audit.last(action="user.disable")
    assert row is not None and row.old_value["enabled"] is True
    assert row.new_value["enabled"] is False and row.reason == "left the company"


async def test_expired_token_is_refused(client: httpx.AsyncClient, rig: Rig) -> None:
    token, _ = rig.ctx.tokens.issue("qa1", now_ns=time.time_ns() - rig.ctx.tokens.ttl_ns - S)
    r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]


# -- alerts -----------------------------------------------------------------------------------
async def test_alert_shape_and_filters(client: httpx.AsyncClient, rig: Rig) -> None:
    aid = raise_alert(rig)
    h = rig.headers(Role.VIEWER)
    alerts = (await client.get("/api/v1/alerts", headers=h)).json()
    a = next(x for x in alerts if x["id"] == aid)
    for key in (
        "id",
        "rule",
        "source",
        "severity",
        "state",
        "raised_at",
        "cleared_at",
        "value",
        "message",
        "retrospective",
        "acked_by",
        "acked_at",
        "closed_by",
        "closed_at",
    ):
        assert key in a
    assert (a["rule"], a["source"], a["state"], a["value"]) == (
        "vaccine_2_8.high",
        "wh1/fridge-1/logger-1",
        "unacknowledged",
        12.0,
    )
    assert a["raised_at"].endswith("Z") and a["retrospective"] is False
    q = {"state": "unacknowledged", "source": "wh1/fridge-1/*", "since": "2020-01-01T00:00:00Z"}
    assert [x["id"] for x in (await client.get("/api/v1/alerts", params=q, headers=h)).json()] == [
        aid
    ]
    q = {"state": "acknowledged"}
    assert (await client.get("/api/v1/alerts", params=q, headers=h)).json() == []
    q = {"since": "2999-01-01T00:00:00Z"}
    assert (await client.get("/api/v1/alerts", params=q, headers=h)).json() == []
    r = await client.get("/api/v1/alerts", params={"state": "bogus"}, headers=h)
    assert r.status_code == 422
    detail = (await client.get(f"/api/v1/alerts/{aid}", headers=h)).json()
    assert detail["history"][0]["kind"] == "raised"
    assert (await client.get("/api/v1/alerts/999", headers=h)).status_code == 404


async def test_ack_records_old_and_new_state(client: httpx.AsyncClient, rig: Rig) -> None:
    aid = raise_alert(rig)
    published: list[Any] = []
    rig.ctx.on_alert_events = published.extend  # the gateway passes Alerting.publish
    h = rig.headers(Role.OPERATOR)
    r = await client.post(f"/api/v1/alerts/{aid}/ack", headers=h, json={"comment": "on it"})
    assert r.status_code == 200, r.text
    assert [(e.kind, e.alert.id, e.by) for e in published] == [("acked", aid, "operator1")]
    body = r.json()
    assert (body["old_state"], body["new_state"]) == ("unacknowledged", "acknowledged")
    assert body["alert"]["acked_by"] == "operator1"
    row = rig.ctx.audit.rows(action="alert.ack")[0]
    assert row.seq == body["audit_seq"] and row.entity_id == str(aid)
    assert row.old_value["state"] == "unacknowledged" and row.new_value["state"] == "acknowledged"
    assert row.actor == "operator1" and row.reason == "on it"
    assert rig.ctx.engine.store.get_alert(aid).acked_by == "operator1"  # type: ignore[union-attr]
    again = await client.post(f"/api/v1/alerts/{aid}/ack", headers=h, json={})
    assert again.status_code == 409 and "only unacknowledged" in again.json()["detail"]
    assert len(rig.ctx.audit.rows(action="alert.ack")) == 1
    assert (await client.post("/api/v1/alerts/4242/ack", headers=h)).status_code == 404


async def test_shelve_and_unshelve(client: httpx.AsyncClient, rig: Rig) -> None:
    aid = raise_alert(rig)
    h = rig.headers(Role.OPERATOR)
    r = await client.post(f"/api/v1/alerts/{aid}/shelve", headers=h, json={"reason": ""})
    assert r.status_code == 422
    r = await client.post(
        f"/api/v1/alerts/{aid}/shelve",
        headers=h,
        json={"reason": "sensor swap", "duration_s": 3600},
    )
    assert r.status_code == 200 and r.json()["new_state"] == "shelved"
    assert r.json()["alert"]["shelve_reason"] == "sensor swap"
    r = await client.post(
        f"/api/v1/alerts/{aid}/shelve", headers=h, json={"reason": "again", "duration_s": 1e9}
    )
    assert r.status_code == 422
    r = await client.post(f"/api/v1/alerts/{aid}/unshelve", headers=h, json={"reason": "done"})
    assert r.status_code == 200 and r.json()["new_state"] == "unacknowledged"
    actions = [x.action for x in rig.ctx.audit.rows(entity="alert")]
    assert actions == ["alert.shelve", "alert.unshelve"]


async def test_close_needs_a_signature(client: httpx.AsyncClient, rig: Rig) -> None:
    aid = raise_alert(rig)
    h = rig.headers(Role.QA)
    await client.post(f"/api/v1/alerts/{aid}/ack", headers=h, json={})
    body = {
        "reason": "excursion assessed: product OK",
        "password": "not-my-password",
        "meaning": "reviewed and closed",
    }
    r = await client.post(f"/api/v1/alerts/{aid}/close", headers=h, json=body)
    assert r.status_code == 403 and "signature refused" in r.json()["detail"]
    failed = rig.ctx.audit.last(action="signature.failed")
    assert failed is not None and failed.entity_id == str(aid) and failed.actor == "qa1"
    body["password"] = PASSWORDS[Role.QA]
    r = await client.post(f"/api/v1/alerts/{aid}/close", headers=h, json=body)
    assert r.status_code == 409 and "still active" in r.json()["detail"]
    clear_alert(rig)
    r = await client.post(
        f"/api/v1/alerts/{aid}/close",
        headers=h,
        json={k: v for k, v in body.items() if k != "meaning"},
    )
    assert r.status_code == 422
    r = await client.post(f"/api/v1/alerts/{aid}/close", headers=h, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["alert"]["closed_by"] == "qa1"
    row = rig.ctx.audit.last(action="alert.close")
    assert row is not None and row.signature is not None
    assert row.signature["name"] == "Quinn Quality" and row.signature["username"] == "qa1"
    assert row.signature["meaning"] == "reviewed and closed"
    assert row.signature["signed_at_ns"] > 0
    assert row.reason == "excursion assessed: product OK"
    out = (
        await client.get(
            "/api/v1/audit", params={"action": "alert.close"}, headers=rig.headers(Role.VIEWER)
        )
    ).json()
    assert out[0]["signature"]["name"] == "Quinn Quality"
    verify = (await client.get("/api/v1/audit/verify", headers=rig.headers(Role.VIEWER))).json()
    assert verify["ok"] is True and verify["rows"] == rig.ctx.audit.count()


async def test_actions_without_a_rules_engine_are_unavailable(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    aid = raise_alert(rig)
    rig.ctx.engine = None
    r = await client.post(f"/api/v1/alerts/{aid}/ack", headers=rig.headers(Role.OPERATOR))
    assert r.status_code == 503


# -- cycles -----------------------------------------------------------------------------------
def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // S)) + f".{ns % S // 1000:06d}Z"


async def test_cycle_summaries_shape_and_detail(client: httpx.AsyncClient, rig: Rig) -> None:
    run_autoclaves(rig)
    h = rig.headers(Role.VIEWER)  # a regulator reads the batch records
    r = await client.get("/api/v1/cycles", headers=h)
    assert r.status_code == 200, r.text
    cycles = r.json()
    assert [(c["device"], c["batch"], c["status"], c["verdict"]) for c in cycles] == [
        ("AC-03", "AC03-0001", "running", None),
        ("AC-02", "AC02-0001", "complete", "pass"),
        ("AC-01", "AC01-0002", "complete", "fail"),
        ("AC-01", "AC01-0001", "complete", "pass"),
    ]  # newest first
    stored = {c.id: c for c in rig.ctx.engine.list_cycles()}  # type: ignore[union-attr]
    good = cycles[3]
    c = stored[good["id"]]
    assert good["start"] == _iso(c.start_ns) and good["end"] == _iso(c.end_ns)  # type: ignore[arg-type]
    assert good["start"].endswith("Z") and good["duration_s"] == pytest.approx(1160, abs=5)
    assert (good["rule"], good["line"], good["equipment"], good["source"]) == (
        "steam_steriliser.cycle",
        "L1",
        "autoclave-1",
        "L1/autoclave-1/AC-01",
    )
    assert [p["phase"] for p in good["phases"]] == ["heat_up", "hold", "cool_down", "complete"]
    hold = good["phases"][1]
    assert hold["start"] == _iso(c.phases[1]["start_ns"]) and hold["end"].endswith("Z")
    assert 121.0 < hold["min"]["chamber_temp_c"] < hold["max"]["chamber_temp_c"] < 122.5
    assert good["max"]["chamber_temp_c"] == hold["max"]["chamber_temp_c"] == c.max["chamber_temp_c"]
    assert set(good["min"]) == {"chamber_temp_c", "chamber_pressure_kpa", "drain_temp_c", "f0_min"}
    assert good["f0_min"] == c.f0_min and 15 < good["f0_min"] < 19
    assert (good["reasons"], good["alert_ids"], good["data_gaps"]) == ([], [], 0)

    bad = cycles[2]
    [alert] = rig.ctx.alert_store.list_alerts(rule="steam_steriliser.f0")  # type: ignore[union-attr]
    assert bad["alert_ids"] == [alert.id] and bad["f0_min"] < 15
    assert any("held 5m" in why for why in bad["reasons"])
    assert any(why.startswith("steam_steriliser.f0: F0 ") for why in bad["reasons"])

    running = cycles[0]
    assert running["end"] is None and running["duration_s"] is None
    # the row exists from the start; phases, min/max and F0 are stored when the cycle ends
    assert (running["f0_min"], running["phases"], running["min"]) == (None, [], {})

    detail = (await client.get(f"/api/v1/cycles/{bad['id']}", headers=h)).json()
    assert {k: v for k, v in detail.items() if k not in ("results", "journal_chain")} == bad
    assert detail["journal_chain"].startswith("journal chain batch ")
    f0 = detail["results"]["steam_steriliser.f0"]
    assert f0["kind"] == "f0" and f0["passed"] is False and f0["hold_s"] < 900
    for role in Role:  # every role reads them
        r = await client.get(f"/api/v1/cycles/{good['id']}", headers=rig.headers(role))
        assert r.status_code == 200
    assert (await client.get("/api/v1/cycles/999", headers=h)).status_code == 404
    assert (await client.get("/api/v1/cycles/0", headers=h)).status_code == 422


async def test_cycle_filters(client: httpx.AsyncClient, rig: Rig) -> None:
    ac02_start = run_autoclaves(rig)
    h = rig.headers(Role.VIEWER)

    async def batches(**q: Any) -> list[str]:
        r = await client.get("/api/v1/cycles", params=q, headers=h)
        assert r.status_code == 200, r.text
        return [c["batch"] for c in r.json()]

    assert await batches(device="AC-01") == ["AC01-0002", "AC01-0001"]
    assert await batches(batch="AC01-0001") == ["AC01-0001"]
    assert await batches(verdict="pass") == ["AC02-0001", "AC01-0001"]
    assert await batches(verdict="fail") == ["AC01-0002"]
    assert await batches(device="AC-01", verdict="pass") == ["AC01-0001"]
    assert await batches(status="running") == ["AC03-0001"]
    since = _iso(ac02_start)  # started at or after (event time)
    assert await batches(since=since) == ["AC03-0001", "AC02-0001"]
    assert await batches(since=_iso(ac02_start + 1000)) == ["AC03-0001"]
    assert await batches(limit=2) == ["AC03-0001", "AC02-0001"]
    assert await batches(device="AC-99") == []
    for bad in ({"verdict": "maybe"}, {"limit": 0}, {"since": "yesterday"}):
        r = await client.get("/api/v1/cycles", params=bad, headers=h)
        assert r.status_code == 422, bad


async def test_cycles_without_an_alert_store(rig: Rig) -> None:
    rig.ctx.engine, rig.ctx.alert_store = None, None
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        h = rig.headers(Role.VIEWER)
        assert (await c.get("/api/v1/cycles", headers=h)).json() == []
        assert (await c.get("/api/v1/cycles/1", headers=h)).status_code == 404


# -- devices ----------------------------------------------------------------------------------
async def test_devices_and_latest_readings(client: httpx.AsyncClient, rig: Rig) -> None:
    now = time.time_ns()
    rig.feed(
        [
            coldchain(5.0, now, device="logger-1"),
            coldchain(4.0, now, device="logger-2", asset="fridge-2"),
        ]
    )
    raise_alert(rig, device="logger-2")
    old = coldchain(3.0, now - 3600 * S, device="logger-3", asset="fridge-3")
    old.received_ns = now - 3600 * S
    rig.feed([old])
    h = rig.headers(Role.VIEWER)
    devs = {d["device"]: d for d in (await client.get("/api/v1/devices", headers=h)).json()}
    assert devs["logger-1"]["state"] == "ok" and devs["logger-1"]["fields"]["temp_c"] == 5.0
    assert devs["logger-2"]["state"] == "alarm" and devs["logger-2"]["open_alerts"] == 1
    assert devs["logger-3"]["state"] == "stale"
    assert devs["logger-1"]["source"] == "wh1/fridge-1/logger-1"
    latest = (
        await client.get("/api/v1/readings/latest", params={"device": "logger-2"}, headers=h)
    ).json()
    assert len(latest) == 1 and latest[0]["fields"]["temp_c"] == 12.0
    # an older buffered reading does not replace the newest
    rig.feed([coldchain(1.0, now - 7200 * S, device="logger-1")])
    devs = {d["device"]: d for d in (await client.get("/api/v1/devices", headers=h)).json()}
    assert devs["logger-1"]["fields"]["temp_c"] == 5.0


async def test_devices_never_fail_on_times_outside_the_store(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    """Issue 14: a reading dated year 1 at +14:00 made /devices and /readings/latest answer 500
    ("year 0 is out of range"), also after a restart (the live view is seeded from the journal).
    Rows journaled before the event-time checks are ignored by the live view; no time the API
    formats can fail."""
    from gateway.api.context import LiveReadings
    from gateway.api.models import ns_to_dt

    now = time.time_ns()
    rig.feed([coldchain(5.0, now, device="good")])
    old_rows = [  # as older versions wrote them
        (now, 0, "coldchain,asset=a,device=year1,site=s temp_c=5.0 -62135647200000000000"),
        (now, 0, "coldchain,asset=a,device=year1700,site=s temp_c=5.0 -8835984000000000000"),
        (now, 0, "coldchain,asset=a,device=year1000,site=s temp_c=5.0 -30610224000000000000"),
    ]
    db = sqlite3.connect(rig.ctx.journal.path)
    db.executemany(
        "INSERT INTO readings (received_ns, ts_from_receive, line) VALUES (?, ?, ?)", old_rows
    )
    db.commit()
    db.close()
    live = LiveReadings()
    assert live.seed(rig.ctx.journal) >= 2
    rig.ctx.live = live  # what a restart sees
    odd = coldchain(5.0, -62135647200 * S, device="year1-live")
    live.observe([odd, coldchain(4.0, 2**63 + 5, device="far")])
    h = rig.headers(Role.VIEWER)
    devices = await client.get("/api/v1/devices", headers=h)
    latest = await client.get("/api/v1/readings/latest", headers=h)
    assert devices.status_code == 200 and latest.status_code == 200
    assert [d["device"] for d in devices.json()] == ["good"]
    assert [r["device"] for r in latest.json()] == ["good"]
    for ns in (-(10**30), -62135647200 * S, -1, 0, 2**63, 10**30):
        assert 1 <= ns_to_dt(ns).year <= 9999
    assert ns_to_dt(-(10**30)).isoformat() == "0001-01-01T00:00:00+00:00"
    assert ns_to_dt(10**30).year == 9999
    assert ns_to_dt(1_700_000_000_123_456_789).isoformat() == "2023-11-14T22:13:20.123456+00:00"


# -- shipments --------------------------------------------------------------------------------
async def test_shipment_lifecycle_report_and_signed_approval(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    op, qa = rig.headers(Role.OPERATOR), rig.headers(Role.QA)
    r = await client.post(
        "/api/v1/shipments", headers=op, json={"asset": "truck-9", "profile": "no_such_profile"}
    )
    assert r.status_code == 422 and "unknown product profile" in r.json()["detail"]
    r = await client.post(
        "/api/v1/shipments",
        headers=op,
        json={
            "asset": "truck-9",
            "site": "road",
            "profile": "vaccine_2_8",
            "id": "SHP-1",
            "product": "MMR",
            "origin": "Basel",
            "destination": "Lyon",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["shipment"]["status"] == "active"
    r = await client.post(
        "/api/v1/shipments", headers=op, json={"asset": "truck-9", "profile": "vaccine_2_8"}
    )
    assert r.status_code == 409
    now = time.time_ns()
    rs = [
        coldchain(t, now - (10 - i) * 60 * S, site="road", asset="truck-9", device="lg-9")
        for i, t in enumerate([5, 5, 9, 12, 5, 5])
    ]
    rs[0].ts_ns = now - 3 * 3600 * S  # before the shipment started: not tagged
    started = rig.ctx.shipments.require("SHP-1").started_at_ns
    rs[1].ts_ns = started + 1
    for i, r_ in enumerate(rs[2:]):
        r_.ts_ns = started + (i + 2) * 60 * S
    rig.feed(rs)
    assert "shipment" not in rs[0].tags and rs[1].tags["shipment"] == "SHP-1"
    got = (await client.get("/api/v1/shipments/SHP-1", headers=rig.headers(Role.VIEWER))).json()
    assert got["readings"] == 5 and got["origin"] == "Basel"
    sign = {"password": PASSWORDS[Role.QA], "meaning": "reviewed and approved"}
    r = await client.post("/api/v1/shipments/SHP-1/approve", headers=qa, json=sign)
    assert r.status_code == 409 and "still active" in r.json()["detail"]
    r = await client.post("/api/v1/shipments/SHP-1/stop", headers=op, json={"reason": "arrived"})
    assert r.status_code == 200 and r.json()["shipment"]["status"] == "stopped"
    csv_text = (
        await client.get(
            "/api/v1/reports/shipments/SHP-1",
            params={"format": "csv"},
            headers=rig.headers(Role.VIEWER),
        )
    ).text
    assert "signature,status,not signed" in csv_text
    assert "vaccine_2_8.high" in csv_text  # the alert of the excursion, with its actions
    r = await client.post(
        "/api/v1/shipments/SHP-1/approve", headers=qa, json={**sign, "password": "wrong-password"}
    )
    assert r.status_code == 403
    r = await client.post("/api/v1/shipments/SHP-1/approve", headers=qa, json=sign)
    assert r.status_code == 200, r.text
    sig = r.json()["shipment"]["signature"]
    assert sig["name"] == "Quinn Quality" and sig["meaning"] == "reviewed and approved"
    assert len(sig["content_sha256"]) == 64
    row = rig.ctx.audit.last(action="shipment.approve")
    assert row is not None and row.signature["meaning"] == "reviewed and approved"
    assert row.old_value["approved_at_ns"] is None and row.new_value["approved_by"] == "qa1"
    r = await client.get(
        "/api/v1/reports/shipments/SHP-1",
        params={"format": "pdf"},
        headers=rig.headers(Role.VIEWER),
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    csv_text = (
        await client.get(
            "/api/v1/reports/shipments/SHP-1",
            params={"format": "csv"},
            headers=rig.headers(Role.VIEWER),
        )
    ).text
    assert "signature,signed_by_name,Quinn Quality" in csv_text
    assert "content_unchanged_since_signature,yes" in csv_text
    actions = [x.action for x in rig.ctx.audit.rows(entity="shipment")]
    assert actions == ["shipment.start", "shipment.stop", "signature.failed", "shipment.approve"]
    listed = (
        await client.get(
            "/api/v1/shipments", params={"status": "approved"}, headers=rig.headers(Role.VIEWER)
        )
    ).json()
    assert [s["id"] for s in listed] == ["SHP-1"]
    assert (
        await client.get("/api/v1/reports/shipments/nope", headers=rig.headers(Role.VIEWER))
    ).status_code == 404


# -- users, health, metrics, docs -------------------------------------------------------------
async def test_admin_manages_users(client: httpx.AsyncClient, rig: Rig) -> None:
    h = rig.headers(Role.ADMIN)
    r = await client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "nina", "name": "Nina QA", "role": "qa", "password": "long enough pw"},
    )
    assert r.status_code == 201 and r.json()["role"] == "qa"
    r = await client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "nina", "name": "Nina", "role": "qa", "password": "long enough pw"},
    )
    assert r.status_code == 409
    r = await client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "otto2", "name": "Otto", "role": "qa", "password": "short"},
    )
    assert r.status_code == 422
    row = rig.ctx.audit.last(action="user.add")
    assert row is not None and row.new_value["username"] == "nina"
    assert "password" not in str(row.new_value)
    users = {u["username"] for u in (await client.get("/api/v1/users", headers=h)).json()}
    assert {"nina", "admin1", "qa1"} <= users
    r = await client.post("/api/v1/users/admin1/disable", headers=h, json={"reason": "x"})
    assert r.status_code == 409


async def test_change_own_password(client: httpx.AsyncClient, rig: Rig) -> None:
    h = rig.headers(Role.VIEWER)
    r = await client.post(
        "/api/v1/me/password",
        headers=h,
        json={"old_password": "wrong", "new_password": "new password 123"},
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/me/password",
        headers=h,
        json={"old_password": PASSWORDS[Role.VIEWER], "new_password": "new password 123"},
    )
    assert r.status_code == 204
    r = await client.post(
        "/auth/login", json={"username": "viewer1", "password": "new password 123"}
    )
    assert r.status_code == 200


async def test_health_ready_metrics_docs(client: httpx.AsyncClient, rig: Rig) -> None:
    assert (await client.get("/health")).json()["gateway"] == "test-gw"
    assert (await client.get("/ready")).status_code == 200
    rig.ctx.counters.journal_full = True
    r = await client.get("/ready")
    assert r.status_code == 503 and r.json()["ready"] is False
    raise_alert(rig)
    rig.ctx.counters.dead_letters = 3
    rig.ctx.counters.journal_backlog = 17
    text = (await client.get("/metrics")).text
    for line in (
        'vigil_alerts{state="unacknowledged"} 1.0',
        "vigil_dead_letters_total 3.0",
        "vigil_journal_backlog 17.0",
        "vigil_journal_full 1.0",
        "vigil_rule_readings_evaluated_total 2.0",
        "vigil_sink_errors_total 0.0",
    ):
        assert line in text
    assert "vigil_journal_bytes " in text and "vigil_readings_journaled_total" in text
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    page = await client.get("/")
    assert page.status_code == 200 and 'id="login-form"' in page.text
    assert (await client.get("/web/app.js")).status_code == 200


async def test_extra_metrics_are_exported(rig: Rig) -> None:
    from prometheus_client.core import GaugeMetricFamily

    rig.ctx.extra_metrics = lambda: [GaugeMetricFamily("vigil_task_restarts", "x", value=4)]
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert "vigil_task_restarts 4.0" in (await c.get("/metrics")).text


# -- offline docs -----------------------------------------------------------------------------
_ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


async def test_docs_page_loads_nothing_from_other_hosts(client: httpx.AsyncClient) -> None:
    """Air-gapped gateways: Swagger UI comes from this server, not from a CDN."""
    r = await client.get("/docs")
    assert r.status_code == 200 and "/openapi.json" in r.text
    assert not re.search(r"https?://|//[a-z0-9]", r.text, re.I), r.text
    assets = _ASSET.findall(r.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert '"validatorUrl": null' in r.text  # no badge from the public validator
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        got = await client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 1000, url
        kind = got.headers["content-type"]
        if url.endswith(".js"):
            assert "javascript" in kind
        elif url.endswith(".css"):
            assert kind.startswith("text/css")
    # Swagger UI 5 (4 cannot render the OpenAPI 3.1 document FastAPI writes)
    js = (await client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in js
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.1")
    assert (await client.get("/redoc")).status_code == 404  # ReDoc loads its logo from a CDN
