"""Cycle / batch summaries: the record a production run leaves behind, kept next to the alerts.

The `cycle` rule kind (alert_rules/kinds/cycle.py) delimits cycles per device; `CycleKeeper` is
the engine's side of it: it opens a row in the `cycles` table when a cycle starts, collects the
verdicts of the cycle participants (`f0`, `hold`) when it ends, stores the summary (start, end,
phases with their start/end and min/max, min/max per field, F0, verdict with reasons, the ids of
the alerts raised during the cycle or active when it began) and queues a `cycle` reading
(gateway.core.schema.CYCLE) for InfluxDB, which the gateway collects with `engine.drain_readings()`.

The table lives in the alert store's SQLite file and is written in the same transactions, so a
summary and the alerts it names are committed together. Rows are keyed by (series, start), so a
replay of the journal after a restart updates a cycle instead of adding it twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from alert_rules.context import EvalContext
from alert_rules.kinds.cycle import CycleEvaluator, CycleParticipant
from alert_rules.lifecycle import AlertManager
from alert_rules.store import AlertStore
from gateway.core.i18n import Text
from gateway.core.reading import FieldValue, Reading
from gateway.core.schema import CYCLE
from gateway.core.sqlite import Where

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series TEXT NOT NULL, source TEXT NOT NULL, rule TEXT NOT NULL,
    line TEXT, equipment TEXT, device TEXT NOT NULL, batch TEXT,
    start_ns INTEGER NOT NULL, end_ns INTEGER, status TEXT NOT NULL,
    verdict TEXT, f0_min REAL, summary TEXT NOT NULL,
    UNIQUE (series, start_ns)
);
CREATE INDEX IF NOT EXISTS cycles_device ON cycles(device, start_ns);
CREATE INDEX IF NOT EXISTS cycles_batch ON cycles(batch, start_ns);
CREATE INDEX IF NOT EXISTS cycles_start ON cycles(start_ns);
"""

RUNNING = "running"
COMPLETE = "complete"
PASS = "pass"
FAIL = "fail"
_SUMMARY_KEYS = (
    "phases",
    "min",
    "max",
    "results",
    "reasons",
    "reason_texts",
    "alert_ids",
    "data_gaps",
)


@dataclass(slots=True)
class Cycle:
    """One cycle's summary. Times are event time (UTC ns); `verdict` is None when no rule judged
    the cycle, `reasons` says why it failed, `results` holds each participant rule's result."""

    id: int
    series: str
    source: str
    rule: str
    device: str
    line: str | None
    equipment: str | None
    batch: str | None
    start_ns: int
    end_ns: int | None
    status: str
    verdict: str | None = None
    f0_min: float | None = None
    reasons: list[str] = field(default_factory=list)
    """In English; `reason_texts` holds them as gateway.core.i18n.Text documents."""
    reason_texts: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    """[{phase, start_ns, end_ns, min: {field: v}, max: {field: v}}] in order."""
    min: dict[str, float] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    alert_ids: list[int] = field(default_factory=list)
    data_gaps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def duration_s(self) -> float | None:
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e9


def _from_row(row: sqlite3.Row) -> Cycle:
    d = dict(row)
    summary = json.loads(d.pop("summary"))
    return Cycle(**d, **{k: summary[k] for k in _SUMMARY_KEYS if k in summary})


class CycleStore:
    """The `cycles` table, on an AlertStore's connection (commits with it)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.executescript(_SCHEMA)

    @classmethod
    def of(cls, store: AlertStore) -> CycleStore:
        return cls(store.db)

    def open(self, series: str, source: str, rule: str, tags: dict[str, str], start_ns: int) -> int:
        """Insert a running cycle (idempotent per series and start); returns its id."""
        self.db.execute(
            "INSERT INTO cycles (series, source, rule, line, equipment, device, batch, start_ns, "
            "status, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{}') "
            "ON CONFLICT(series, start_ns) DO NOTHING",
            (
                series,
                source,
                rule,
                tags.get("line"),
                tags.get("equipment"),
                tags.get("device", ""),
                tags.get("batch"),
                start_ns,
                RUNNING,
            ),
        )
        row = self.db.execute(
            "SELECT id FROM cycles WHERE series = ? AND start_ns = ?", (series, start_ns)
        ).fetchone()
        return int(row[0])

    def save(self, c: Cycle) -> None:
        summary = json.dumps(
            {k: getattr(c, k) for k in _SUMMARY_KEYS}, separators=(",", ":"), sort_keys=True
        )
        self.db.execute(
            "UPDATE cycles SET end_ns = ?, status = ?, verdict = ?, f0_min = ?, batch = ?, "
            "summary = ? WHERE id = ?",
            (c.end_ns, c.status, c.verdict, c.f0_min, c.batch, summary, c.id),
        )

    def get_cycle(self, cycle_id: int) -> Cycle | None:
        row = self.db.execute("SELECT * FROM cycles WHERE id = ?", (cycle_id,)).fetchone()
        return _from_row(row) if row else None

    def list_cycles(
        self,
        device: str | None = None,
        batch: str | None = None,
        since_ns: int | None = None,
        verdict: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Cycle]:
        """Newest first; `since_ns` compares with the cycle's start (event time)."""
        where, args = (
            Where()
            .eq("device", device)
            .eq("batch", batch)
            .eq("verdict", verdict)
            .eq("status", status)
            .ge("start_ns", since_ns)
            .build()
        )
        args.append(limit)
        sql = f"SELECT * FROM cycles{where} ORDER BY start_ns DESC, id DESC LIMIT ?"
        return [_from_row(r) for r in self.db.execute(sql, args)]

    def alerts_raised(self, source: str, start_ns: int, end_ns: int) -> list[int]:
        """Alerts on the source raised during the cycle (its own and those on its conditions)."""
        rows = self.db.execute(
            "SELECT id FROM alerts WHERE source = ? AND raised_at BETWEEN ? AND ? ORDER BY id",
            (source, start_ns, end_ns),
        )
        return [int(r[0]) for r in rows]

    def cycle_alerts(self, cycle_id: int) -> list[int]:
        """The alerts that judge this cycle (carrying its id)."""
        rows = self.db.execute("SELECT id FROM alerts WHERE cycle_id = ? ORDER BY id", (cycle_id,))
        return [int(r[0]) for r in rows]


class _Bound(Protocol):
    """A rule bound to a series (engine._Bound)."""

    @property
    def rule(self) -> Any: ...
    @property
    def point(self) -> Any: ...
    @property
    def ev(self) -> Any: ...


class _Series(Protocol):
    """What the keeper needs of the engine's per-series state."""

    @property
    def name(self) -> str: ...
    @property
    def cycle(self) -> _Bound | None: ...
    @property
    def cycle_parts(self) -> Sequence[_Bound]: ...


def cycle_reading(c: Cycle, received_ns: int) -> Reading:
    """The `cycle` reading of a finished cycle, stamped with its end (event time)."""
    tags = {
        k: v
        for k, v in (
            ("line", c.line),
            ("equipment", c.equipment),
            ("device", c.device),
            ("batch", c.batch),
        )
        if v
    }
    fields: dict[str, FieldValue] = {
        "duration_s": float(c.duration_s or 0.0),
        "alerts": len(c.alert_ids),
        "data_gaps": c.data_gaps,
    }
    if c.verdict is not None:
        fields["verdict"] = 1 if c.verdict == PASS else 0
    if c.f0_min is not None:
        fields["f0_min"] = float(c.f0_min)
    hold = next((r["hold_s"] for r in c.results.values() if "hold_s" in r), None)
    if hold is not None:
        fields["hold_s"] = float(hold)
    return Reading(CYCLE.name, tags, fields, c.end_ns or c.start_ns, received_ns)


class CycleKeeper:
    """Drives the cycle rule of each series from the engine and keeps the records."""

    def __init__(self, store: AlertStore, alerts: AlertManager) -> None:
        self.store = CycleStore.of(store)
        self.alerts = alerts
        self.readings: list[Reading] = []
        """`cycle` readings of finished cycles, until drained."""

    def step(self, ctx: EvalContext, s: _Series, r: Reading) -> None:
        """Account one reading of a series with a cycle rule (called before the rules see it)."""
        b = s.cycle
        assert b is not None
        ev: CycleEvaluator = b.ev
        end, start = ev.boundary(r)
        if end:
            self._end(ctx, s, b, r)
        if start:
            self._begin(s, b, r)
        ev.observe(r)

    def _begin(self, s: _Series, b: _Bound, r: Reading) -> None:
        source = b.point.source
        active = sorted(a.id for a in self.alerts.open.values() if a.source == source and a.active)
        cid = self.store.open(s.name, source, b.rule.id, r.tags, r.ts_ns)
        b.ev.begin(r, cid, active)
        for p in s.cycle_parts:
            p.ev.start_cycle(r.ts_ns, cid)

    def _end(self, ctx: EvalContext, s: _Series, b: _Bound, r: Reading) -> None:
        ev: CycleEvaluator = b.ev
        ts = r.ts_ns
        info = ev.info(ts)
        # alerts about the cycle carry its batch and phase, not those of the reading that ended it
        cctx = EvalContext(ctx.wall_ns, ctx.received_ns, ev.tags or r.tags)
        results: dict[str, dict[str, Any]] = {}
        for p in s.cycle_parts:
            part: CycleParticipant = p.ev
            results[p.rule.id] = {"kind": p.rule.kind, **part.end_cycle(cctx, ts, r, info)}
        summary = ev.end(cctx, ts)
        texts: list[Text] = list(summary["reasons"])
        for rid, res in results.items():
            docs = res.get("reason_texts")
            whys = [Text.from_json(d) for d in docs] if docs else res.get("reasons", [])
            texts += [Text("{rule}: {why}", {"rule": rid, "why": w}) for w in whys if w]
        judged = summary["judged"] or any(res.get("passed") is not None for res in results.values())
        failed = bool(summary["reasons"]) or any(
            res.get("passed") is False for res in results.values()
        )
        verdict = (FAIL if failed else PASS) if judged else None
        f0 = next((res["f0_min"] for res in results.values() if "f0_min" in res), None)
        start = summary["start_ns"]
        ids = set(summary["active_alerts"]) | set(
            self.store.alerts_raised(b.point.source, start, ts)
        )
        if summary["cycle_id"] is not None:  # this cycle's own alarms, whenever raised
            ids |= set(self.store.cycle_alerts(summary["cycle_id"]))
        tags = summary["tags"]
        cycle = Cycle(
            id=summary["cycle_id"],
            series=s.name,
            source=b.point.source,
            rule=b.rule.id,
            device=tags.get("device", ""),
            line=tags.get("line"),
            equipment=tags.get("equipment"),
            batch=summary["batch"],
            start_ns=start,
            end_ns=ts,
            status=COMPLETE,
            verdict=verdict,
            f0_min=f0,
            reasons=[str(t) for t in texts],
            reason_texts=[t.to_json() for t in texts],
            phases=summary["phases"],
            min=summary["min"],
            max=summary["max"],
            results=results,
            alert_ids=sorted(ids),
            data_gaps=sum(int(res.get("gaps", 0)) for res in results.values()),
        )
        if cycle.id is None:  # state lost (should not happen): record it anyway
            cycle.id = self.store.open(s.name, b.point.source, b.rule.id, tags, start)
        self.store.save(cycle)
        self.readings.append(cycle_reading(cycle, ctx.wall_ns))

    def drain(self) -> list[Reading]:
        out, self.readings = self.readings, []
        return out
