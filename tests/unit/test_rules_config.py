"""Rule packs, profiles, bindings and the `rules:` config section."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alert_rules import RulesConfig, RulesConfigError, load_pack, load_rules_config
from alert_rules.config import BUILTIN_PACKS_DIR
from alert_rules.kinds.duration import DurationRule
from alert_rules.units import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("10h", 36000.0),
        ("30d", 2592000.0),
        ("250ms", 0.25),
        ("2 h", 7200.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10 parsecs", "h", "", True, "5m3"])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_builtin_packs_load_and_carry_the_regulatory_numbers() -> None:
    lib = RulesConfig().library()
    assert {
        "device_health",
        "vaccine_2_8",
        "frozen",
        "crt",
        "who_shipping_indicator",
        "cleanroom_grade_b",
    } <= set(lib.profiles)
    vac = lib.profiles["vaccine_2_8"]
    freeze = vac["freeze_alarm"][1]
    assert isinstance(freeze, DurationRule)
    assert (freeze.low, freeze.inclusive, freeze.timer, freeze.duration) == (
        -0.5,
        True,
        "single",
        3600,
    )
    heat = vac["heat_alarm"][1]
    assert (heat.high, heat.inclusive, heat.duration) == (8, False, 36000)  # > 8 °C for 10 h
    assert vac["mkt_24h"][1].window == 86400 and vac["mkt_24h"][1].limit == 8
    assert lib.profiles["crt"]["mkt_30d"][1].window == 30 * 86400
    assert "mkt" not in {spec.kind for _, spec in lib.profiles["frozen"].values()}
    who = lib.profiles["who_shipping_indicator"]
    timers = {
        rid: (s.high, s.low, s.timer, s.duration, getattr(s, "scope", None))
        for rid, (_, s) in who.items()
        if s.kind == "duration"
    }
    assert timers == {
        "heat_45_1h": (45, None, "single", 3600, "window"),
        "heat_30_10h": (30, None, "cumulative", 36000, "shipment"),
        "freeze_1h": (None, -0.5, "single", 3600, "window"),
        "heat_10_20h": (10, None, "cumulative", 72000, "shipment"),
    }
    # inherited rules keep the name of the profile that defines them
    assert vac["stale"][0] == "device_health"
    assert who["stale"][0] == "who_shipping_indicator"  # overridden: 5 min in transport


def test_every_builtin_pack_validates_on_its_own() -> None:
    files = sorted(BUILTIN_PACKS_DIR.glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        assert load_pack(f).profiles


def test_bindings_pick_rules_by_tags_and_apply_overrides() -> None:
    cfg = RulesConfig.model_validate(
        {
            "bindings": [
                {
                    "site": "wh1",
                    "asset": "fridge-*",
                    "profile": "vaccine_2_8",
                    "overrides": {"stale": {"expected_interval": "5m"}, "high": {"on_delay": "2m"}},
                },
                {"device": "truck-*", "profile": ["who_shipping_indicator"]},
            ]
        }
    )
    lib = cfg.library()
    rules = {
        r.id: r
        for r in lib.rules_for("coldchain", {"site": "wh1", "asset": "fridge-3", "device": "lg-1"})
    }
    assert "vaccine_2_8.freeze_alarm" in rules and "device_health.stale" in rules
    assert rules["device_health.stale"].spec.expected_interval == 300
    assert rules["vaccine_2_8.high"].spec.on_delay == 120
    assert lib.rules_for("coldchain", {"site": "wh2", "asset": "fridge-3", "device": "x"}) == []
    truck = {r.id for r in lib.rules_for("coldchain", {"site": "road", "device": "truck-7"})}
    assert "who_shipping_indicator.heat_30_10h" in truck


def test_unknown_profile_in_binding_names_the_key() -> None:
    cfg = RulesConfig.model_validate(
        {"bindings": [{"profile": "vaccine_2_8"}, {"profile": "vacine_2_8"}]}
    )
    with pytest.raises(RulesConfigError) as exc:
        cfg.library()
    assert any(
        e.startswith("rules.bindings[1].profile[0]: unknown profile 'vacine_2_8'")
        for e in exc.value.errors
    )


def test_bad_override_names_the_key() -> None:
    cfg = RulesConfig.model_validate(
        {
            "bindings": [
                {
                    "profile": "vaccine_2_8",
                    "overrides": {"freeze_alarm": {"duration": "soon"}, "nope": {"x": 1}},
                }
            ]
        }
    )
    with pytest.raises(RulesConfigError) as exc:
        cfg.library()
    text = str(exc.value)
    assert "rules.bindings[0].overrides.freeze_alarm.duration: Value error, expected a" in text
    assert "rules.bindings[0].overrides.nope: no rule 'nope'" in text


def test_pack_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "pack": "bad",
                "profiles": {
                    "p": {
                        "rules": [
                            {"id": "a", "kind": "threshold", "field": "temp_c"},
                            {
                                "id": "b",
                                "kind": "duration",
                                "field": "temp_c",
                                "high": 8,
                                "timer": "weekly",
                            },
                            {"id": "c", "kind": "teleport"},
                        ]
                    }
                },
            }
        )
    )
    with pytest.raises(RulesConfigError) as exc:
        load_pack(bad)
    errors = exc.value.errors
    assert all(e.startswith(f"{bad}: profiles.p.rules[") for e in errors)
    assert f"{bad}: profiles.p.rules[0]: Value error, give exactly one of 'high' or 'low'" in errors
    assert any(e.startswith(f"{bad}: profiles.p.rules[1].timer: ") for e in errors)
    assert any("rules[2]" in e and "teleport" in e for e in errors)


def test_misspelt_key_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n  latenes: 5s\n")
    with pytest.raises(RulesConfigError, match=r"rules\.latenes: Extra inputs"):
        load_rules_config(f)


def test_extra_pack_and_inline_profile(tmp_path: Path) -> None:
    pack = tmp_path / "mine.yaml"
    pack.write_text(
        yaml.safe_dump(
            {
                "pack": "mine",
                "profiles": {
                    "insulin": {
                        "extends": ["vaccine_2_8"],
                        "rules": [
                            {
                                "id": "heat_alarm",
                                "kind": "duration",
                                "field": "temp_c",
                                "high": 8,
                                "inclusive": False,
                                "timer": "single",
                                "duration": "4h",
                            }
                        ],
                    }
                },
            }
        )
    )
    cfg_file = tmp_path / "gateway.yaml"
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "rules": {
                    "packs": ["mine.yaml"],
                    "profiles": {
                        "lab": {
                            "rules": [
                                {"id": "hot", "kind": "threshold", "field": "temp_c", "high": 30}
                            ]
                        }
                    },
                    "bindings": [
                        {"asset": "ins-*", "profile": "insulin"},
                        {"asset": "lab", "profile": "lab"},
                    ],
                }
            }
        )
    )
    cfg = load_rules_config(cfg_file)
    lib = cfg.library(tmp_path)
    ids = {r.id: r for r in lib.rules_for("coldchain", {"asset": "ins-1", "device": "d"})}
    assert ids["insulin.heat_alarm"].spec.duration == 4 * 3600
    assert "vaccine_2_8.heat_alarm" not in ids  # replaced, not doubled
    assert "vaccine_2_8.freeze_alarm" in ids
    assert [r.id for r in lib.rules_for("coldchain", {"asset": "lab"})] == ["lab.hot"]


def test_missing_pack_file_and_extends_cycle(tmp_path: Path) -> None:
    cfg = RulesConfig.model_validate(
        {
            "packs": ["nowhere.yaml"],
            "profiles": {
                "a": {"extends": ["b"]},
                "b": {"extends": ["a"]},
                "c": {"extends": ["zz"]},
            },
        }
    )
    with pytest.raises(RulesConfigError) as exc:
        cfg.library(tmp_path)
    text = str(exc.value)
    assert "rules.packs[0]: no pack file 'nowhere.yaml'" in text
    assert "cycle" in text
    assert "profiles.c.extends[0]: unknown profile 'zz'" in text


def test_duration_rule_validation() -> None:
    with pytest.raises(ValueError, match="needs 'window'"):
        DurationRule(id="x", field="t", high=1, timer="cumulative", duration=10)
    with pytest.raises(ValueError, match="'duration' must be > 0"):
        DurationRule(id="x", field="t", high=1, timer="single")
    ok = DurationRule(
        id="x", field="t", high=1, timer="cumulative", duration="10h", scope="shipment"
    )
    assert ok.duration == 36000


def test_override_can_disable_a_rule_and_escalation_by_priority() -> None:
    cfg = RulesConfig.model_validate(
        {
            "escalation": {"after": "15m", "by_priority": {"critical": "5m"}},
            "bindings": [
                {"profile": "vaccine_2_8", "overrides": {"door_open": {"enabled": False}}}
            ],
        }
    )
    rules = {r.id: r for r in cfg.library().rules_for("coldchain", {"device": "d"})}
    assert "device_health.door_open" not in rules
    assert rules["vaccine_2_8.freeze_alarm"].escalate_after_ns == 300 * 10**9  # critical
    assert rules["vaccine_2_8.high"].escalate_after_ns == 900 * 10**9
    assert rules["vaccine_2_8.high"].max_shelve_ns == 8 * 3600 * 10**9
