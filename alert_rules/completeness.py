"""Record completeness: did a device record as often as China's GSP requires?

The GSP annex on automatic temperature monitoring asks for a record at least every 30 min in
storage, every 5 min in transport and every 2 min while out of range (gateway/core/standards.py).
The window is cut into consecutive recording slots; each slot is as long as the cadence in force
at its start (the out-of-range cadence when the device's last reading before it was out of
range), and must hold at least one reading. Completeness is the share of slots that do; a gap
is a run of empty slots, reported from the last reading before it to the first reading after it
(or the window's edge).

Pure: the caller gives the readings (event time, value) of one device, sorted.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Gap:
    start_ns: int
    """The last reading before the missing slots (or the window's start)."""
    end_ns: int
    """The first reading after them (or the window's end)."""
    missed_slots: int


@dataclass(frozen=True, slots=True)
class Completeness:
    since_ns: int
    until_ns: int
    slots: int
    filled: int
    gaps: tuple[Gap, ...] = field(default=())

    @property
    def share(self) -> float:
        """Filled slots / slots; 1.0 for an empty window."""
        return self.filled / self.slots if self.slots else 1.0


def completeness(
    readings: Sequence[tuple[int, float]],
    since_ns: int,
    until_ns: int,
    cadence_ns: int,
    out_of_range: Callable[[float], bool] | None = None,
    out_of_range_cadence_ns: int | None = None,
    *,
    cadence_after: Sequence[int] | None = None,
) -> Completeness:
    """Completeness of one device's record over [since, until).

    `readings`: (event time ns, value) sorted by time; readings outside the window are ignored,
    except that the last one before it sets the starting state (in or out of range).
    `cadence_after`: when given, one cadence per reading, the one in force after it (e.g. the
    transport cadence after a reading taken on a truck); it then decides every slot that follows
    a reading, out of range or not, and `cadence_ns` only slots before the first reading.
    """
    if cadence_ns <= 0:
        raise ValueError("cadence must be positive")
    if cadence_after is not None and len(cadence_after) != len(readings):
        raise ValueError("cadence_after needs one cadence per reading")
    if until_ns <= since_ns:
        return Completeness(since_ns, until_ns, 0, 0)
    times = [t for t, _ in readings]
    oor_cadence = out_of_range_cadence_ns or cadence_ns
    i = bisect.bisect_left(times, since_ns)
    state_oor = bool(out_of_range and i > 0 and out_of_range(readings[i - 1][1]))
    last_seen = times[i - 1] if i > 0 else None
    slots = filled = 0
    gaps: list[Gap] = []
    run_start: int | None = None
    run_missed = 0
    t = since_ns
    while t < until_ns:
        if cadence_after is not None and i > 0:
            length = cadence_after[i - 1]
        else:
            length = oor_cadence if state_oor else cadence_ns
        if length <= 0:
            raise ValueError("cadence must be positive")
        end = min(t + length, until_ns)
        slots += 1
        j = bisect.bisect_left(times, end, lo=i)
        if j > i:  # the slot holds readings i..j-1
            filled += 1
            if run_start is not None:
                gaps.append(Gap(run_start, times[i], run_missed))
                run_start, run_missed = None, 0
            last_seen = times[j - 1]
            if out_of_range is not None:
                state_oor = out_of_range(readings[j - 1][1])
            i = j
        else:
            if run_start is None:
                run_start = max(last_seen, since_ns) if last_seen is not None else since_ns
            run_missed += 1
        t = end
    if run_start is not None:
        gaps.append(Gap(run_start, until_ns, run_missed))
    return Completeness(since_ns, until_ns, slots, filled, tuple(gaps))
