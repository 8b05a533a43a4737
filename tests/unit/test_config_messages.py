"""Config errors in a user's words: the collector kind, the closest key, the retention floor."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config


def problems(raw: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "f.yaml", env={})
    return e.value.problems


def test_kind_wording_for_collectors_and_channels() -> None:
    assert problems({"collectors": [{"kind": "carrier"}]}) == [
        "f.yaml: collectors[0].kind: unknown kind 'carrier', one of mqtt, modbus"
    ]
    assert problems({"notifiers": {"channels": {"ops": {"url": "http://x"}}}}) == [
        "f.yaml: notifiers.channels.ops.kind: required, one of mqtt, webhook, email, "
        "aliyun_sms, tencent_sms, dingtalk, wecom, modbus_output"
    ]


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"journal": {"max_byte": 1}}, "journal.max_byte: unknown key; did you mean 'max_bytes'?"),
        ({"rules": {"bindngs": []}}, "rules.bindngs: unknown key; did you mean 'bindings'?"),
        ({"gateway": {"backup": {"destination": "/b", "kep": 3}}}, "did you mean 'keep'?"),
        ({"retention": {"records_yrs": 5}}, "did you mean 'records_years'?"),
        ({"gateway": {"zzz": 1}}, "gateway.zzz: unknown key"),
    ],
)
def test_unknown_keys_suggest_the_closest(raw: dict[str, object], line: str) -> None:
    [p] = problems(raw)
    assert line in p


def test_retention_floor_and_test_mode() -> None:
    [p] = problems({"retention": {"records_years": 4.9}})
    assert "retention.records_years: below the floor of 5 years" in p
    cfg = parse_config({"retention": {"records_years": 0.01, "test_mode": True}}, "f", env={})
    assert cfg.retention.records_years == 0.01
    assert parse_config({}, "f", env={}).retention.records_years == 5


def test_backup_schedule_is_checked() -> None:
    [p] = problems({"gateway": {"backup": {"destination": "/b", "at": "7pm"}}})
    assert "gateway.backup.at: expected a time of day HH:MM" in p
    [p] = problems({"gateway": {"timezone": "Mars/Base"}})
    assert p.startswith("f.yaml: gateway.timezone: unknown time zone 'Mars/Base'")
    cfg = parse_config({"gateway": {"backup": {"destination": "/b", "at": "2:05"}}}, "f", env={})
    assert cfg.gateway.backup is not None and cfg.gateway.backup.at == "02:05"
