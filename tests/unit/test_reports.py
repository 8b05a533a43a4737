"""Shipment reports: statistics with the rules' conventions, bands from the product profile,
alerts with their actions, CSV sections, PDF rendering, signature status and content digest."""

from __future__ import annotations

import csv
import io
import subprocess
import tempfile
from pathlib import Path

import pytest

from alert_rules import AlertStore, Band, ManualClock, RulesConfig, RulesEngine
from gateway.core.reading import Reading
from gateway.records.reports import (
    band_label,
    build_report,
    content_digest,
    gather_alerts,
    profile_limits,
    report_for,
    to_csv,
    to_pdf,
)
from gateway.records.shipments import ShipmentRegistry

S = 1_000_000_000
MIN = 60 * S
T0 = 1_795_000_000 * S
LIB = RulesConfig().library()


def reading(ts: int, temp: float, device: str = "lg-1") -> Reading:
    return Reading(
        "coldchain",
        {"site": "road", "asset": "truck-7", "device": device},
        {"temp_c": temp, "rh_pct": 40.0},
        ts,
        ts + S,
    )


@pytest.fixture
def reg(tmp_path: Path) -> ShipmentRegistry:
    return ShipmentRegistry(tmp_path / "shipments.sqlite")


def ship(reg: ShipmentRegistry, temps: list[float], step: int = 5 * MIN, **kw: object) -> str:
    """A stopped shipment whose logger read `temps` every `step` from T0."""
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0, **kw)  # type: ignore[arg-type]
    rs = [reading(T0 + i * step, t) for i, t in enumerate(temps)]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + len(temps) * step)
    return s.id


def pdf_text(pdf: bytes) -> str:
    """The text of the pages as poppler's pdftotext extracts it (the fonts' own Unicode maps)."""
    out = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return out.stdout.decode("utf-8")


def test_profile_limits_from_the_rules_library() -> None:
    lim = profile_limits(LIB, "vaccine_2_8")
    assert (lim.low, lim.high, lim.mkt_limit) == (2.0, 8.0, 8.0)
    assert Band(">", 8.0) in lim.bands and Band("<", 2.0) in lim.bands
    assert Band("<=", -0.5) in lim.bands  # the WHO freeze alarm
    who = profile_limits(LIB, "who_shipping_indicator")
    assert [band_label(b) for b in who.bands] == ["≥ 45 °C", "≥ 30 °C", "≥ 10 °C", "≤ -0.5 °C"]
    unknown = profile_limits(LIB, "nope")
    assert not unknown.known and unknown.bands == ()


def test_constant_temperature_gives_that_mkt(reg: ShipmentRegistry) -> None:
    sid = ship(reg, [5.0] * 12)
    r = report_for(reg, reg.require(sid), [], LIB, now_ns=T0)
    st = r.series[0]
    assert st.n == 12 and st.min == st.max == 5.0
    assert st.mkt == pytest.approx(5.0, abs=1e-9)
    assert st.mean == pytest.approx(5.0)
    assert st.held_s == pytest.approx(12 * 300)
    assert all(v == 0 for v in st.band_s.values())


def test_time_out_of_range_per_band_is_hold_time(reg: ShipmentRegistry) -> None:
    # every 5 min: 3 normal, 2 above 8 (10 min), 1 below 2 (5 min), 1 at -1 (5 min, also < 2)
    sid = ship(reg, [5, 5, 5, 9, 12, 1.5, -1.0])
    r = report_for(reg, reg.require(sid), [], LIB, now_ns=T0)
    st = r.series[0]
    assert st.band_s["> 8 °C"] == pytest.approx(600)
    assert st.band_s["< 2 °C"] == pytest.approx(600)
    assert st.band_s["≤ -0.5 °C"] == pytest.approx(300)
    assert (st.min, st.max) == (-1.0, 12.0)
    expected_mean = (5 * 3 + 9 + 12 + 1.5 - 1.0) / 7
    assert st.mean == pytest.approx(expected_mean)
    assert st.mkt is not None and st.mkt > st.mean  # MKT weighs warm readings more


def test_gaps_are_held_for_at_most_an_hour(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    rs = [reading(T0, 12.0), reading(T0 + 5 * 3600 * S, 5.0)]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + 5 * 3600 * S + MIN)
    st = report_for(reg, reg.require(s.id), [], LIB, now_ns=T0).series[0]
    assert st.band_s["> 8 °C"] == pytest.approx(3600)


def test_gaps_are_held_for_the_max_gap_of_the_profiles_rules(reg: ShipmentRegistry) -> None:
    lib = RulesConfig.model_validate(
        {
            "profiles": {
                "quick": {
                    "rules": [
                        {
                            "id": "high",
                            "kind": "threshold",
                            "field": "temp_c",
                            "high": 8,
                            "inclusive": False,
                            "max_gap": "10m",
                        },
                        {
                            "id": "mkt",
                            "kind": "mkt",
                            "field": "temp_c",
                            "limit": 8,
                            "max_gap": "20m",
                        },
                    ]
                }
            }
        }
    ).library()
    lim = lib.limits("quick", "temp_c")
    assert lim.max_gap_ns == 10 * MIN and lim.bands == (Band(">", 8.0),) and lim.mkt_limit == 8
    assert LIB.limits("vaccine_2_8", "temp_c").max_gap_ns == 3600 * S
    s = reg.start("truck-7", "quick", "olga", now_ns=T0)
    rs = [reading(T0, 12.0), reading(T0 + 5 * 3600 * S, 5.0)]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + 5 * 3600 * S + MIN)
    st = report_for(reg, reg.require(s.id), [], lib, now_ns=T0).series[0]
    assert st.band_s["> 8 °C"] == pytest.approx(600)


def test_several_loggers_summary_is_the_worst(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    rs = [reading(T0 + i * MIN, 5.0, "lg-1") for i in range(10)]
    rs += [reading(T0 + i * MIN, 9.0 if i < 3 else 6.0, "lg-2") for i in range(10)]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + 10 * MIN)
    r = report_for(reg, reg.require(s.id), [], LIB, now_ns=T0)
    assert [x.device for x in r.series] == ["lg-1", "lg-2"]
    assert r.summary.n == 20 and r.summary.max == 9.0 and r.summary.min == 5.0
    assert r.summary.band_s["> 8 °C"] == pytest.approx(180)
    assert r.summary.mkt == max(x.mkt for x in r.series)  # type: ignore[type-var]


def test_alerts_with_actions_and_csv_sections(tmp_path: Path, reg: ShipmentRegistry) -> None:
    clock = ManualClock(T0)
    cfg = RulesConfig.model_validate({"bindings": [{"asset": "truck-*", "profile": "vaccine_2_8"}]})
    engine = RulesEngine(cfg, AlertStore(tmp_path / "alerts.sqlite"), clock)
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    temps = [5.0, 12.0, 12.5, 5.0, 5.0]
    for i, t in enumerate(temps):
        r = [reading(T0 + (i + 1) * MIN, t)]
        clock.set(T0 + (i + 1) * MIN + S)
        reg.enrich(r)
        reg.record(r)
        engine.process(r)
    alert = engine.store.list_alerts(rule="vaccine_2_8.high")[0]
    assert alert.tags.get("shipment") == s.id
    engine.ack(alert.id, "olga", "door was open")
    reg.stop(s.id, "olga", now_ns=T0 + 6 * MIN)
    alerts = gather_alerts(engine.store, reg.require(s.id))
    assert [a.alert["rule"] for a in alerts] == ["vaccine_2_8.high"]
    kinds = [a.kind for a in alerts[0].actions]
    assert kinds[0] == "raised" and "acked" in kinds and "cleared" in kinds
    acked = next(a for a in alerts[0].actions if a.kind == "acked")
    assert (acked.by, acked.reason) == ("olga", "door was open")

    report = report_for(reg, reg.require(s.id), alerts, LIB, now_ns=T0 + 7 * MIN)
    text = to_csv(report)
    rows = list(csv.reader(io.StringIO(text)))
    sections = {r[0] for r in rows if r}
    assert {
        "report",
        "signature",
        "shipment",
        "limits",
        "statistics",
        "out_of_range",
        "alerts",
        "actions",
    } <= sections
    sig = {r[1]: r[2] for r in rows if r and r[0] == "signature"}
    assert sig["status"] == "not signed"
    stats = [r for r in rows if r and r[0] == "statistics"]
    assert stats[0][1] == "device" and stats[2][1] == "lg-1"
    assert stats[2][6:8] == ["5.00", "12.50"]
    assert any(r[0] == "actions" and r[2] == "acked" and r[6] == "olga" for r in rows if r)
    oor = {(r[1], r[2]): r[3] for r in rows if r and r[0] == "out_of_range" and r[1] == "lg-1"}
    assert oor[("lg-1", "> 8 °C")] == "120"


def test_digest_ignores_generation_time_and_signature(reg: ShipmentRegistry) -> None:
    sid = ship(reg, [5.0, 6.0])
    a = report_for(reg, reg.require(sid), [], LIB, now_ns=T0)
    b = report_for(reg, reg.require(sid), [], LIB, now_ns=T0 + 999 * S)
    assert content_digest(a) == content_digest(b)
    reg.approve(sid, "qa1", "Quinn Quality", "reviewed and approved", content_digest(a))
    signed = report_for(reg, reg.require(sid), [], LIB)
    assert content_digest(signed) == content_digest(a)
    rows = {
        r[1]: r[2] for r in csv.reader(io.StringIO(to_csv(signed))) if r and r[0] == "signature"
    }
    assert rows["status"] == "signed" and rows["signed_by_name"] == "Quinn Quality"
    assert rows["meaning"] == "reviewed and approved"
    assert rows["content_unchanged_since_signature"] == "yes"
    late = [reading(T0 + 30 * S, 20.0)]  # a late upload changes the data after signing
    reg.enrich(late)
    reg.record(late)
    after = report_for(reg, reg.require(sid), [], LIB)
    rows = {r[1]: r[2] for r in csv.reader(io.StringIO(to_csv(after))) if r and r[0] == "signature"}
    assert rows["content_unchanged_since_signature"] == "NO"


def test_pdf_renders_with_chart_and_signature(reg: ShipmentRegistry) -> None:
    sid = ship(reg, [5.0 + (i % 7) for i in range(300)], step=MIN, product="Vaccine <MMR> & co")
    reg.approve(sid, "qa1", "Quinn Quality", "reviewed and approved")
    report = report_for(reg, reg.require(sid), [], LIB)
    pdf = to_pdf(report)
    assert pdf.startswith(b"%PDF") and len(pdf) > 3000
    text = pdf_text(pdf)
    assert sid in text and "Quinn Quality" in text and "reviewed and approved" in text
    assert "Time out of range" in text and "MKT" in text
    assert "Vaccine<MMR>&co" in text.replace(" ", "")  # mark-up characters survive as text
    assert "°C" in text


def test_empty_shipment_still_reports(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "nope", "olga", now_ns=T0)
    report = build_report(reg.require(s.id), [], [], profile_limits(LIB, "nope"), T0)
    assert report.series == [] and report.summary.n == 0
    assert to_pdf(report).startswith(b"%PDF")
    assert "not signed (shipment still active)" in to_csv(report)


PRODUCT = "新冠病毒灭活疫苗（Vero细胞）"
ORIGIN = "上海市浦东新区"
DESTINATION = "北京市朝阳区"


def test_pdf_in_chinese_keeps_every_glyph(reg: ShipmentRegistry, tmp_path: Path) -> None:
    """pdftotext of a report whose product, origin and destination are Chinese returns those
    exact strings; labels, the verdict and times (Beijing time) are in Chinese."""
    temps = [5.0] * 10 + [9.5] * 4 + [5.0] * 10
    sid = ship(reg, temps, step=MIN, product=PRODUCT, origin=ORIGIN, destination=DESTINATION)
    reg.approve(sid, "qa1", "质量部 张伟", "已审核并批准")
    report = report_for(reg, reg.require(sid), [], LIB, now_ns=T0 + 30 * MIN)
    pdf = to_pdf(report, "zh-CN", "Asia/Shanghai")
    (tmp_path / "zh.pdf").write_bytes(pdf)
    text = pdf_text(pdf)
    flat = text.replace(" ", "")
    for s in (PRODUCT, ORIGIN, DESTINATION, "质量部张伟", "已审核并批准"):
        assert s.replace(" ", "") in flat, s
    assert "运输温度记录报告" in text and "结论" in text and "温度超标" in flat
    assert "平均动力学温度" in text and "电子签名" in text
    assert "第 1 页，共" in text and "已批准" in text  # page numbers; the status as the API says
    assert "2026-11-18 19:06:40 UTC+08:00" in text  # T0 in Beijing time
    assert "?" not in text  # no glyph lost
    en = pdf_text(to_pdf(report, "en", "UTC"))
    assert PRODUCT in en.replace(" ", "")  # an English report prints Chinese data too
    assert "Verdict: Temperature excursion" in en and "page 1 of" in en
    assert "2026-11-18 11:06:40 UTC" in en


def test_within_limits(reg: ShipmentRegistry) -> None:
    ok = report_for(reg, reg.require(ship(reg, [5.0] * 12)), [], LIB, now_ns=T0)
    assert ok.verdict.code == "within_limits" and ok.verdict.reasons == ()
    assert ok.excursions == [] and ok.devices[0].completeness.share == 1.0


def test_excursion_verdict_and_table(reg: ShipmentRegistry) -> None:
    hot = report_for(reg, reg.require(ship(reg, [5.0, 9.0, 9.5, 5.0])), [], LIB, now_ns=T0)
    assert hot.verdict.code == "excursion"
    [row] = hot.excursions
    e = row.excursion
    assert (e.side, e.limit, e.peak, e.duration_s) == ("high", 8.0, 9.5, 600)
    assert (e.start_ns, e.end_ns) == (T0 + 5 * MIN, T0 + 15 * MIN)
    assert "lg-1: 10m above 8 °C (peak 9.5 °C)" in [str(t) for t in hot.verdict.reasons]


def test_mkt_above_its_limit_is_the_verdict_even_without_an_excursion() -> None:
    """MKT 8.17 °C against an 8 °C limit is flagged, with every reading inside 2-8 °C."""
    lib = RulesConfig.model_validate(
        {
            "profiles": {
                "tight": {
                    "rules": [
                        {"id": "high", "kind": "threshold", "field": "temp_c", "high": 9},
                        {"id": "mkt", "kind": "mkt", "field": "temp_c", "limit": 8},
                    ]
                }
            }
        }
    ).library()
    reg = ShipmentRegistry(Path(tempfile.mkdtemp()) / "s.sqlite")
    s = reg.start("truck-7", "tight", "olga", now_ns=T0)
    rs = [reading(T0 + i * 5 * MIN, 8.17) for i in range(12)]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + 60 * MIN)
    r = report_for(reg, reg.require(s.id), [], lib, now_ns=T0)
    assert r.verdict.code == "mkt_above_limit"
    assert str(r.verdict.reasons[0]) == "MKT 8.17 °C above the limit of 8 °C"
    csv_rows = list(csv.reader(io.StringIO(to_csv(r, "zh-CN", "Asia/Shanghai"))))
    assert ["verdict", "text", "平均动力学温度超限"] in csv_rows


def test_gaps_make_the_record_incomplete(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    rs = [reading(T0 + i * MIN, 5.0) for i in range(10)]
    rs += [reading(T0 + (30 + i) * MIN, 5.0) for i in range(10)]  # 20 min without a record
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + 40 * MIN)
    r = report_for(reg, reg.require(s.id), [], LIB, now_ns=T0)
    assert r.verdict.code == "incomplete"
    [dev] = r.devices
    assert dev.interval_s == 60 and len(dev.completeness.gaps) == 1
    gap = dev.completeness.gaps[0]
    assert (gap.start_ns, gap.end_ns) == (T0 + 9 * MIN, T0 + 30 * MIN)
    rows = list(csv.reader(io.StringIO(to_csv(r))))
    assert any(row[:2] == ["gaps", "lg-1"] for row in rows)
    assert ["humidity", "lg-1", "20", "40.00", "40.00", "40.00"] in rows
