"""Configuration of the Modbus TCP collector: devices, reusable register-map profiles, defaults.

Everything a register map can get wrong is checked here, at load time (`vigil check-config`), so a
bad map never reaches a PLC. Errors start with the key they are about.

Precedence: a device's own `registers` add to its profile's (same name replaces the profile's
entry; a device's clock entry replaces the profile's whatever its name); a register's `order`
beats its profile's `order`, which beats the device's `order`; device settings beat `defaults`.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collectors.modbus.decode import (
    BIT_FUNCTIONS,
    CLOCK_TYPES,
    WORDS,
    ByteOrder,
    ClockUnit,
    DataType,
    Point,
)
from collectors.modbus.planner import MAX_BITS, MAX_REGISTERS, ReadRequest, plan_requests
from gateway.core.eventtime import DEFAULT_MIN_EVENT_TIME, MinEventTime
from gateway.core.lineprotocol import name_problem

TAG_NAMES = ("batch", "phase")
"""Tags a register may supply (DESIGN §3 `process`); line, equipment, device come from config."""
FIXED_TAGS = ("line", "equipment", "device")

FUNCTION_NAMES: dict[str, int] = {
    "coil": 1,
    "coils": 1,
    "discrete_input": 2,
    "discrete_inputs": 2,
    "holding": 3,
    "holding_register": 3,
    "holding_registers": 3,
    "input": 4,
    "input_register": 4,
    "input_registers": 4,
}
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")

Name = Annotated[str, Field(pattern=_NAME, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterSpec(Strict):
    """One entry of a register map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    """Field name written to InfluxDB, or the tag name (batch, phase) when `tag: true`."""
    fc: int = Field(ge=1, le=4)
    """Function code 1-4, or coils / discrete_inputs / holding_registers / input_registers."""
    address: int = Field(ge=0, le=65535)
    """Zero-based protocol address (register 40001 is holding-register address 0)."""
    type: DataType
    """Default: bit for fc 1/2, uint16 for fc 3/4."""
    bit: int | None = Field(None, ge=0, le=15)
    """For type bit on a register (fc 3/4): which bit, 0 = least significant."""
    length: int | None = Field(None, ge=1, le=MAX_REGISTERS)
    """For type string: length in registers (two characters each)."""
    order: ByteOrder | None = None
    scale: float = 1.0
    offset: float = 0.0
    """value = raw x scale + offset."""
    tag: bool = False
    values: dict[int, str] | None = None
    """Labels for integer or bit values (phase numbers → names); unknown numbers pass as text."""
    encoding: str = "ascii"
    """Text encoding of type string."""
    unit: str | None = Field(None, max_length=32)
    """Shown with the value in the web console (°C, kPa, ...); default: from the name's suffix."""
    label: str | None = Field(None, max_length=100)
    """What the value is, as people call it (any language), e.g. 腔体温度."""
    timestamp: ClockUnit | None = None
    """This entry is the device's clock (epoch seconds `s` or milliseconds `ms`, UTC): its value
    becomes the reading's event time instead of a field. At most one per register map."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fc = data.get("fc")
        if isinstance(fc, str):
            if fc.strip().isdigit():
                fc = int(fc)
            elif fc.lower() in FUNCTION_NAMES:
                fc = FUNCTION_NAMES[fc.lower()]
            else:
                raise ValueError(
                    f"fc: {fc!r} is not 1-4 or one of {', '.join(sorted(FUNCTION_NAMES))}"
                )
            data["fc"] = fc
        if "type" not in data and isinstance(fc, int):
            data["type"] = "bit" if fc in BIT_FUNCTIONS else "uint16"
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RegisterSpec:
        t = self.type
        if self.fc in BIT_FUNCTIONS:
            if t != "bit":
                raise ValueError(
                    f"type: fc {self.fc} (coils/discrete inputs) carries single bits; "
                    f"use type: bit, not {t}"
                )
            if self.bit is not None:
                raise ValueError("bit: only for type bit on a register (fc 3/4)")
        elif t == "bit" and self.bit is None:
            raise ValueError("bit: type bit on a register (fc 3/4) needs bit: 0-15")
        elif t != "bit" and self.bit is not None:
            raise ValueError(f"bit: only for type bit, not {t}")
        if t == "string":
            if self.length is None:
                raise ValueError("length: type string needs length (in registers)")
        elif self.length is not None:
            raise ValueError(f"length: only for type string, not {t}")
        if self.timestamp is not None:
            self._check_clock()
        if t in ("string", "bit") and (self.scale != 1.0 or self.offset != 0.0):
            raise ValueError(f"scale/offset: not allowed on type {t}")
        if self.scale == 0.0:
            raise ValueError("scale: must not be 0")
        if self.values is not None:
            if t in ("string", "float32", "float64"):
                raise ValueError(f"values: labels need an integer or bit type, not {t}")
            if self.scale != 1.0 or self.offset != 0.0:
                raise ValueError("values: labels and scale/offset exclude each other")
        if self.tag and self.name not in TAG_NAMES:
            raise ValueError(f"name: a tag register must be one of {', '.join(TAG_NAMES)}")
        if not self.tag and self.name in (*TAG_NAMES, *FIXED_TAGS):
            raise ValueError(
                f"name: {self.name!r} is a tag of measurement process; "
                "set tag: true (batch, phase) or choose another field name"
            )
        try:
            codecs.lookup(self.encoding)
        except LookupError as e:
            raise ValueError(f"encoding: unknown text encoding {self.encoding!r}") from e
        if self.address + self.count - 1 > 65535:
            raise ValueError(f"address: {self.address} + {self.count} items pass 65535")
        return self

    def _check_clock(self) -> None:
        t = self.type
        if t not in CLOCK_TYPES:
            raise ValueError(
                f"timestamp: the device clock must be an integer register "
                f"({', '.join(CLOCK_TYPES)}), not {t}"
            )
        if self.timestamp == "ms" and t in ("int32", "uint32"):
            raise ValueError(
                f"timestamp: epoch milliseconds need a 64-bit type (int64, uint64); "
                f"{t} overflows within weeks of 1970"
            )
        if self.tag:
            raise ValueError("timestamp: the device clock is the reading's time, not a tag")
        if self.scale != 1.0 or self.offset != 0.0 or self.values is not None:
            raise ValueError(
                "timestamp: scale/offset/values not allowed on the device clock "
                "(timestamp: s or ms gives its unit)"
            )

    @property
    def count(self) -> int:
        if self.fc in BIT_FUNCTIONS or self.type == "bit":
            return 1
        if self.type == "string":
            return self.length or 0
        return WORDS[self.type]

    def point(self, default_order: ByteOrder) -> Point:
        return Point(
            name=self.name,
            fc=self.fc,
            address=self.address,
            type=self.type,
            order=self.order or default_order,
            bit=self.bit,
            length=self.length or 0,
            scale=self.scale,
            offset=self.offset,
            tag=self.tag,
            labels=self.values,
            encoding=self.encoding,
            timestamp=self.timestamp,
        )


def _unique_names(registers: list[RegisterSpec], where: str) -> None:
    dup = [n for n, c in Counter(r.name for r in registers).items() if c > 1]
    if dup:
        raise ValueError(f"{where}: register names must be unique; repeated: {', '.join(dup)}")
    clocks = [r.name for r in registers if r.timestamp is not None]
    if len(clocks) > 1:
        raise ValueError(
            f"{where}: a device has one clock; entries with timestamp: {', '.join(clocks)}"
        )


class ProfileSpec(Strict):
    """A reusable register map (e.g. one autoclave model) shared by several devices."""

    description: str = ""
    order: ByteOrder | None = None
    """Byte order of this map's registers unless a register says otherwise."""
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ProfileSpec:
        _unique_names(self.registers, "registers")
        return self


class PollSettings(Strict):
    """Settings a device takes from `defaults` unless it sets them itself."""

    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255)
    """Modbus unit (device) id; behind a TCP gateway this selects the serial slave."""
    line: str | None = None
    """Production line tag; required, here or on the device."""
    interval_s: float = Field(1.0, gt=0, le=86_400)
    timeout_s: float = Field(1.0, gt=0, le=60)
    """Per request (and per connect)."""
    retries: int = Field(2, ge=0, le=10)
    """Further attempts of a poll after a timeout, lost connection or busy answer."""
    retry_backoff_s: float = Field(0.1, ge=0, le=60)
    """Pause before the first retry; doubles for each further retry."""
    offline_after: int = Field(1, ge=1, le=1000)
    """Failed polls in a row (each after its retries) before the device is marked offline."""
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    """While offline, attempts start at the poll interval and back off, doubling, to this."""
    max_gap: int = Field(16, ge=0, le=MAX_REGISTERS - 1)
    """Unrequested registers a merged read may span (0 = only contiguous registers)."""
    max_gap_bits: int = Field(256, ge=0, le=MAX_BITS - 1)
    """Unrequested coils/discrete inputs a merged read may span."""
    max_registers: int = Field(MAX_REGISTERS, ge=1, le=MAX_REGISTERS)
    """Largest register read the device accepts (some PLCs allow fewer than 125)."""
    max_bits: int = Field(MAX_BITS, ge=1, le=MAX_BITS)
    order: ByteOrder = "ABCD"
    """Byte order of registers whose profile and entry do not set one."""
    max_future_skew_s: float = Field(300.0, ge=0, le=86_400)
    """A device clock (`timestamp:` entry) further ahead of the gateway's clock than this is
    refused: the poll is dead-lettered instead of filed under a future time."""
    min_event_time: MinEventTime = DEFAULT_MIN_EVENT_TIME
    """A device clock earlier than this is refused like one ahead (a reset RTC reports 1970 or
    2000). ISO 8601 with a zone; not before 1970-01-01T00:00:00Z."""

    @field_validator("line")
    @classmethod
    def _valid_line(cls, v: str | None) -> str | None:
        why = name_problem("line", v) if v else ""
        if why:
            raise ValueError(why)
        return v


class DeviceDefaults(PollSettings):
    pass


class DeviceSpec(PollSettings):
    name: str = Field(min_length=1, max_length=128)
    """Becomes the `device` tag; unique in the collector."""
    host: str = Field(min_length=1)
    equipment: str | None = None
    """Equipment tag; defaults to the device name."""
    profile: str | None = None
    registers: list[RegisterSpec] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _check(self) -> DeviceSpec:
        why = name_problem("equipment", self.equipment) if self.equipment else ""
        if why:
            raise ValueError(why)
        if not _DEVICE_NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} may hold letters, digits, '_', '-', '.'")
        if not self.line:
            raise ValueError("line: required (set it on the device or in defaults)")
        if self.profile is None and not self.registers:
            raise ValueError("registers: a device needs a profile or registers of its own")
        _unique_names(self.registers, "registers")
        return self

    @property
    def equipment_tag(self) -> str:
        return self.equipment or self.name


class ModbusCollectorConfig(Strict):
    """`collectors: - kind: modbus` in the gateway configuration."""

    kind: Literal["modbus"]
    name: str = "modbus"
    defaults: DeviceDefaults = DeviceDefaults()
    profiles: dict[Name, ProfileSpec] = Field(default_factory=dict)
    devices: list[DeviceSpec] = Field(min_length=1)
    max_pending: int = Field(10_000, ge=1)
    """Readings waiting for the journal before polls are skipped (counted as missed cycles)."""

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Copy `defaults` into each device that does not set the key itself."""
        if not isinstance(data, dict):
            return data
        defaults = data.get("defaults")
        devices = data.get("devices")
        if not isinstance(defaults, dict) or not isinstance(devices, list):
            return data
        inherit = {k: v for k, v in defaults.items() if k in PollSettings.model_fields}
        data = dict(data)
        data["devices"] = [{**inherit, **d} if isinstance(d, dict) else d for d in devices]
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> ModbusCollectorConfig:
        names = [d.name for d in self.devices]
        dup = [n for n, c in Counter(names).items() if c > 1]
        if dup:
            raise ValueError(f"devices: names must be unique; repeated: {', '.join(dup)}")
        seen: dict[tuple[str, int, int], str] = {}
        for i, d in enumerate(self.devices):
            where = f"devices.{i} ({d.name})"
            if d.profile is not None and d.profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none defined"
                raise ValueError(f"{where}.profile: unknown profile {d.profile!r} (known: {known})")
            key = (d.host, d.port, d.unit)
            if d.enabled:
                if key in seen:
                    raise ValueError(
                        f"{where}: polls {d.host}:{d.port} unit {d.unit} like device {seen[key]!r}"
                    )
                seen[key] = d.name
            for p in self.points_for(d):
                limit = d.max_bits if p.fc in BIT_FUNCTIONS else d.max_registers
                if p.count > limit:
                    raise ValueError(
                        f"{where}.registers.{p.name}: {p.count} items exceed the device's "
                        f"read limit of {limit}"
                    )
        return self

    def points_for(self, device: DeviceSpec) -> list[Point]:
        """The device's resolved register map: profile entries, then the device's own."""
        merged: dict[str, Point] = {}
        own_clock = any(r.timestamp is not None for r in device.registers)
        if device.profile is not None:
            prof = self.profiles[device.profile]
            for r in prof.registers:
                if own_clock and r.timestamp is not None:
                    continue  # one clock per device: the device's own entry wins
                merged[r.name] = r.point(prof.order or device.order)
        for r in device.registers:
            merged[r.name] = r.point(device.order)
        return list(merged.values())

    def field_meta_for(self, device: DeviceSpec) -> tuple[dict[str, str], dict[str, str]]:
        """(units, labels) of the device's fields that the register map names."""
        units: dict[str, str] = {}
        labels: dict[str, str] = {}
        entries = list(self.profiles[device.profile].registers) if device.profile else []
        for r in [*entries, *device.registers]:
            if r.unit is not None:
                units[r.name] = r.unit
            if r.label is not None:
                labels[r.name] = r.label
        return units, labels

    def clock_for(self, device: DeviceSpec) -> Point | None:
        """The device's clock register (a `timestamp:` entry), if its map has one."""
        return next((p for p in self.points_for(device) if p.timestamp is not None), None)

    def plan_for(self, device: DeviceSpec) -> list[ReadRequest]:
        return plan_requests(
            self.points_for(device),
            max_gap=device.max_gap,
            max_gap_bits=device.max_gap_bits,
            max_registers=device.max_registers,
            max_bits=device.max_bits,
        )
