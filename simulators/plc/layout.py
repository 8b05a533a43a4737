"""Register layouts of the simulated PLCs, and their encoding into registers.

A layout is what a PLC vendor's register list says: name, function code, address, type, byte
order, scale. The simulator encodes with pymodbus's own converter (`convert_to_registers`), not with
the collector's decoder, so the end-to-end tests check one implementation against another.
`profile()` renders a layout as a collector profile (the register map in YAML).

Every layout also has a clock register (`*_CLOCK`, `generic_clock`): the PLC's own clock as an
integer epoch, served from the simulated clock, so a gateway can file readings under process time
however fast the simulation runs. The types and orders differ per PLC, as they do in a real plant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.client.mixin import ModbusClientMixin

_DT = ModbusClientMixin.DATATYPE
DATATYPES = {
    "int16": _DT.INT16,
    "uint16": _DT.UINT16,
    "int32": _DT.INT32,
    "uint32": _DT.UINT32,
    "int64": _DT.INT64,
    "uint64": _DT.UINT64,
    "float32": _DT.FLOAT32,
    "float64": _DT.FLOAT64,
    "string": _DT.STRING,
}
_BITS = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32, "int64": 64, "uint64": 64}


@dataclass(frozen=True, slots=True)
class Reg:
    name: str
    fc: int
    address: int
    type: str = "uint16"
    order: str = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    length: int = 0
    """Registers, for strings."""
    tag: bool = False
    labels: Mapping[int, str] | None = None
    timestamp: str | None = None
    """`s` or `ms`: this register is the PLC's clock (epoch, UTC), served from the sim clock."""

    @property
    def count(self) -> int:
        if self.fc in (1, 2):
            return 1
        if self.type == "string":
            return self.length
        return {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(self.type, 4)

    def profile_entry(self) -> dict[str, Any]:
        e: dict[str, Any] = {"name": self.name, "fc": self.fc, "address": self.address}
        if self.fc in (3, 4):
            e["type"] = self.type
        if self.type == "string":
            e["length"] = self.length
        if self.order != "ABCD":
            e["order"] = self.order
        if self.scale != 1.0:
            e["scale"] = self.scale
        if self.offset != 0.0:
            e["offset"] = self.offset
        if self.tag:
            e["tag"] = True
        if self.labels:
            e["values"] = dict(self.labels)
        if self.timestamp:
            e["timestamp"] = self.timestamp
        return e


def swap_bytes(regs: list[int]) -> list[int]:
    return [((r & 0xFF) << 8) | (r >> 8) for r in regs]


def encode_registers(
    value: int | float | str, type_: str, order: str, length: int = 0
) -> list[int]:
    """A value → registers as a device with this byte order would hold them (pymodbus encoder)."""
    if type_ == "string":
        text = str(value)
        regs = ModbusClientMixin.convert_to_registers(text, _DT.STRING) if text else []
        regs = (regs + [0] * length)[:length]
        return swap_bytes(regs) if order in ("BADC", "DCBA") else regs
    word_order: Literal["big", "little"] = "little" if order in ("CDAB", "DCBA") else "big"
    regs = ModbusClientMixin.convert_to_registers(value, DATATYPES[type_], word_order=word_order)
    return swap_bytes(regs) if order in ("BADC", "DCBA") else regs


def to_raw(reg: Reg, value: float | int | str | bool) -> int | float | str:
    """Engineering value → the raw number the register holds (inverse of scale/offset), clamped."""
    if reg.type == "string" or isinstance(value, str):
        return str(value)
    if reg.type in ("float32", "float64"):
        return (float(value) - reg.offset) / reg.scale
    raw = round((float(value) - reg.offset) / reg.scale)
    bits = _BITS[reg.type]
    lo, hi = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if reg.type[0] == "i" else (0, (1 << bits) - 1)
    )
    return min(hi, max(lo, raw))


def profile(layout: list[Reg], description: str = "", clock: Reg | None = None) -> dict[str, Any]:
    """The layout as a collector profile (`profiles: NAME: ...` in the collector config); with
    `clock`, the collector takes the PLC's clock register as the readings' event time."""
    regs = [*layout, clock] if clock is not None else layout
    out: dict[str, Any] = {"registers": [r.profile_entry() for r in regs]}
    if description:
        out["description"] = description
    return out


# -- the layouts ---------------------------------------------------------------------------------

AUTOCLAVE_PHASES = {0: "idle", 1: "heat_up", 2: "hold", 3: "cool_down", 4: "complete"}
AUTOCLAVE = [
    Reg("chamber_temp_c", 4, 0, "float32"),
    Reg("chamber_pressure_kpa", 4, 2, "float32"),
    Reg("f0_min", 4, 4, "float32"),
    Reg("drain_temp_c", 4, 6, "int16", scale=0.1),
    Reg("cycle_time_s", 4, 7, "uint32", order="CDAB"),
    Reg("phase", 3, 100, "uint16", tag=True, labels=AUTOCLAVE_PHASES),
    Reg("batch", 3, 101, "string", length=8, tag=True),
    Reg("setpoint_c", 3, 110, "int16", scale=0.1),
    Reg("hold_setpoint_min", 3, 111, "uint16"),
    Reg("cycle_count", 3, 112, "uint32"),
    Reg("steam_valve_open", 1, 0),
    Reg("exhaust_valve_open", 1, 1),
    Reg("door_closed", 2, 0),
]
AUTOCLAVE_CLOCK = Reg("plc_clock_ms", 4, 20, "uint64", timestamp="ms")
"""Next to the temperatures (one read carries both), so a value and its time belong together."""

FREEZE_DRYER_PHASES = {
    0: "idle",
    1: "loading",
    2: "freezing",
    3: "primary_drying",
    4: "secondary_drying",
    5: "unloading",
}
FREEZE_DRYER = [
    Reg("shelf_temp_c", 4, 0, "float32", order="CDAB"),
    Reg("product_temp_c", 4, 2, "float32", order="CDAB"),
    Reg("condenser_temp_c", 4, 4, "float32", order="CDAB"),
    Reg("chamber_pressure_mbar", 4, 6, "float32", order="CDAB"),
    Reg("phase", 3, 100, "uint16", tag=True, labels=FREEZE_DRYER_PHASES),
    Reg("batch", 3, 101, "string", length=8, tag=True),
    Reg("vacuum_setpoint_ubar", 3, 110, "uint16"),
    Reg("door_closed", 2, 0),
    Reg("vacuum_pump_on", 2, 1),
]
FREEZE_DRYER_CLOCK = Reg("plc_clock_ms", 4, 20, "uint64", order="CDAB", timestamp="ms")
"""Word-swapped like every 32/64-bit value of this PLC."""

CLEANROOM_PHASES = {0: "at_rest", 1: "operation"}
CLEANROOM = [
    Reg("dp_pa", 4, 0, "int16", scale=0.1),
    Reg("particles_05um_m3", 4, 1, "uint32"),
    Reg("particles_5um_m3", 4, 3, "uint32"),
    Reg("room_temp_c", 4, 5, "int16", scale=0.01),
    Reg("room_rh_pct", 4, 6, "uint16", scale=0.1),
    Reg("phase", 3, 100, "uint16", tag=True, labels=CLEANROOM_PHASES),
    Reg("door_open", 2, 0),
]
CLEANROOM_CLOCK = Reg("plc_clock_s", 4, 20, "uint32", timestamp="s")
"""Whole seconds: enough for a room polled every second or slower."""

FILLING_PHASES = {0: "setup", 1: "filling"}
FILLING_LINE = [
    Reg("fill_weight_g", 4, 0, "float32"),
    Reg("vials_filled", 4, 2, "uint32"),
    Reg("rejects", 4, 4, "uint16"),
    Reg("line_speed_vpm", 4, 5, "uint16"),
    Reg("target_weight_g", 3, 0, "float64", order="DCBA"),
    Reg("phase", 3, 100, "uint16", tag=True, labels=FILLING_PHASES),
    Reg("batch", 3, 101, "string", length=8, order="BADC", tag=True),
    Reg("running", 1, 0),
]
FILLING_LINE_CLOCK = Reg("plc_clock_ms", 4, 20, "int64", timestamp="ms")


def generic_layout(float32: int = 25, uint16: int = 50) -> list[Reg]:
    """A plain register bank: float32 values then uint16 counters, contiguous holding registers."""
    regs = [Reg(f"value_{i:03d}", 3, 2 * i, "float32") for i in range(float32)]
    base = 2 * float32
    regs += [Reg(f"counter_{i:03d}", 3, base + i, "uint16") for i in range(uint16)]
    return regs


def generic_clock(float32: int = 25, uint16: int = 50) -> Reg:
    """The bank's clock, right after the counters: a bank of up to 121 registers stays one read."""
    return Reg("plc_clock_ms", 3, 2 * float32 + uint16, "uint64", timestamp="ms")
