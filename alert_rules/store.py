"""Durable alert store next to the journal (SQLite, WAL, synchronous=FULL).

Tables: `alerts` (one row per alert, updated in place), `alert_log` (every transition and action,
append-only: KPIs and the history of each alert come from it), `points` (out-of-service flags),
`rule_state` / `series_state` (the engine's snapshot, so timers resume after a restart) and `meta`.

Single-threaded by design: the engine, tick loop and API actions run on the gateway's event loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

from alert_rules.model import Alert, AlertKey, AlertState, Priority
from gateway.core.sqlite import Where, connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL, source TEXT NOT NULL, severity TEXT NOT NULL, kind TEXT NOT NULL,
    state TEXT NOT NULL, active INTEGER NOT NULL,
    started_at INTEGER NOT NULL, raised_at INTEGER NOT NULL, activated_at INTEGER NOT NULL,
    detected_at INTEGER NOT NULL, message TEXT NOT NULL, value REAL, peak REAL,
    ended_at INTEGER, cleared_at INTEGER, retrospective INTEGER NOT NULL,
    latching INTEGER NOT NULL, activations INTEGER NOT NULL, tier INTEGER NOT NULL,
    escalated_at INTEGER, acked_by TEXT, acked_at INTEGER, shelved_by TEXT, shelved_at INTEGER,
    shelved_until INTEGER, shelve_reason TEXT, closed_by TEXT, closed_at INTEGER,
    close_reason TEXT, series TEXT NOT NULL, field TEXT NOT NULL, tags TEXT NOT NULL,
    text TEXT,
    cycle_id INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state);
CREATE INDEX IF NOT EXISTS alerts_source ON alerts(source, raised_at);
CREATE INDEX IF NOT EXISTS alerts_raised ON alerts(raised_at);
CREATE INDEX IF NOT EXISTS alerts_point ON alerts(rule, source, activated_at);
CREATE TABLE IF NOT EXISTS alert_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL, rule TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
    old_state TEXT, new_state TEXT NOT NULL, at_ns INTEGER NOT NULL, wall_ns INTEGER NOT NULL,
    by TEXT, reason TEXT, annunciated INTEGER NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS alert_log_wall ON alert_log(wall_ns);
CREATE INDEX IF NOT EXISTS alert_log_alert ON alert_log(alert_id);
CREATE TABLE IF NOT EXISTS points (
    rule TEXT NOT NULL, source TEXT NOT NULL, out_of_service INTEGER NOT NULL,
    by TEXT, reason TEXT, at_ns INTEGER, PRIMARY KEY (rule, source)
);
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT NOT NULL, series TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (rule, series)
);
CREATE TABLE IF NOT EXISTS series_state (
    series TEXT PRIMARY KEY, last_ts INTEGER, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS alerts_cycle ON alerts(cycle_id) WHERE cycle_id IS NOT NULL;
"""

_COLS = [f.name for f in fields(Alert)]
_INSERT_COLS = [c for c in _COLS if c != "id"]
_BOOL = {"active", "retrospective", "latching"}


def _to_row(a: Alert) -> list[Any]:
    out: list[Any] = []
    for c in _INSERT_COLS:
        v = getattr(a, c)
        if c == "tags":
            v = json.dumps(v, sort_keys=True)
        elif c == "text":
            v = None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        elif c in _BOOL:
            v = int(v)
        elif c in ("severity", "state"):
            v = str(v)
        out.append(v)
    return out


def _from_row(row: sqlite3.Row) -> Alert:
    d = dict(row)
    d["severity"] = Priority(d["severity"])
    d["state"] = AlertState(d["state"])
    d["tags"] = json.loads(d["tags"])
    d["text"] = json.loads(d["text"]) if d.get("text") else None
    for c in _BOOL:
        d[c] = bool(d[c])
    return Alert(**d)


class AlertStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # Python's implicit transactions: the engine commits once per process() / tick().
        self.db = connect(
            self.path,
            synchronous="FULL",
            check_same_thread=True,
            autocommit=False,
            busy_timeout_ms=None,
        )
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)
        self._migrate()
        self.db.executescript(_INDEXES)
        self.db.commit()

    def _migrate(self) -> None:
        """Columns added since a store was created (an upgrade keeps its alerts)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(alerts)")}
        if "text" not in have:  # a store from before alert texts were kept
            self.db.execute("ALTER TABLE alerts ADD COLUMN text TEXT")
        if "cycle_id" not in have:  # a store from before per-cycle alarms
            self.db.execute("ALTER TABLE alerts ADD COLUMN cycle_id INTEGER")

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    def commit(self) -> None:
        self.db.commit()

    # -- alerts ------------------------------------------------------------------------------
    def insert_alert(self, alert: Alert) -> int:
        cur = self.db.execute(
            f"INSERT INTO alerts ({', '.join(_INSERT_COLS)}) "
            f"VALUES ({', '.join('?' * len(_INSERT_COLS))})",
            _to_row(alert),
        )
        alert.id = int(cur.lastrowid)  # type: ignore[arg-type]
        return alert.id

    def update_alert(self, alert: Alert) -> None:
        self.db.execute(
            f"UPDATE alerts SET {', '.join(f'{c} = ?' for c in _INSERT_COLS)} WHERE id = ?",
            [*_to_row(alert), alert.id],
        )

    def get_alert(self, alert_id: int) -> Alert | None:
        row = self.db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _from_row(row) if row else None

    def list_alerts(
        self,
        state: AlertState | str | None = None,
        source: str | None = None,
        since_ns: int | None = None,
        rule: str | None = None,
        open_only: bool = False,
        limit: int = 1000,
        severity: str | None = None,
        until_ns: int | None = None,
        active: bool | None = None,
    ) -> list[Alert]:
        """Newest first. `since_ns`/`until_ns` compare with raised_at (event time); `source`
        may end in *."""
        w = Where().eq("state", None if state is None else str(state))
        if open_only:
            w.raw("state != 'normal'")
        if active is not None:
            w.raw("active = ?", int(active))
        where, args = (
            w.eq_or_prefix("source", source)
            .ge("raised_at", since_ns)
            .lt("raised_at", until_ns)
            .eq("rule", rule)
            .eq("severity", severity)
            .build()
        )
        args.append(limit)
        sql = f"SELECT * FROM alerts{where} ORDER BY raised_at DESC, id DESC LIMIT ?"
        return [_from_row(r) for r in self.db.execute(sql, args)]

    def open_alerts(self) -> list[Alert]:
        return [
            _from_row(r)
            for r in self.db.execute("SELECT * FROM alerts WHERE state != 'normal' ORDER BY id")
        ]

    def last_activations(self) -> dict[AlertKey, int]:
        """Latest activation (event time) per alarm point and cycle: replays after a restart
        skip these."""
        rows = self.db.execute(
            "SELECT rule, source, cycle_id, MAX(activated_at) FROM alerts "
            "GROUP BY rule, source, cycle_id"
        )
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    # -- log ---------------------------------------------------------------------------------
    def log(
        self,
        alert: Alert,
        kind: str,
        old_state: str | None,
        at_ns: int,
        wall_ns: int,
        by: str | None,
        reason: str | None,
        annunciated: bool,
    ) -> int:
        """Append one transition; returns its id (the `transition` of a notification's key)."""
        cur = self.db.execute(
            "INSERT INTO alert_log (alert_id, rule, source, kind, old_state, new_state, at_ns, "
            "wall_ns, by, reason, annunciated, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.id,
                alert.rule,
                alert.source,
                kind,
                old_state,
                str(alert.state),
                at_ns,
                wall_ns,
                by,
                reason,
                int(annunciated),
                alert.value,
            ),
        )
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def history(self, alert_id: int) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute(
                "SELECT * FROM alert_log WHERE alert_id = ? ORDER BY id", (alert_id,)
            )
        ]

    def log_since(self, wall_ns: int, kinds: Iterable[str]) -> list[dict[str, Any]]:
        where, args = Where().raw("wall_ns >= ?", wall_ns).in_("kind", kinds).build()
        return [
            dict(r)
            for r in self.db.execute(
                f"SELECT * FROM alert_log{where} ORDER BY rule, source, at_ns", args
            )
        ]

    def prune(self, before_ns: int) -> tuple[int, int]:
        """Delete what the records floor lets go: alerts back to normal whose last change was
        before `before_ns`, with their log, and log rows that old of any alert not open.
        Returns (alerts, log rows) deleted; the caller commits."""
        done = (
            "state = 'normal' AND MAX(raised_at, COALESCE(cleared_at, 0), COALESCE(closed_at, 0),"
            " COALESCE(acked_at, 0)) < ?"
        )
        log_rows = self.db.execute(
            f"DELETE FROM alert_log WHERE alert_id IN (SELECT id FROM alerts WHERE {done})",
            (before_ns,),
        ).rowcount
        alerts = self.db.execute(f"DELETE FROM alerts WHERE {done}", (before_ns,)).rowcount
        log_rows += self.db.execute(
            "DELETE FROM alert_log WHERE wall_ns < ? AND alert_id NOT IN"
            " (SELECT id FROM alerts WHERE state != 'normal')",
            (before_ns,),
        ).rowcount
        return int(alerts), int(log_rows)

    def state_counts(self) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT state, COUNT(*) FROM alerts WHERE state != 'normal' GROUP BY state"
            )
        }

    # -- alarm points ------------------------------------------------------------------------
    def set_out_of_service(
        self, rule: str, source: str, oos: bool, by: str, reason: str, at_ns: int
    ) -> None:
        self.db.execute(
            "INSERT INTO points (rule, source, out_of_service, by, reason, at_ns) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(rule, source) DO UPDATE SET "
            "out_of_service = excluded.out_of_service, by = excluded.by, "
            "reason = excluded.reason, at_ns = excluded.at_ns",
            (rule, source, int(oos), by, reason, at_ns),
        )

    def out_of_service(self) -> set[tuple[str, str]]:
        return {
            (r[0], r[1])
            for r in self.db.execute("SELECT rule, source FROM points WHERE out_of_service = 1")
        }

    # -- engine snapshot ---------------------------------------------------------------------
    def save_rule_states(self, rows: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO rule_state (rule, series, fingerprint, state) "
            "VALUES (?, ?, ?, ?)",
            ((r, s, f, json.dumps(st, separators=(",", ":"))) for r, s, f, st in rows),
        )

    def load_rule_states(self) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        return {
            (r[0], r[1]): (r[2], json.loads(r[3]))
            for r in self.db.execute("SELECT rule, series, fingerprint, state FROM rule_state")
        }

    def save_series(self, rows: Iterable[tuple[str, int | None, dict[str, Any]]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO series_state (series, last_ts, state) VALUES (?, ?, ?)",
            ((s, t, json.dumps(st, separators=(",", ":"))) for s, t, st in rows),
        )

    def load_series(self) -> dict[str, tuple[int | None, dict[str, Any]]]:
        return {
            r[0]: (r[1], json.loads(r[2]))
            for r in self.db.execute("SELECT series, last_ts, state FROM series_state")
        }

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
