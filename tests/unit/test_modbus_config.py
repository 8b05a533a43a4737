"""Collector configuration: profiles, defaults, precedence, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from collectors.modbus.config import ModbusCollectorConfig
from collectors.modbus.planner import plan_requests
from simulators.plc.layout import (
    AUTOCLAVE,
    AUTOCLAVE_CLOCK,
    CLEANROOM,
    CLEANROOM_CLOCK,
    FILLING_LINE,
    FILLING_LINE_CLOCK,
    FREEZE_DRYER,
    FREEZE_DRYER_CLOCK,
)

ROOT = Path(__file__).resolve().parents[2]


def cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "modbus",
        "defaults": {"line": "L1", "interval_s": 2.0, "order": "CDAB"},
        "profiles": {
            "ac": {
                "registers": [
                    {"name": "temp_c", "fc": "input_registers", "address": 0, "type": "float32"},
                    {"name": "p_kpa", "fc": 4, "address": 2, "type": "float32", "order": "ABCD"},
                    {"name": "phase", "fc": 3, "address": 10, "tag": True, "values": {1: "hold"}},
                ]
            }
        },
        "devices": [{"name": "AC-1", "host": "10.0.0.5", "profile": "ac"}],
    }
    base.update(over)
    return base


def errors(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        ModbusCollectorConfig.model_validate(data)
    return "\n".join(
        ".".join(str(x) for x in err["loc"]) + ": " + err["msg"] for err in e.value.errors()
    )


def test_defaults_profiles_and_precedence() -> None:
    c = ModbusCollectorConfig.model_validate(
        cfg(
            devices=[
                {"name": "AC-1", "host": "h", "profile": "ac"},
                {
                    "name": "AC-2",
                    "host": "h",
                    "port": 5020,
                    "interval_s": 0.5,
                    "line": "L2",
                    "profile": "ac",
                    "registers": [
                        {"name": "temp_c", "fc": 4, "address": 100, "type": "float32"},
                        {"name": "door", "fc": "discrete_inputs", "address": 3},
                    ],
                },
            ]
        )
    )
    a, b = c.devices
    assert (a.interval_s, a.line, a.port, a.timeout_s) == (2.0, "L1", 502, 1.0)
    assert (b.interval_s, b.line, b.port) == (0.5, "L2", 5020)
    pa = {p.name: p for p in c.points_for(a)}
    assert pa["temp_c"].order == "CDAB"  # device default (from defaults)
    assert pa["p_kpa"].order == "ABCD"  # register's own
    assert pa["phase"].type == "uint16" and pa["phase"].tag
    pb = {p.name: p for p in c.points_for(b)}
    assert pb["temp_c"].address == 100  # device entry replaces the profile's
    assert pb["door"].type == "bit" and pb["door"].fc == 2
    assert a.equipment_tag == "AC-1"


def test_profile_order_beats_device_order() -> None:
    data = cfg()
    data["profiles"]["ac"]["order"] = "BADC"
    c = ModbusCollectorConfig.model_validate(data)
    orders = {p.name: p.order for p in c.points_for(c.devices[0])}
    assert orders == {"temp_c": "BADC", "p_kpa": "ABCD", "phase": "BADC"}


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (lambda d: d["devices"][0].update(profile="nope"), "devices.0 (AC-1).profile: unknown"),
        (lambda d: d["defaults"].pop("line"), "line: required"),
        (lambda d: d["devices"][0].update(colour="red"), "devices.0.colour"),
        (lambda d: d["devices"].append(dict(d["devices"][0])), "repeated: AC-1"),
        (
            lambda d: d["devices"].append({"name": "B", "host": "10.0.0.5", "profile": "ac"}),
            "polls 10.0.0.5:502 unit 1 like device 'AC-1'",
        ),
        (lambda d: d["devices"][0].pop("profile"), "needs a profile or registers"),
        (lambda d: d["defaults"].update(interval_s=0), "interval_s"),
        (lambda d: d["devices"][0].update(max_registers=126), "max_registers"),
        (lambda d: d.update(devices=[]), "devices"),
    ],
)
def test_device_errors_name_the_key(change: Any, expect: str) -> None:
    data = cfg()
    change(data)
    assert expect in errors(data)


@pytest.mark.parametrize(
    ("entry", "expect"),
    [
        ({"fc": 1, "type": "float32"}, "type: fc 1 (coils/discrete inputs) carries single bits"),
        ({"fc": "holding", "type": "bit"}, "bit: type bit on a register"),
        ({"fc": 3, "type": "uint16", "bit": 3}, "bit: only for type bit"),
        ({"fc": 3, "type": "string"}, "length: type string needs length"),
        ({"fc": 3, "type": "int32", "length": 2}, "length: only for type string"),
        ({"fc": 3, "type": "string", "length": 2, "scale": 2}, "scale/offset: not allowed"),
        ({"fc": 3, "scale": 0}, "scale: must not be 0"),
        ({"fc": 3, "type": "float32", "values": {1: "a"}}, "values: labels need an integer"),
        ({"fc": 3, "type": "int16", "scale": 0.1, "values": {1: "a"}}, "exclude each other"),
        ({"fc": 5}, "fc"),
        ({"fc": "registers"}, "fc: 'registers' is not 1-4"),
        ({"fc": 3, "type": "float16"}, "type"),
        ({"fc": 3, "order": "ABDC"}, "order"),
        ({"fc": 3, "address": 65535, "type": "int32"}, "pass 65535"),
        ({"fc": 3, "type": "string", "length": 1, "encoding": "klingon"}, "encoding"),
        ({"fc": 3, "name": "batch"}, "set tag: true"),
        ({"fc": 3, "name": "device"}, "is a tag of measurement process"),
        ({"fc": 3, "name": "shift", "tag": True}, "a tag register must be one of batch, phase"),
        ({"fc": 3, "name": "bad name"}, "name"),
    ],
)
def test_register_errors_name_the_key(entry: dict[str, Any], expect: str) -> None:
    data = cfg()
    data["profiles"]["ac"]["registers"].append({"name": "x", "address": 20, **entry})
    msg = errors(data)
    assert "profiles.ac.registers.3" in msg
    assert expect in msg


def test_duplicate_register_names_in_a_profile() -> None:
    data = cfg()
    data["profiles"]["ac"]["registers"].append({"name": "temp_c", "fc": 4, "address": 50})
    assert "profiles.ac: Value error, registers: register names must be unique" in errors(data)


def test_register_wider_than_device_read_limit() -> None:
    data = cfg()
    data["profiles"]["ac"]["registers"].append(
        {"name": "label", "fc": 3, "address": 200, "type": "string", "length": 80}
    )
    data["devices"][0]["max_registers"] = 64
    assert "devices.0 (AC-1).registers.label: 80 items exceed" in errors(data)


def test_disabled_device_is_validated_but_may_share_an_address() -> None:
    data = cfg()
    data["devices"].append({"name": "spare", "host": "10.0.0.5", "profile": "ac", "enabled": False})
    c = ModbusCollectorConfig.model_validate(data)
    assert [d.enabled for d in c.devices] == [True, False]


def effective(order: str, type_: str) -> str:
    """Word order means nothing for 16-bit values and text: only the byte swap is left."""
    if type_ in ("int16", "uint16", "string", "bit"):
        return "BADC" if order in ("BADC", "DCBA") else "ABCD"
    return order


def _modbus_collectors(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [c for c in doc.get("collectors", []) if c.get("kind") == "modbus"]


def test_example_production_yaml_is_valid_and_matches_the_simulators() -> None:
    found = _modbus_collectors(ROOT / "examples" / "production.yaml")
    assert len(found) == 1
    c = ModbusCollectorConfig.model_validate(found[0])
    # the example reads each PLC's clock too (the scenario runs at speed 1)
    layouts = {
        "autoclave": [*AUTOCLAVE, AUTOCLAVE_CLOCK],
        "freeze_dryer": [*FREEZE_DRYER, FREEZE_DRYER_CLOCK],
        "cleanroom": [*CLEANROOM, CLEANROOM_CLOCK],
        "filling_line": [*FILLING_LINE, FILLING_LINE_CLOCK],
    }
    assert set(layouts) <= set(c.profiles)
    for kind, layout in layouts.items():
        dev = next(d for d in c.devices if d.profile == kind)
        points = {p.name: p for p in c.points_for(dev)}
        assert set(points) == {r.name for r in layout}, kind
        clock = c.clock_for(dev)
        assert clock is not None and clock.timestamp == layout[-1].timestamp, kind
        without = plan_requests([p for p in points.values() if p.timestamp is None])
        assert len(c.plan_for(dev)) == len(without), kind  # the clock costs no extra read
        for r in layout:
            p = points[r.name]
            assert (p.fc, p.address, p.type, effective(p.order, p.type), p.scale, p.tag) == (
                r.fc,
                r.address,
                "bit" if r.fc in (1, 2) else r.type,
                effective(r.order, p.type),
                r.scale,
                r.tag,
            ), (kind, r.name)
            if r.type == "string":
                assert p.length == r.length
            if r.labels:
                assert dict(p.labels or {}) == dict(r.labels)


def test_production_scenario_serves_the_example_devices() -> None:
    from simulators.plc.spec import load_scenario

    scenario = load_scenario(ROOT / "simulators" / "plc" / "scenarios" / "production.yaml")
    c = ModbusCollectorConfig.model_validate(
        _modbus_collectors(ROOT / "examples" / "production.yaml")[0]
    )
    served = {(p.host, p.port, p.unit): p.kind for p in scenario.plcs}
    polled = {(d.host, d.port, d.unit): d.profile for d in c.devices}
    assert served == polled


def test_units_and_labels_of_a_register_map() -> None:
    """A device's own entries add to or replace its profile's; both reach the console through
    the collector's SourceStatus."""
    c = ModbusCollectorConfig.model_validate(
        {
            "kind": "modbus",
            "profiles": {
                "ac": {
                    "registers": [
                        {"name": "chamber_temp_c", "fc": 4, "address": 0, "label": "腔体温度"},
                        {"name": "jacket", "fc": 4, "address": 1, "unit": "bar"},
                    ]
                }
            },
            "devices": [
                {
                    "name": "AC-09",
                    "host": "127.0.0.1",
                    "line": "L1",
                    "profile": "ac",
                    "registers": [{"name": "jacket", "fc": 4, "address": 2, "unit": "kPa"}],
                }
            ],
        }
    )
    units, labels = c.field_meta_for(c.devices[0])
    assert units == {"jacket": "kPa"} and labels == {"chamber_temp_c": "腔体温度"}
