"""Shipment reports (PDF and CSV): what QA reviews and signs when a shipment arrives.

stats.py builds the content, csvfile.py and pdf.py render it.

Source of the readings: the shipment registry's `shipment_readings` table (every reading tagged
with the shipment, kept as its journal line), not the journal, which deletes rows after
`retention_hours`. Each reading holds its value until the next reading of the same device, but
never longer than the device's logging interval (learned as the median spacing of its readings)
nor the profile rules' `max_gap` (alert_rules/weighting.py); the mean and MKT are weighted by
that hold time, and time out of range per band is the hold time spent beyond each limit. So the
figures do not depend on when the shipment was stopped. With several loggers on
one asset, the summary is the worst logger's.

Bands and limits come from the shipment's product profile, as the rules library states them
(`RuleLibrary.limits`, alert_rules/limits.py): threshold and duration rules on the temperature
field, the MKT activation energy from its `mkt` rule (default 83.144 kJ/mol).

`build_report` is pure (it gets the readings and alerts); the API gathers alerts on the event loop
thread (the alert store is bound to it) and builds and renders in a worker thread.
"""

from gateway.records.reports.analysis import (
    DeviceAnalysis,
    Excursion,
    SeriesStats,
    analyse_device,
    band_label,
)
from gateway.records.reports.csvfile import BOM, content_digest, to_csv
from gateway.records.reports.pdf import to_pdf
from gateway.records.reports.stats import (
    AlertAction,
    ReportAlert,
    ShipmentReport,
    Verdict,
    actions_of,
    build_report,
    fmt_dur,
    fmt_ts,
    gather_alerts,
    profile_limits,
    report_for,
    with_signatures,
)

__all__ = [
    "BOM",
    "AlertAction",
    "DeviceAnalysis",
    "Excursion",
    "ReportAlert",
    "SeriesStats",
    "ShipmentReport",
    "Verdict",
    "actions_of",
    "analyse_device",
    "band_label",
    "build_report",
    "content_digest",
    "fmt_dur",
    "fmt_ts",
    "gather_alerts",
    "profile_limits",
    "report_for",
    "to_csv",
    "to_pdf",
    "with_signatures",
]
