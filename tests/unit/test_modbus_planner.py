"""Request planner: sample maps → the fewest reads the limits allow."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.modbus.decode import WORDS, Point
from collectors.modbus.planner import plan_requests


def reg(name: str, address: int, type_: str = "uint16", fc: int = 3, **kw: object) -> Point:
    return Point(name, fc, address, type_, **kw)  # type: ignore[arg-type]


def bit(name: str, address: int, fc: int = 1) -> Point:
    return Point(name, fc, address, "bit")


def shape(plan: list) -> list[tuple[int, int, int]]:
    return [(r.fc, r.address, r.count) for r in plan]


def test_contiguous_registers_are_one_read() -> None:
    pts = [reg("a", 0, "float32"), reg("b", 2, "float32"), reg("c", 4), reg("d", 5, "int64")]
    plan = plan_requests(pts)
    assert shape(plan) == [(3, 0, 9)]
    assert [p.name for p in plan[0].points] == ["a", "b", "c", "d"]


def test_gap_within_max_gap_is_bridged_beyond_it_split() -> None:
    pts = [reg("a", 0), reg("b", 5), reg("c", 30)]
    assert shape(plan_requests(pts, max_gap=4)) == [(3, 0, 6), (3, 30, 1)]
    assert shape(plan_requests(pts, max_gap=3)) == [(3, 0, 1), (3, 5, 1), (3, 30, 1)]
    assert shape(plan_requests(pts, max_gap=24)) == [(3, 0, 31)]
    assert shape(plan_requests(pts, max_gap=0)) == [(3, 0, 1), (3, 5, 1), (3, 30, 1)]


def test_125_register_limit_splits_reads() -> None:
    pts = [reg(f"f{i}", 2 * i, "float32") for i in range(100)]  # 200 contiguous registers
    plan = plan_requests(pts)
    assert shape(plan) == [(3, 0, 124), (3, 124, 76)]  # a float32 is never split across reads
    assert all(r.count <= 125 for r in plan)
    assert sum(len(r.points) for r in plan) == 100


def test_device_read_limit_below_125() -> None:
    pts = [reg(f"r{i}", i) for i in range(100)]
    assert shape(plan_requests(pts, max_registers=32)) == [
        (3, 0, 32),
        (3, 32, 32),
        (3, 64, 32),
        (3, 96, 4),
    ]


def test_bits_merge_up_to_2000() -> None:
    pts = [bit(f"c{i}", i * 10) for i in range(300)]  # addresses 0..2990, gaps of 9
    plan = plan_requests(pts)
    assert shape(plan) == [(1, 0, 1991), (1, 2000, 991)]
    assert shape(plan_requests([bit("a", 0), bit("b", 300)], max_gap_bits=256)) == [
        (1, 0, 1),
        (1, 300, 1),
    ]


def test_function_codes_never_merge_and_order_is_stable() -> None:
    pts = [reg("h", 0, fc=3), reg("i", 0, fc=4), bit("c", 0, fc=1), bit("d", 1, fc=2)]
    assert shape(plan_requests(pts)) == [(1, 0, 1), (2, 1, 1), (3, 0, 1), (4, 0, 1)]


def test_bits_of_one_register_share_it() -> None:
    pts = [reg(f"b{i}", 10, "bit", bit=i) for i in range(16)] + [reg("v", 11)]
    plan = plan_requests(pts)
    assert shape(plan) == [(3, 10, 2)]
    assert len(plan[0].points) == 17


def test_autoclave_map_is_four_reads() -> None:
    from collectors.modbus.config import ModbusCollectorConfig
    from simulators.plc.layout import AUTOCLAVE, profile

    cfg = ModbusCollectorConfig.model_validate(
        {
            "kind": "modbus",
            "profiles": {"autoclave": profile(AUTOCLAVE)},
            "devices": [{"name": "AC-1", "host": "h", "line": "L", "profile": "autoclave"}],
        }
    )
    assert shape(cfg.plan_for(cfg.devices[0])) == [(1, 0, 2), (2, 0, 1), (3, 100, 14), (4, 0, 9)]


def test_point_larger_than_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="read limit"):
        plan_requests([reg("s", 0, "string", length=100)], max_registers=64)


TYPES = sorted(WORDS)


@given(
    st.lists(
        st.tuples(st.integers(0, 3000), st.sampled_from(TYPES), st.sampled_from([3, 4])),
        min_size=1,
        max_size=80,
    ),
    st.integers(0, 40),
    st.integers(8, 125),
)
def test_plan_covers_every_point_within_limits(
    specs: list[tuple[int, str, int]], max_gap: int, max_registers: int
) -> None:
    pts = [reg(f"p{i}", a, t, fc=fc) for i, (a, t, fc) in enumerate(specs)]
    plan = plan_requests(pts, max_gap=max_gap, max_registers=max_registers)
    seen = []
    for r in plan:
        assert 1 <= r.count <= max_registers
        for p in r.points:
            assert p.fc == r.fc and r.address <= p.address and p.end <= r.end
            seen.append(p.name)
        # inside a read, no run of unrequested registers is longer than max_gap
        covered = sorted({a for p in r.points for a in range(p.address, p.end)})
        assert covered[0] == r.address and covered[-1] == r.end - 1
        assert all(b - a - 1 <= max_gap for a, b in itertools.pairwise(covered))
    assert sorted(seen) == sorted(p.name for p in pts)
    # greedy is minimal for non-overlapping points: no two neighbouring reads could merge
    for a, b in itertools.pairwise(plan):
        if a.fc == b.fc:
            assert b.address - a.end > max_gap or b.end - a.address > max_registers
