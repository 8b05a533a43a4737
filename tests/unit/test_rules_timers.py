"""Timers against brute-force references that step time one unit at a time.

The references re-derive the semantics from the signal (sample-and-hold, unknown after max_gap)
on an integer grid; the timers under test jump from reading to reading with exact arithmetic.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alert_rules.context import EvalContext
from alert_rules.timers import ENTER, NORMAL, STAY, UNKNOWN, CumulativeTimer, ExcursionTimer

CTX = EvalContext(0, 0, {})


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.events.append(("on", started, at))

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.events.append(("off", ended, at))


def held_status(samples: list[tuple[int, int]], m: int, max_gap: int) -> int:
    """Status of the signal at integer time m (a sample's own status at its timestamp)."""
    prev = None
    for t, s in samples:
        if t > m:
            break
        prev = (t, s)
    assert prev is not None
    t, s = prev
    if t == m:
        return s
    return s if m < t + max_gap else UNKNOWN


def ref_excursion(samples: list[tuple[int, int]], on: int, off: int, max_gap: int) -> list[Any]:
    active, run, nrm, ev = False, None, None, []
    for m in range(samples[0][0], samples[-1][0] + 1):
        if not active and run is not None and on > 0 and m - run >= on:
            active, ev, run, nrm = True, [*ev, ("on", run, run + on)], None, None
        if active and nrm is not None and off > 0 and m - nrm >= off:
            active, ev, run, nrm = False, [*ev, ("off", nrm, nrm + off)], None, None
        s = held_status(samples, m, max_gap)
        if not active:
            if s == ENTER:
                run = m if run is None else run
                if on == 0:
                    active, ev, run = True, [*ev, ("on", m, m)], None
            else:
                run = None
        elif s == NORMAL:
            nrm = m if nrm is None else nrm
            if off == 0:
                active, ev, nrm = False, [*ev, ("off", m, m)], None
        else:
            nrm = None
    return ev


def ref_cumulative(
    samples: list[tuple[int, int, str | None]], duration: int, window: int | None, max_gap: int
) -> list[Any]:
    t0, t_last = samples[0][0], samples[-1][0]
    plain = [(t, s) for t, s, _ in samples]
    beyond = {m: held_status(plain, m, max_gap) == ENTER for m in range(t0, t_last)}
    keys = {t: k for t, _, k in samples}
    ev: list[Any] = []
    active = False
    if window is not None:
        for t in range(t0, t_last + 1):
            cells = [m for m in range(max(t0, t - window), t) if beyond[m]]
            if not active and len(cells) >= duration:
                active = True
                ev.append(("on", cells[0], t))
            elif active and len(cells) < duration:
                active = False
                ev.append(("off", t - 1, t - 1))
        return ev
    scope, tot, first = samples[0][2], 0, None
    for t in range(t0, t_last + 1):
        if not active and tot >= duration:
            active = True
            ev.append(("on", first, t))
        if t in keys and keys[t] != scope:
            if active:
                ev.append(("off", t, t))
                active = False
            scope, tot, first = keys[t], 0, None
        if t < t_last and beyond[t]:
            tot += 1
            first = t if first is None else first
    return ev


statuses = st.sampled_from([NORMAL, NORMAL, ENTER, ENTER, ENTER, STAY, UNKNOWN])


@st.composite
def series(draw: st.DrawFn, with_keys: bool = False) -> list[Any]:
    n = draw(st.integers(1, 30))
    t = draw(st.integers(0, 5))
    out = []
    key = "S1"
    for _ in range(n):
        if with_keys and draw(st.integers(0, 9)) == 0:
            key = draw(st.sampled_from(["S1", "S2", "S3"]))
        out.append((t, draw(statuses), key) if with_keys else (t, draw(statuses)))
        t += draw(st.one_of(st.integers(1, 4), st.integers(5, 20)))
    return out


@settings(max_examples=300, deadline=None)
@given(series(), st.integers(0, 12), st.integers(0, 8), st.integers(1, 15))
def test_excursion_timer_matches_brute_force(
    samples: list[Any], on: int, off: int, max_gap: int
) -> None:
    rec = Recorder()
    timer = ExcursionTimer(on, off, max_gap, high=True)
    for t, s in samples:
        timer.feed(CTX, t, s, float(t), rec)
    assert rec.events == ref_excursion(samples, on, off, max_gap)


@settings(max_examples=300, deadline=None)
@given(series(), st.integers(1, 15), st.integers(0, 25), st.integers(1, 15))
def test_cumulative_window_matches_brute_force(
    samples: list[Any], duration: int, extra: int, max_gap: int
) -> None:
    window = duration + extra
    rec = Recorder()
    timer = CumulativeTimer(duration, window, max_gap, high=True)
    for t, s in samples:
        timer.feed(CTX, t, s, float(t), rec, None)
    assert rec.events == ref_cumulative(
        [(t, s, None) for t, s in samples], duration, window, max_gap
    )


@settings(max_examples=300, deadline=None)
@given(series(with_keys=True), st.integers(1, 20), st.integers(1, 15))
def test_cumulative_shipment_matches_brute_force(
    samples: list[Any], duration: int, max_gap: int
) -> None:
    rec = Recorder()
    timer = CumulativeTimer(duration, None, max_gap, high=True)
    for t, s, k in samples:
        timer.feed(CTX, t, s, float(t), rec, k)
    assert rec.events == ref_cumulative(samples, duration, None, max_gap)


@settings(max_examples=100, deadline=None)
@given(series(), st.integers(0, 12), st.integers(0, 8), st.integers(1, 15), st.data())
def test_excursion_timer_resumes_from_snapshot(
    samples: list[Any], on: int, off: int, max_gap: int, data: st.DataObject
) -> None:
    """dump()/load() at any point gives the same alarms as one uninterrupted run."""
    cut = data.draw(st.integers(0, len(samples)))
    whole, parts = Recorder(), Recorder()
    a = ExcursionTimer(on, off, max_gap, True)
    for t, s in samples:
        a.feed(CTX, t, s, 1.0, whole)
    b = ExcursionTimer(on, off, max_gap, True)
    for t, s in samples[:cut]:
        b.feed(CTX, t, s, 1.0, parts)
    c = ExcursionTimer(on, off, max_gap, True)
    c.load(b.dump())
    for t, s in samples[cut:]:
        c.feed(CTX, t, s, 1.0, parts)
    assert parts.events == whole.events


def test_single_event_exact_times_from_sparse_readings() -> None:
    """A 60-unit timer fires at run start + 60 even if the revealing reading comes later."""
    rec = Recorder()
    timer = ExcursionTimer(60, 0, 1000, high=False)
    timer.feed(CTX, 0, ENTER, -1.0, rec)
    timer.feed(CTX, 45, ENTER, -2.0, rec)
    assert rec.events == []
    timer.feed(CTX, 90, NORMAL, 5.0, rec)
    assert rec.events == [("on", 0, 60), ("off", 90, 90)]
    assert timer.peak == -2.0


def test_gap_longer_than_max_gap_breaks_a_single_event() -> None:
    rec = Recorder()
    timer = ExcursionTimer(60, 0, 30, high=True)
    timer.feed(CTX, 0, ENTER, 9.0, rec)
    timer.feed(CTX, 50, ENTER, 9.0, rec)  # [30, 50) unknown: the run restarts at 50
    timer.feed(CTX, 75, ENTER, 9.0, rec)
    timer.feed(CTX, 100, ENTER, 9.0, rec)
    assert rec.events == []
    timer.feed(CTX, 110, ENTER, 9.0, rec)
    assert rec.events == [("on", 50, 110)]


class PointRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []

    def activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: Any, message: Any
    ) -> None:
        self.events.append(("on", started, at))

    def clear(self, ctx: EvalContext, ended: int, at: int, value: Any, peak: Any) -> None:
        self.events.append(("off", ended, at))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([6.0, 6.9, 7.0, 7.5, 8.0, 8.5, 11.0, float("nan")]), min_size=1, max_size=40
    ),
    st.booleans(),
    st.sampled_from([0.0, 1.0]),
    st.integers(0, 6),
    st.integers(0, 6),
)
def test_threshold_rule_with_deadband_matches_brute_force(
    values: list[float], inclusive: bool, deadband: float, on_min: int, off_min: int
) -> None:
    """A high limit of 8 through the real rule kind, against statuses derived by hand."""
    from alert_rules.kinds.threshold import ThresholdRule

    minute = 60_000_000_000
    rule = ThresholdRule(
        id="t",
        field="temp_c",
        high=8.0,
        inclusive=inclusive,
        deadband=deadband,
        on_delay=on_min * 60,
        off_delay=off_min * 60,
    )
    rec = PointRecorder()
    ev = rule.build(rec)
    for i, v in enumerate(values):
        ev.feed(CTX, i * minute, v, None)  # type: ignore[arg-type]

    def status(v: float) -> int:
        if v != v:
            return UNKNOWN
        if v > 8.0 or (inclusive and v == 8.0):
            return ENTER
        if v < 8.0 - deadband or (not inclusive and v == 8.0 - deadband):
            return NORMAL
        return STAY

    ref = ref_excursion([(i, status(v)) for i, v in enumerate(values)], on_min, off_min, 60)
    assert rec.events == [(k, a * minute, b * minute) for k, a, b in ref]
