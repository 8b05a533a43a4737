"""What the API serves from: the gateway's stores, built once by the gateway and shared."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.audit import AuditTrail
from gateway.auth import (
    DEFAULT_TOKEN_TTL_S,
    LoginLimiter,
    TokenSigner,
    UserStore,
    load_or_create_key,
)
from gateway.eventtime import in_store_range
from gateway.journal import Journal
from gateway.lineprotocol import LineProtocolError, decode
from gateway.metrics import Counters
from gateway.reading import Reading
from gateway.shipments import ShipmentRegistry

if TYPE_CHECKING:
    from argon2 import PasswordHasher
    from prometheus_client.metrics_core import Metric

    from alert_rules import AlertEvent, AlertStore, RuleLibrary, RulesEngine
    from gateway.config import VigilConfig

INTERNAL_MEASUREMENTS = frozenset({"vigil_gateway", "alert", "alarm_kpi"})
"""Measurements the gateway writes about itself: not devices."""

AUDIT_FILE = "audit.sqlite"
USERS_FILE = "users.sqlite"
SHIPMENTS_FILE = "shipments.sqlite"
ALERTS_FILE = "alerts.sqlite"
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


@dataclass
class ApiContext:
    """Everything the routes need. The alert store and engine belong to the event loop's thread
    (the store's SQLite connection is bound to it): routes call them from `async def` only."""

    journal: Journal
    counters: Counters
    engine: RulesEngine | None
    alert_store: AlertStore | None
    audit: AuditTrail
    users: UserStore
    shipments: ShipmentRegistry
    tokens: TokenSigner
    extra_metrics: Callable[[], Iterable[Metric]] | None = None
    """More Prometheus metric families for /metrics (supervisor restarts, sink state, ...)."""
    live: LiveReadings = field(default_factory=LiveReadings)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    library: RuleLibrary | None = None
    """Product profiles when there is no engine (default: the built-in packs)."""
    gateway_name: str = "vigil"
    stale_after_s: float = 300.0
    """A device with nothing received for this long shows as stale on /devices."""
    api_counts: dict[str, int] = field(default_factory=dict)
    """Login outcomes etc., exported on /metrics."""
    on_alert_events: Callable[[Sequence[AlertEvent]], None] | None = None
    """Where operator actions' events go (Alerting.publish: notifiers, the `alert` measurement);
    the engine hands them back only in the ActionResult, not again from process()/tick()."""

    def __post_init__(self) -> None:
        if self.alert_store is None and self.engine is not None:
            self.alert_store = self.engine.store

    def rule_library(self) -> RuleLibrary | None:
        if self.engine is not None:
            return self.engine.library
        if self.library is None:
            try:
                from alert_rules import RulesConfig

                self.library = RulesConfig().library()
            except Exception:
                return None
        return self.library

    def profile_names(self) -> list[str]:
        lib = self.rule_library()
        return sorted(lib.profiles) if lib is not None else []

    def count(self, key: str, n: int = 1) -> None:
        self.api_counts[key] = self.api_counts.get(key, 0) + n

    def close(self) -> None:
        """Close what build_context opened (not the journal, engine or alert store)."""
        self.audit.close()
        self.users.close()
        self.shipments.close()


def build_context(
    config: VigilConfig,
    journal: Journal,
    counters: Counters,
    engine: RulesEngine | None = None,
    alert_store: AlertStore | None = None,
    *,
    extra_metrics: Callable[[], Iterable[Metric]] | None = None,
    hasher: PasswordHasher | None = None,
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
    **kwargs: Any,
) -> ApiContext:
    """Open the API's stores in the data directory (audit, users, shipments, token key)."""
    data = Path(config.gateway.data_dir)
    stores = open_stores(data, hasher=hasher, token_ttl_s=token_ttl_s)
    return ApiContext(
        journal=journal,
        counters=counters,
        engine=engine,
        alert_store=alert_store,
        extra_metrics=extra_metrics,
        gateway_name=config.gateway.name,
        **stores,
        **kwargs,
    )


def open_stores(
    data_dir: Path,
    *,
    hasher: PasswordHasher | None = None,
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
) -> dict[str, Any]:
    """audit, users, shipments and tokens of a data directory (the CLI uses these too)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "audit": AuditTrail(data_dir / AUDIT_FILE),
        "users": UserStore(data_dir / USERS_FILE, hasher=hasher),
        "shipments": ShipmentRegistry(data_dir / SHIPMENTS_FILE),
        "tokens": TokenSigner(load_or_create_key(data_dir / TOKEN_KEY_FILE), ttl_s=token_ttl_s),
    }
