"""The InfluxDB schema vigil writes (DESIGN §3), in one place.

Dashboards, docs and tests derive what they may query from here; writers check against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.i18n import N_


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    """Known fields. For `process` the register map names further fields (open_fields)."""
    open_fields: bool = False


COLDCHAIN = Measurement(
    "coldchain",
    tags=("site", "asset", "device", "shipment", "lot", "profile"),
    fields=(
        "temp_c",
        "rh_pct",
        "battery_pct",
        "door_open",
        "power_ok",
        "lat",
        "lon",
        "speed_kmh",
    ),
)
"""`shipment`, `lot`, `profile` are added by the gateway to readings inside a leg of a lot
(docs/traceability.md): the shipment (a transport leg) and the lots it carries, and the product
profiles whose rules are bound for the leg's duration. `lat`, `lon` (WGS-84 degrees) and
`speed_kmh` come from loggers with a GPS receiver."""
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
        "product_temp_c",
        "chamber_pressure_mbar",
    ),
    open_fields=True,
)
ALERT = Measurement(
    "alert",
    tags=("rule", "severity", "source", "gateway"),
    fields=("event", "state", "value", "peak", "message", "end_ms"),
)
"""One point per alert event, at its time (alert_rules/influx.py): `event` (raised, cleared,
acked...), the `state` it left the alert in, `value` (raise and clear: the value that raised or
cleared it), `message`. An excursion is also a point at its true start carrying `end_ms`: 0 while
the alert is active, then the true end in epoch milliseconds (and `peak`), which Grafana draws as
a region. `gateway`: the gateway that raised it."""
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
        "readings",
        "clock_skew_s",
        "clock_synced",
        "backup_failed",
        "archive_bytes",
        "notifier_failing",
        "notifier_failures",
    ),
)
"""Written every `gateway.metrics_interval_s`: the heartbeat the fleet dashboard judges a gateway
online by. `readings`: device readings parsed since the gateway started.
`journal_fill`: share of journal.max_bytes in use (a ratio; at least 1.0 while readings wait
for room). Also written at once when it crosses 80 %, 95 % or 100 %, for the gateway_health
rules. `clock_skew_s`: the gateway clock minus its devices' (median over devices, seconds);
`clock_synced`: 1 when the system says its clock is synchronised, 0 when not (absent where the
system cannot tell); `backup_failed`: 1 after a failed scheduled backup, 0 after a good one;
`archive_bytes`: the archive segments on disk. A notification channel's own
readings carry `device` = `notifier:<channel>` and `notifier_failing` (1 while its attempts keep
failing, 0 once one succeeds) with `notifier_failures` (failed attempts in a row), written when
that changes."""
AUDIT_HEAD = Measurement(
    "audit_head",
    tags=("gateway",),
    fields=("audit_seq", "audit_hash", "journal_batch", "journal_hash"),
)
"""The newest audit row and journal chain link, written at least hourly: an anchor outside the
gateway, against which `vigil audit verify --anchor influx` detects deleted newest rows."""
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
        "open_critical",
        "open_high",
        "open_medium",
        "open_low",
    ),
)
"""ISA-18.2 alarm-system KPIs of the rules engine (alert_rules/kpi.py), every `kpi_interval`;
`open_<severity>`: alerts not yet back to normal, by severity."""
KPI_MEASUREMENT = ALARM_KPI.name
COMPLETENESS = Measurement(
    "completeness",
    tags=("gateway", "source", "site", "asset", "line", "equipment", "device"),
    fields=(
        "share",
        "slots",
        "filled",
        "missed",
        "readings",
        "gaps",
        "longest_gap_s",
        "cadence_s",
    ),
)
"""Record completeness (China GSP cadence) per device and window (gateway/pipeline/
completeness.py), at the window's start: `slots` recording slots, `filled` of them holding a
reading, `share` = filled / slots, `missed` = slots - filled, `gaps` runs of empty slots, the
longest from the last reading before it to the first after it (`longest_gap_s`), `cadence_s` the
cadence in force at the window's start. Rewritten when late readings fill the window."""

LOT_BUDGET = Measurement(
    "lot_budget",
    tags=("lot", "profile", "budget", "device"),
    fields=(
        "consumed_s",
        "allowed_s",
        "remaining_s",
        "share",
        "count",
        "allowed_count",
        "mkt_c",
        "limit_c",
        "review",
    ),
)
"""A lot's stability budget as consumed over all its legs (gateway/records/budgets.py), one series
per lot and budget item (`budget`: a band's name, `freeze_thaw`, `mkt`, or `decision`); `device`
is `<lot>/<budget>`, the series the rules engine keeps. `share` is consumed / allowed (1.0 is
exhausted), written once for each configured share reached, at the event time it was reached;
`mkt_c` the chain's MKT when it changes; `review` 1 when evidence arrived after the lot's release
decision."""

RESERVED_MEASUREMENTS = frozenset(
    {
        ALERT.name,
        CYCLE.name,
        GATEWAY.name,
        ALARM_KPI.name,
        COMPLETENESS.name,
        AUDIT_HEAD.name,
        LOT_BUDGET.name,
    }
)
"""Written by the gateway about itself: no collector may write them (a device could otherwise
raise the gateway's own health alerts)."""

MEASUREMENTS: dict[str, Measurement] = {
    m.name: m
    for m in (
        COLDCHAIN,
        PROCESS,
        ALERT,
        CYCLE,
        GATEWAY,
        ALARM_KPI,
        COMPLETENESS,
        AUDIT_HEAD,
        LOT_BUDGET,
    )
}


# -- how values are shown ---------------------------------------------------------------------
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_c", "°C"),
    ("_rh_pct", "%RH"),
    ("_pct", "%"),
    ("_kpa", "kPa"),
    ("_mbar", "mbar"),
    ("_ubar", "µbar"),
    ("_pa", "Pa"),
    ("_m3", "/m³"),
    ("_g", "g"),
    ("_min", "min"),
    ("_s", "s"),
    ("_vpm", "/min"),
)
"""The unit a field name's suffix states (`chamber_temp_c` is in °C); a register map's `unit`
wins."""
FIELD_UNITS = {"rh_pct": "%RH"}
FIELD_LABELS = {
    "temp_c": N_("Temperature"),
    "rh_pct": N_("Relative humidity"),
    "battery_pct": N_("Battery"),
    "door_open": N_("Door open"),
    "power_ok": N_("Mains power"),
    "chamber_temp_c": N_("Chamber temperature"),
    "chamber_pressure_kpa": N_("Chamber pressure"),
    "dp_pa": N_("Differential pressure"),
    "particles_05um_m3": N_("Particles ≥0.5 µm"),
    "particles_5um_m3": N_("Particles ≥5 µm"),
    "shelf_temp_c": N_("Shelf temperature"),
    "condenser_temp_c": N_("Condenser temperature"),
    "fill_weight_g": N_("Fill weight"),
    "f0_min": N_("F0 (PLC)"),
}
"""Labels of the logger protocol's fields and the known process fields (msgids)."""


def unit_of(field: str) -> str:
    """The unit of a field by its name: known fields, then the suffix; '' when none says."""
    if field in FIELD_UNITS:
        return FIELD_UNITS[field]
    return next((unit for suffix, unit in UNIT_SUFFIXES if field.endswith(suffix)), "")
