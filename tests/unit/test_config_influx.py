"""The `influx:` section from the file and from the environment (VIGIL_INFLUX_*)."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config

ENV_V1 = {
    "VIGIL_INFLUX_URL": "http://influx18:8086",
    "VIGIL_INFLUX_VERSION": "1",
    "VIGIL_INFLUX_DATABASE": "plant",
    "VIGIL_INFLUX_RETENTION_POLICY": "one_year",
    "VIGIL_INFLUX_USERNAME": "vigil",
    "VIGIL_INFLUX_PASSWORD": "s3cret-pw",
}


def test_influxdb_1_from_the_environment() -> None:
    cfg = parse_config({}, "(env)", env=ENV_V1)
    assert cfg.influx is not None
    i = cfg.influx
    assert (i.version, i.url, i.database, i.retention_policy) == (
        1,
        "http://influx18:8086",
        "plant",
        "one_year",
    )
    assert (i.username, i.password) == ("vigil", "s3cret-pw")
    assert "s3cret-pw" not in repr(cfg)  # never logged


def test_environment_wins_over_the_file_and_v2_stays_the_default() -> None:
    raw = {"influx": {"url": "http://file:8086", "token": "t", "bucket": "b"}}
    assert parse_config(raw, "f", env={}).influx.version == 2  # type: ignore[union-attr]
    cfg = parse_config(
        {"influx": {"url": "http://file:8086", "database": "f"}},
        "f",
        env={"VIGIL_INFLUX_VERSION": "1", "VIGIL_INFLUX_DATABASE": "e"},
    )
    assert cfg.influx is not None and (cfg.influx.version, cfg.influx.database) == (1, "e")
    # settings without a URL mean nothing: the journal alone
    assert parse_config({}, "f", env={"VIGIL_INFLUX_DATABASE": "x"}).influx is None


def test_a_user_without_password_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({}, "f", env={**ENV_V1, "VIGIL_INFLUX_PASSWORD": ""})
    assert "username and password" in str(e.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"influx": {"url": "http://x", "version": 1, "database": ""}}, "needs a database"),
        ({"completeness": {"window_s": 0}}, "completeness.window_s"),
    ],
)
def test_errors_name_the_key(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "vigil.yaml", env={})
    assert expected in str(e.value) and "vigil.yaml" in str(e.value)
