"""A lot's chain (gateway/records/reports/chain*.py): per-leg figures and totals by hand, gaps
between legs, the verdict, evidence as of a decision, the route drawing, CSV and PDF."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from reportlab.graphics.shapes import Polygon, PolyLine, String

from alert_rules import RulesConfig
from gateway.core.reading import Reading
from gateway.records import Records, TraceabilityConfig
from gateway.records.reports.chain import chain_for
from gateway.records.reports.chain_csv import to_csv
from gateway.records.reports.chain_pdf import route_drawing, to_pdf

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
LIB = RulesConfig.model_validate(
    {
        "profiles": {
            "vax": {
                "extends": ["vaccine_2_8"],
                "budget": {
                    "bands": [
                        {"name": "warm", "above": 8, "at_most": 25, "allow": "4h"},
                        {"name": "frozen", "below": 0, "allow": "0h"},
                    ],
                    "mkt": {"limit": 8},
                },
            }
        }
    }
).library()
SITES = TraceabilityConfig.model_validate(
    {
        "sites": {
            "wh": {
                "name": "上海仓",
                "geofence": {"circle": {"lat": 31.2, "lon": 121.5, "radius_m": 500}},
            },
            "xd": {
                "geofence": {
                    "polygon": [[31.30, 121.60], [31.30, 121.62], [31.32, 121.62], [31.32, 121.60]]
                }
            },
        }
    }
)


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    r = Records.open(tmp_path / "data", traceability=SITES)
    yield r
    r.close()


def put(
    records: Records,
    asset: str,
    site: str,
    start: int,
    step: int,
    temps: list[float],
    received: int | None = None,
    **gps: list[float],
) -> None:
    rs = []
    for i, t in enumerate(temps):
        fields: dict[str, float] = {"temp_c": t}
        for k, vals in gps.items():
            fields[k] = vals[i]
        rs.append(
            Reading(
                "coldchain",
                {"site": site, "asset": asset, "device": f"{asset}-lg"},
                fields,
                start + i * step,
                start + i * step + S if received is None else received,
            )
        )
    records.lots.enrich(rs)
    records.lots.record(rs)


def chain_setup(records: Records) -> tuple[int, list[str]]:
    """Storage 4 h, truck 2 h (30 min at 12 °C, GPS), a 1 h gap, cross-dock 1 h."""
    lots = records.lots
    now = time.time_ns()
    t0 = now - 12 * HOUR
    lots.create_lot("L1", "vaccine", "vax", date(2027, 3, 31), "olga")
    a = lots.open_leg(
        ["L1"], "storage", "room", "olga", site="wh", started_at_ns=t0, reason="r"
    ).new
    put(records, "room", "wh", t0, 30 * MIN, [5.0] * 8)
    t1 = t0 + 4 * HOUR
    b = lots.open_leg(
        ["L1"],
        "transport",
        "truck",
        "olga",
        origin="wh",
        destination="xd",
        started_at_ns=t1,
        reason="r",
    ).new
    n = 120  # every minute: GSP wants a record every 2 min while out of range
    put(
        records,
        "truck",
        "fleet",
        t1,
        MIN,
        [5.0] * 30 + [12.0] * 30 + [5.0] * 60,
        lat=[31.2 + i * 0.001 for i in range(n)],
        lon=[121.5 + i * 0.001 for i in range(n)],
    )
    lots.close_leg(b.id, "olga", stopped_at_ns=t1 + 2 * HOUR, reason="r")
    t2 = t1 + 3 * HOUR
    c = lots.open_leg(
        ["L1"], "cross_dock", "dock", "olga", site="xd", started_at_ns=t2, reason="r"
    ).new
    put(records, "dock", "xd", t2, 5 * MIN, [6.0] * 12)
    lots.close_leg(c.id, "olga", stopped_at_ns=t2 + HOUR, reason="r")
    return t0, [a.id, b.id, c.id]


def test_the_chain_shows_every_leg_and_adds_them_up(records: Records) -> None:
    t0, ids = chain_setup(records)
    r = chain_for(records.lots, "L1", LIB)
    assert [lr.leg.id for lr in r.legs] == ids
    store, truck, dock = r.legs
    assert (store.summary.n, truck.summary.n, dock.summary.n) == (8, 120, 12)
    assert truck.summary.max == 12.0 and truck.summary.band_s["> 8 °C"] == 30 * 60
    [exc] = truck.summary.excursions
    assert (exc.start, exc.end, exc.highest) == (t0 + 4 * HOUR + 30 * MIN, t0 + 5 * HOUR, 12.0)
    assert store.summary.mkt == pytest.approx(5.0) and dock.summary.mean == pytest.approx(6.0)
    t = r.totals
    assert t.n == 140 and t.min == 5.0 and t.max == 12.0
    assert t.band_s["> 8 °C"] == 30 * 60 and t.excursions == 1
    assert t.held_s == 4 * 3600 + 2 * 3600 + 3600
    # the time-weighted mean over 7 h: (4 h·5 + 1.5 h·5 + 0.5 h·12 + 1 h·6) / 7 h
    assert t.mean == pytest.approx((4 * 5 + 1.5 * 5 + 0.5 * 12 + 6) / 7)
    assert t.gaps == [(t0 + 6 * HOUR, t0 + 7 * HOUR)]
    assert t.completeness == 1.0
    assert r.use is not None and r.use.bands[0].consumed_ns == 30 * MIN
    assert r.verdict == "review"  # within budget, but an hour nobody accounts for
    assert any("no leg accounts for 1:00:00" in str(x) for x in r.reasons)
    assert [st.stage for st in truck.stages] == []  # not a geofence leg
    assert len(truck.route) == 120


@pytest.mark.parametrize("stop_after", [1 * S, 5 * MIN, HOUR, 6 * HOUR])
def test_chain_mkt_does_not_depend_on_when_a_leg_was_closed(
    records: Records, stop_after: int
) -> None:
    lots = records.lots
    now = time.time_ns()
    t0 = now - 20 * HOUR
    lots.create_lot("L1", "v", "vax", date(2027, 1, 1), "olga")
    g = lots.open_leg(["L1"], "storage", "room", "olga", site="wh", started_at_ns=t0, reason="r")
    put(records, "room", "wh", t0, HOUR, [4.0, 4.0, 4.0, 4.0, 16.0])
    lots.close_leg(g.new.id, "olga", stopped_at_ns=t0 + 4 * HOUR + stop_after, reason="r")
    r = chain_for(records.lots, "L1", LIB)
    assert r.totals.mkt == pytest.approx(8.109, abs=5e-4)
    assert r.use is not None and r.use.mkt is not None
    assert r.use.mkt.mkt_c == pytest.approx(8.109, abs=5e-4)


def test_verdict_fails_when_the_budget_is_exhausted(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    t0 = now - 10 * HOUR
    lots.create_lot("L1", "v", "vax", date(2027, 1, 1), "olga")
    lots.open_leg(["L1"], "storage", "room", "olga", site="wh", started_at_ns=t0, reason="r")
    put(records, "room", "wh", t0, 30 * MIN, [5.0] * 4 + [-1.0] + [5.0] * 4)
    r = chain_for(records.lots, "L1", LIB)
    assert r.verdict == "fail"
    assert str(r.reasons[0]).startswith("stability budget frozen (T < 0 °C) exhausted: 0:30:00")


def test_evidence_as_of_the_decision_changes_only_with_late_evidence(records: Records) -> None:
    t0, _ids = chain_setup(records)
    lots = records.lots
    now = time.time_ns()
    r = chain_for(lots, "L1", LIB, as_of_ns=now)
    lots.decide("L1", "release", "quinn", "Quinn", "released", r.evidence_sha256, now_ns=now)
    later = chain_for(lots, "L1", LIB)
    assert later.decision_evidence_sha256 == r.evidence_sha256
    # new readings after the decision, in a new leg: the evidence of the decision stands
    g = lots.open_leg(["L1"], "destination", "fridge", "olga", site="hospital").new
    put(records, "fridge", "hospital", now + MIN, MIN, [5.0] * 3)
    later = chain_for(lots, "L1", LIB)
    assert later.decision_evidence_sha256 == r.evidence_sha256
    assert later.evidence_sha256 != r.evidence_sha256
    # a reading inside the truck leg, uploaded late: the evidence as of the decision changed
    put(records, "truck", "fleet", t0 + 4 * HOUR + 2 * MIN + 30 * S, MIN, [9.0], now + MIN)
    later = chain_for(lots, "L1", LIB)
    assert later.decision_evidence_sha256 != r.evidence_sha256
    assert lots.require_leg(g.id).status == "active"
    csv_text = to_csv(later, "en", "Asia/Shanghai")
    assert "decision,evidence_unchanged,NO" in csv_text
    assert "decision,needs_review,yes" in csv_text


def test_route_drawing_has_the_route_and_the_geofences(records: Records) -> None:
    chain_setup(records)
    r = chain_for(records.lots, "L1", LIB)
    d = route_drawing(r, 500, 300)
    polylines = [s for s in d.contents if isinstance(s, PolyLine)]
    polygons = [s for s in d.contents if isinstance(s, Polygon)]
    labels = {s.text for s in d.contents if isinstance(s, String)}
    assert len(polylines) == 1 and len(polylines[0].points) == 2 * 120
    assert len(polygons) == 2  # the warehouse's circle and the cross-dock's polygon
    assert "上海仓 wh" in labels and "xd" in labels
    xs, ys = polylines[0].points[0::2], polylines[0].points[1::2]
    assert all(0 <= x <= 500 for x in xs) and all(0 <= y <= 300 for y in ys)
    # heading north-east: x and y grow along the route
    assert xs[-1] > xs[0] and ys[-1] > ys[0]


def test_csv_and_pdf_carry_the_legs_the_verdict_and_the_route(
    records: Records, tmp_path: Path
) -> None:
    chain_setup(records)
    r = chain_for(records.lots, "L1", LIB)
    text = to_csv(r, "en", "Asia/Shanghai")
    sections = {line.split(",")[0] for line in text.splitlines() if line}
    assert {
        "report",
        "decision",
        "lot",
        "verdict",
        "legs",
        "statistics",
        "out_of_range",
        "excursions",
        "gaps",
        "budget",
        "stages",
        "evidence",
        "alerts",
    } <= sections
    assert "+08:00" in text and "verdict,review," in text
    assert f"evidence,chain,,,{r.evidence_sha256}" in text
    pdf = tmp_path / "chain.pdf"
    pdf.write_bytes(to_pdf(r, "en", "Asia/Shanghai"))
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for needed in (
        "Chain report",
        "L1",
        "Verdict",
        "REVIEW",
        "Route",
        "上海仓",
        "Legs",
        "Stability budget",
        "warm",
        "Asia/Shanghai",
        "Excursions",
    ):
        assert needed in out, needed


def test_chain_report_in_chinese_and_in_english(records: Records, tmp_path: Path) -> None:
    """The zh-CN PDF and CSV carry the Chinese headings, verdict and reasons with the lot's
    values (times in Beijing time, no glyph lost); English stays English."""
    chain_setup(records)
    r = chain_for(records.lots, "L1", LIB)
    pdf = tmp_path / "zh.pdf"
    pdf.write_bytes(to_pdf(r, "zh-CN", "Asia/Shanghai"))
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = text.replace(" ", "")
    for needed in (
        "全程温度追溯报告，批号L1",
        "结论:需审核",
        "放行决定",
        "尚未决定",
        "路线",
        "流转环节",
        "储存",
        "运输",
        "中转",
        "各环节温度（最差记录仪）",
        "稳定性预算",
        "剩余",
        "温度超标",
        "上海仓",
        "有1:00:00不属于任何环节",
        "第1页，共",
        "UTC+08:00",
    ):
        assert needed in flat, needed
    # the lot's values: the warm band's 4 h allowed, 30 min used, 3.5 h left
    assert "warm" in text and "4:00:00" in text and "0:30:00" in text and "3:30:00" in text
    assert "?" not in text  # no glyph lost
    rows = list(csv.reader(io.StringIO(to_csv(r, "zh-CN", "Asia/Shanghai"))))
    assert ["report", "title", "vigil 全程温度追溯报告，批号 L1"] in rows
    assert ["report", "language", "zh-CN"] in rows
    assert ["verdict", "review", "需审核"] in rows
    [gap] = [row for row in rows if row[:2] == ["verdict", "reason"]]
    assert gap[2].startswith("有 1:00:00 不属于任何环节") and "+08:00" in gap[2]
    [warm] = [row for row in rows if row[:2] == ["budget", "warm"]]
    assert warm[3:6] == ["14400", "1800", "12600"]  # allowed, consumed, remaining (s)
    assert any(row[:1] == ["statistics"] and row[2:3] == ["全部记录仪（最差）"] for row in rows)
    assert ["lot", "product", "vaccine"] in rows
    # English: the same figures, English texts
    en = list(csv.reader(io.StringIO(to_csv(r, "en", "Asia/Shanghai"))))
    assert ["report", "title", "vigil chain report, lot L1"] in en
    assert ["verdict", "review", "REVIEW"] in en
    assert [x for x in en if x[:1] == ["budget"]] == [x for x in rows if x[:1] == ["budget"]]
    en_pdf = tmp_path / "en.pdf"
    en_pdf.write_bytes(to_pdf(r, "en", "UTC"))
    en_text = subprocess.run(
        ["pdftotext", "-layout", str(en_pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Chain report, lot L1" in en_text and "Verdict: REVIEW" in en_text
    assert "no leg accounts for 1:00:00" in en_text and "page 1 of" in en_text
    assert "全程" not in en_text and "流转" not in en_text
