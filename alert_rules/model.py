"""The alert record and the events the engine emits (DESIGN §3: the API serves these fields).

Times are UTC nanoseconds. Fields ending in `_at` are event time (the device's clock) for what
the process did (started/raised/ended/cleared) and wall time for what people and the gateway did
(detected/acked/shelved/closed/escalated).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from dataclasses import field as dc_field
from enum import StrEnum
from typing import Any


class AlertState(StrEnum):
    """ISA-18.2 / IEC 62682 alarm states."""

    NORMAL = "normal"
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    RTN_UNACKNOWLEDGED = "rtn_unacknowledged"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class Priority(StrEnum):
    """Alarm priority; written as the `severity` tag of the `alert` measurement."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class EventKind(StrEnum):
    RAISED = "raised"
    REACTIVATED = "reactivated"
    CLEARED = "cleared"
    ACKED = "acked"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    CLOSED = "closed"
    ESCALATED = "escalated"
    REALARMED = "realarmed"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    OUT_OF_SERVICE = "out_of_service"
    IN_SERVICE = "in_service"


ACTIVATIONS = (EventKind.RAISED, EventKind.REACTIVATED)

AlertKey = tuple[str, str, int | None]
"""(rule, source, cycle id): at most one open alert per key."""


@dataclass(slots=True)
class Alert:
    """One alarm occurrence of one rule on one source; at most one is open per (rule, source,
    cycle_id)."""

    id: int
    rule: str
    source: str
    severity: Priority
    kind: str
    """Rule kind (threshold, duration, mkt, ...)."""
    state: AlertState
    active: bool
    """The alarm condition is true right now (ISA: 'in alarm')."""
    started_at: int
    """Event time the excursion began (first reading beyond the limit)."""
    raised_at: int
    """Event time the alarm condition was met (start + on-delay / timer duration)."""
    activated_at: int
    """Event time of the latest activation (== raised_at unless re-activated)."""
    detected_at: int
    """Wall time the engine saw the latest activation."""
    message: str
    value: float | None = None
    peak: float | None = None
    ended_at: int | None = None
    """Event time the excursion ended (first reading back to normal)."""
    cleared_at: int | None = None
    """Event time the alarm returned to normal (ended_at + off-delay)."""
    retrospective: bool = False
    latching: bool = False
    activations: int = 1
    tier: int = 0
    escalated_at: int | None = None
    acked_by: str | None = None
    acked_at: int | None = None
    shelved_by: str | None = None
    shelved_at: int | None = None
    shelved_until: int | None = None
    shelve_reason: str | None = None
    closed_by: str | None = None
    closed_at: int | None = None
    close_reason: str | None = None
    series: str = ""
    field: str = ""
    tags: dict[str, str] = dc_field(default_factory=dict)
    text: dict[str, Any] | None = None
    """`message` as a gateway.core.i18n.Text document, rendered in the reader's language;
    `message` is its English text (None for alerts stored before texts were kept)."""
    cycle_id: int | None = None
    """The production cycle this alarm judges (f0, hold, cycle verdict): each failed load has
    an alert of its own. None for alarms on a condition (thresholds, timers, offline...)."""

    @property
    def open(self) -> bool:
        return self.state is not AlertState.NORMAL

    @property
    def key(self) -> AlertKey:
        """Its identity while open: rule, source and, for a per-cycle alarm, the cycle."""
        return (self.rule, self.source, self.cycle_id)

    def copy(self) -> Alert:
        return replace(self, tags=dict(self.tags))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = str(self.severity)
        d["state"] = str(self.state)
        return d


@dataclass(slots=True, frozen=True)
class AlertEvent:
    """A change to an alert: what notifiers, the InfluxDB writer and the audit trail consume."""

    kind: EventKind
    alert: Alert
    """Snapshot of the alert after the change."""
    old_state: AlertState | None
    new_state: AlertState
    at_ns: int
    """When it happened: event time for raise/clear, wall time for actions and timers."""
    wall_ns: int
    by: str | None = None
    reason: str | None = None
    annunciate: bool = True
    """Whether people should be told (False for suppressed / out-of-service / shelved)."""
    excursion_start_ns: int | None = None
    """Raise, re-activation and clear: event time the excursion began (the first reading beyond
    the limit), so its record spans the excursion from its true start."""
    value: float | None = None
    """Raise and re-activation: the value that raised it; clear: the value that cleared it."""

    @property
    def tier(self) -> int:
        return self.alert.tier


@dataclass(slots=True, frozen=True)
class ActionResult:
    """Outcome of an operator action: old and new record for the 21 CFR 11 audit trail."""

    old: Alert
    new: Alert
    event: AlertEvent


class AlertActionError(ValueError):
    """The action is not allowed in the alert's current state (the message says why)."""


class AlertNotFound(KeyError):
    pass
