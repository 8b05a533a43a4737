"""Register bytes → values: data types, byte/word orders, scale and offset.

Byte orders name the four bytes of a 32-bit value as the device puts them on the wire, A being the
most significant: ABCD is big-endian (the Modbus default), DCBA little-endian, BADC swaps the bytes
inside each register, CDAB swaps the registers (the common "word swap"). The same rule extends to
64-bit values (CDAB reverses the four registers; BADC swaps bytes in each) and shrinks to 16-bit
ones (only the byte swap of BADC/DCBA applies). Strings honour the byte swap only: word order has no
meaning for a run of characters.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.core.reading import FieldValue

DataType = Literal[
    "bit",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
]
ByteOrder = Literal["ABCD", "DCBA", "BADC", "CDAB"]
ClockUnit = Literal["s", "ms"]

CLOCK_UNITS_NS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000}
"""Nanoseconds per unit of a device clock register (epoch seconds or milliseconds)."""
CLOCK_TYPES = ("int32", "uint32", "int64", "uint64")
"""Types a device clock register may have: integers only, so no float rounds the time."""
CLOCK_MIN_NS = 946_684_800 * 1_000_000_000
"""2000-01-01T00:00:00Z: an earlier device clock was never set (dead RTC battery, factory 0)."""

BIT_FUNCTIONS = (1, 2)
"""Function codes whose items are single bits: coils (1) and discrete inputs (2)."""

WORDS: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}
_STRUCTS: dict[str, struct.Struct] = {
    t: struct.Struct(">" + c)
    for t, c in {
        "int16": "h",
        "uint16": "H",
        "int32": "i",
        "uint32": "I",
        "int64": "q",
        "uint64": "Q",
        "float32": "f",
        "float64": "d",
    }.items()
}
INT64_MAX = (1 << 63) - 1
"""InfluxDB integer fields are signed 64-bit: a larger uint64 cannot be stored unscaled."""


class DecodeError(ValueError):
    """A register value that cannot become a field (NaN, not text, out of range)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One resolved register-map entry: what to read and how to turn it into a value."""

    name: str
    fc: int
    address: int
    type: DataType
    order: ByteOrder = "ABCD"
    bit: int | None = None
    """Bit index (0 = least significant) for type bit on a register (fc 3/4)."""
    length: int = 0
    """String length in registers (two characters each)."""
    scale: float = 1.0
    offset: float = 0.0
    tag: bool = False
    labels: Mapping[int, str] | None = None
    encoding: str = "ascii"
    timestamp: ClockUnit | None = None
    """Set on the device's clock register: its value is the reading's event time, not a field."""
    divisor: float = field(default=0.0, init=False, compare=False)
    """1/scale when that is a whole number: 1211 / 10 gives 121.1, 1211 * 0.1 gives 121.100...01."""

    def __post_init__(self) -> None:
        if self.scale not in (0.0, 1.0):
            inv = 1.0 / self.scale
            if abs(inv - round(inv)) < 1e-9 * abs(inv):
                object.__setattr__(self, "divisor", float(round(inv)))

    @property
    def count(self) -> int:
        """Items this point occupies: bits for fc 1/2, registers for fc 3/4."""
        if self.fc in BIT_FUNCTIONS or self.type == "bit":
            return 1
        if self.type == "string":
            return self.length
        return WORDS[self.type]

    @property
    def end(self) -> int:
        """First address after this point."""
        return self.address + self.count


def reorder(raw: bytes, order: ByteOrder) -> bytes:
    """Bring register bytes (as received, big-endian per register) into big-endian value order."""
    if order == "ABCD" or len(raw) < 2:
        return raw
    if order == "DCBA":
        return raw[::-1]
    if order == "BADC":
        return swap_bytes(raw)
    # CDAB: registers reversed, bytes inside each kept
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    return b"".join(reversed(words))


def swap_bytes(raw: bytes) -> bytes:
    out = bytearray(len(raw))
    out[0::2] = raw[1::2]
    out[1::2] = raw[0::2]
    return bytes(out)


def decode_raw(point: Point, raw: bytes) -> int | float | str | bool:
    """Decode the bytes of one register point (2 x count bytes, wire order) to its raw value.

    Scale, offset and labels are not applied here; see `finish`.
    """
    t = point.type
    if t == "string":
        data = swap_bytes(raw) if point.order in ("BADC", "DCBA") else raw
        try:
            return data.rstrip(b"\x00").decode(point.encoding).rstrip(" \x00")
        except UnicodeDecodeError as e:
            raise DecodeError(f"not {point.encoding} text: {data!r}") from e
    if t == "bit":
        (word,) = _STRUCTS["uint16"].unpack(reorder(raw, point.order))
        return bool((word >> (point.bit or 0)) & 1)
    (value,) = _STRUCTS[t].unpack(reorder(raw, point.order))
    return value


def finish(point: Point, value: int | float | str | bool) -> FieldValue:
    """Apply labels, scale and offset; refuse values InfluxDB cannot store."""
    if point.labels is not None and not isinstance(value, (str, float)):
        key = int(value)
        return point.labels.get(key, str(key))
    if isinstance(value, (str, bool)):
        return value
    if point.scale != 1.0 or point.offset != 0.0:
        value = (value / point.divisor if point.divisor else value * point.scale) + point.offset
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError(f"{value!r} is not a finite number")
        return value
    if value > INT64_MAX:
        raise DecodeError(f"{value} exceeds the int64 range of InfluxDB integer fields")
    return value


def decode_point(point: Point, raw: bytes) -> FieldValue:
    """Register bytes of one point → final field/tag value."""
    return finish(point, decode_raw(point, raw))


def decode_clock(point: Point, raw: bytes) -> int:
    """Register bytes of the device's clock → event time in ns since the Unix epoch (UTC).

    A value before 2000 is refused: it is an unset clock, not a time to file readings under.
    """
    if point.timestamp is None:
        raise ValueError(f"{point.name} is not a clock register")
    value = decode_raw(point, raw)
    ns = int(value) * CLOCK_UNITS_NS[point.timestamp]
    if ns < CLOCK_MIN_NS:
        raise DecodeError(
            f"device clock {value} {point.timestamp} since 1970 is before 2000-01-01: clock not set"
        )
    return ns


def registers_to_bytes(registers: list[int]) -> bytes:
    return struct.pack(f">{len(registers)}H", *registers)
