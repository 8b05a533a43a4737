"""Request planner: merge the points of a register map into as few reads as the protocol allows.

A Modbus round trip costs far more than the bytes of a few unused registers, so points of the same
function code whose addresses are contiguous or separated by at most `max_gap` unrequested items
share one read, up to 125 registers (fc 3/4) or 2000 bits (fc 1/2) per read. Points are taken in
address order and each read is extended greedily while the next point still fits, which gives
the minimum number of reads for points that do not overlap. Some devices answer a read that spans an
undefined address with an exception: set `max_gap: 0` for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collectors.modbus.decode import BIT_FUNCTIONS, Point

MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: function code, start address, item count, and the points it carries."""

    fc: int
    address: int
    count: int
    points: tuple[Point, ...]

    @property
    def end(self) -> int:
        return self.address + self.count


def plan_requests(
    points: Iterable[Point],
    *,
    max_gap: int = 16,
    max_gap_bits: int = 256,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> list[ReadRequest]:
    """Group points into reads, ordered by function code then address."""
    by_fc: dict[int, list[Point]] = {}
    for p in points:
        by_fc.setdefault(p.fc, []).append(p)
    out: list[ReadRequest] = []
    for fc in sorted(by_fc):
        bits = fc in BIT_FUNCTIONS
        limit = max_bits if bits else max_registers
        gap = max_gap_bits if bits else max_gap
        group = sorted(by_fc[fc], key=lambda p: (p.address, p.end))
        start = end = -1
        members: list[Point] = []
        for p in group:
            if p.count > limit:
                raise ValueError(f"{p.name}: {p.count} items exceed the {limit}-item read limit")
            if members and p.address - end <= gap and max(end, p.end) - start <= limit:
                end = max(end, p.end)
                members.append(p)
                continue
            if members:
                out.append(ReadRequest(fc, start, end - start, tuple(members)))
            start, end, members = p.address, p.end, [p]
        if members:
            out.append(ReadRequest(fc, start, end - start, tuple(members)))
    return out
