"""Alert events as Readings of measurement `alert` (gateway/core/schema.py), so the gateway writes
them through the journal and the InfluxDB sink like any other reading.

Each event is a point at the time it happened, carrying the event and the state it left the alert
in. An excursion is also one point at its true start (the first reading beyond the limit), the
point Grafana draws as an annotation: written at the raise with `end_ms` 0, and given the true
end (`end_ms`, epoch milliseconds) and the peak when the alert clears. InfluxDB merges the fields
of points with the same series and timestamp, so the clear completes the start point in place.
"""

from __future__ import annotations

from alert_rules.model import ACTIVATIONS, AlertEvent, EventKind
from gateway.core.reading import FieldValue, Reading
from gateway.core.schema import ALERT

NS_PER_MS = 1_000_000


def _finite(v: float | None) -> float | None:
    return float(v) if v is not None and v == v and abs(v) != float("inf") else None


def alert_event_readings(event: AlertEvent, gateway: str) -> list[Reading]:
    """The `alert` points of one event: the event itself, and for a raise or a clear the point
    at the excursion's true start."""
    a = event.alert
    tags = {"rule": a.rule, "severity": str(a.severity), "source": a.source, "gateway": gateway}
    fields: dict[str, FieldValue] = {
        "event": str(event.kind),
        "state": str(event.new_state),
        "message": f"[{event.kind}] {a.message}",
    }
    value = _finite(event.value)
    if value is not None:
        fields["value"] = value
    start = event.excursion_start_ns
    at = event.at_ns
    if event.kind in ACTIVATIONS and start is not None:
        # the excursion point: its end is not known yet
        fields["end_ms"] = 0
        return [Reading(ALERT.name, tags, fields, start, event.wall_ns)]
    if event.kind is EventKind.CLEARED:
        ended = a.ended_at if a.ended_at is not None else at
        peak = _finite(a.peak)
        if peak is not None:
            fields["peak"] = peak
        out = [Reading(ALERT.name, tags, fields, ended, event.wall_ns)]
        if start is not None and start != ended:
            span: dict[str, FieldValue] = {"end_ms": ended // NS_PER_MS}
            if peak is not None:
                span["peak"] = peak
            out.append(Reading(ALERT.name, dict(tags), span, start, event.wall_ns))
        return out
    return [Reading(ALERT.name, tags, fields, at, event.wall_ns)]
