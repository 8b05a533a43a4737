"""Wall clock, injectable so tests drive shelving, escalation and staleness without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class SystemClock:
    """UTC wall clock in nanoseconds (same base as Reading.received_ns)."""

    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that only moves when told to; for tests and replays."""

    def __init__(self, now_ns: int = 0) -> None:
        self._now = now_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, now_ns: int) -> None:
        self._now = now_ns

    def advance(self, seconds: float) -> int:
        self._now += round(seconds * 1_000_000_000)
        return self._now
