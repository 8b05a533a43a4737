"""The gateway: collectors → journal writer → sinks and listeners, supervised; stops cleanly.

This is the wiring: the one module that builds every part (collectors from their registry, the
journal, the records, the rules stage, notifiers, the sink, the API) and connects them. The
records are opened here, not by the API: shipment tags and the audit of config changes do not
depend on whether the web API runs.

Shutdown order (SIGTERM/SIGINT, within 10 s): stop collectors (nothing new arrives), commit what is
queued (and acknowledge it) as far as the journal's budget allows, give sinks the remaining time to
forward, close the journal. A full journal never delays the stop: what does not fit is left
unacknowledged for the broker to deliver again.

Running for years (docs/operations.md): the audit and journal heads go to InfluxDB every
`gateway.anchor_interval_s` (measurement `audit_head`); retention moves the journal's old rows into
the archive and, past `retention.records_years`, deletes what no record holds, audited with
counts; the clock is watched; `gateway.backup` runs daily; `reload()` (SIGHUP, or the API) applies
a changed config's rules, bindings, notifiers and collectors without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, Metric

import collectors
from alert_rules import AlertStore, RulesEngine
from collectors.mqtt import client_for
from gateway import backup
from gateway.api import ApiContext, build_context, serve_api
from gateway.api.context import ReloadOutcome
from gateway.config import ConfigError, VigilConfig, load_config
from gateway.core.metrics import FILL_LEVELS, Counters
from gateway.core.ports import Collector, RetentionHold, SourceStatus
from gateway.core.reading import Reading
from gateway.core.schema import AUDIT_HEAD, GATEWAY
from gateway.core.supervisor import Supervisor
from gateway.core.systemd import notify, watchdog_interval_s
from gateway.notifiers import MqttLink, Notifier
from gateway.pipeline.alerting import Alerting
from gateway.pipeline.clock import ClockWatch, sync_status
from gateway.pipeline.completeness import CompletenessTracker, CompletenessWriter
from gateway.pipeline.influx_sink import InfluxSink
from gateway.pipeline.journal import Journal
from gateway.pipeline.writer import JournalWriter, Listener
from gateway.records import Records
from gateway.records.budgets import BudgetTracker

log = logging.getLogger("vigil.gateway")

SHUTDOWN_S = 10.0
YEAR_NS = 365.25 * 86_400 * 10**9
RETENTION_EVERY_S = 3600.0
"""How often retention runs: sealed archive days are audited, expired records deleted."""
RELOADABLE = ("rules", "notifiers", "collectors", "mqtt")
"""Config sections a reload applies; a change anywhere else needs a restart."""


@dataclass
class Gateway:
    config: VigilConfig
    counters: Counters = field(default_factory=Counters)
    supervisor: Supervisor = field(default_factory=Supervisor)
    listeners: list[Listener] = field(default_factory=list)
    """Called with each committed batch of readings (rules engine, live views)."""
    hold: RetentionHold | None = None
    """Asked before readings or records past the records floor are deleted; by default the
    lots registry (a lot's legs are kept until its expiry plus retention_years)."""

    def __post_init__(self) -> None:
        cfg = self.config
        cfg.gateway.data_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(
            cfg.journal_path,
            max_bytes=cfg.journal.max_bytes,
            retention_s=cfg.journal.retention_hours * 3600,
            dead_letter_retention_s=cfg.journal.dead_letter_retention_days * 86_400,
            synchronous=cfg.journal.synchronous,
            archive_dir=cfg.archive_dir,
        )
        self.config_path: Path | None = None
        self._reload_lock = asyncio.Lock()
        self.clock = ClockWatch(cfg.gateway.clock.skew_window_s, cfg.gateway.clock.min_devices)
        self.writer = JournalWriter(
            self.journal,
            self.counters,
            queue_messages=cfg.journal.queue_messages,
            max_batch_readings=cfg.journal.max_batch_readings,
            listeners=self.listeners,
            gateway_name=cfg.gateway.name,
        )
        self.records = Records.open(cfg.gateway.data_dir, traceability=cfg.traceability)
        lots = self.records.lots
        # first the geofences (they may start a shipment), then the tags
        self.writer.enrichers.append(lots.enrich)
        self.writer.enrichers.append(self.records.shipments.enrich)
        self.writer.listeners.append(self.records.shipments.record)
        self.writer.listeners.append(lots.record)
        self.writer.listeners.append(self.clock.observe)
        self.retention_hold: RetentionHold = self.hold or self.records.retention_hold
        """Asked by pruning before deleting readings (a lot's, until its expiry + 5 years)."""
        self.collectors: dict[str, Collector] = {}
        self._collector_cfgs: dict[str, Any] = {}
        self._collector_seq = 0
        for c in cfg.collectors:
            self._add_collector(c)
        self.alerting: Alerting | None = None
        if cfg.rules.enabled:
            engine = RulesEngine(cfg.rules, AlertStore(cfg.alerts_path), base_dir=cfg.base_dir)
            self.alerting = Alerting(engine, self.writer, cfg.gateway.name, sources=self.sources)
            self.alerting.extra_readings.append(engine.drain_readings)  # cycle summaries
            self.writer.listeners.append(self.alerting.on_committed)
        self.budgets = BudgetTracker(lots, self.alerting.engine.library if self.alerting else None)
        self.completeness: CompletenessWriter | None = None
        if cfg.completeness.enabled and cfg.rules.enabled and self.alerting is not None:
            # the record_gap rules bound to each device give its GSP cadence
            tracker = CompletenessTracker(
                cfg.completeness, self.alerting.engine.library, cfg.gateway.name
            )
            self.completeness = CompletenessWriter(tracker, self._submit_internal)
            self.writer.listeners.append(self.completeness.on_committed)
        self.notifier: Notifier | None = self._build_notifier(cfg)
        if self.notifier is not None and self.alerting is not None:
            self.notifier.attach(self.alerting.engine.alerts)
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
                language=cfg.gateway.language,
                timezone=cfg.gateway.timezone,
                # operator actions (ack, shelve, close) reach InfluxDB and live views too
                on_alert_events=self.alerting.publish if self.alerting else None,
                notification_history=self._notification_history,
                reload_config=self.reload,
            )
            self.writer.listeners += [self.api.live.observe, self.api.history.observe]
        self.sink = (
            InfluxSink(cfg.influx, self.journal, self.counters, self.writer.committed)
            if cfg.influx
            else None
        )

    def _add_collector(self, c: Any) -> str:
        name = f"collector:{c.name or c.kind}:{self._collector_seq}"
        self._collector_seq += 1
        self.collectors[name] = collectors.build(c, self.writer, self.counters)
        self._collector_cfgs[name] = c.model_dump(mode="json")
        return name

    def _build_notifier(self, cfg: VigilConfig) -> Notifier | None:
        if not (cfg.notifiers.enabled and cfg.notifiers.channels):
            return None
        if self.alerting is None:
            log.warning("notifiers configured but rules disabled: there is nothing to notify")
            return None
        broker = cfg.mqtt
        link = MqttLink(broker.url, broker.client_id, lambda cid: client_for(broker, client_id=cid))
        notifier = Notifier(
            cfg.notifiers,
            self.alerting.engine.store,  # the outbox commits with the alert transitions
            link,
            gateway=cfg.gateway.name,
            counters=self.counters,
            audit=self.records.audit,
            health=self._submit_internal,
            language=cfg.gateway.language,
            timezone=cfg.gateway.timezone,
        )
        return notifier

    def _notification_history(self, alert_id: int) -> list[dict[str, Any]]:
        """What became of an alert's notifications (the current notifier's outbox)."""
        return self.notifier.history(alert_id) if self.notifier is not None else []

    async def run(self, stop: asyncio.Event, config_path: Path | None = None) -> None:
        """Run until `stop` is set; `config_path` is audited when its content changed, and
        read again by `reload()`."""
        sup = self.supervisor
        self.config_path = config_path
        await asyncio.to_thread(self.records.shipments.recover, self.journal)
        if config_path is not None:
            text = await asyncio.to_thread(config_path.read_text)
            await asyncio.to_thread(self.records.audit.record_config, config_path, text)
        if self.api is not None:
            api = self.api
            await asyncio.to_thread(api.live.seed, self.journal)
            await asyncio.to_thread(api.history.seed, self.journal)
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
        sup.spawn("anchor", self._anchor_loop)
        sup.spawn("retention", self._retention_loop)
        if self.config.gateway.clock.sync_check_s > 0:
            sup.spawn("clock", self._clock_loop)
        if self.config.gateway.backup is not None:
            sup.spawn("backup", self._backup_loop)
        sup.spawn("lots", self._lots)
        for name, collector in self.collectors.items():
            sup.spawn(name, collector.run)
        watchdog = watchdog_interval_s()
        if watchdog:
            sup.spawn("watchdog", lambda: self._watchdog(watchdog))
        notify("READY=1")
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

    async def _watchdog(self, every_s: float) -> None:
        """systemd's watchdog: pinged from the event loop, so a hung loop gets restarted."""
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(every_s)

    async def shutdown(self) -> None:
        started = time.monotonic()
        notify("STOPPING=1")
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
        await sup.stop(
            [
                "housekeeping",
                "completeness",
                "lots",
                "anchor",
                "retention",
                "clock",
                "backup",
                "watchdog",
                "sink:influx",
            ],
            timeout=1,
        )
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
        """Every metrics interval: journal size and alarms, retention, the vigil_gateway point.
        The journal is pruned every minute, and at every interval while it is past its first
        fill alarm (whole commits leave it, so it frees room in steps)."""
        interval = self.config.gateway.metrics_interval_s
        next_prune = 0.0
        while True:
            await asyncio.sleep(interval)
            self.refresh_counters()
            now = time.monotonic()
            if now >= next_prune or self.writer.fill >= FILL_LEVELS[0]:
                await asyncio.to_thread(self.journal.prune)
                next_prune = now + 60
            point = self.counters.point(self.config.gateway.name, self.supervisor.restarts)
            await self.writer.submit([point], internal=True)

    # -- anchoring ---------------------------------------------------------------------------
    def anchor_reading(self) -> Reading:
        """The audit head and journal chain head as an `audit_head` point for InfluxDB."""
        seq, audit_hash = self.records.audit.head()
        batch, journal_hash = self.journal.head()
        fields: dict[str, float | int | bool | str] = {
            "audit_seq": seq,
            "audit_hash": audit_hash,
            "journal_batch": batch,
            "journal_hash": journal_hash,
        }
        return Reading(
            AUDIT_HEAD.name, {"gateway": self.config.gateway.name}, fields, time.time_ns()
        )

    async def _anchor_loop(self) -> None:
        """At start and every anchor interval: the heads go out through the journal and sink."""
        while True:
            await self.writer.submit([self.anchor_reading()], internal=True)
            await asyncio.sleep(self.config.gateway.anchor_interval_s)

    # -- retention ---------------------------------------------------------------------------
    async def _retention_loop(self) -> None:
        await asyncio.sleep(5)  # let the start settle
        while True:
            await self.retention_pass()
            await asyncio.sleep(RETENTION_EVERY_S)

    async def retention_pass(self, now_ns: int | None = None) -> dict[str, int]:
        """Audit the archive days sealed since the last pass; delete, past the records floor,
        archive days, alerts and shipments that no record holds; audit each with counts."""
        now = time.time_ns() if now_ns is None else now_ns
        cfg = self.config.retention
        keep_ns = int(cfg.records_years * YEAR_NS)
        audit = self.records.audit
        counts: dict[str, int] = {}
        for rep in self.journal.take_prune_reports():
            for day in rep.sealed:
                entry = next(
                    (e for e in self.journal.archive.manifest() if e.get("day") == day), None
                )
                if entry is not None:
                    await asyncio.to_thread(
                        audit.record,
                        "system",
                        "retention.archive",
                        "journal",
                        day,
                        None,
                        {
                            k: entry[k]
                            for k in ("file", "sha256", "readings", "first_seq", "last_seq", "head")
                        },
                        "archive day sealed: readings moved out of the journal's hot window",
                    )
        expired = await asyncio.to_thread(
            self.journal.archive.expire, now, keep_ns, self.retention_hold
        )
        counts["archive_segments"] = expired.deleted_segments
        counts["archive_readings"] = expired.deleted_readings
        alerts = log_rows = 0
        if self.alerting is not None:
            alerts, log_rows = self.alerting.store.prune(now - keep_ns)
            self.alerting.store.commit()
        counts["alerts"], counts["alert_log"] = alerts, log_rows
        ships, ship_readings, held = await asyncio.to_thread(
            self.records.shipments.prune, now - keep_ns, self.retention_hold
        )
        counts["shipments"], counts["shipment_readings"] = ships, ship_readings
        leg_readings, leg_held = await asyncio.to_thread(
            self.records.lots.prune_readings, now - keep_ns
        )
        counts["leg_readings"] = leg_readings
        held += leg_held
        if any(counts.values()):
            log.info("retention: records past the floor deleted", extra=counts)
            await asyncio.to_thread(
                audit.record,
                "system",
                "retention.prune",
                "records",
                "retention",
                None,
                {**counts, "records_years": cfg.records_years, "held": expired.held + held},
                f"older than retention.records_years ({cfg.records_years:g} years)",
            )
        self.counters.archive_bytes = await asyncio.to_thread(self.journal.archive.bytes_used)
        return counts

    # -- clock -------------------------------------------------------------------------------
    async def _clock_loop(self) -> None:
        last: bool | None = None
        while True:
            synced = await sync_status()
            self.counters.clock_synced = synced
            if synced is False and last is not False:
                log.error("the system clock is not synchronised (timedatectl/chronyc)")
                await self._health_point({"clock_synced": 0.0})
            elif synced and last is False:
                await self._health_point({"clock_synced": 1.0})
            last = synced
            await asyncio.sleep(self.config.gateway.clock.sync_check_s)

    async def _health_point(self, fields: dict[str, float]) -> None:
        """A `vigil_gateway` reading written at once, for the gateway_health rules."""
        point = Reading(
            GATEWAY.name, {"gateway": self.config.gateway.name}, dict(fields), time.time_ns()
        )
        await self.writer.submit([point], internal=True)

    # -- backups -----------------------------------------------------------------------------
    def next_backup_at(self, now: datetime) -> datetime:
        b = self.config.gateway.backup
        assert b is not None
        local = now.astimezone(ZoneInfo(self.config.gateway.timezone))
        hh, mm = (int(x) for x in b.at.split(":"))
        at = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        return at if at > local else at + timedelta(days=1)

    async def _backup_loop(self) -> None:
        while True:
            now = datetime.now(ZoneInfo("UTC"))
            await asyncio.sleep((self.next_backup_at(now) - now).total_seconds())
            await self.run_backup()

    async def run_backup(self) -> bool:
        """The scheduled backup now; a failure is logged, audited and alarmed (backup_failed)."""
        b = self.config.gateway.backup
        assert b is not None
        cfg = self.config
        try:
            result, report, removed = await asyncio.to_thread(
                backup.run_scheduled,
                cfg.gateway.data_dir,
                b.destination,
                gateway=cfg.gateway.name,
                keep=b.keep,
                archive_dir=cfg.archive_dir,
                config_path=self.config_path,
            )
        except Exception as e:
            log.exception("scheduled backup failed", extra={"destination": str(b.destination)})
            self.counters.backup_failed = True
            await asyncio.to_thread(
                self.records.audit.record,
                "system",
                "backup.failed",
                "backup",
                str(b.destination),
                None,
                {"error": f"{type(e).__name__}: {e}"},
                "scheduled backup",
            )
            await self._health_point({"backup_failed": 1.0})
            return False
        self.counters.backup_failed = False
        m = result.manifest
        await asyncio.to_thread(
            self.records.audit.record,
            "system",
            "backup.run",
            "backup",
            str(result.path),
            None,
            {
                "audit_head": m["audit_head"],
                "journal_head": m["journal_head"],
                "files": len(m["files"]),
                "seconds": round(result.seconds, 1),
                "removed": [p.name for p in removed],
            },
            "scheduled backup, verified",
        )
        log.info("scheduled backup done", extra={"path": str(result.path), "checks": report.lines})
        await self._health_point({"backup_failed": 0.0})
        return True

    # -- reload ------------------------------------------------------------------------------
    async def reload(
        self, actor: str = "system", reason: str = "reload", client: str | None = None
    ) -> ReloadOutcome:
        """Read the config file again and apply its rules, bindings, notifiers and collectors.

        The journal, rule state and open alerts stay. A file that does not validate, or that
        changes anything else (which needs a restart), is refused and the running config kept;
        refusals and changes are audited.
        """
        async with self._reload_lock:
            notify("RELOADING=1")
            try:
                outcome = await self._reload(actor, reason, client)
            finally:
                notify("READY=1")
        level = logging.INFO if outcome.ok else logging.ERROR
        log.log(level, "config reload: " + outcome.summary(), extra={"actor": actor})
        if not outcome.ok:
            await asyncio.to_thread(
                self.records.audit.record,
                actor,
                "config.reload_refused",
                "config",
                str(self.config_path),
                None,
                {"problems": outcome.problems},
                reason,
                client=client,
            )
        return outcome

    async def _reload(self, actor: str, reason: str, client: str | None) -> ReloadOutcome:
        path = self.config_path
        if path is None:
            return ReloadOutcome(False, problems=["the gateway was started without a config file"])
        try:
            text = await asyncio.to_thread(path.read_text)
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as e:
            return ReloadOutcome(False, problems=e.problems)
        except OSError as e:
            return ReloadOutcome(False, problems=[f"{path}: cannot read: {e.strerror}"])
        old = self.config
        before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
        fixed = [k for k in after if k not in RELOADABLE and before.get(k) != after.get(k)]
        if fixed or (old.rules.enabled != new.rules.enabled):
            what = ", ".join(fixed or ["rules.enabled"])
            return ReloadOutcome(
                False, problems=[f"{path}: a change to {what} needs a restart; nothing applied"]
            )
        changed = [k for k in RELOADABLE if before.get(k) != after.get(k)]
        swap = "notifiers" in changed or "mqtt" in changed
        notifier = self._build_notifier(new) if swap else self.notifier
        rules_changed: list[str] = []
        if "rules" in changed and self.alerting is not None:
            library = await asyncio.to_thread(new.rules.library, new.base_dir)
            rules_changed = self.alerting.engine.reload(new.rules, library)
            if self.completeness is not None:  # devices seen from now on get the new cadence
                self.completeness.tracker.library = library
        if swap:
            await self._swap_notifier(notifier)
        started, stopped = await self._swap_collectors(new)
        self.config = new
        await asyncio.to_thread(
            self.records.audit.record_config,
            path,
            text,
            actor,
            f"config reloaded ({reason})",
            changed + [f"rule {r}" for r in rules_changed],
            client,
        )
        return ReloadOutcome(True, changed, rules_changed, started, stopped)

    async def _swap_notifier(self, new: Notifier | None) -> None:
        """Hand over without a gap: from now on the new notifier stores every transition's
        notifications (in the alert store's outbox, where the old one's undelivered rows stay);
        the old one gets its drain budget and stops, then the new one delivers."""
        old, self.notifier = self.notifier, new
        if self.alerting is not None:
            if old is not None:
                old.detach(self.alerting.engine.alerts)
            if new is not None:
                new.attach(self.alerting.engine.alerts)
        if old is not None:
            await old.close(timeout=2.5)
            await self.supervisor.stop(["notifiers"], timeout=0.5)
        if new is not None:
            self.supervisor.spawn("notifiers", new.run)

    async def _swap_collectors(self, new: VigilConfig) -> tuple[list[str], list[str]]:
        """Stop collectors whose entry changed or went, start the changed and new ones; the
        others keep running (their broker sessions and Modbus connections stay)."""
        wanted = [c.model_dump(mode="json") for c in new.collectors]
        keep: dict[str, Any] = {}
        for name, dump in self._collector_cfgs.items():
            if dump in wanted:
                wanted.remove(dump)
                keep[name] = dump
        stopped = [n for n in self.collectors if n not in keep]
        await self.supervisor.stop(stopped, timeout=2)
        for name in stopped:
            del self.collectors[name]
            del self._collector_cfgs[name]
        started = []
        for c in new.collectors:
            dump = c.model_dump(mode="json")
            if dump in wanted:
                wanted.remove(dump)
                name = self._add_collector(c)
                self.supervisor.spawn(name, self.collectors[name].run)
                started.append(name)
        return started, stopped

    async def _submit_internal(self, readings: list[Reading]) -> None:
        """The gateway's own readings (completeness, a notifier channel failing): exempt from
        the journal's budget."""
        await self.writer.submit(readings, internal=True)

    async def _lots(self) -> None:
        """Legs opened at a past time get their readings from the journal; lots whose record
        changed get their stability budgets worked out and written as `lot_budget` readings."""
        lots = self.records.lots
        while True:
            await asyncio.sleep(self.config.traceability.budget_interval_s)
            for leg in lots.take_backfills():
                await asyncio.to_thread(lots.backfill, leg, self.journal)
            readings = await asyncio.to_thread(self.budgets.readings)
            if readings:
                await self._submit_internal(readings)

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
        c.clock_skew_s = self.clock.skew_s(time.time_ns())
        c.journal_bytes = self.journal.file_bytes()
        c.check_fill(self.writer.fill_now())
        c.journal_backlog = self.journal.backlog(self.sink.name) if self.sink else 0
        if self.notifier is not None:
            c.notifications_dropped = self.notifier.notifications_dropped
