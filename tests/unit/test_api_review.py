"""The API behind the console: texts in the reader's language, the user's language, reading
history with the bound rules' limits, shipment review and signed rejection, batch reports,
devices with units and labels, audit paging back."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.api import create_app
from gateway.api.context import ReadingHistory
from gateway.core.ports import SourceStatus
from gateway.core.reading import Reading
from gateway.records.users import Role
from simulators.plc.spec import FaultSpec
from tests.api_rig import AUTOCLAVE_CYCLE_S, PASSWORDS, Rig, autoclave, coldchain, make_rig

S = 1_000_000_000
MIN = 60 * S


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


def pdftotext(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode("utf-8")


def excursion(rig: Rig) -> int:
    now = time.time_ns()
    rig.feed([coldchain(5.0, now - 2 * MIN, rh_pct=50.0)])
    events = rig.feed([coldchain(12.0, now - MIN, rh_pct=50.0)])
    return next(e.alert.id for e in events if e.alert.rule == "vaccine_2_8.high")


async def test_alert_texts_follow_lang_user_and_accept_language(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    aid = excursion(rig)
    h = rig.headers(Role.VIEWER)
    [en] = [a for a in (await client.get("/api/v1/alerts", headers=h)).json() if a["id"] == aid]
    assert en["message"] == en["text"] or en["text"].startswith("temp_c > 8 °C")
    assert en["clock"] == "device" and en["activated_at"] == en["raised_at"]
    zh = await client.get(f"/api/v1/alerts/{aid}?lang=zh-CN", headers=h)
    assert "，自" in zh.json()["text"] and "UTC+08:00" in zh.json()["text"]
    assert zh.json()["message"] == en["message"]  # the stored English text is unchanged
    by_header = await client.get(f"/api/v1/alerts/{aid}", headers={**h, "Accept-Language": "zh"})
    assert by_header.json()["text"] == zh.json()["text"]
    r = await client.post("/api/v1/me/language", headers=h, json={"language": "en"})
    assert r.status_code == 200 and r.json()["language"] == "en"
    me = (await client.get("/api/v1/me", headers={**h, "Accept-Language": "zh-CN"})).json()
    assert me["display_language"] == "en" and me["timezone"] == "Asia/Shanghai"
    assert rig.ctx.audit.rows(action="user.language", actor="viewer1")
    bad = await client.post("/api/v1/me/language", headers=h, json={"language": "fr"})
    assert bad.status_code == 422


async def test_history_with_limits_and_devices_with_units(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    excursion(rig)
    h = rig.headers(Role.VIEWER)
    r = await client.get("/api/v1/readings/history?device=logger-1", headers=h)
    assert r.status_code == 200, r.text
    [s] = r.json()
    assert s["measurement"] == "coldchain" and s["fields"]["temp_c"] == [5.0, 12.0]
    assert s["units"] == {"temp_c": "°C", "rh_pct": "%RH"} and s["complete"] is True
    assert {b["label"] for b in s["limits"]["temp_c"]} >= {"> 8 °C", "< 2 °C"}
    zh = await client.get("/api/v1/devices?lang=zh-CN", headers=h)
    [dev] = [d for d in zh.json() if d["device"] == "logger-1"]
    values = {v["field"]: (v["label"], v["unit"]) for v in dev["values"]}
    assert values["temp_c"] == ("温度", "°C") and values["rh_pct"] == ("相对湿度", "%RH")


async def test_review_and_signed_rejection(client: httpx.AsyncClient, rig: Rig) -> None:
    now = time.time_ns()
    s = rig.ctx.shipments.start("truck-3", "vaccine_2_8", "operator1", now_ns=now - 30 * MIN)
    for i in range(20):
        t = 10.0 if 5 <= i < 8 else 5.0
        rig.feed([coldchain(t, now - 30 * MIN + i * MIN + S, asset="truck-3", device="lg-9")])
    h_qa, h_view = rig.headers(Role.QA), rig.headers(Role.VIEWER)
    early = await client.post(
        f"/api/v1/shipments/{s.id}/reject",
        headers=h_qa,
        json={"password": PASSWORDS[Role.QA], "meaning": "reviewed and rejected", "reason": "x"},
    )
    assert early.status_code == 409  # still active
    rig.ctx.shipments.stop(s.id, "operator1", now_ns=now - 10 * MIN + 2 * S)
    url = f"/api/v1/shipments/{s.id}/review"
    review = (await client.get(url + "?lang=en", headers=h_view)).json()
    assert review["verdict"]["code"] == "excursion"
    assert review["verdict"]["title"] == "Temperature excursion"
    default = (await client.get(url, headers=h_view)).json()  # gateway.language: zh-CN
    assert default["verdict"]["title"] == "温度超标"
    [x] = review["excursions"]
    assert (x["device"], x["peak"], x["duration_s"]) == ("lg-9", 10.0, 180)
    assert x["alert_ids"]  # the vaccine_2_8.high alert of the excursion
    readings = (await client.get(f"/api/v1/shipments/{s.id}/readings", headers=h_view)).json()
    assert len(readings[0]["fields"]["temp_c"]) == 20
    denied = await client.post(
        f"/api/v1/shipments/{s.id}/reject",
        headers=h_view,
        json={"password": PASSWORDS[Role.VIEWER], "meaning": "reviewed", "reason": "no"},
    )
    assert denied.status_code == 403
    wrong = await client.post(
        f"/api/v1/shipments/{s.id}/reject",
        headers=h_qa,
        json={"password": "not it at all", "meaning": "reviewed and rejected", "reason": "x"},
    )
    assert wrong.status_code == 403
    ok = await client.post(
        f"/api/v1/shipments/{s.id}/reject",
        headers=h_qa,
        json={
            "password": PASSWORDS[Role.QA],
            "meaning": "excursion assessed, product rejected",
            "reason": "30 min above 8 °C, no stability data",
        },
    )
    assert ok.status_code == 200, ok.text
    out = ok.json()["shipment"]
    assert out["status"] == "rejected" and out["rejection"]["name"] == "Quinn Quality"
    assert out["rejection_reason"] == "30 min above 8 °C, no stability data"
    row = rig.ctx.audit.last(action="shipment.reject")
    assert row is not None and row.signature["meaning"] == "excursion assessed, product rejected"  # type: ignore[index]
    again = await client.post(
        f"/api/v1/shipments/{s.id}/approve",
        headers=h_qa,
        json={"password": PASSWORDS[Role.QA], "meaning": "reviewed and approved"},
    )
    assert again.status_code == 409
    listed = (await client.get("/api/v1/shipments?status=rejected", headers=h_view)).json()
    assert [x["id"] for x in listed] == [s.id]
    pdf = await client.get(f"/api/v1/reports/shipments/{s.id}?lang=zh-CN", headers=h_view)
    text = await asyncio.to_thread(pdftotext, pdf.content)
    assert "已拒绝" in text and "温度超标" in text


async def test_batch_report_pdf_and_csv(client: httpx.AsyncClient, rig: Rig) -> None:
    t0 = time.time_ns() - 3 * 3600 * S
    faults = [FaultSpec(kind="short_hold", at_s=200, hold_s=300)]
    rig.feed(autoclave(t0, AUTOCLAVE_CYCLE_S + 30, faults=faults))
    h = rig.headers(Role.VIEWER)
    cycles = (await client.get("/api/v1/cycles?verdict=fail&lang=en", headers=h)).json()
    c = cycles[0]
    assert c["reasons_text"] and c["reasons_text"][0].startswith("steam_steriliser.")
    zh = (await client.get(f"/api/v1/cycles/{c['id']}?lang=zh-CN", headers=h)).json()
    assert any("保持" in r or "不合格" in r for r in zh["reasons_text"]), zh["reasons_text"]
    readings = (await client.get(f"/api/v1/cycles/{c['id']}/readings", headers=h)).json()
    assert readings and "chamber_temp_c" in readings[0]["fields"]
    r = await client.get(f"/api/v1/cycles/{c['id']}/report?format=csv&lang=en", headers=h)
    assert r.text.startswith("\ufeffsection,key,value")  # Excel and WPS read it as UTF-8
    rows = list(csv.reader(io.StringIO(r.text)))
    assert ["verdict", "text", "Failed"] in rows
    assert any(row[:2] == ["phases", "hold"] for row in rows)
    pdf = await client.get(f"/api/v1/cycles/{c['id']}/report?lang=zh-CN", headers=h)
    assert pdf.headers["content-type"] == "application/pdf"
    text = await asyncio.to_thread(pdftotext, pdf.content)
    assert "批记录报告" in text and "不合格" in text and "第 1 页" in text


async def test_audit_pages_back(client: httpx.AsyncClient, rig: Rig) -> None:
    for i in range(5):
        rig.ctx.audit.record("system", "test.row", "test", str(i))
    h = rig.headers(Role.VIEWER)
    page1 = (await client.get("/api/v1/audit?newest_first=true&limit=2", headers=h)).json()
    older = page1[-1]["seq"]
    page2 = (
        await client.get(f"/api/v1/audit?newest_first=true&limit=2&before_seq={older}", headers=h)
    ).json()
    assert [r["seq"] for r in page2] == [older - 1, older - 2]


async def test_register_map_units_and_labels_win(rig: Rig) -> None:
    rig.feed(
        [
            Reading(
                "process",
                {"line": "L1", "equipment": "ac-9", "device": "AC-09"},
                {"chamber_temp_c": 121.3, "jacket": 210.0},
                time.time_ns(),
                time.time_ns(),
            )
        ]
    )
    rig.ctx.sources = lambda: [
        SourceStatus(
            "plcs", "modbus", "modbus://127.0.0.1:502/1", "AC-09", True,
            units={"jacket": "kPa"}, labels={"chamber_temp_c": "腔体温度"},
        )
    ]  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        devices = (await c.get("/api/v1/devices?lang=en", headers=rig.headers(Role.VIEWER))).json()
    [dev] = [d for d in devices if d["device"] == "AC-09"]
    values = {v["field"]: (v["label"], v["unit"]) for v in dev["values"]}
    assert values == {"chamber_temp_c": ("腔体温度", "°C"), "jacket": ("jacket", "kPa")}


def test_reading_history_is_bounded() -> None:
    h = ReadingHistory(per_series=50, max_series=3, max_points=120)
    for dev in ("a", "b", "c", "d"):
        h.observe(
            [
                Reading("coldchain", {"device": dev}, {"temp_c": float(i)}, i * S, i * S)
                for i in range(100)
            ]
        )
    found = {dev: h.window(dev, 0, 200 * S) for dev in ("a", "b", "c", "d")}
    assert found["d"] == {}  # a fourth series is not kept
    sizes = [len(found[d]["coldchain"][0]) for d in ("a", "b", "c")]
    assert max(sizes) <= 50 and sum(sizes) <= 120
    pts, complete = found["c"]["coldchain"]
    assert pts[-1][0] == 99 * S and not complete  # the newest stay; the start is gone
    late = Reading("coldchain", {"device": "c"}, {"temp_c": -1.0}, 98 * S + 1, 0)
    h.observe([late])
    ts = [t for t, _f in h.window("c", 0, 200 * S)["coldchain"][0]]
    assert ts == sorted(ts) and 98 * S + 1 in ts
