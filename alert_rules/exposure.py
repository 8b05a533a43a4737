"""A product's exposure over time: what stability budgets, a lot's chain and its report count.

A series is one device's readings (event time ns, value), sorted by time. Each reading holds its
value for its hold time (alert_rules/weighting.py: until the next reading, at most the logging
interval and the gap limit); the last one too, whenever its leg stopped: a reading stands for
the interval that follows it, so nothing depends on when a leg was closed. The held segments
give the time spent in a band, the time-weighted mean and MKT (USP <1079.2> with hold times as
weights), the excursions, the freeze events, and the instant at which a cumulative time reaches
a level (a budget's 50 %, 80 %, exhausted).

Pure: the caller gives the readings.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alert_rules.mkt import KELVIN
from alert_rules.weighting import hold_ns
from gateway.core.standards import MKT_DELTA_H_KJ_MOL, MKT_GAS_CONSTANT_KJ_MOL_K

Predicate = Callable[[float], bool]


@dataclass(frozen=True, slots=True)
class Segment:
    """One reading's value held over [start, end) (ns)."""

    start: int
    end: int
    value: float

    @property
    def ns(self) -> int:
        return self.end - self.start


def held_segments(
    points: Sequence[tuple[int, float]], gap_limit_ns: int, interval_ns: int | None = None
) -> list[Segment]:
    """The held segments of one device's sorted readings.

    `interval_ns`: the device's configured logging interval (None: learned as the median spacing).
    NaN or infinite values hold nothing.
    """
    pts = [(t, v) for t, v in points if math.isfinite(v)]
    holds = hold_ns([t for t, _ in pts], gap_limit_ns, interval_ns)
    return [Segment(t, t + h, v) for (t, v), h in zip(pts, holds, strict=True) if h > 0]


def time_in(segments: Sequence[Segment], pred: Predicate) -> int:
    """Nanoseconds held at values for which `pred` is true."""
    return sum(s.ns for s in segments if pred(s.value))


def reach_time(segments: Sequence[Segment], pred: Predicate, target_ns: int) -> int | None:
    """The instant the cumulative time with `pred` true reaches `target_ns` (None: never).

    A target of 0 is reached at the first instant `pred` holds (a budget of 0 h is exhausted by
    any time in its band)."""
    cum = 0
    for s in segments:
        if not pred(s.value):
            continue
        if cum + s.ns >= target_ns:
            return s.start + max(0, target_ns - cum)
        cum += s.ns
    return None


def entries(segments: Sequence[Segment], pred: Predicate, before: bool = False) -> list[int]:
    """The instants `pred` becomes true: a segment where it holds after one where it did not (a
    gap in between does not change the state). `before`: whether it held before the first one."""
    out: list[int] = []
    state = before
    for s in segments:
        now = pred(s.value)
        if now and not state:
            out.append(s.start)
        state = now
    return out


def weighted_mean(segments: Sequence[Segment]) -> float | None:
    total = sum(s.ns for s in segments)
    if total <= 0:
        return None
    return math.fsum(s.value * s.ns for s in segments) / total


def _k(delta_h: float) -> float:
    return delta_h / MKT_GAS_CONSTANT_KJ_MOL_K


def mkt_of(segments: Sequence[Segment], delta_h: float = MKT_DELTA_H_KJ_MOL) -> float | None:
    """MKT (°C) of the segments, each weighted by its held time; None when nothing is held."""
    if not segments:
        return None
    k = _k(delta_h)
    t_ref = max(s.value for s in segments) + KELVIN
    w = math.fsum(s.ns for s in segments)
    if w <= 0:
        return None
    acc = math.fsum(s.ns * math.exp(k / t_ref - k / (s.value + KELVIN)) for s in segments)
    return 1.0 / (1.0 / t_ref - math.log(acc / w) / k) - KELVIN


def max_window_mkt(
    segments: Sequence[Segment], window_ns: int, delta_h: float = MKT_DELTA_H_KJ_MOL
) -> tuple[float, int, int] | None:
    """The highest MKT over any window of `window_ns` (its value, start and end), or the MKT of
    everything when the segments span less than a window. Windows are tried ending at each
    segment's end and starting at each segment's start: the mean of a piecewise-constant signal
    over a sliding window is extreme where a window edge meets a segment edge."""
    if not segments:
        return None
    first, last = segments[0].start, segments[-1].end
    if last - first <= window_ns:
        whole = mkt_of(segments, delta_h)
        return None if whole is None else (whole, first, last)
    k = _k(delta_h)
    t_ref = max(s.value for s in segments) + KELVIN
    terms = [math.exp(k / t_ref - k / (s.value + KELVIN)) for s in segments]
    starts = [s.start for s in segments]
    ends = [s.end for s in segments]
    pw = [0.0]
    pt = [0.0]
    for s, term in zip(segments, terms, strict=True):
        pw.append(pw[-1] + s.ns)
        pt.append(pt[-1] + s.ns * term)

    def held(a: int, b: int) -> tuple[float, float]:
        """(Σ w, Σ w·term) over [a, b)."""
        i = bisect.bisect_right(ends, a)  # first segment ending after a
        j = bisect.bisect_left(starts, b)  # segments before j start before b
        if i >= j:
            return 0.0, 0.0
        sw = pw[j] - pw[i]
        st = pt[j] - pt[i]
        for idx in {i, j - 1}:  # trim the partly covered segments at both edges
            s = segments[idx]
            cut = max(0, a - s.start) + max(0, s.end - b)
            sw -= cut
            st -= cut * terms[idx]
        return sw, st

    best: tuple[float, int, int] | None = None
    candidates = [(e - window_ns, e) for e in ends if e - window_ns >= first]
    candidates += [(s, s + window_ns) for s in starts if s + window_ns <= last]
    for a, b in candidates:
        sw, st = held(a, b)
        if sw <= 0 or st <= 0:
            continue
        value = 1.0 / (1.0 / t_ref - math.log(st / sw) / k) - KELVIN
        if best is None or value > best[0]:
            best = (value, a, b)
    return best


@dataclass(frozen=True, slots=True)
class Excursion:
    """A run of contiguous held segments beyond the limits."""

    start: int
    end: int
    """Where the last segment of the run ends: the next reading, or where the hold ran out."""
    lowest: float
    highest: float


def excursions(segments: Sequence[Segment], beyond: Predicate) -> list[Excursion]:
    """Runs of segments whose value is beyond the limits; a gap in the record ends a run."""
    out: list[Excursion] = []
    run: list[Segment] = []

    def close() -> None:
        if run:
            vals = [s.value for s in run]
            out.append(Excursion(run[0].start, run[-1].end, min(vals), max(vals)))
            run.clear()

    for s in segments:
        if beyond(s.value):
            if run and run[-1].end != s.start:
                close()
            run.append(s)
        else:
            close()
    close()
    return out
