"""The rules stage of the gateway: committed readings in, alert events out.

Readings reach the engine right after the journal commits them (a journal listener), so rules see
exactly what is durable, in arrival order. Alert events go at once to the notifiers (low latency)
and, as `alert` readings, back into the journal so the sink writes them to InfluxDB. Time-driven
work (stale data, device liveness from the collectors' statuses, shelve expiry, escalation, KPIs,
state snapshots) runs from a 1 Hz tick. After a restart the engine's snapshot is brought up to
date by replaying the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from alert_rules import AlertEvent, AlertStore, RulesEngine, alert_event_readings
from gateway.core.eventtime import in_store_range
from gateway.core.lineprotocol import LineProtocolError, decode
from gateway.core.ports import SourceStatus
from gateway.core.reading import Reading
from gateway.core.schema import COLDCHAIN, GATEWAY, LOT_BUDGET, PROCESS
from gateway.pipeline.journal import Journal
from gateway.pipeline.writer import JournalWriter

log = logging.getLogger("vigil.alerting")

RULE_MEASUREMENTS = frozenset({COLDCHAIN.name, PROCESS.name, GATEWAY.name, LOT_BUDGET.name})
"""What rules see: devices' readings, the gateway's own health (`journal_fill`) and lots'
stability budgets."""
REPLAY_CHUNK = 5000

EventSink = Callable[[AlertEvent], None]


class Alerting:
    def __init__(
        self,
        engine: RulesEngine,
        writer: JournalWriter,
        gateway_name: str,
        tick_s: float = 1.0,
        sources: Callable[[], Sequence[SourceStatus]] | None = None,
    ) -> None:
        self.engine = engine
        self.sources = sources
        """The collectors' devices, online or not: `device_offline` rules judge them per tick."""
        self.writer = writer
        self.gateway_name = gateway_name
        self.tick_s = tick_s
        self.event_sinks: list[EventSink] = []
        """Notifiers and live views: called with every alert event, must not block."""
        self.extra_readings: list[Callable[[], Sequence[Reading]]] = []
        """More readings to journal at each tick (e.g. cycle summaries of production rules)."""
        self._out: list[Reading] = []
        self._wake = asyncio.Event()
        self.events_total = 0

    @property
    def store(self) -> AlertStore:
        return self.engine.store

    # -- the journal listener (sync, on the writer's commit path) ----------------------------
    def on_committed(self, readings: Sequence[Reading]) -> None:
        batch = [r for r in readings if r.measurement in RULE_MEASUREMENTS]
        if batch:
            self.publish(self.engine.process(batch))

    def publish(self, events: Sequence[AlertEvent]) -> None:
        """Hand events to every sink now, and queue their readings for the journal."""
        if not events:
            return
        self.events_total += len(events)
        for event in events:
            for sink in self.event_sinks:
                try:
                    sink(event)
                except Exception:
                    log.exception("alert event sink failed", extra={"event": event.kind})
            self._out.extend(alert_event_readings(event, self.gateway_name))
        self._wake.set()

    # -- restart -------------------------------------------------------------------------------
    async def replay(self, journal: Journal) -> int:
        """Feed the engine what the journal received since its last snapshot; returns rows fed."""
        since = self.engine.resume_from_ns
        if since is None:
            return 0
        fed = 0
        rows = await asyncio.to_thread(lambda: list(journal.lines_since(since - 1)))
        for start in range(0, len(rows), REPLAY_CHUNK):
            batch: list[Reading] = []
            for row in rows[start : start + REPLAY_CHUNK]:
                try:
                    r = decode(row.line, row.received_ns)
                except LineProtocolError:
                    continue
                if r.measurement in RULE_MEASUREMENTS and in_store_range(r.ts_ns):
                    batch.append(r)  # (rows older than the event-time checks may hold year 0)
            self.publish(self.engine.process(batch))
            fed += len(batch)
            await asyncio.sleep(0)
        log.info("rules state replayed from the journal", extra={"readings": fed})
        return fed

    # -- the tick task ---------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            timeout = max(0.0, next_tick - loop.time())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if loop.time() >= next_tick:
                next_tick = loop.time() + self.tick_s
                sources = self.sources() if self.sources is not None else ()
                self.publish(self.engine.tick(time.time_ns(), sources))
                kpi = self.engine.kpi_reading(gateway=self.gateway_name)
                if kpi is not None:
                    self._out.append(kpi)
                for source in self.extra_readings:
                    self._out.extend(source())
            await self.flush()

    async def flush(self) -> None:
        if self._out:
            out, self._out = self._out, []
            await self.writer.submit(out, internal=True)  # alarms must get through a full journal

    async def close(self) -> None:
        """At shutdown, once the journal writer's queue is drained: save rule state and queue
        the last alert readings for the final drain."""
        self.publish(self.engine.flush())
        self.engine.close()
        await self.flush()
