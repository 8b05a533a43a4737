"""Languages and time zones: negotiation, translatable alert texts, catalogs, notification texts
in Chinese and English, the alert store and user store keeping what they need."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_rules import AlertStore, EventKind, ManualClock, RulesConfig, RulesEngine
from gateway.core.i18n import (
    Dur,
    Text,
    Time,
    catalog,
    fmt_duration,
    fmt_time,
    gettext,
    negotiate,
    normalize,
    parse_accept_language,
)
from gateway.core.reading import Reading
from gateway.notifiers.message import payload, subject, text_body
from gateway.records.users import UserError, UserStore
from tests.api_rig import FAST_HASHER

S = 1_000_000_000
T0 = 1_795_000_000 * S  # 2026-11-18T11:06:40Z, 19:06:40 in Beijing
ROOT = Path(__file__).resolve().parents[2]


def test_language_tags_we_speak() -> None:
    assert normalize("zh") == normalize("zh_CN") == normalize("zh-Hans-CN") == "zh-CN"
    assert normalize("ZH-cn") == "zh-CN" and normalize("en-GB") == "en"
    assert normalize("fr") is None and normalize("zh-TW") is None and normalize(None) is None


def test_accept_language_by_quality() -> None:
    assert parse_accept_language("fr;q=1, en;q=0.5, zh-CN;q=0.8") == ["zh-CN", "en"]
    assert parse_accept_language("en-US,en;q=0.9") == ["en"]
    assert parse_accept_language("zh;q=0, en") == ["en"]
    assert negotiate(None, None, accept_language="de, en;q=0.1", default="zh-CN") == "en"
    assert negotiate(None, "zh-CN", accept_language="en") == "zh-CN"  # the user's choice wins
    assert negotiate("en", "zh-CN", accept_language="zh") == "en"  # the request's lang= first
    assert negotiate(None, None, accept_language=None, default="en") == "en"


@given(st.text(max_size=200))
def test_accept_language_never_raises(header: str) -> None:
    for lang in parse_accept_language(header):
        assert lang in ("zh-CN", "en")


def test_times_state_their_zone() -> None:
    assert fmt_time(T0, "Asia/Shanghai") == "2026-11-18 19:06:40 UTC+08:00"
    assert fmt_time(T0, "UTC") == "2026-11-18 11:06:40 UTC"
    assert fmt_time(T0, "America/New_York") == "2026-11-18 06:06:40 UTC-05:00"
    assert fmt_time(None) == ""
    assert fmt_duration(5400, "zh-CN") == "1小时30分" and fmt_duration(5400) == "1h30m"


def test_text_renders_in_each_language_and_round_trips() -> None:
    text = Text(
        "{label}: {what}",
        {
            "label": Text("battery low"),
            "what": Text(
                "{field} {op} {limit}{unit} for {delay} since {since} (value {value}{unit})",
                {
                    "field": "battery_pct",
                    "op": "≤",
                    "limit": "20",
                    "unit": " %",
                    "delay": Dur(600),
                    "since": Time(T0),
                    "value": "18",
                },
            ),
        },
    )
    english = "battery low: battery_pct ≤ 20 % for 10m since 2026-11-18T11:06:40Z (value 18 %)"
    assert str(text) == english
    assert text.render("zh-CN", "Asia/Shanghai") == (
        "电量低：battery_pct ≤ 20 % 持续 10分，自 2026-11-18 19:06:40 UTC+08:00（数值 18 %）"
    )
    again = Text.from_json(text.to_json())
    assert again == text and str(again) == english
    assert Text.from_json({"nope": 1}) is None and Text.from_json("x") is None


def test_a_template_that_does_not_format_falls_back() -> None:
    assert Text("{value:.0%} of budget", {"value": None}).render("zh-CN", "UTC") == (
        "{value:.0%} of budget"
    )
    assert Text("{missing} here").render() == "{missing} here"


def test_catalogs_are_complete_and_compiled() -> None:
    """Every msgid of the code, the console and the packs has a Chinese translation naming
    the same placeholders, and the committed .mo files match their .po files."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "i18n.py"), "check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    zh = catalog("zh-CN")
    assert zh["Temperature excursion"] == "温度超标"
    assert zh["MKT above limit"] == "平均动力学温度超限"
    assert zh["Acknowledge"] == "确认" and zh["Close"] == "关闭"
    assert zh["Electronic signature"] == "电子签名" and zh["Audit trail"] == "审计追踪"
    assert gettext("Temperature excursion", "en") == "Temperature excursion"


def _engine(tmp_path: Path) -> tuple[RulesEngine, ManualClock]:
    clock = ManualClock(T0)
    cfg = RulesConfig.model_validate({"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]})
    return RulesEngine(cfg, AlertStore(tmp_path / "alerts.sqlite"), clock), clock


def _reading(ts: int, temp: float) -> Reading:
    return Reading(
        "coldchain",
        {"site": "wh1", "asset": "fridge-3", "device": "lg-1"},
        {"temp_c": temp},
        ts,
        ts,
    )


def test_alerts_keep_their_text_and_notifications_speak_chinese(tmp_path: Path) -> None:
    engine, _clock = _engine(tmp_path)
    engine.process([_reading(T0, 5.0)])
    events = engine.process([_reading(T0 + 60 * S, 9.4)])
    ev = next(e for e in events if e.alert.rule == "vaccine_2_8.high")
    assert ev.kind is EventKind.RAISED
    a = engine.store.get_alert(ev.alert.id)
    assert a is not None and a.text is not None
    assert a.message == "temp_c > 8 °C since 2026-11-18T11:07:40Z (value 9.4 °C)"
    assert subject(ev).startswith("[HIGH] vaccine_2_8.high fridge-3/lg-1 at wh1: temp_c > 8 °C")
    zh = subject(ev, "zh-CN", "Asia/Shanghai")
    assert zh == (
        "[高] vaccine_2_8.high wh1 的 fridge-3/lg-1: temp_c > 8 °C，"
        "自 2026-11-18 19:07:40 UTC+08:00（数值 9.4 °C）"
    )
    body = text_body(ev, "gw1", "zh-CN", "Asia/Shanghai")
    assert "报警时间:" in body and "2026-11-18 19:07:40 UTC+08:00" in body
    assert "级别:" in body and "高" in body and "未确认" in body
    doc = payload(ev, "gw1", lang="zh-CN", tz="Asia/Shanghai")
    assert doc["lang"] == "zh-CN" and doc["message"].startswith("temp_c > 8 °C，自")
    assert doc["raised_at"] == "2026-11-18T11:07:40.000Z"  # machine fields stay UTC
    english = text_body(ev, "gw1")
    assert "Raised at (UTC):" in english and "2026-11-18T11:07:40.000Z" in english


def test_an_alert_store_from_before_texts_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    engine, _clock = _engine(tmp_path)
    engine.process([_reading(T0, 5.0), _reading(T0 + 60 * S, 9.4)])
    engine.store.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE alerts DROP COLUMN text")
    db.commit()
    db.close()
    store = AlertStore(path)
    [old] = store.list_alerts(rule="vaccine_2_8.high")
    assert old.text is None and old.message.startswith("temp_c > 8 °C")
    store.close()


def test_users_choose_their_language(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.sqlite", hasher=FAST_HASHER)
    users.add("qa1", "张伟", "qa", "qa-password-1")
    assert users.get("qa1").language is None  # type: ignore[union-attr]
    old, new = users.set_language("qa1", "zh-CN")
    assert old.language is None and new.language == "zh-CN"
    assert users.get("qa1").language == "zh-CN"  # type: ignore[union-attr]
    with pytest.raises(UserError):
        users.set_language("qa1", "fr")
    users.close()
