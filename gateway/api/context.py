"""What the API serves from: the gateway's journal, records and rules, handed in by the gateway.

The API owns no store: the gateway opens the records (gateway/records) and the rules engine, and
the API reads them and writes only alert actions, shipments and users through them.
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from alert_rules import AlertEvent, AlertStore, RuleLibrary, RulesConfig, RulesEngine
from gateway.api.tokens import DEFAULT_TOKEN_TTL_S, LoginLimiter, TokenSigner, load_or_create_key
from gateway.core.eventtime import in_store_range
from gateway.core.i18n import DEFAULT_LANGUAGE, DEFAULT_TIMEZONE
from gateway.core.lineprotocol import LineProtocolError, decode
from gateway.core.metrics import Counters
from gateway.core.ports import SourceStatus
from gateway.core.reading import FieldValue, Reading
from gateway.core.schema import RESERVED_MEASUREMENTS
from gateway.pipeline.journal import Journal
from gateway.records import Records
from gateway.records.audit import AuditTrail
from gateway.records.lots import LotRegistry
from gateway.records.shipments import ShipmentRegistry
from gateway.records.users import UserStore

INTERNAL_MEASUREMENTS = RESERVED_MEASUREMENTS
"""Measurements the gateway writes about itself: not devices."""

TOKEN_KEY_FILE = "api-token.key"


class LiveReadings:
    """The newest reading per series (measurement, device): a JournalWriter listener that feeds
    GET /api/v1/devices and /readings/latest without reading the journal per request."""

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._latest: dict[tuple[str, str], Reading] = {}
        self._lock = threading.Lock()

    def observe(self, readings: Sequence[Reading]) -> None:
        latest = self._latest
        with self._lock:
            for r in readings:
                if r.measurement in INTERNAL_MEASUREMENTS or not in_store_range(r.ts_ns):
                    continue  # an event time outside 1970..2262 (old journal rows) is not shown
                key = (r.measurement, r.tags.get("device", ""))
                old = latest.get(key)
                if old is None:
                    if len(latest) >= self.max_series:
                        continue
                elif old.ts_ns > r.ts_ns:
                    continue  # an older buffered reading: the newest stays
                latest[key] = r

    def seed(self, journal: Journal, rows: int = 20_000) -> int:
        """Fill from the journal's newest rows at startup (blocking: use a worker thread)."""
        start = max(0, journal.last_id() - rows)
        found = []
        for jr in journal.read_after(start, rows):
            try:
                found.append(decode(jr.line, jr.received_ns))
            except LineProtocolError:
                continue
        self.observe(found)
        return len(found)

    def snapshot(self) -> list[Reading]:
        with self._lock:
            return list(self._latest.values())


class _Columns:
    """One series' readings column by column: event times, and each numeric field's values as
    8-byte floats (NaN where a reading lacks the field; a stored value is never NaN). The first
    `start` entries are dropped ones, cut off in bulk once they are as many as those kept."""

    __slots__ = ("start", "ts", "values")

    def __init__(self) -> None:
        self.start = 0
        self.ts = array("q")
        self.values: dict[str, array[float]] = {}

    def __len__(self) -> int:
        return len(self.ts) - self.start

    def add(self, ts_ns: int, fields: dict[str, FieldValue]) -> None:
        """Append, or insert in time order when older than the newest (a late reading)."""
        ts = self.ts
        n = len(ts)
        if n > self.start and ts[-1] > ts_ns:
            self._insert(bisect.bisect_right(ts, ts_ns, self.start), ts_ns, fields)
            return
        ts.append(ts_ns)
        values = self.values
        put = 0
        for k, v in fields.items():
            t = type(v)
            if t is float or t is int:  # not text nor true/false: the charts draw numbers
                col = values.get(k)
                if col is None:
                    col = values[k] = array("d", _ABSENT) * n
                col.append(v)  # type: ignore[arg-type]
                put += 1
        if put != len(values):
            for col in values.values():
                if len(col) == n:
                    col.append(math.nan)

    def _insert(self, at: int, ts_ns: int, fields: dict[str, FieldValue]) -> None:
        n = len(self.ts)
        self.ts.insert(at, ts_ns)
        values = self.values
        for k, v in fields.items():
            t = type(v)
            if t is float or t is int:
                col = values.get(k)
                if col is None:
                    col = values[k] = array("d", _ABSENT) * n
                col.insert(at, v)  # type: ignore[arg-type]
        for col in values.values():
            if len(col) == n:
                col.insert(at, math.nan)

    def drop(self, count: int) -> int:
        """Drop the oldest `count`; returns the event time of the newest dropped."""
        self.start += count
        newest = self.ts[self.start - 1]
        if self.start >= 64 and 2 * self.start >= len(self.ts):  # at most as many dropped as kept
            cut = self.start
            del self.ts[:cut]
            for col in self.values.values():
                del col[:cut]
            self.start = 0
        return newest

    def window(self, since_ns: int, until_ns: int) -> list[tuple[int, dict[str, FieldValue]]]:
        ts = self.ts
        lo = bisect.bisect_left(ts, since_ns, self.start)
        hi = bisect.bisect_right(ts, until_ns, lo)
        cols = list(self.values.items())
        out: list[tuple[int, dict[str, FieldValue]]] = []
        for i in range(lo, hi):
            fields: dict[str, FieldValue] = {k: v for k, col in cols if (v := col[i]) == v}
            out.append((ts[i], fields))
        return out


_ABSENT = array("d", [math.nan])


class ReadingHistory:
    """Recent readings per series (measurement, device) for the console's trend charts: a
    JournalWriter listener, seeded from the journal. It keeps the numeric fields only (what the
    charts draw), column by column, 8 bytes a value. Memory is bounded: at most `per_series`
    readings a series, `max_series` series and `max_points` readings in all (the longest series
    gives up its oldest first): 300 000 readings of two fields take about 7 MB. Older readings
    stay in the journal, InfluxDB and, for shipments, the shipment registry."""

    def __init__(
        self, per_series: int = 20_000, max_series: int = 2_000, max_points: int = 300_000
    ) -> None:
        self.per_series = per_series
        self.max_series = max_series
        self.max_points = max_points
        self._series: dict[tuple[str, str], _Columns] = {}
        self._total = 0
        self._dropped: dict[tuple[str, str], int] = {}
        """Per series, the newest event time given up: older windows are incomplete."""
        self._lock = threading.Lock()

    def observe(self, readings: Sequence[Reading]) -> None:
        with self._lock:
            series = self._series
            for r in readings:
                if r.measurement in INTERNAL_MEASUREMENTS or not in_store_range(r.ts_ns):
                    continue
                key = (r.measurement, r.tags.get("device", ""))
                cols = series.get(key)
                if cols is None:
                    if len(series) >= self.max_series:
                        continue
                    cols = series[key] = _Columns()
                if len(cols) >= self.per_series:
                    self._drop(key, cols.drop(1))
                    self._total -= 1
                cols.add(r.ts_ns, r.fields)
                self._total += 1
            while self._total > self.max_points:
                key, longest = max(series.items(), key=lambda kv: len(kv[1]))
                count = max(1, len(longest) // 10)
                self._drop(key, longest.drop(count))
                self._total -= count

    def _drop(self, key: tuple[str, str], ts_ns: int) -> None:
        self._dropped[key] = max(ts_ns, self._dropped.get(key, ts_ns))

    def seed(self, journal: Journal, rows: int = 100_000) -> int:
        """Fill from the journal's newest rows at startup (blocking: use a worker thread)."""
        start = max(0, journal.last_id() - rows)
        found = []
        for jr in journal.read_after(start, rows):
            try:
                found.append(decode(jr.line, jr.received_ns))
            except LineProtocolError:
                continue
        found.sort(key=lambda r: r.ts_ns)
        self.observe(found)
        return len(found)

    def window(
        self, device: str, since_ns: int, until_ns: int
    ) -> dict[str, tuple[list[tuple[int, dict[str, FieldValue]]], bool]]:
        """measurement → (readings of the device in [since, until], numeric fields as floats;
        whether the buffer still reaches back to `since`)."""
        out = {}
        with self._lock:
            for (meas, dev), cols in self._series.items():
                if dev != device:
                    continue
                dropped = self._dropped.get((meas, dev))
                out[meas] = (cols.window(since_ns, until_ns), dropped is None or dropped < since_ns)
        return out


def _no_sources() -> list[SourceStatus]:
    return []


@dataclass
class ReloadOutcome:
    """What a config reload did, or why it was refused (the running config is then kept)."""

    ok: bool
    changed: list[str] = field(default_factory=list)
    """Sections that changed: rules, notifiers, collectors, mqtt."""
    rules: list[str] = field(default_factory=list)
    """Rule ids changed, added or removed."""
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.ok:
            return "refused: " + "; ".join(self.problems)
        if not self.changed:
            return "no change"
        return f"applied: {', '.join(self.changed)}" + (
            f" (rules {', '.join(self.rules)})" if self.rules else ""
        )


ReloadFn = Callable[[str, str, str | None], Awaitable[ReloadOutcome]]
"""(actor, reason, client) → outcome: the gateway's reload, for POST /api/v1/config/reload."""


@dataclass
class ApiContext:
    """Everything the routes need. The alert store and engine belong to the event loop's thread
    (the store's SQLite connection is bound to it): routes call them from `async def` only."""

    journal: Journal
    counters: Counters
    records: Records
    tokens: TokenSigner
    engine: RulesEngine | None = None
    alert_store: AlertStore | None = None
    sources: Callable[[], list[SourceStatus]] = _no_sources
    """The collectors' devices and connections, online or not (gateway.core.ports.Collector)."""
    extra_metrics: Callable[[], Iterable[Metric]] | None = None
    """More Prometheus metric families for /metrics (supervisor restarts, sink state, ...)."""
    live: LiveReadings = field(default_factory=LiveReadings)
    history: ReadingHistory = field(default_factory=ReadingHistory)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    library: RuleLibrary | None = None
    """Product profiles when there is no engine (default: the built-in packs)."""
    gateway_name: str = "vigil"
    language: str = DEFAULT_LANGUAGE
    """gateway.language: the default when neither the request nor the user chose one."""
    timezone: str = DEFAULT_TIMEZONE
    """gateway.timezone: the zone times are displayed in."""
    stale_after_s: float = 300.0
    """A device with nothing received for this long shows as stale on /devices."""
    api_counts: dict[str, int] = field(default_factory=dict)
    """Login outcomes etc., exported on /metrics."""
    on_alert_events: Callable[[Sequence[AlertEvent]], None] | None = None
    """Where operator actions' events go (Alerting.publish: the `alert` measurement, live
    views); the engine hands them back only in the ActionResult, not again from
    process()/tick(). Notifications of actions are stored by the engine itself (the outbox)."""
    notification_history: Callable[[int], list[dict[str, Any]]] | None = None
    """Delivery results of an alert's notifications (gateway.notifiers, Notifier.history)."""
    reload_config: ReloadFn | None = None
    """Re-read the config file (None: the API runs without a gateway, e.g. in tests)."""

    def __post_init__(self) -> None:
        if self.alert_store is None and self.engine is not None:
            self.alert_store = self.engine.store

    @property
    def audit(self) -> AuditTrail:
        return self.records.audit

    @property
    def users(self) -> UserStore:
        return self.records.users

    @property
    def shipments(self) -> ShipmentRegistry:
        return self.records.shipments

    @property
    def lots(self) -> LotRegistry:
        return self.records.lots

    def rule_library(self) -> RuleLibrary | None:
        if self.engine is not None:
            return self.engine.library
        if self.library is None:
            try:
                self.library = RulesConfig().library()
            except Exception:
                return None
        return self.library

    def profile_names(self) -> list[str]:
        lib = self.rule_library()
        return sorted(lib.profiles) if lib is not None else []

    def count(self, key: str, n: int = 1) -> None:
        self.api_counts[key] = self.api_counts.get(key, 0) + n


def build_context(
    data_dir: Path,
    journal: Journal,
    counters: Counters,
    records: Records,
    *,
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
    **kwargs: Any,
) -> ApiContext:
    """The API's context; its token signing key lives in the data directory."""
    key = load_or_create_key(Path(data_dir) / TOKEN_KEY_FILE)
    return ApiContext(
        journal=journal,
        counters=counters,
        records=records,
        tokens=TokenSigner(key, ttl_s=token_ttl_s),
        **kwargs,
    )
