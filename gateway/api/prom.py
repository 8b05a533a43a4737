"""Prometheus /metrics: gateway counters, journal, rules, alerts by state, read at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from alert_rules import AlertState
from gateway.api.context import ApiContext

log = logging.getLogger("vigil.api")

ALERT_STATES = tuple(str(s) for s in AlertState if s is not AlertState.NORMAL)
"""The open alerts' states, as /metrics counts them."""


class VigilCollector:
    """A custom collector: nothing is double-counted, the gateway's own counters are the truth.

    Runs on the event loop thread (the /metrics route is async), where the alert store lives.
    """

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        c = ctx.counters
        for name, doc, value in (
            ("vigil_messages_received", "Messages received from collectors", c.received),
            ("vigil_readings_parsed", "Readings parsed from messages", c.readings_parsed),
            ("vigil_readings_journaled", "Readings committed to the journal", c.journaled),
            ("vigil_readings_forwarded", "Readings forwarded to InfluxDB", c.forwarded),
            ("vigil_dead_letters", "Messages rejected into the dead-letter table", c.dead_letters),
            ("vigil_sink_errors", "InfluxDB sink errors (retried)", c.sink_errors),
            ("vigil_quarantined", "Readings the store refused, kept in quarantine", c.quarantined),
            ("vigil_listener_errors", "Journal listener failures", c.listener_errors),
            ("vigil_reconnects", "Collector reconnects", c.reconnects),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "vigil_ingest_rate", "Readings journaled per second", value=c.ingest_rate
        )
        yield GaugeMetricFamily(
            "vigil_journal_backlog", "Journal rows not yet forwarded", value=c.journal_backlog
        )
        try:
            journal_bytes = ctx.journal.file_bytes()
        except OSError:
            journal_bytes = c.journal_bytes
        yield GaugeMetricFamily(
            "vigil_journal_bytes", "Journal file size (with WAL)", value=journal_bytes
        )
        yield GaugeMetricFamily(
            "vigil_journal_fill_ratio",
            "Share of the journal size budget used",
            value=c.journal_fill,
        )
        yield GaugeMetricFamily(
            "vigil_journal_full",
            "1 while the journal refuses new rows",
            value=1.0 if c.journal_full else 0.0,
        )
        online = GaugeMetricFamily(
            "vigil_source_online",
            "Devices and connections the collectors report: 1 online, 0 offline, -1 not known yet",
            labels=["collector", "kind", "device", "address"],
        )
        for src in ctx.sources():
            up = -1.0 if src.online is None else float(src.online)
            online.add_metric([src.collector, src.kind, src.device, src.address], up)
        yield online
        events = CounterMetricFamily(
            "vigil_component_events",
            "Counts kept by each collector and notifier channel",
            labels=["component", "counter"],
        )
        for component, stats in c.components.items():
            for counter, n in stats.snapshot().items():
                events.add_metric([component, counter], n)
        yield events
        engine = ctx.engine
        if engine is not None:
            st = engine.stats
            yield CounterMetricFamily(
                "vigil_rule_readings_evaluated",
                "Readings evaluated by the rules engine",
                value=st.get("readings", 0),
            )
            yield CounterMetricFamily(
                "vigil_rule_events", "Alert events emitted by the rules", value=st.get("events", 0)
            )
            yield CounterMetricFamily(
                "vigil_rule_late_readings",
                "Readings older than their series' state, skipped",
                value=st.get("late", 0),
            )
            yield GaugeMetricFamily(
                "vigil_rule_series", "Series bound to rules", value=st.get("series", 0)
            )
        alerts = GaugeMetricFamily(
            "vigil_alerts", "Open alerts by ISA-18.2 state", labels=["state"]
        )
        counts: dict[str, int] = {}
        if ctx.alert_store is not None:
            try:
                counts = ctx.alert_store.state_counts()
            except Exception:  # the store is optional for metrics; never fail a scrape
                log.exception("alert counts for /metrics failed")
        for state in ALERT_STATES:
            alerts.add_metric([state], counts.get(state, 0))
        yield alerts
        logins = CounterMetricFamily(
            "vigil_api_logins", "Login attempts by result", labels=["result"]
        )
        for result in ("ok", "failed", "rate_limited"):
            logins.add_metric([result], ctx.api_counts.get(f"logins_{result}", 0))
        yield logins
        yield CounterMetricFamily(
            "vigil_api_signature_failures",
            "Signatures refused for a wrong password",
            value=ctx.api_counts.get("signature_failures", 0),
        )
        yield GaugeMetricFamily(
            "vigil_shipments_active",
            "Shipments in progress",
            value=len(ctx.shipments.list_shipments("active", limit=100_000)),
        )
        yield CounterMetricFamily(
            "vigil_shipment_readings_recorded",
            "Readings kept for shipment reports",
            value=ctx.shipments.recorded,
        )
        if ctx.extra_metrics is not None:
            try:
                yield from ctx.extra_metrics()
            except Exception:
                log.exception("extra metrics for /metrics failed")


def make_registry(ctx: ApiContext) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(VigilCollector(ctx))
    return reg
