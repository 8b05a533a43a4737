"""The event-time window: which timestamps a reading may be filed under. Both collectors use it.

A reading's event time is accepted from `min_event_time` (default 2001-01-01T00:00:00Z: a device
whose clock was reset reports 1970 or 2000) up to the gateway's receive time plus
`max_future_skew_s`, and always inside what the journal and InfluxDB store: nanoseconds since
1970-01-01 in a signed 64-bit integer, so 1970-01-01 .. 2262-04-11. Anything else is dead-lettered
with the reason this module words.

Pure: no clock of its own, and no function here raises on any integer (years 1..9999 with any
offset, 1e303 ms, 10**400 ns), so one timestamp can never stop a collector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
STORE_MIN_NS = 0
"""1970-01-01T00:00:00Z: the earliest time vigil stores (VictoriaMetrics stores none earlier)."""
STORE_MAX_NS = INT64_MAX
"""2262-04-11T23:47:16.854775807Z: the latest nanosecond timestamp in a signed 64-bit integer."""
DEFAULT_MIN_EVENT_TIME = datetime(2001, 1, 1, tzinfo=UTC)
"""Default lower bound: devices with a reset real-time clock report 1970 or 2000."""
_DT_MIN_NS = -62_135_596_800 * 1_000_000_000
"""0001-01-01T00:00:00Z, the earliest datetime Python represents."""
_DT_MAX_NS = 253_402_300_799_999_999_000
"""9999-12-31T23:59:59.999999Z, the latest."""


def dt_to_ns(dt: datetime) -> int:
    """Nanoseconds since 1970 of an aware datetime, in exact integer arithmetic.

    Never overflows: any datetime Python can hold (year 1 at +23:59 .. year 9999 at -23:59) gives
    an integer, possibly far outside the store's range; the window check refuses those.
    """
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


DEFAULT_MIN_EVENT_NS = dt_to_ns(DEFAULT_MIN_EVENT_TIME)


def ns_to_datetime(ns: int) -> datetime:
    """UTC datetime of nanoseconds (microsecond precision); clamped to what datetime holds."""
    ns = max(_DT_MIN_NS, min(_DT_MAX_NS, ns))
    return EPOCH + timedelta(microseconds=ns // 1000)


def fmt_ns(ns: int) -> str:
    """ISO 8601 UTC with milliseconds, or `<n> ns` when no datetime can show it. Never raises."""
    if not _DT_MIN_NS <= ns <= _DT_MAX_NS:
        return f"{approx_int(ns)} ns"
    iso = ns_to_datetime(ns).isoformat(timespec="milliseconds")
    return iso.replace("+00:00", "Z")


def approx_int(n: int) -> str:
    """An integer as text: exact up to 30 digits, else its order of magnitude (`~1e400`).
    Never raises (str() refuses integers of more than 4300 digits)."""
    if abs(n) < 10**30:
        return str(n)
    return f"{'-' if n < 0 else ''}~1e{int(math.log10(abs(n)))}"


def min_event_time_problem(dt: datetime) -> str:
    """Why a configured `min_event_time` is unusable, or "" (config validators use this)."""
    if dt.tzinfo is None:
        return "min_event_time needs a time zone (e.g. 2001-01-01T00:00:00Z)"
    ns = dt_to_ns(dt)
    if ns < STORE_MIN_NS:
        return "min_event_time must not be before 1970-01-01T00:00:00Z (nothing earlier is stored)"
    if ns > STORE_MAX_NS:
        return f"min_event_time must be before {fmt_ns(STORE_MAX_NS)}"
    return ""


def _check_min_event_time(dt: datetime) -> datetime:
    why = min_event_time_problem(dt)
    if why:
        raise ValueError(why)
    return dt


MinEventTime = Annotated[datetime, AfterValidator(_check_min_event_time)]
"""A config key holding a `min_event_time` (ISO 8601 with a zone, 1970 or later)."""


@dataclass(frozen=True, slots=True)
class EventWindow:
    """Accepted event times: `min_ns` .. receive time + `max_future_s`, inside the store's range."""

    min_ns: int = DEFAULT_MIN_EVENT_NS
    max_future_s: float = 300.0

    @classmethod
    def of(cls, min_event_time: datetime, max_future_skew_s: float) -> EventWindow:
        return cls(max(STORE_MIN_NS, dt_to_ns(min_event_time)), max_future_skew_s)

    def problem(self, ts_ns: int, received_ns: int) -> str:
        """Why `ts_ns` cannot be the event time of a reading received at `received_ns`, as a
        predicate ("is before ..."), or "" when it can."""
        lowest = max(self.min_ns, STORE_MIN_NS)
        if ts_ns < lowest:
            return f"is before {fmt_ns(lowest)} (min_event_time)"
        if ts_ns > STORE_MAX_NS:
            return (
                f"is ahead of the gateway clock and after {fmt_ns(STORE_MAX_NS)}, "
                "the end of the stored time range"
            )
        ahead_ns = ts_ns - received_ns
        if ahead_ns > self.max_future_s * 1e9:
            return (
                f"is {ahead_ns / 1e9:.1f} s ahead of the gateway clock "
                f"(max_future_skew_s={self.max_future_s:g})"
            )
        return ""

    def contains(self, ts_ns: int, received_ns: int) -> bool:
        return not self.problem(ts_ns, received_ns)


def in_store_range(ts_ns: int) -> bool:
    """Whether a timestamp is one the journal and InfluxDB can hold (1970 .. 2262)."""
    return STORE_MIN_NS <= ts_ns <= STORE_MAX_NS
