"""The console's reading history: column storage behaves like a plain list of readings, and holds
its bound in a few megabytes."""

from __future__ import annotations

import bisect
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.context import ReadingHistory
from gateway.core.reading import FieldValue, Reading

S = 1_000_000_000

values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.text(max_size=3),
)
readings = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 50),
        st.dictionaries(st.sampled_from(["t", "rh", "door"]), values, max_size=3),
    ),
    max_size=120,
)


class Model:
    """The history as lists of (ts, numeric fields), with the same bounds and drop order."""

    def __init__(self, per_series: int, max_series: int, max_points: int) -> None:
        self.per_series, self.max_series, self.max_points = per_series, max_series, max_points
        self.series: dict[str, list[tuple[int, dict[str, FieldValue]]]] = {}
        self.dropped: dict[str, int] = {}

    def observe(self, dev: str, ts: int, fields: dict[str, FieldValue]) -> None:
        if dev not in self.series and len(self.series) >= self.max_series:
            return
        q = self.series.setdefault(dev, [])
        if len(q) >= self.per_series:
            self._drop(dev, 1)
        nums = {k: float(v) for k, v in fields.items() if type(v) is float or type(v) is int}
        at = len(q) if not q or q[-1][0] <= ts else bisect.bisect_right(q, ts, key=lambda p: p[0])
        q.insert(at, (ts, nums))
        while sum(len(v) for v in self.series.values()) > self.max_points:
            dev2 = max(self.series, key=lambda d: len(self.series[d]))
            self._drop(dev2, max(1, len(self.series[dev2]) // 10))

    def _drop(self, dev: str, n: int) -> None:
        q = self.series[dev]
        self.dropped[dev] = max(q[n - 1][0], self.dropped.get(dev, q[n - 1][0]))
        del q[:n]


@settings(max_examples=100, deadline=None)
@given(
    rs=readings,
    per_series=st.integers(1, 30),
    max_series=st.integers(1, 3),
    max_points=st.integers(1, 60),
    since=st.integers(0, 50),
    span=st.integers(0, 50),
)
def test_history_holds_what_a_list_of_readings_would(
    rs: list[tuple[str, int, dict[str, FieldValue]]],
    per_series: int,
    max_series: int,
    max_points: int,
    since: int,
    span: int,
) -> None:
    h = ReadingHistory(per_series=per_series, max_series=max_series, max_points=max_points)
    m = Model(per_series, max_series, max_points)
    for dev, ts, fields in rs:
        h.observe([Reading("coldchain", {"device": dev}, fields, ts * S, 0)])
        m.observe(dev, ts * S, fields)
    for dev in ("a", "b", "c"):
        got = h.window(dev, since * S, (since + span) * S)
        if dev not in m.series:
            assert got == {}
            continue
        pts, complete = got["coldchain"]
        want = [p for p in m.series[dev] if since * S <= p[0] <= (since + span) * S]
        assert [t for t, _ in pts] == [t for t, _ in want]
        assert [f for _, f in pts] == [f for _, f in want]
        dropped = m.dropped.get(dev)
        assert complete == (dropped is None or dropped < since * S)


def test_a_full_history_takes_a_few_megabytes() -> None:
    h = ReadingHistory(max_points=50_000)
    t0 = 1_700_000_000 * S
    batch = [
        Reading(
            "coldchain",
            {"device": f"lg{i % 500:04d}"},
            {"temp_c": 2.0 + (i % 600) / 100, "rh_pct": 41.5 + i % 7},
            t0 + i * 1_000_000,
            0,
        )
        for i in range(60_000)
    ]
    tracemalloc.start()
    h.observe(batch)
    used, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert 0.99 * h.max_points <= h._total <= h.max_points
    # 50 000 readings of two fields: 1.2 MB of values; as lists of dicts they took 17 MB
    assert used < 2.5 * 2**20, f"{used / 2**20:.1f} MB"
    pts, complete = h.window("lg0499", 0, t0 + 10**18)["coldchain"]
    assert not complete and pts[-1] == (t0 + 59_999 * 1_000_000, {"temp_c": 7.99, "rh_pct": 43.5})


def test_dropped_readings_do_not_pile_up() -> None:
    """A series that keeps giving up its oldest holds at most about twice what it keeps."""
    h = ReadingHistory(per_series=1000, max_points=3000)
    t0 = 1_700_000_000 * S
    for k in range(60):
        h.observe(
            [
                Reading(
                    "coldchain", {"device": f"d{i % 5}"}, {"t": 1.0}, t0 + (k * 1000 + i) * S, 0
                )
                for i in range(1000)
            ]
        )
    assert h._total <= 3000
    held = sum(len(c.ts) for c in h._series.values())
    assert held <= 2 * 3000 + 5 * 64, held
