"""The InfluxDB schema vigil writes (DESIGN §3), in one place.

Dashboards, docs and tests derive what they may query from here; writers check against it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    """Known fields. For `process` the register map names further fields (open_fields)."""
    open_fields: bool = False


COLDCHAIN = Measurement(
    "coldchain",
    tags=("site", "asset", "device", "shipment"),
    fields=("temp_c", "rh_pct", "battery_pct", "door_open", "power_ok"),
)
PROCESS = Measurement(
    "process",
    tags=("line", "equipment", "device", "batch", "phase"),
    fields=(
        "chamber_temp_c",
        "chamber_pressure_kpa",
        "dp_pa",
        "particles_05um_m3",
        "particles_5um_m3",
        "shelf_temp_c",
        "condenser_temp_c",
        "fill_weight_g",
        "f0_min",
    ),
    open_fields=True,
)
ALERT = Measurement(
    "alert",
    tags=("rule", "severity", "source"),
    fields=("state", "value", "message"),
)
CYCLE = Measurement(
    "cycle",
    tags=("line", "equipment", "device", "batch"),
    fields=("f0_min", "verdict", "duration_s", "hold_s", "alerts", "data_gaps"),
)
"""One point per finished production cycle, at its end (alert_rules/cycles.py): F0 computed by
the rules engine (the PLC's own is process.f0_min), verdict 1 pass / 0 fail, hold time."""
GATEWAY = Measurement(
    "vigil_gateway",
    tags=("gateway", "device"),
    fields=(
        "received",
        "ingest_rate",
        "journaled",
        "forwarded",
        "dead_letters",
        "journal_backlog",
        "journal_bytes",
        "sink_errors",
        "quarantined",
        "restarts",
        "notifications_dropped",
        "journal_fill",
        "notifier_failing",
        "notifier_failures",
    ),
)
"""`journal_fill`: share of journal.max_bytes in use (a ratio; at least 1.0 while readings wait
for room). Also written at once when it crosses 80 %, 95 % or 100 %, for the gateway_health
rules. A notification channel's own readings carry `device` = `notifier:<channel>` and
`notifier_failing` (1 while its attempts keep failing, 0 once one succeeds) with
`notifier_failures` (failed attempts in a row), written when that changes."""
ALARM_KPI = Measurement(
    "alarm_kpi",
    tags=("gateway",),
    fields=(
        "alarms_10min",
        "flood",
        "chattering",
        "stale",
        "active",
        "unacknowledged",
        "acknowledged",
        "rtn_unacknowledged",
        "shelved",
        "suppressed",
        "out_of_service",
    ),
)
"""ISA-18.2 alarm-system KPIs of the rules engine (alert_rules/kpi.py), every `kpi_interval`."""
KPI_MEASUREMENT = ALARM_KPI.name

RESERVED_MEASUREMENTS = frozenset({ALERT.name, CYCLE.name, GATEWAY.name, ALARM_KPI.name})
"""Written by the gateway about itself: no collector may write them (a device could otherwise
raise the gateway's own health alerts)."""

MEASUREMENTS: dict[str, Measurement] = {
    m.name: m for m in (COLDCHAIN, PROCESS, ALERT, CYCLE, GATEWAY, ALARM_KPI)
}
