"""Excursion timers on a sample-and-hold signal, in event time (WHO PQS E006 / shipping indicators).

Semantics shared by every timer (and by the brute-force references in the tests):

* A reading's status holds from its timestamp until the next reading of the series, but for at
  most `max_gap`; after that the signal is UNKNOWN until the next reading. Unknown time never
  counts as an excursion and never counts as a return to normal (the stale rule covers gaps).
* Status of a sample: ENTER (beyond the limit), STAY (inside the deadband: keeps an active alarm
  active but does not start one), NORMAL, UNKNOWN (NaN).
* Times are exact: an alarm raised by a single-event timer is raised at run_start + duration even
  when the reading that reveals it arrives later, so a batch uploaded hours late gives the true
  start and end.

The timers only decide; a `TimerSink` (the rule kind) turns decisions into alerts. The engine's
evaluation context goes in with each sample and comes out, unchanged, with each decision.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from alert_rules.context import EvalContext

NORMAL = 0
STAY = 1
ENTER = 2
UNKNOWN = 3


class TimerSink(Protocol):
    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None: ...

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None: ...


def _worse(high: bool | None, peak: float | None, value: Any) -> float | None:
    if high is None or value is None or value != value:
        return peak
    if peak is None:
        return float(value)
    if high:
        return float(value) if value > peak else peak
    return float(value) if value < peak else peak


class ExcursionTimer:
    """Instant and single-event timers, i.e. a threshold with on-delay, off-delay and deadband.

    Raised when the signal has been ENTER continuously for `on_delay` (0 = instant, on the reading
    itself); cleared when it has been NORMAL continuously for `off_delay` (STAY and UNKNOWN
    interrupt the normal run). Both limits are inclusive: a run of exactly `on_delay` raises.
    """

    __slots__ = (
        "active",
        "high",
        "last_status",
        "last_ts",
        "last_value",
        "max_gap",
        "normal_start",
        "off_delay",
        "on_delay",
        "peak",
        "run_start",
        "started",
    )

    def __init__(self, on_delay: int, off_delay: int, max_gap: int, high: bool | None) -> None:
        self.on_delay = on_delay
        self.off_delay = off_delay
        self.max_gap = max_gap
        self.high = high
        self.last_ts: int | None = None
        self.last_status = UNKNOWN
        self.last_value: Any = None
        self.active = False
        self.run_start: int | None = None
        self.normal_start: int | None = None
        self.started: int | None = None
        self.peak: float | None = None

    def feed(self, ctx: EvalContext, ts: int, status: int, value: Any, sink: TimerSink) -> None:
        last = self.last_ts
        if last is not None:
            if ts < last:
                return
            if not self.active and status != ENTER and self.last_status != ENTER:
                # Fast path (most readings): quiet before, quiet now; nothing can happen.
                self.last_ts = ts
                self.last_status = status
                self.last_value = value
                return
            if ts > last:
                hold_end = last + self.max_gap
                if hold_end >= ts:
                    self._span(ctx, ts, self.last_status, sink)
                else:
                    self._span(ctx, hold_end, self.last_status, sink)
                    self._span(ctx, ts, UNKNOWN, sink)
        self._sample(ctx, ts, status, value, sink)
        self.last_ts = ts
        self.last_status = status
        self.last_value = value

    def _span(self, ctx: EvalContext, end: int, status: int, sink: TimerSink) -> None:
        """Let time pass up to `end` with a constant status."""
        if not self.active:
            if status == ENTER:
                t = self.run_start + self.on_delay  # type: ignore[operator]
                if t <= end:
                    self._activate(ctx, self.run_start, t, sink)  # type: ignore[arg-type]
            else:
                self.run_start = None
        elif status == NORMAL:
            t = self.normal_start + self.off_delay  # type: ignore[operator]
            if t <= end:
                self._clear(ctx, self.normal_start, t, sink)  # type: ignore[arg-type]
        elif status == UNKNOWN:
            self.normal_start = None

    def _sample(self, ctx: EvalContext, ts: int, status: int, value: Any, sink: TimerSink) -> None:
        if not self.active:
            if status == ENTER:
                if self.run_start is None:
                    self.run_start = ts
                    self.peak = None
                self.peak = _worse(self.high, self.peak, value)
                if self.on_delay == 0:
                    self.last_value = value
                    self._activate(ctx, ts, ts, sink)
            else:
                self.run_start = None
        elif status == NORMAL:
            if self.normal_start is None:
                self.normal_start = ts
            if self.off_delay == 0:
                self.last_value = value
                self._clear(ctx, ts, ts, sink)
        else:
            if status == STAY or status == ENTER:
                self.peak = _worse(self.high, self.peak, value)
            self.normal_start = None

    def _activate(self, ctx: EvalContext, started: int, at: int, sink: TimerSink) -> None:
        self.active = True
        self.run_start = None
        self.normal_start = None
        self.started = started
        sink.on_activate(ctx, started, at, self.last_value, self.peak)

    def _clear(self, ctx: EvalContext, ended: int, at: int, sink: TimerSink) -> None:
        self.active = False
        self.normal_start = None
        self.run_start = None
        sink.on_clear(ctx, ended, at, self.last_value, self.peak)

    def dump(self) -> dict[str, Any]:
        return {
            "last_ts": self.last_ts,
            "last_status": self.last_status,
            "last_value": self.last_value,
            "active": self.active,
            "run_start": self.run_start,
            "normal_start": self.normal_start,
            "started": self.started,
            "peak": self.peak,
        }

    def load(self, d: dict[str, Any]) -> None:
        for k, v in d.items():
            setattr(self, k, v)


class CumulativeTimer:
    """Total time beyond the limit within a rolling window, or within the current shipment.

    Window scope: raised when the beyond-time inside [t - window, t] reaches `duration`, cleared
    when it falls below again. The total only grows while beyond and only shrinks otherwise, so
    exact crossing times are found by bisection inside the interval that crossed.
    Shipment or lot scope (window=None): raised when the total since the scope began (the
    `shipment` or `lot` tag last changed) reaches `duration`, like an irreversible indicator;
    cleared, and counted from zero again, when that tag changes.
    """

    __slots__ = (
        "active",
        "duration",
        "high",
        "intervals",
        "last_status",
        "last_ts",
        "last_value",
        "max_gap",
        "peak",
        "scope_key",
        "total",
        "window",
    )

    def __init__(self, duration: int, window: int | None, max_gap: int, high: bool | None) -> None:
        self.duration = duration
        self.window = window
        self.max_gap = max_gap
        self.high = high
        self.intervals: deque[list[int]] = deque()
        """Beyond intervals [start, end) (merged); for shipment scope only the first is kept."""
        self.total = 0
        """Sum of interval lengths in `intervals` (window) or since the shipment began."""
        self.last_ts: int | None = None
        self.last_status = UNKNOWN
        self.last_value: Any = None
        self.active = False
        self.peak: float | None = None
        self.scope_key: str | None = None

    def feed(
        self,
        ctx: EvalContext,
        ts: int,
        status: int,
        value: Any,
        sink: TimerSink,
        scope_key: str | None,
    ) -> None:
        last = self.last_ts
        if last is not None:
            if ts < last:
                return
            if ts > last:
                hold_end = min(ts, last + self.max_gap)
                self._span(ctx, last, hold_end, self.last_status == ENTER, sink)
                if hold_end < ts:
                    self._span(ctx, hold_end, ts, False, sink)
        if self.window is None and scope_key != self.scope_key:
            if self.active and last is not None:
                self.active = False
                sink.on_clear(ctx, ts, ts, value, self.peak)
            self.intervals.clear()
            self.total = 0
            self.peak = None
            self.scope_key = scope_key
        if status == ENTER:
            self.peak = _worse(self.high, self.peak, value)
        self.last_ts = ts
        self.last_status = status
        self.last_value = value

    # -- window arithmetic -------------------------------------------------------------------
    def _total_at(self, t: int) -> int:
        """Beyond time inside [t - window, t] (intervals must cover everything up to t)."""
        lo = t - self.window  # type: ignore[operator]
        tot = 0
        for s, e in self.intervals:
            if e <= lo:
                continue
            if s >= t:
                break
            tot += min(e, t) - max(s, lo)
        return tot

    def _evict(self, t: int) -> None:
        lo = t - self.window  # type: ignore[operator]
        iv = self.intervals
        while iv and iv[0][1] <= lo:
            s, e = iv.popleft()
            self.total -= e - s

    def _total_ahead(self, t: int) -> int:
        """total_at(t) in amortised O(1): skips what _evict(t) is about to drop anyway."""
        lo = t - self.window  # type: ignore[operator]
        tot = self.total
        for s, e in self.intervals:
            if e <= lo:
                tot -= e - s
                continue
            if s < lo:
                tot -= lo - s
            break
        return tot

    def _span(self, ctx: EvalContext, a: int, b: int, beyond: bool, sink: TimerSink) -> None:
        if b <= a:
            return
        if self.window is None:
            if beyond:
                if not self.intervals:
                    self.intervals.append([a, b])
                self.total += b - a
                if not self.active and self.total >= self.duration:
                    self.active = True
                    at = b - (self.total - self.duration)
                    sink.on_activate(ctx, self.intervals[0][0], at, self.last_value, self.peak)
            return
        self._evict(a)
        if beyond:
            iv = self.intervals
            if iv and iv[-1][1] == a:
                iv[-1][1] = b
            else:
                iv.append([a, b])
            self.total += b - a
            if not self.active and self._total_ahead(b) >= self.duration:
                lo, hi = a, b  # smallest t in (a, b] with total(t) >= duration
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self._total_at(mid) >= self.duration:
                        hi = mid
                    else:
                        lo = mid + 1
                self.active = True
                start = lo - self.window
                first = next(s for s, e in iv if e > start)
                sink.on_activate(ctx, max(first, start), lo, self.last_value, self.peak)
        elif self.active and self._total_ahead(b) < self.duration:
            lo, hi = a, b  # largest t in [a, b) with total(t) >= duration
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._total_at(mid) >= self.duration:
                    lo = mid
                else:
                    hi = mid - 1
            self.active = False
            sink.on_clear(ctx, lo, lo, self.last_value, self.peak)
            self.peak = None
        self._evict(b)

    def dump(self) -> dict[str, Any]:
        return {
            "intervals": [list(x) for x in self.intervals],
            "total": self.total,
            "last_ts": self.last_ts,
            "last_status": self.last_status,
            "last_value": self.last_value,
            "active": self.active,
            "peak": self.peak,
            "scope_key": self.scope_key,
        }

    def load(self, d: dict[str, Any]) -> None:
        self.intervals = deque([list(x) for x in d["intervals"]])
        for k in ("total", "last_ts", "last_status", "last_value", "active", "peak", "scope_key"):
            setattr(self, k, d[k])
