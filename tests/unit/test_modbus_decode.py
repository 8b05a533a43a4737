"""Decoding: every data type and byte order, against pymodbus's own encoder."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from collectors.modbus.decode import (
    DecodeError,
    Point,
    decode_point,
    finish,
    registers_to_bytes,
)

DT = ModbusClientMixin.DATATYPE
ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
RANGES = {
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 63) - 1),  # InfluxDB ints are signed 64-bit; larger: see test below
}


def pymodbus_encode(value: int | float | str, type_: str, order: str) -> list[int]:
    """Registers as a device with `order` holds them, built with pymodbus's encoder.

    pymodbus knows word order (big/little); byte order inside a register is the swap that
    BADC/DCBA add on top: CDAB = little word order, DCBA = little word order + byte swap.
    """
    if type_ == "string":
        regs = ModbusClientMixin.convert_to_registers(value, DT.STRING)
        word_order = "big"
    else:
        word_order = "little" if order in ("CDAB", "DCBA") else "big"
        regs = ModbusClientMixin.convert_to_registers(
            value, getattr(DT, type_.upper()), word_order=word_order
        )
    if order in ("BADC", "DCBA"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


def decode(regs: list[int], type_: str, order: str, **kw: object) -> object:
    p = Point("x", 3, 0, type_, order, **kw)  # type: ignore[arg-type]
    assert p.count == len(regs)
    return decode_point(p, registers_to_bytes(regs))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", sorted(RANGES))
@given(data=st.data())
def test_integers_round_trip(type_: str, order: str, data: st.DataObject) -> None:
    lo, hi = RANGES[type_]
    value = data.draw(st.integers(lo, hi))
    assert decode(pymodbus_encode(value, type_, order), type_, order) == value


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_round_trip(order: str, value: float) -> None:
    got = decode(pymodbus_encode(value, "float32", order), "float32", order)
    assert got == value
    assert isinstance(got, float)


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_float64_round_trip(order: str, value: float) -> None:
    assert decode(pymodbus_encode(value, "float64", order), "float64", order) == value


@pytest.mark.parametrize("order", ["ABCD", "BADC"])
@given(text=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=16))
def test_string_round_trip(order: str, text: str) -> None:
    regs = pymodbus_encode(text, "string", order) if text else []
    length = 8
    regs = (regs + [0] * length)[:length]
    assert decode(regs, "string", order, length=length) == text


def test_byte_orders_pinned_to_known_wire_layouts() -> None:
    """float32 1.0 is 0x3F800000; the four orders put its bytes on the wire like this."""
    wire = {
        "ABCD": [0x3F80, 0x0000],
        "CDAB": [0x0000, 0x3F80],
        "BADC": [0x803F, 0x0000],
        "DCBA": [0x0000, 0x803F],
    }
    for order, regs in wire.items():
        assert decode(regs, "float32", order) == 1.0, order
        assert pymodbus_encode(1.0, "float32", order) == regs, order
    # 64-bit: 0x0102030405060708
    v = 0x0102030405060708
    assert decode([0x0102, 0x0304, 0x0506, 0x0708], "int64", "ABCD") == v
    assert decode([0x0708, 0x0506, 0x0304, 0x0102], "int64", "CDAB") == v
    assert decode([0x0201, 0x0403, 0x0605, 0x0807], "int64", "BADC") == v
    assert decode([0x0807, 0x0605, 0x0403, 0x0201], "int64", "DCBA") == v
    # 16-bit: only the byte swap applies
    assert decode([0x1234], "uint16", "CDAB") == 0x1234
    assert decode([0x3412], "uint16", "DCBA") == 0x1234
    # strings: byte swap only, registers stay in order
    assert decode([0x4142, 0x4344], "string", "CDAB", length=2) == "ABCD"
    assert decode([0x4241, 0x4443], "string", "DCBA", length=2) == "ABCD"


def test_string_strips_padding_and_rejects_non_text() -> None:
    assert decode([0x4231, 0x0000, 0x0000], "string", "ABCD", length=3) == "B1"
    assert decode([0x4231, 0x2020, 0x0000], "string", "ABCD", length=3) == "B1"
    assert decode([0, 0], "string", "ABCD", length=2) == ""
    with pytest.raises(DecodeError, match="ascii"):
        decode([0xFFFE], "string", "ABCD", length=1)


def test_bit_in_register() -> None:
    assert decode([0b1000], "bit", "ABCD", bit=3) is True
    assert decode([0b1000], "bit", "ABCD", bit=2) is False
    assert decode([0x0100], "bit", "ABCD", bit=8) is True
    assert decode([0x0001], "bit", "BADC", bit=8) is True  # byte-swapped register


def test_scale_offset_and_labels() -> None:
    assert decode([1211], "int16", "ABCD", scale=0.1) == 121.1  # not 121.10000000000001
    assert decode([0xFFF6], "int16", "ABCD", scale=0.5, offset=100.0) == 95.0
    assert decode([250], "uint16", "ABCD", scale=0.01) == 2.5
    labels = {0: "idle", 2: "hold"}
    assert decode([2], "uint16", "ABCD", labels=labels) == "hold"
    assert decode([7], "uint16", "ABCD", labels=labels) == "7"
    assert finish(Point("d", 2, 0, "bit", labels={0: "closed", 1: "open"}), True) == "open"
    assert finish(Point("b", 1, 0, "bit"), False) is False


def test_values_influxdb_cannot_store_are_decode_errors() -> None:
    nan = pymodbus_encode(math.nan, "float32", "ABCD")
    with pytest.raises(DecodeError, match="finite"):
        decode(nan, "float32", "ABCD")
    inf = list(struct.unpack(">4H", struct.pack(">d", math.inf)))
    with pytest.raises(DecodeError, match="finite"):
        decode(inf, "float64", "ABCD")
    big = pymodbus_encode(1 << 63, "uint64", "ABCD")
    with pytest.raises(DecodeError, match="int64"):
        decode(big, "uint64", "ABCD")
    # scaled, it is a float and fine
    assert decode(big, "uint64", "ABCD", scale=0.5) == float(1 << 62)
