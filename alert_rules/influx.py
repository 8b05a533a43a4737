"""Alert events as Readings of measurement `alert` (DESIGN §3: tags rule, severity, source;
fields state, value, message), so the gateway writes them through the journal and the InfluxDB
sink like any other reading (Grafana shows them as annotations)."""

from __future__ import annotations

from alert_rules.model import AlertEvent
from gateway.core.reading import FieldValue, Reading
from gateway.core.schema import ALERT


def alert_event_to_reading(event: AlertEvent) -> Reading:
    """Timestamped with the event's own time: the true start/end for raise and clear."""
    a = event.alert
    fields: dict[str, FieldValue] = {
        "state": str(event.new_state),
        "message": f"[{event.kind}] {a.message}",
    }
    if a.value is not None and a.value == a.value:
        fields["value"] = float(a.value)
    tags = {"rule": a.rule, "severity": str(a.severity), "source": a.source}
    return Reading(ALERT.name, tags, fields, event.at_ns, event.wall_ns)
