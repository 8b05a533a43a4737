"""ISA-18.2 / IEC 62682 alarm-system KPIs, computed from the alert log.

* alarms_10min — annunciated activations in the last 10 minutes (operator load, wall clock);
* flood — more than 10 of them (ISA-18.2 flood: > 10 alarms in 10 min per operator);
* chattering — alarm points with ≥ 3 activations within 1 minute (event time) among the
  activations of the last 10 minutes;
* stale — alerts still active more than 24 h after they were raised (wall clock);
* plus counts of open alerts per state, and per severity (`open_critical` ... `open_low`: alerts
  not yet back to normal, whatever their state; the fleet dashboard shows them per gateway).
Written as measurement `alarm_kpi` (tag `gateway`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from alert_rules.model import ACTIVATIONS, Alert, AlertState, Priority
from alert_rules.store import AlertStore
from gateway.core.reading import Reading
from gateway.core.schema import KPI_MEASUREMENT

MIN_NS = 60 * 1_000_000_000
FLOOD_WINDOW_NS = 10 * MIN_NS
FLOOD_LIMIT = 10
CHATTER_WINDOW_NS = MIN_NS
CHATTER_COUNT = 3
STALE_NS = 24 * 60 * MIN_NS


@dataclass(slots=True, frozen=True)
class AlarmKpis:
    at_ns: int
    alarms_10min: int
    flood: bool
    chattering: int
    stale: int
    active: int
    unacknowledged: int
    acknowledged: int
    rtn_unacknowledged: int
    shelved: int
    suppressed: int
    out_of_service: int
    open_critical: int = 0
    open_high: int = 0
    open_medium: int = 0
    open_low: int = 0

    def to_reading(self, gateway: str = "vigil") -> Reading:
        fields = asdict(self)
        at = fields.pop("at_ns")
        return Reading(KPI_MEASUREMENT, {"gateway": gateway}, fields, at, at)


def compute_kpis(store: AlertStore, open_alerts: list[Alert], now_ns: int) -> AlarmKpis:
    rows = store.log_since(now_ns - FLOOD_WINDOW_NS, [str(k) for k in ACTIVATIONS])
    alarms = sum(1 for r in rows if r["annunciated"])
    chattering = 0
    point: tuple[str, str] | None = None
    times: list[int] = []
    flagged = False
    for r in rows:  # sorted by rule, source, at_ns
        p = (r["rule"], r["source"])
        if p != point:
            point, times, flagged = p, [], False
        times.append(r["at_ns"])
        if (
            not flagged
            and len(times) >= CHATTER_COUNT
            and times[-1] - times[-CHATTER_COUNT] <= CHATTER_WINDOW_NS
        ):
            chattering += 1
            flagged = True
    counts = {s: 0 for s in AlertState}
    severities = {p: 0 for p in Priority}
    stale = active = 0
    for a in open_alerts:
        counts[a.state] += 1
        severities[a.severity] += 1
        if a.active:
            active += 1
            if now_ns - a.detected_at > STALE_NS:
                stale += 1
    return AlarmKpis(
        at_ns=now_ns,
        alarms_10min=alarms,
        flood=alarms > FLOOD_LIMIT,
        chattering=chattering,
        stale=stale,
        active=active,
        unacknowledged=counts[AlertState.UNACKNOWLEDGED],
        acknowledged=counts[AlertState.ACKNOWLEDGED],
        rtn_unacknowledged=counts[AlertState.RTN_UNACKNOWLEDGED],
        shelved=counts[AlertState.SHELVED],
        suppressed=counts[AlertState.SUPPRESSED],
        out_of_service=counts[AlertState.OUT_OF_SERVICE],
        open_critical=severities[Priority.CRITICAL],
        open_high=severities[Priority.HIGH],
        open_medium=severities[Priority.MEDIUM],
        open_low=severities[Priority.LOW],
    )
