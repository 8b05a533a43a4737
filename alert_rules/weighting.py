"""How long a reading holds its value: the time weights of means, MKT and time out of range.

A logger samples every interval; a reading stands for the interval that follows it. So each
reading holds until the next reading, but never longer than the device's logging interval
(configured, or learned as the median spacing of its readings) and never longer than the gap
limit: time beyond that is a gap in the record, not time at the last value. It never holds
"until the report stops", so a shipment's MKT does not depend on when the shipment was closed.

USP <1079.2> computes MKT over n readings taken at a fixed interval; with hold times as weights
this is the same number for a fixed interval, and stays right when the interval changes (China
GSP: every 30 min in storage, but every 2 min while out of range).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from statistics import median


def learned_interval_ns(ts_ns: Sequence[int]) -> int | None:
    """The median positive spacing of sorted timestamps; None with fewer than two."""
    steps = [b - a for a, b in itertools.pairwise(ts_ns) if b > a]
    return int(median(steps)) if steps else None


def hold_ns(ts_ns: Sequence[int], gap_limit_ns: int, interval_ns: int | None = None) -> list[int]:
    """Per reading (timestamps sorted ascending), how long it holds its value."""
    interval = interval_ns or learned_interval_ns(ts_ns) or gap_limit_ns
    cap = min(interval, gap_limit_ns)
    n = len(ts_ns)
    return [max(0, min(ts_ns[i + 1] - ts_ns[i], cap)) if i + 1 < n else cap for i in range(n)]
