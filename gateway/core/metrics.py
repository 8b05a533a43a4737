"""Gateway counters, the periodic `vigil_gateway` point and the journal-fill alarms.

One facility for every count vigil keeps: the gateway-wide totals are fields of `Counters`; a
component with counts of its own (a collector, a notifier channel) keeps them in a `Stats`
dataclass and registers it, and /metrics exports every registered group the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from gateway.core.reading import Reading
from gateway.core.schema import GATEWAY

log = logging.getLogger("vigil.metrics")

FILL_ALARMS = (0.80, 0.95)
"""Fill ratios at which an alarm is logged."""
FILL_LEVELS = (0.80, 0.95, 1.0)
"""Fill ratios whose crossing (up or down) writes a `journal_fill` reading at once, for the
gateway_health rules (1.0: messages wait for room and are not acknowledged)."""


class Stats:
    """Base of a component's counters: a dataclass of int fields."""

    def snapshot(self) -> dict[str, int]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class Counters:
    received: int = 0
    """Messages received from collectors."""
    readings_parsed: int = 0
    journaled: int = 0
    forwarded: int = 0
    dead_letters: int = 0
    sink_errors: int = 0
    quarantined: int = 0
    listener_errors: int = 0
    reconnects: int = 0
    notifications_dropped: int = 0
    journal_full: bool = False
    journal_bytes: int = 0
    journal_fill: float = 0.0
    """Share of the journal's size budget in use; at least 1.0 while messages wait for room."""
    journal_backlog: int = 0
    fill_alarm: float = 0.0
    """The highest fill threshold crossed (0.8 or 0.95), 0 when below both."""
    ingest_rate: float = 0.0
    clock_skew_s: float | None = None
    """Gateway clock minus its devices' clocks (None: too few devices to tell)."""
    clock_synced: bool | None = None
    """The system's time-sync status (None: the system cannot tell)."""
    backup_failed: bool | None = None
    """The last scheduled backup failed (None: none has run since the start)."""
    archive_bytes: int = 0
    components: dict[str, Stats] = field(default_factory=dict)
    """Registered counter groups, e.g. collector:line1 → ModbusStats."""
    _last_journaled: int = 0
    _last_ns: int = field(default_factory=time.monotonic_ns)

    def register(self, name: str, stats: Stats) -> None:
        self.components[name] = stats

    def update_rate(self) -> None:
        now = time.monotonic_ns()
        dt = (now - self._last_ns) / 1e9
        if dt > 0:
            self.ingest_rate = (self.journaled - self._last_journaled) / dt
        self._last_journaled, self._last_ns = self.journaled, now

    def check_fill(self, fill: float) -> None:
        """Log an alarm once each time the journal crosses 80 % or 95 % of its budget."""
        self.journal_fill = fill
        level = max((t for t in FILL_ALARMS if fill >= t), default=0.0)
        if level > self.fill_alarm:
            log.error(
                "journal at %.0f%% of its size budget (alarm at %.0f%%)", fill * 100, level * 100
            )
        elif level < self.fill_alarm:
            log.warning("journal back below %.0f%% of its size budget", self.fill_alarm * 100)
        self.fill_alarm = level

    def point(self, gateway: str, restarts: int) -> Reading:
        fields: dict[str, float | int | bool | str] = {
            "received": float(self.received),
            "ingest_rate": float(self.ingest_rate),
            "journaled": float(self.journaled),
            "forwarded": float(self.forwarded),
            "dead_letters": float(self.dead_letters),
            "journal_backlog": float(self.journal_backlog),
            "journal_bytes": float(self.journal_bytes),
            "sink_errors": float(self.sink_errors),
            "quarantined": float(self.quarantined),
            "restarts": float(restarts),
            "notifications_dropped": float(self.notifications_dropped),
            "journal_fill": float(self.journal_fill),
            "readings": float(self.readings_parsed),
            "archive_bytes": float(self.archive_bytes),
        }
        if self.clock_skew_s is not None:
            fields["clock_skew_s"] = float(self.clock_skew_s)
        if self.clock_synced is not None:
            fields["clock_synced"] = 1.0 if self.clock_synced else 0.0
        if self.backup_failed is not None:
            fields["backup_failed"] = 1.0 if self.backup_failed else 0.0
        return Reading(GATEWAY.name, {"gateway": gateway}, fields, time.time_ns())
