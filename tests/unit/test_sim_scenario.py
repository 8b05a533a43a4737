"""Scenario files: validation with useful errors, expansion, shipped scenarios, start time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from simulators import scenarios
from simulators.fleet import Fleet, resolve_start
from simulators.scenario import ScenarioError, load_scenario, parse_duration, parse_scenario

BASE = {
    "duration": "2h",
    "sites": [
        {
            "id": "wh-1",
            "assets": [{"id": "fridge-01", "kind": "fridge", "devices": [{"id": "t1"}]}],
        }
    ],
}


def write(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def with_asset(**asset: object) -> dict[str, object]:
    a = {"id": "fridge-01", "kind": "fridge", "devices": [{"id": "t1"}], **asset}
    return {**BASE, "sites": [{"id": "wh-1", "assets": [a]}]}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("0.5h", 1800),
        ("500ms", 0.5),
        ("1d", 86400),
        ("42", 42),
        (7, 7),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 parsecs", "h", "1h 30", "m5"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("data", "where", "what"),
    [
        ({**BASE, "intervall": "60s"}, "intervall", "Extra inputs"),
        ({**BASE, "duration": "soon"}, "duration", "not a duration"),
        (with_asset(kind="freezer"), "sites[0].assets[0].kind", "fridge"),
        (with_asset(band=[8, 2]), "sites[0].assets[0].band", "below max"),
        (
            with_asset(faults=[{"kind": "freeze_dip", "start": "1h"}]),
            "sites[0].assets[0].faults[0].duration",
            "required",
        ),
        (
            with_asset(faults=[{"kind": "melt", "start": "1h"}]),
            "sites[0].assets[0].faults[0]",
            "does not match",
        ),
        (
            with_asset(faults=[{"kind": "offline", "start": "1h"}]),
            "sites[0].assets[0].faults[0]",
            "device fault",
        ),
        (
            with_asset(devices=[{"id": "t1", "faults": [{"kind": "door_open"}]}]),
            "sites[0].assets[0].devices[0].faults[0]",
            "an asset fault",
        ),
        ({**BASE, "speed": "slow"}, "speed", "or 'max'"),
        (
            with_asset(faults=[{"kind": "door_open", "start": "3h"}]),
            "sites[0].assets[0].faults[0].start",
            "not before the scenario's end",
        ),
        (
            with_asset(devices=[{"id": "t1"}, {"id": "t1"}]),
            "sites[0].assets[0].devices[1].id",
            "duplicate device id",
        ),
        (
            with_asset(devices=[{"id": "t/1"}]),
            "sites[0].assets[0].devices[0].id",
            "topic segment",
        ),
        (
            with_asset(
                devices=[{"id": "t1", "faults": [{"kind": "low_battery", "level_pct": 150}]}]
            ),
            "sites[0].assets[0].devices[0].faults[0].level_pct",
            "less than or equal to 100",
        ),
        (
            with_asset(faults=[{"kind": "heat_excursion", "duration": "1h", "ramp": "40m"}]),
            "sites[0].assets[0].faults[0]",
            "more than half",
        ),
    ],
)
def test_errors_name_the_file_and_the_key(
    tmp_path: Path, data: object, where: str, what: str
) -> None:
    p = write(tmp_path, data)
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    text = str(info.value)
    assert text.startswith(f"{p}: {where}"), text
    assert what in text


def test_every_error_is_reported(tmp_path: Path) -> None:
    data = {**with_asset(kind="freezer"), "duration": -1, "speed": "slow"}
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, data))
    assert len(info.value.errors) == 3


def test_unreadable_and_invalid_yaml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    p = write(tmp_path, "sites: [unclosed\n")
    with pytest.raises(ScenarioError, match=f"^{p}: not valid YAML"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(write(tmp_path, "- a\n- b\n"))


def test_count_expands_assets_and_devices_with_templates() -> None:
    s = parse_scenario(
        with_asset(id="fridge-{n:02d}", count=3, devices=[{"id": "{asset}-t{n}", "count": 2}])
    )
    assets = s.sites[0].assets
    assert [a.id for a in assets] == ["fridge-01", "fridge-02", "fridge-03"]
    assert [d.id for d in assets[2].devices] == ["fridge-03-t1", "fridge-03-t2"]
    assert s.device_count() == 6
    with pytest.raises(ScenarioError, match="placeholder"):
        parse_scenario(with_asset(count=2))


def test_plcs_pass_through_untouched_and_speed_words() -> None:
    plcs = [{"id": "autoclave-1", "port": 5020, "registers": {"chamber_temp_c": [0, "float32"]}}]
    s = parse_scenario({**BASE, "plcs": plcs, "speed": "max"})
    assert s.plcs == plcs
    assert s.speed == 0
    t = s.with_overrides(duration=60, speed=10)
    assert (t.duration, t.speed, s.duration) == (60, 10, 7200)
    with pytest.raises(ValueError):
        s.with_overrides(speed=-1)


def test_resolve_start_keeps_the_simulated_clock_behind_the_wall_clock() -> None:
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    s = parse_scenario({**BASE, "speed": 60})
    start = resolve_start(s, now)
    wall = timedelta(seconds=7200 / 60)
    assert start + timedelta(seconds=7200) == now + wall  # the last reading is stamped "now"
    assert resolve_start(s.with_overrides(speed=0), now) == now - timedelta(hours=2)
    assert resolve_start(s.with_overrides(speed=1), now) == now
    fixed = parse_scenario({**BASE, "start": "2026-01-01T00:00:00+01:00"})
    assert resolve_start(fixed, now) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


def test_shipped_scenarios_are_found_and_valid() -> None:
    names = scenarios.names()
    for needed in (
        "demo",
        "fridge_door",
        "truck_offline_compressor_failure",
        "freeze_dip",
        "malformed",
        "fault_mix",
    ):
        assert needed in names
        s = load_scenario(scenarios.path(needed))
        assert s.name == needed
        Fleet(s)  # thermal parameters valid too
    assert scenarios.path("demo.yaml") == scenarios.path("demo")
    with pytest.raises(FileNotFoundError, match="demo"):
        scenarios.path("nope")
