"""Mean kinetic temperature (USP <1079.2>), exact and over a rolling window.

    T_mk = (ΔH/R) / -ln( Σ wᵢ·exp(-ΔH/(R·Tᵢ)) / Σ wᵢ )        T in kelvin

With equal weights this is the USP formula over n readings. vigil weights each reading by the
time it holds (until the next reading, at most `max_gap`), which is the same thing for a logger
with a fixed interval and stays right when the interval changes (China GSP records every 2 min
while out of range but every 30 min otherwise: counting samples would over-weight excursions).

The rolling window keeps per-bucket sums in two fixed arrays (a ring), so memory per series is
constant (720 buckets by default: 2 min for 24 h, 1 h for 30 days) whatever the logging rate.
"""

from __future__ import annotations

import base64
import math
from array import array
from collections.abc import Iterable
from typing import Any

from gateway.core.standards import MKT_DELTA_H_KJ_MOL, MKT_GAS_CONSTANT_KJ_MOL_K

KELVIN = 273.15


def mkt_c(
    temps_c: Iterable[float],
    weights: Iterable[float] | None = None,
    *,
    delta_h: float = MKT_DELTA_H_KJ_MOL,
) -> float:
    """MKT in °C of temperatures in °C (equal weights unless given)."""
    k = delta_h / MKT_GAS_CONSTANT_KJ_MOL_K
    temps = list(temps_c)
    ws = [1.0] * len(temps) if weights is None else list(weights)
    if not temps or sum(ws) <= 0:
        raise ValueError("MKT needs at least one reading with positive weight")
    # exp(k/T_ref - k/T) keeps the terms near 1 whatever the temperature range.
    t_ref = max(temps) + KELVIN
    s = sum(w * math.exp(k / t_ref - k / (t + KELVIN)) for t, w in zip(temps, ws, strict=True))
    mean = s / sum(ws)
    return 1.0 / (1.0 / t_ref - math.log(mean) / k) - KELVIN


class RollingMKT:
    """Time-weighted MKT over the buckets c-n+1 … c, where c is the bucket holding `now`.

    Feed readings in event-time order with `add(ts, temp_c)`; `value(now)` then gives the MKT of
    everything held inside the window. The window is `n` whole buckets, so it is between
    window - bucket and window long (at most one bucket shorter than asked).
    """

    __slots__ = (
        "bucket",
        "cur",
        "k",
        "last_t",
        "last_ts",
        "max_gap",
        "n",
        "s",
        "sum_s",
        "sum_w",
        "t_ref",
        "w",
    )

    def __init__(
        self, window_ns: int, bucket_ns: int, delta_h: float, max_gap_ns: int, t_ref_c: float = 25.0
    ) -> None:
        self.bucket = bucket_ns
        self.n = max(1, round(window_ns / bucket_ns))
        self.k = delta_h / MKT_GAS_CONSTANT_KJ_MOL_K
        self.t_ref = t_ref_c + KELVIN
        self.max_gap = max_gap_ns
        self.w = array("d", bytes(8 * self.n))
        """Seconds held per bucket."""
        self.s = array("d", bytes(8 * self.n))
        """Σ seconds · exp(k/T_ref - k/T) per bucket."""
        self.sum_w = 0.0
        self.sum_s = 0.0
        self.cur: int | None = None
        """Index (ts // bucket) of the newest bucket written."""
        self.last_ts: int | None = None
        self.last_t: float = 0.0

    def _roll(self, c: int) -> None:
        """Make bucket c the newest one, zeroing the buckets that fall out of the window."""
        cur = self.cur
        w, s, n = self.w, self.s, self.n
        if cur is None or c - cur >= n:
            for i in range(n):
                w[i] = 0.0
                s[i] = 0.0
            self.sum_w = self.sum_s = 0.0
        else:
            for j in range(cur + 1, c + 1):
                i = j % n
                self.sum_w -= w[i]
                self.sum_s -= s[i]
                w[i] = 0.0
                s[i] = 0.0
            if c // n != cur // n:
                # Once per window length, re-sum exactly so add/subtract drift cannot build up.
                self.sum_w = math.fsum(w)
                self.sum_s = math.fsum(s)
        self.cur = c

    def add(self, ts: int, temp_c: float) -> None:
        """Record a reading; the previous reading's hold [last_ts, ts) enters the window."""
        last = self.last_ts
        if last is not None and ts < last:
            return
        c = ts // self.bucket
        if self.cur is None or c > self.cur:
            self._roll(c)
        if last is not None and ts > last:
            end = min(ts, last + self.max_gap)
            term = math.exp(self.k / self.t_ref - self.k / (self.last_t + KELVIN))
            lo_bucket = c - self.n + 1
            b = self.bucket
            a = max(last, lo_bucket * b)
            while a < end:
                j = a // b
                seg_end = min(end, (j + 1) * b)
                secs = (seg_end - a) / 1e9
                i = j % self.n
                self.w[i] += secs
                self.s[i] += secs * term
                self.sum_w += secs
                self.sum_s += secs * term
                a = seg_end
        if temp_c == temp_c:  # NaN: the reading holds nothing
            self.last_ts = ts
            self.last_t = temp_c
        else:
            self.last_ts = None

    def covered_s(self) -> float:
        return self.sum_w

    def value(self) -> float | None:
        """MKT in °C of the current window, None before any time has been held."""
        if self.sum_w <= 0 or self.sum_s <= 0:
            return None
        mean = self.sum_s / self.sum_w
        return 1.0 / (1.0 / self.t_ref - math.log(mean) / self.k) - KELVIN

    def window_s(self) -> float:
        return self.n * self.bucket / 1e9

    def dump(self) -> dict[str, Any]:
        return {
            "w": base64.b64encode(self.w.tobytes()).decode(),
            "s": base64.b64encode(self.s.tobytes()).decode(),
            "cur": self.cur,
            "last_ts": self.last_ts,
            "last_t": self.last_t,
        }

    def load(self, d: dict[str, Any]) -> None:
        w = array("d")
        w.frombytes(base64.b64decode(d["w"]))
        s = array("d")
        s.frombytes(base64.b64decode(d["s"]))
        if len(w) != self.n or len(s) != self.n:
            return
        self.w, self.s = w, s
        self.cur, self.last_ts, self.last_t = d["cur"], d["last_ts"], d["last_t"]
        self.sum_w = math.fsum(self.w)
        self.sum_s = math.fsum(self.s)
