"""The device clock as event time: decoding, validation of the clock, and its config."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collectors.modbus.collector import clock_problem
from collectors.modbus.config import ModbusCollectorConfig
from collectors.modbus.decode import (
    CLOCK_MIN_NS,
    CLOCK_TYPES,
    CLOCK_UNITS_NS,
    DecodeError,
    Point,
    decode_clock,
    registers_to_bytes,
)
from simulators.plc.layout import encode_registers

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
S = 1_000_000_000
MAX = {"int32": (1 << 31) - 1, "uint32": (1 << 32) - 1, "int64": (1 << 63) - 1}
MAX["uint64"] = (1 << 64) - 1
WIDTH = {"int32": 2, "uint32": 2, "int64": 4, "uint64": 4}
COMBOS = [
    (t, o, u)
    for t in CLOCK_TYPES
    for o in ORDERS
    for u in ("s", "ms")
    if not (u == "ms" and WIDTH[t] == 2)
]


@pytest.mark.parametrize(("type_", "order", "unit"), COMBOS)
@given(data=st.data())
def test_clock_round_trips_every_type_order_and_unit(
    type_: str, order: str, unit: str, data: st.DataObject
) -> None:
    """A clock value the PLC holds (encoded by pymodbus) decodes to that instant in ns."""
    per_unit = CLOCK_UNITS_NS[unit]
    lowest = -(-CLOCK_MIN_NS // per_unit)
    value = data.draw(st.integers(lowest, MAX[type_]))
    regs = encode_registers(value, type_, order)
    p = Point("clk", 4, 0, type_, order, timestamp=unit)  # type: ignore[arg-type]
    assert len(regs) == p.count
    assert decode_clock(p, registers_to_bytes(regs)) == value * per_unit


@pytest.mark.parametrize(
    ("type_", "unit", "value"),
    [
        ("uint32", "s", 0),
        ("uint32", "s", 946_684_799),  # one second before 2000-01-01
        ("int32", "s", -1),
        ("int64", "ms", -1_700_000_000_000),
        ("uint64", "ms", 946_684_799_999),
    ],
)
def test_unset_clock_is_a_decode_error(type_: str, unit: str, value: int) -> None:
    p = Point("clk", 4, 0, type_, timestamp=unit)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="clock not set"):
        decode_clock(p, registers_to_bytes(encode_registers(value, type_, "ABCD")))


def test_clock_at_2000_is_accepted_and_a_plain_point_is_no_clock() -> None:
    p = Point("clk", 4, 0, "uint32", timestamp="s")
    assert decode_clock(p, registers_to_bytes(encode_registers(946_684_800, "uint32", "ABCD"))) == (
        CLOCK_MIN_NS
    )
    with pytest.raises(ValueError, match="not a clock"):
        decode_clock(Point("x", 4, 0, "uint32"), b"\0\0\0\0")


# -- validation of a decoded clock ---------------------------------------------------------------

NOW = 1_780_000_000 * S
SKEW_S = 300.0


def test_clock_ahead_backwards_and_unchanged() -> None:
    assert clock_problem("c", NOW, 0, NOW, SKEW_S) == ""
    assert clock_problem("c", NOW + 300 * S, 0, NOW, SKEW_S) == ""  # the limit itself is fine
    ahead = clock_problem("c", NOW + 301 * S, 0, NOW, SKEW_S)
    assert ahead.startswith("c: device clock 2026-") and "301.0 s ahead" in ahead
    assert "max_future_skew_s=300" in ahead
    back = clock_problem("c", NOW - S // 2, NOW, NOW, SKEW_S)
    assert "went backwards by 0.500 s" in back and "->" in back
    assert clock_problem("c", NOW, NOW, NOW, SKEW_S) == ""  # a seconds clock polled at 2 Hz
    assert clock_problem("c", NOW - 86_400 * S, 0, NOW, SKEW_S) == ""  # behind: no limit
    huge = clock_problem("c", (1 << 64) * 1_000_000, 0, NOW, SKEW_S)
    assert "ahead of the gateway" in huge  # garbage from a uint64 is refused, not a crash


@given(
    clocks=st.lists(st.integers(NOW - 3600 * S, NOW + 900 * S), max_size=60),
    skew=st.sampled_from([0.0, 1.0, 300.0]),
)
def test_accepted_times_never_go_back_nor_into_the_future(clocks: list[int], skew: float) -> None:
    """Whatever a device clock does, the times let through are monotonic and never ahead of the
    gateway by more than the skew; every refusal gives a reason (nothing vanishes unexplained)."""
    last = 0
    accepted: list[int] = []
    for c in clocks:
        why = clock_problem("clk", c, last, NOW, skew)
        if why:
            assert why.startswith("clk: device clock ")
            assert (c > NOW + skew * S) or c < last
        else:
            accepted.append(c)
            last = c
    assert accepted == sorted(accepted)
    assert all(c <= NOW + skew * S for c in accepted)
    # a time is refused only when it had to be
    running = 0
    for c in clocks:
        ok = c <= NOW + skew * S and c >= running
        assert (c in accepted) or not ok
        if ok:
            running = c


# -- configuration -------------------------------------------------------------------------------

CLOCK = {"name": "plc_clock_ms", "fc": 4, "address": 10, "type": "uint64", "timestamp": "ms"}


def cfg(profile_regs: list[dict[str, Any]] | None = None, **device: Any) -> dict[str, Any]:
    regs = [{"name": "temp_c", "fc": 4, "address": 0, "type": "float32"}]
    return {
        "kind": "modbus",
        "defaults": {"line": "L1"},
        "profiles": {"ac": {"order": "CDAB", "registers": regs + (profile_regs or [])}},
        "devices": [{"name": "AC-1", "host": "h", "profile": "ac", **device}],
    }


def errors(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        ModbusCollectorConfig.model_validate(data)
    return "\n".join(
        ".".join(str(x) for x in err["loc"]) + ": " + err["msg"] for err in e.value.errors()
    )


def test_clock_in_a_profile_is_the_device_clock_and_takes_the_profile_order() -> None:
    c = ModbusCollectorConfig.model_validate(cfg([CLOCK]))
    dev = c.devices[0]
    clock = c.clock_for(dev)
    assert clock is not None
    assert (clock.name, clock.type, clock.timestamp, clock.order) == (
        "plc_clock_ms",
        "uint64",
        "ms",
        "CDAB",
    )
    assert dev.max_future_skew_s == 300.0
    # planned like any point: one read carries the temperature and the clock
    [req] = c.plan_for(dev)
    assert (req.fc, req.address, req.count) == (4, 0, 14)


def test_device_clock_replaces_the_profiles_and_same_name_without_timestamp_disables_it() -> None:
    own = {"name": "rtc", "fc": 3, "address": 500, "type": "uint32", "timestamp": "s"}
    c = ModbusCollectorConfig.model_validate(cfg([CLOCK], registers=[own], max_future_skew_s=5))
    clock = c.clock_for(c.devices[0])
    assert clock is not None and (clock.name, clock.fc, clock.timestamp) == ("rtc", 3, "s")
    assert "plc_clock_ms" not in {p.name for p in c.points_for(c.devices[0])}
    assert c.devices[0].max_future_skew_s == 5
    plain = {k: v for k, v in CLOCK.items() if k != "timestamp"}
    c = ModbusCollectorConfig.model_validate(cfg([CLOCK], registers=[plain]))
    assert c.clock_for(c.devices[0]) is None  # now an ordinary field
    c = ModbusCollectorConfig.model_validate(cfg())
    assert c.clock_for(c.devices[0]) is None


def test_max_future_skew_in_defaults() -> None:
    data = cfg([CLOCK])
    data["defaults"]["max_future_skew_s"] = 2.5
    c = ModbusCollectorConfig.model_validate(data)
    assert c.devices[0].max_future_skew_s == 2.5
    data["defaults"]["max_future_skew_s"] = -1
    assert "defaults.max_future_skew_s" in errors(data)


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"type": "float64"}, "timestamp: the device clock must be an integer register"),
        ({"type": "uint16"}, "not uint16"),
        ({"type": "uint32"}, "timestamp: epoch milliseconds need a 64-bit type"),
        ({"type": "int32"}, "int32 overflows"),
        ({"scale": 0.001}, "timestamp: scale/offset/values not allowed"),
        ({"offset": 3600}, "timestamp: scale/offset/values not allowed"),
        ({"values": {0: "unset"}}, "timestamp: scale/offset/values not allowed"),
        ({"timestamp": "us"}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"fc": 1}, "type: fc 1 (coils/discrete inputs) carries single bits"),
        ({"name": "phase", "tag": True}, "timestamp: the device clock is the reading's time"),
    ],
)
def test_clock_entry_errors_name_the_key(change: dict[str, Any], expect: str) -> None:
    msg = errors(cfg([{**CLOCK, **change}]))
    assert "profiles.ac.registers.1" in msg
    assert expect in msg


def test_one_clock_per_map() -> None:
    second = {**CLOCK, "name": "rtc", "address": 40}
    assert "profiles.ac: Value error, registers: a device has one clock; entries with " in errors(
        cfg([CLOCK, second])
    )
    msg = errors(cfg(registers=[CLOCK, second]))
    assert "devices.0" in msg and "a device has one clock" in msg and "plc_clock_ms, rtc" in msg


def test_clock_before_min_event_time_is_refused() -> None:
    """The same event-time window as MQTT (gateway/core/eventtime.py): 2000 is a reset RTC."""
    year_2000 = 946_684_800 * S + 86_400 * S
    why = clock_problem("c", year_2000, 0, NOW, SKEW_S)
    assert why == (
        "c: device clock 2000-01-02T00:00:00.000Z is before 2001-01-01T00:00:00.000Z"
        " (min_event_time)"
    )
    assert clock_problem("c", year_2000, 0, NOW, SKEW_S, min_ns=0) == ""
    c = ModbusCollectorConfig.model_validate(cfg([CLOCK], min_event_time="1999-01-01T00:00:00Z"))
    assert c.devices[0].min_event_time.year == 1999
    data = cfg([CLOCK])
    data["defaults"]["min_event_time"] = "1960-01-01T00:00:00Z"
    assert "not be before 1970" in errors(data)
