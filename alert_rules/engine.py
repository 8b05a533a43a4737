"""RulesEngine: binds rules to series, evaluates readings in event time, drives the lifecycle.

The gateway calls `process(readings)` after each journal commit (arrival order, any batch size)
and `tick(now_ns, sources)` about once a second, with the collectors' view of their devices
(`SourceStatus`) for the rules on device liveness (`device_offline`). Both return AlertEvents
for notifiers and, through `alert_event_readings`, for the journal / InfluxDB. Production
cycles (alert_rules/cycles.py) end inside `process()`; their `cycle` readings wait for
`drain_readings()`.

Event time: each series (measurement, device) is evaluated in timestamp order. A batch is sorted
before evaluation; with `lateness > 0` readings also wait in a per-series reorder buffer until the
series has seen a reading `lateness` newer, or until `lateness` of wall time has passed since they
arrived. A reading older than the last one evaluated is skipped by the rules (counted in
`stats["late"]`; it is still in the journal and InfluxDB).

Restart: rule state is snapshotted to the store every `snapshot_interval` and on close(). After a
restart the gateway replays journal rows received at or after `resume_from_ns`; readings the
snapshot already covers are skipped (older) or harmless (same timestamp), and activations the
store already holds are not raised twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from alert_rules.clock import Clock, SystemClock
from alert_rules.config import CompiledRule, RuleLibrary, RulesConfig
from alert_rules.context import EvalContext
from alert_rules.cycles import Cycle, CycleKeeper, CycleStore
from alert_rules.kinds.base import Evaluator
from alert_rules.kinds.cycle import (
    DEFAULT_CYCLE_PROFILE,
    CycleEvaluator,
    CycleParticipant,
    CycleRule,
)
from alert_rules.kinds.mkt import MktEvaluator
from alert_rules.kpi import AlarmKpis, compute_kpis
from alert_rules.lifecycle import AlertManager
from alert_rules.model import ActionResult, AlertEvent
from alert_rules.store import AlertStore
from alert_rules.units import to_ns
from gateway.core.i18n import Text
from gateway.core.ports import SourceStatus
from gateway.core.reading import Reading

_TS = attrgetter("ts_ns")
ALERT_TAGS = (
    "site",
    "asset",
    "device",
    "shipment",
    "lot",
    "budget",
    "line",
    "equipment",
    "batch",
    "phase",
)
RESUME_MARGIN_NS = 60 * 1_000_000_000
SNAPSHOT_CHUNK = 100
"""Series saved per tick during a snapshot round (~25 ms for MKT-heavy series)."""


def source_of(tags: dict[str, str]) -> str:
    """The alert `source`: site/asset/device for cold chain, line/equipment/device for process,
    lot/budget for a lot's stability budget, the gateway's name for its own health
    (`vigil_gateway` readings carry only `gateway`)."""
    if "lot" in tags and "budget" in tags and "asset" not in tags:
        keys: tuple[str, ...] = ("lot", "budget")
    elif "site" in tags or "asset" in tags:
        keys = ("site", "asset", "device")
    elif "line" in tags or "equipment" in tags:
        keys = ("line", "equipment", "device")
    elif not tags.get("device") and tags.get("gateway"):
        keys = ("gateway",)
    else:
        keys = ("device",)
    return "/".join(tags[k] for k in keys if tags.get(k))


class _Point:
    """PointSink for one (rule, source): forwards evaluator decisions to the AlertManager."""

    __slots__ = ("mgr", "rule", "series", "source", "suppressed")

    def __init__(self, mgr: AlertManager, rule: CompiledRule, source: str, series: str) -> None:
        self.mgr = mgr
        self.rule = rule
        self.source = source
        self.series = series
        self.suppressed = (rule.id, source) in mgr.suppressed  # restored after a restart

    def activate(
        self,
        ctx: EvalContext,
        started: int,
        at: int,
        value: float | None,
        peak: float | None,
        message: Text,
        cycle: int | None = None,
    ) -> None:
        tags = {k: v for k, v in ctx.tags.items() if k in ALERT_TAGS}
        self.mgr.activate(
            ctx, self.rule, self.source, started, at, value, peak, message, self.series, tags, cycle
        )

    def clear(
        self,
        ctx: EvalContext,
        ended: int,
        at: int,
        value: float | None,
        peak: float | None,
        cycle: int | None = None,
    ) -> None:
        self.mgr.clear(ctx, self.rule, self.source, ended, at, value, peak, cycle)


class _Bound:
    __slots__ = ("ev", "field", "point", "rule")

    def __init__(self, rule: CompiledRule, point: _Point, ev: Evaluator) -> None:
        self.rule = rule
        self.point = point
        self.ev = ev
        self.field = ev.field


class _Series:
    __slots__ = (
        "arrival",
        "asset",
        "bound",
        "cycle",
        "cycle_parts",
        "dirty",
        "equipment",
        "feeds",
        "last_ts",
        "line",
        "max_seen",
        "measurement",
        "name",
        "pending",
        "profile",
        "reported",
        "rules",
        "site",
        "status_rules",
        "suppressors",
        "tags",
    )

    def __init__(self, measurement: str, name: str) -> None:
        self.measurement = measurement
        self.name = name
        self.bound: list[_Bound] = []
        self.feeds: list[tuple[str, Any]] = []
        self.arrival: list[_Bound] = []
        self.status_rules: list[_Bound] = []
        self.reported = False
        """A collector reports this device (SourceStatus): its liveness rules are bound."""
        self.suppressors: list[_Bound] = []
        self.rules: dict[str, _Bound] = {}
        self.cycle: _Bound | None = None
        """The series' cycle rule, when a rule judges whole cycles (alert_rules/cycles.py)."""
        self.cycle_parts: list[_Bound] = []
        self.last_ts = -(2**63)
        self.max_seen = -(2**63)
        self.pending: list[Reading] = []
        self.dirty = False
        self.tags: dict[str, str] = {}
        self.site: str | None = None
        self.asset: str | None = None
        self.line: str | None = None
        self.equipment: str | None = None
        self.profile: str | None = None
        """The `profile` tag bound: a leg's product profiles (alert_rules/config.py)."""


class RulesEngine:
    def __init__(
        self,
        config: RulesConfig,
        store: AlertStore,
        clock: Clock | None = None,
        *,
        library: RuleLibrary | None = None,
        base_dir: Path | str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.library = library or config.library(base_dir)
        self.enabled = config.enabled
        self.lateness = to_ns(config.lateness)
        self._rules_by_id = {r.id: r for r in self.library.all_rules()}
        self.alerts = AlertManager(
            store,
            self.clock,
            self._rule,
            to_ns(config.retrospective_after),
            to_ns(config.max_shelve),
            to_ns(config.escalation.after),
            config.escalation.max_tier,
        )
        self._series: dict[tuple[str, str], _Series] = {}
        self._waiting: dict[str, _Series] = {}
        self._saved_rules = store.load_rule_states()
        self._saved_series = store.load_series()
        resume = store.get_meta("resume_from_received_ns")
        self.resume_from_ns: int | None = int(resume) if resume else None
        """After a restart: replay journal rows received at or after this (None: nothing saved)."""
        self._replay_until = (self.resume_from_ns or 0) + RESUME_MARGIN_NS
        """Older-than-state readings received before this are journal replay, not late data."""
        self._max_received = 0
        self._snapshot_interval = to_ns(config.snapshot_interval)
        self._kpi_interval = to_ns(config.kpi_interval)
        self._last_snapshot = self.clock.now_ns()
        self._round: list[_Series] | None = None
        self._round_resume = 0
        self._last_kpi: int | None = None
        self.stats = {"readings": 0, "late": 0, "replayed": 0, "series": 0, "events": 0}
        """Counters for the gateway's metrics: late = skipped, older than the series' state."""
        self._cycles = CycleKeeper(store, self.alerts)
        self.cycles: CycleStore = self._cycles.store
        """Cycle / batch summaries: list_cycles(device=, batch=, since_ns=), get_cycle(id)."""

    def _rule(self, rule_id: str) -> CompiledRule | None:
        return self._rules_by_id.get(rule_id)

    # -- binding -----------------------------------------------------------------------------
    def _series_for(self, r: Reading) -> _Series:
        return self._series_of(r.measurement, r.tags)

    def _series_of(self, measurement: str, tags: dict[str, str]) -> _Series:
        key = (measurement, tags.get("device", ""))
        s = self._series.get(key)
        if s is None:
            s = _Series(measurement, f"{key[0]}/{key[1]}")
            saved = self._saved_series.pop(s.name, None)
            if saved is not None and saved[0] is not None:
                s.last_ts = s.max_seen = saved[0]
            self._series[key] = s
            self.stats["series"] += 1
            self._bind(s, tags)
        elif (
            tags.get("asset") != s.asset
            or tags.get("site") != s.site
            or tags.get("equipment") != s.equipment
            or tags.get("line") != s.line
            or tags.get("profile") != s.profile
        ):
            self._bind(s, tags)
        return s

    def _bind(self, s: _Series, tags: dict[str, str]) -> None:
        """(Re)bind a series' rules: kept evaluators keep state, new ones load the snapshot."""
        s.tags = dict(tags)
        s.site, s.asset = tags.get("site"), tags.get("asset")
        s.line, s.equipment = tags.get("line"), tags.get("equipment")
        s.profile = tags.get("profile")
        source = source_of(tags)
        old = s.rules
        s.rules = {}
        for rule in self.library.rules_for(s.measurement, tags, s.reported):
            s.rules[rule.id] = self._bound(s, rule, source, old)
        s.cycle_parts = [b for b in s.rules.values() if isinstance(b.ev, CycleParticipant)]
        s.cycle = next((b for b in s.rules.values() if isinstance(b.ev, CycleEvaluator)), None)
        if s.cycle is None and s.cycle_parts:  # cycles by batch tag unless a rule says otherwise
            rule = self.library.compile(DEFAULT_CYCLE_PROFILE, CycleRule(id="cycle"))
            s.cycle = s.rules[rule.id] = self._bound(s, rule, source, old)
        s.bound = [b for b in s.rules.values() if not b.ev.on_arrival and b.field]
        s.feeds = [(b.field, b.ev.feed) for b in s.bound]  # type: ignore[misc]
        s.arrival = [b for b in s.rules.values() if b.ev.on_arrival]
        s.status_rules = [b for b in s.rules.values() if b.ev.on_status]
        s.suppressors = [b for b in s.rules.values() if b.rule.spec.suppress_when]
        s.dirty = True

    def _bound(self, s: _Series, rule: CompiledRule, source: str, old: dict[str, _Bound]) -> _Bound:
        self._rules_by_id.setdefault(rule.id, rule)
        b = old.get(rule.id)
        if b is not None and b.rule is not rule and b.rule.fingerprint == rule.fingerprint:
            b.rule = b.point.rule = rule  # reloaded, unchanged: keeps its state
        if b is None or b.rule is not rule or b.point.source != source:
            point = _Point(self.alerts, rule, source, s.name)
            b = _Bound(rule, point, rule.spec.build(point))
            saved = self._saved_rules.pop((rule.id, s.name), None)
            if saved is not None and saved[0] == rule.fingerprint:
                b.ev.load(saved[1])
        return b

    def reload(self, config: RulesConfig, library: RuleLibrary) -> list[str]:
        """Apply new rules, profiles and bindings without a restart (config reload).

        Every series is bound again: a rule whose parameters are unchanged keeps its evaluator
        and state; a changed or new one starts afresh (as after a restart with that change) and
        judges from the next reading; open alerts stay open in the lifecycle. Returns the ids of
        the rules that changed, were added or removed.
        """
        old = {r.id: r.fingerprint for r in self.library.all_rules()}
        new = {r.id: r.fingerprint for r in library.all_rules()}
        self.config = config
        self.library = library
        self.enabled = config.enabled
        self.lateness = to_ns(config.lateness)
        self._rules_by_id = {r.id: r for r in library.all_rules()}
        mgr = self.alerts
        mgr.retro_ns = to_ns(config.retrospective_after)
        mgr.max_shelve_ns = to_ns(config.max_shelve)
        mgr.escalate_after_ns = to_ns(config.escalation.after)
        mgr.max_tier = config.escalation.max_tier
        self._snapshot_interval = to_ns(config.snapshot_interval)
        self._kpi_interval = to_ns(config.kpi_interval)
        for s in self._series.values():
            self._bind(s, s.tags)
        return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))

    # -- ingest ------------------------------------------------------------------------------
    def process(self, readings: Sequence[Reading]) -> list[AlertEvent]:
        """Evaluate readings that were just committed to the journal; returns the alert events."""
        if not self.enabled or not readings:
            return []
        now = self.clock.now_ns()
        if self.lateness == 0:
            batch = sorted(readings, key=_TS) if len(readings) > 1 else readings
            for r in batch:
                s = self._series_for(r)
                ctx = EvalContext(now, r.received_ns, r.tags)
                if s.arrival:
                    self._arrive(ctx, s, r)
                self._feed(ctx, s, r)
                if r.received_ns > self._max_received:
                    self._max_received = r.received_ns
        else:
            touched: dict[str, _Series] = {}
            for r in readings:
                s = self._series_for(r)
                if s.arrival:
                    self._arrive(EvalContext(now, r.received_ns, r.tags), s, r)
                if r.ts_ns < s.last_ts:
                    self._skip(r)
                    continue
                bisect.insort_right(s.pending, r, key=_TS)
                if r.ts_ns > s.max_seen:
                    s.max_seen = r.ts_ns
                touched[s.name] = s
            for s in touched.values():
                self._release(s, now)
        self.stats["readings"] += len(readings)
        self.store.commit()
        events = self.alerts.take_events()
        self.stats["events"] += len(events)
        return events

    def _skip(self, r: Reading) -> None:
        self.stats["replayed" if r.received_ns <= self._replay_until else "late"] += 1

    def _arrive(self, ctx: EvalContext, s: _Series, r: Reading) -> None:
        for b in s.arrival:
            b.ev.arrived(ctx, r)
        s.dirty = True

    def _feed(self, ctx: EvalContext, s: _Series, r: Reading) -> None:
        ts = r.ts_ns
        if ts < s.last_ts:
            self._skip(r)
            return
        s.last_ts = ts
        if s.cycle is not None:
            self._cycles.step(ctx, s, r)
            s.dirty = True
        if not s.bound:
            return
        s.dirty = True
        if s.suppressors:
            self._suppress(ctx, s, r)
        get = r.fields.get
        for field, feed in s.feeds:
            v = get(field)
            if v is not None:
                feed(ctx, ts, v, r)

    def _suppress(self, ctx: EvalContext, s: _Series, r: Reading) -> None:
        tags = r.tags
        for b in s.suppressors:
            on = any(tags.get(k) in vals for k, vals in b.rule.spec.suppress_when.items())
            if on != b.point.suppressed:
                b.point.suppressed = on
                self.alerts.set_suppressed(ctx, b.rule, b.point.source, on, r.ts_ns)

    def _release(self, s: _Series, now: int, everything: bool = False) -> None:
        """Evaluate the readings of the reorder buffer that are due at wall time `now` (all of
        them with `everything`)."""
        pending = s.pending
        if everything:
            cut = len(pending)
        else:
            watermark = s.max_seen - self.lateness
            deadline = now - self.lateness
            cut = 0
            for i, r in enumerate(pending):
                if r.ts_ns <= watermark or r.received_ns <= deadline:
                    cut = i + 1
        if cut:
            ready, s.pending = pending[:cut], pending[cut:]
            for r in ready:
                self._feed(EvalContext(now, r.received_ns, r.tags), s, r)
                if r.received_ns > self._max_received:
                    self._max_received = r.received_ns
        if s.pending:
            self._waiting[s.name] = s
        else:
            self._waiting.pop(s.name, None)

    def flush(self) -> list[AlertEvent]:
        """Evaluate everything waiting in reorder buffers (shutdown, end of a replay, tests)."""
        now = self.clock.now_ns()
        for s in list(self._waiting.values()):
            self._release(s, now, everything=True)
        self.store.commit()
        return self.alerts.take_events()

    # -- time --------------------------------------------------------------------------------
    def tick(
        self, now_ns: int | None = None, sources: Sequence[SourceStatus] = ()
    ) -> list[AlertEvent]:
        """Wall-clock work: reorder-buffer deadlines, stale data, device liveness (from the
        collectors' `sources`), shelve expiry, escalation, re-alarm, and the periodic rule-state
        snapshot. Call about once a second."""
        now = self.clock.now_ns() if now_ns is None else now_ns
        if not self.enabled:
            return []
        mgr = self.alerts
        for s in list(self._waiting.values()):
            self._release(s, now)
        for s in self._series.values():
            if s.arrival:
                ctx = EvalContext(now, now, s.tags)
                for b in s.arrival:
                    b.ev.check(ctx)
        for st in sources:
            if st.device and st.measurement:
                s = self._series_of(st.measurement, st.tags or {"device": st.device})
                if not s.reported:
                    s.reported = True
                    self._bind(s, s.tags)
                if s.status_rules:
                    ctx = EvalContext(now, now, s.tags)
                    for b in s.status_rules:
                        if b.ev.source_status(ctx, st.online, st.since_ns, st.last_error):
                            s.dirty = True
        mgr.tick(now)
        self._snapshot_step(now)
        self.store.commit()
        events = mgr.take_events()
        self.stats["events"] += len(events)
        return events

    def kpis(self, now_ns: int | None = None) -> AlarmKpis:
        now = self.clock.now_ns() if now_ns is None else now_ns
        return compute_kpis(self.store, list(self.alerts.open.values()), now)

    def kpi_reading(self, now_ns: int | None = None, gateway: str = "vigil") -> Reading | None:
        """The `alarm_kpi` reading when `kpi_interval` has passed since the last one, else None."""
        now = self.clock.now_ns() if now_ns is None else now_ns
        if self._last_kpi is not None and now - self._last_kpi < self._kpi_interval:
            return None
        self._last_kpi = now
        return self.kpis(now).to_reading(gateway)

    # -- persistence -------------------------------------------------------------------------
    def _resume_point(self) -> int:
        pending = [r.received_ns for s in self._waiting.values() for r in s.pending]
        return min(pending) if pending else self._max_received

    def _save(self, series: list[_Series]) -> None:
        rows: list[tuple[str, str, str, dict[str, Any]]] = []
        series_rows: list[tuple[str, int | None, dict[str, Any]]] = []
        for s in series:
            if not s.dirty:
                continue
            for b in s.rules.values():
                rows.append((b.rule.id, s.name, b.rule.fingerprint, b.ev.dump()))
            last = s.last_ts if s.last_ts > -(2**63) else None
            series_rows.append((s.name, last, {"tags": s.tags}))
            s.dirty = False
        self.store.save_rule_states(rows)
        self.store.save_series(series_rows)

    def _set_resume(self, resume: int) -> None:
        if resume:
            self.store.set_meta("resume_from_received_ns", str(resume - RESUME_MARGIN_NS))
            self.resume_from_ns = resume - RESUME_MARGIN_NS

    def _snapshot_step(self, now: int) -> None:
        """Save rule state in rounds of SNAPSHOT_CHUNK series per tick, so a large fleet never
        stalls the event loop; the resume point moves only when a round is complete."""
        if self._round is None:
            if now - self._last_snapshot < self._snapshot_interval:
                return
            self._round = [s for s in self._series.values() if s.dirty]
            self._round_resume = self._resume_point()
            self._last_snapshot = now
        chunk, self._round = self._round[:SNAPSHOT_CHUNK], self._round[SNAPSHOT_CHUNK:]
        self._save(chunk)
        if not self._round:
            self._round = None
            self._set_resume(self._round_resume)
        self.store.commit()

    def snapshot(self, now_ns: int | None = None) -> None:
        """Save the state of every series changed since the last snapshot, at once."""
        self._save(list(self._series.values()))
        self._set_resume(self._resume_point())
        self._round = None
        self.store.commit()
        self._last_snapshot = self.clock.now_ns() if now_ns is None else now_ns

    def close(self) -> None:
        """Snapshot rule state (readings still in reorder buffers are replayed after restart)."""
        self.snapshot()

    # -- actions (the API) -------------------------------------------------------------------
    def ack(self, alert_id: int, by: str, comment: str | None = None) -> ActionResult:
        return self.alerts.ack(alert_id, by, comment)

    def shelve(
        self, alert_id: int, by: str, reason: str, duration_s: float | None = None
    ) -> ActionResult:
        return self.alerts.shelve(alert_id, by, reason, duration_s)

    def unshelve(self, alert_id: int, by: str, reason: str | None = None) -> ActionResult:
        return self.alerts.unshelve(alert_id, by, reason)

    def close_alert(self, alert_id: int, by: str, reason: str) -> ActionResult:
        return self.alerts.close(alert_id, by, reason)

    def set_out_of_service(
        self, source: str, by: str, reason: str, out: bool = True, rule: str = "*"
    ) -> list[ActionResult]:
        return self.alerts.set_out_of_service(source, by, reason, out, rule)

    # -- production cycles -------------------------------------------------------------------
    def drain_readings(self) -> list[Reading]:
        """Readings the engine made since the last call (a `cycle` reading per finished cycle);
        write them like collected readings. They are outputs: do not feed them back in."""
        return self._cycles.drain()

    def list_cycles(
        self,
        device: str | None = None,
        batch: str | None = None,
        since_ns: int | None = None,
        verdict: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Cycle]:
        """Cycle summaries, newest first (`since_ns`: started at or after, event time)."""
        return self.cycles.list_cycles(device, batch, since_ns, verdict, status, limit)

    def get_cycle(self, cycle_id: int) -> Cycle | None:
        return self.cycles.get_cycle(cycle_id)

    # -- introspection -----------------------------------------------------------------------
    def rules_of(self, measurement: str, device: str) -> list[str]:
        s = self._series.get((measurement, device))
        return list(s.rules) if s else []

    def mkt(self, measurement: str, device: str) -> dict[str, tuple[float | None, float]]:
        """Current MKT (°C, window coverage) per MKT rule of a series, for reports and the API."""
        s = self._series.get((measurement, device))
        if s is None:
            return {}
        return {rid: b.ev.current() for rid, b in s.rules.items() if isinstance(b.ev, MktEvaluator)}
