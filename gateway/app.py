"""The gateway: collectors → journal writer → sinks and listeners, supervised; stops cleanly.

This is the wiring: the one module that builds every part (collectors from their registry, the
journal, the records, the rules stage, notifiers, the sink, the API) and connects them. The
records are opened here, not by the API: shipment tags and the audit of config changes do not
depend on whether the web API runs.

Shutdown order (SIGTERM/SIGINT, within 10 s): stop collectors (nothing new arrives), commit what is
queued (and acknowledge it) as far as the journal's budget allows, give sinks the remaining time to
forward, close the journal. A full journal never delays the stop: what does not fit is left
unacknowledged for the broker to deliver again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric

import collectors
from alert_rules import AlertStore, RulesEngine
from collectors.mqtt import client_for
from gateway.api import ApiContext, build_context, serve_api
from gateway.config import VigilConfig
from gateway.core.metrics import Counters
from gateway.core.ports import Collector, SourceStatus
from gateway.core.reading import Reading
from gateway.core.supervisor import Supervisor
from gateway.notifiers import MqttLink, Notifier
from gateway.pipeline.alerting import Alerting
from gateway.pipeline.completeness import CompletenessTracker, CompletenessWriter
from gateway.pipeline.influx_sink import InfluxSink
from gateway.pipeline.journal import Journal
from gateway.pipeline.writer import JournalWriter, Listener
from gateway.records import Records

log = logging.getLogger("vigil.gateway")

SHUTDOWN_S = 10.0


@dataclass
class Gateway:
    config: VigilConfig
    counters: Counters = field(default_factory=Counters)
    supervisor: Supervisor = field(default_factory=Supervisor)
    listeners: list[Listener] = field(default_factory=list)
    """Called with each committed batch of readings (rules engine, live views)."""

    def __post_init__(self) -> None:
        cfg = self.config
        cfg.gateway.data_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(
            cfg.journal_path,
            max_bytes=cfg.journal.max_bytes,
            retention_s=cfg.journal.retention_hours * 3600,
            dead_letter_retention_s=cfg.journal.dead_letter_retention_days * 86_400,
            synchronous=cfg.journal.synchronous,
        )
        self.writer = JournalWriter(
            self.journal,
            self.counters,
            queue_messages=cfg.journal.queue_messages,
            max_batch_readings=cfg.journal.max_batch_readings,
            listeners=self.listeners,
            gateway_name=cfg.gateway.name,
        )
        self.records = Records.open(cfg.gateway.data_dir)
        shipments = self.records.shipments
        self.writer.enrichers.append(shipments.enrich)
        self.writer.listeners.append(shipments.record)
        self.collectors: dict[str, Collector] = {
            f"collector:{c.name or c.kind}:{i}": collectors.build(c, self.writer, self.counters)
            for i, c in enumerate(cfg.collectors)
        }
        self.alerting: Alerting | None = None
        if cfg.rules.enabled:
            engine = RulesEngine(cfg.rules, AlertStore(cfg.alerts_path), base_dir=cfg.base_dir)
            self.alerting = Alerting(engine, self.writer, cfg.gateway.name, sources=self.sources)
            self.alerting.extra_readings.append(engine.drain_readings)  # cycle summaries
            self.writer.listeners.append(self.alerting.on_committed)
        self.completeness: CompletenessWriter | None = None
        if cfg.completeness.enabled and cfg.rules.enabled and self.alerting is not None:
            # the record_gap rules bound to each device give its GSP cadence
            tracker = CompletenessTracker(
                cfg.completeness, self.alerting.engine.library, cfg.gateway.name
            )
            self.completeness = CompletenessWriter(tracker, self._submit_internal)
            self.writer.listeners.append(self.completeness.on_committed)
        self.notifier: Notifier | None = None
        if cfg.notifiers.enabled and cfg.notifiers.channels and self.alerting is not None:
            broker = cfg.mqtt
            link = MqttLink(
                broker.url, broker.client_id, lambda cid: client_for(broker, client_id=cid)
            )
            self.notifier = Notifier(
                cfg.notifiers,
                self.alerting.engine.store,  # the outbox commits with the alert transitions
                link,
                gateway=cfg.gateway.name,
                counters=self.counters,
                audit=self.records.audit,
                health=self._submit_internal,
            )
            self.notifier.attach(self.alerting.engine.alerts)
        elif cfg.notifiers.enabled and cfg.notifiers.channels:
            log.warning("notifiers configured but rules disabled: there is nothing to notify")
        self.api: ApiContext | None = None
        if cfg.api.enabled:
            self.api = build_context(
                cfg.gateway.data_dir,
                self.journal,
                self.counters,
                self.records,
                engine=self.alerting.engine if self.alerting else None,
                sources=self.sources,
                extra_metrics=self._extra_metrics,
                gateway_name=cfg.gateway.name,
                # operator actions (ack, shelve, close) reach InfluxDB and live views too
                on_alert_events=self.alerting.publish if self.alerting else None,
                notification_history=self.notifier.history if self.notifier else None,
            )
            self.writer.listeners.append(self.api.live.observe)
        self.sink = (
            InfluxSink(cfg.influx, self.journal, self.counters, self.writer.committed)
            if cfg.influx
            else None
        )

    async def run(self, stop: asyncio.Event, config_path: Path | None = None) -> None:
        """Run until `stop` is set; `config_path` is audited when its content changed."""
        sup = self.supervisor
        await asyncio.to_thread(self.records.shipments.recover, self.journal)
        if config_path is not None:
            text = await asyncio.to_thread(config_path.read_text)
            await asyncio.to_thread(self.records.audit.record_config, config_path, text)
        if self.api is not None:
            api = self.api
            await asyncio.to_thread(api.live.seed, self.journal)
            cfg = self.config.api
            sup.spawn("api", lambda: serve_api(api, cfg.host, cfg.port, stop))
        if self.notifier is not None:
            sup.spawn("notifiers", self.notifier.run)
        if self.alerting is not None:
            await self.alerting.replay(self.journal)
            sup.spawn("rules", self.alerting.run)
        if self.completeness is not None:
            await asyncio.to_thread(self.completeness.seed, self.journal)
            sup.spawn("completeness", self.completeness.run)
        sup.spawn("journal-writer", self.writer.run)
        if self.sink is not None:
            sup.spawn("sink:influx", self.sink.run)
        sup.spawn("housekeeping", self._housekeeping)
        for name, collector in self.collectors.items():
            sup.spawn(name, collector.run)
        log.info(
            "gateway running",
            extra={
                "gateway": self.config.gateway.name,
                "collectors": len(self.collectors),
                "journal": str(self.config.journal_path),
                "influx": self.config.influx.url if self.config.influx else "off",
            },
        )
        await stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        started = time.monotonic()
        sup = self.supervisor
        await sup.stop(list(self.collectors), timeout=2)
        await sup.stop(["rules", "journal-writer"], timeout=2)
        await self.writer.drain()  # commits, acknowledges, and lets the rules see the last batch
        if self.alerting is not None:
            await self.alerting.close()  # the queue is empty now: its last readings fit
            await self.writer.drain()
        if self.notifier is not None:
            await self.notifier.close(timeout=2.5)
            await sup.stop(["notifiers"], timeout=0.5)
        await sup.stop(["housekeeping", "completeness", "sink:influx"], timeout=1)
        if self.sink is not None:
            left = SHUTDOWN_S - 1.0 - (time.monotonic() - started)
            if left > 0.2:
                done = await self.sink.flush(left)
                if not done:
                    log.warning(
                        "stopped with rows not yet forwarded; they go out on next start",
                        extra={"backlog": self.journal.backlog(self.sink.name)},
                    )
        if self.api is not None:
            await sup.stop(["api"], timeout=1)
        self.records.close()
        self.journal.close()
        log.info("gateway stopped", extra={"seconds": round(time.monotonic() - started, 2)})

    async def _housekeeping(self) -> None:
        """Every metrics interval: journal size and alarms, retention, the vigil_gateway point."""
        interval = self.config.gateway.metrics_interval_s
        next_prune = 0.0
        while True:
            await asyncio.sleep(interval)
            self.refresh_counters()
            now = time.monotonic()
            if now >= next_prune:
                await asyncio.to_thread(self.journal.prune)
                next_prune = now + 60
            point = self.counters.point(self.config.gateway.name, self.supervisor.restarts)
            await self.writer.submit([point], internal=True)

    async def _submit_internal(self, readings: list[Reading]) -> None:
        """The gateway's own readings (completeness, a notifier channel failing): exempt from
        the journal's budget."""
        await self.writer.submit(readings, internal=True)

    def sources(self) -> list[SourceStatus]:
        """Every collector's devices and connections, online or not."""
        return [st for c in self.collectors.values() for st in c.status()]

    def _extra_metrics(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "vigil_task_restarts", "Supervised task restarts", labels=["task"]
        )
        for s in self.supervisor.states.values():
            restarts.add_metric([s.name], s.restarts)
        yield restarts

    def refresh_counters(self) -> None:
        c = self.counters
        c.update_rate()
        c.journal_bytes = self.journal.file_bytes()
        c.check_fill(self.writer.fill_now())
        c.journal_backlog = self.journal.backlog(self.sink.name) if self.sink else 0
        if self.notifier is not None:
            c.notifications_dropped = self.notifier.notifications_dropped
