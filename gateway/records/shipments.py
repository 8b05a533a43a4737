"""Shipments: a product profile travelling on an asset (a truck) from start to stop.

A shipment is the transport view of a transport leg of one or more lots (gateway/records/lots.py
opens and closes both together). The registry is persisted in `DATA_DIR/shipments.sqlite`:

* `enrich(readings)` (a JournalWriter enricher) tags readings of the asset with `shipment=ID`
  when their *event time* falls inside the shipment, so a truck that uploads six hours of buffered
  readings after the stop still gets them tagged with the shipment they belong to. Tag dicts are
  shared between readings, so a reading gets a new dict, never an edited one.
* `record(readings)` (a JournalWriter listener, after commit) keeps every tagged reading in the
  table `shipment_readings`: the durable source for the shipment report, because the journal
  deletes rows `retention_hours` after they were forwarded. `recover(journal)` at startup copies
  tagged rows the listener may have missed (a crash between commit and listener);
  `insert_readings` takes the rows a backdated shipment finds in the journal.
* start / stop (at explicit times: a shipment recorded after the fact) / approve, each returning
  the old and new record for the audit trail.
* `prune_readings` deletes old shipment readings, except those a lot still holds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.core.lineprotocol import LineProtocolError, encode, parse_line
from gateway.core.ports import JournalReader, RetentionHold
from gateway.core.reading import Reading
from gateway.core.sqlite import ChangeWatch, Where, connect, transaction

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
TAG = "shipment"
RECENT_NS = 30 * 86_400 * 1_000_000_000
"""Stopped shipments this recent stay in the tagging index, for late buffered uploads."""
REFRESH_S = 1.0
"""How often the registry looks whether another process (the CLI) changed the file."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    id TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    site TEXT,
    profile TEXT NOT NULL,
    product TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    destination TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    started_at_ns INTEGER NOT NULL,
    started_by TEXT NOT NULL,
    start_reason TEXT,
    stopped_at_ns INTEGER,
    stopped_by TEXT,
    stop_reason TEXT,
    approved_at_ns INTEGER,
    approved_by TEXT,
    approved_name TEXT,
    approval_meaning TEXT,
    approved_digest TEXT,
    rejected_at_ns INTEGER,
    rejected_by TEXT,
    rejected_name TEXT,
    rejection_meaning TEXT,
    rejection_reason TEXT
);
CREATE INDEX IF NOT EXISTS shipments_asset ON shipments(asset, started_at_ns);
CREATE TABLE IF NOT EXISTS shipment_readings (
    shipment_id TEXT NOT NULL,
    measurement TEXT NOT NULL,
    device TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (shipment_id, measurement, device, ts_ns)
) WITHOUT ROWID;
"""


class ShipmentError(ValueError):
    """A shipment change that is not allowed (the message says why)."""


class ShipmentNotFound(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class Shipment:
    id: str
    asset: str
    site: str | None
    profile: str
    product: str
    origin: str
    destination: str
    note: str
    started_at_ns: int
    started_by: str
    start_reason: str | None = None
    stopped_at_ns: int | None = None
    stopped_by: str | None = None
    stop_reason: str | None = None
    approved_at_ns: int | None = None
    approved_by: str | None = None
    approved_name: str | None = None
    approval_meaning: str | None = None
    approved_digest: str | None = None
    """SHA-256 of the report content QA signed (21 CFR 11.70: signature linked to record)."""
    rejected_at_ns: int | None = None
    rejected_by: str | None = None
    rejected_name: str | None = None
    rejection_meaning: str | None = None
    rejection_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at_ns is None

    @property
    def status(self) -> str:
        if self.stopped_at_ns is None:
            return "active"
        if self.approved_at_ns is not None:
            return "approved"
        return "rejected" if self.rejected_at_ns is not None else "stopped"

    def contains(self, ts_ns: int) -> bool:
        return self.started_at_ns <= ts_ns and (
            self.stopped_at_ns is None or ts_ns < self.stopped_at_ns
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status
        return d


_COLS = [
    "id",
    "asset",
    "site",
    "profile",
    "product",
    "origin",
    "destination",
    "note",
    "started_at_ns",
    "started_by",
    "start_reason",
    "stopped_at_ns",
    "stopped_by",
    "stop_reason",
    "approved_at_ns",
    "approved_by",
    "approved_name",
    "approval_meaning",
    "approved_digest",
    "rejected_at_ns",
    "rejected_by",
    "rejected_name",
    "rejection_meaning",
    "rejection_reason",
]
_ADDED = {
    "rejected_at_ns": "INTEGER",
    "rejected_by": "TEXT",
    "rejected_name": "TEXT",
    "rejection_meaning": "TEXT",
    "rejection_reason": "TEXT",
    "start_reason": "TEXT",  # a file from before explicit start times
}
"""Columns an older registry lacks (added when opened)."""


class ShipmentRegistry:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # NORMAL: a shipment reading lost to power failure is still in the journal (recover()).
        self._db = connect(self.path, synchronous="NORMAL")
        self._db.executescript(_SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(shipments)")}
        for col, kind in _ADDED.items():
            if col not in have:
                self._db.execute(f"ALTER TABLE shipments ADD COLUMN {col} {kind}")
        self._index: dict[str, tuple[Shipment, ...]] = {}
        self._known: frozenset[str] = frozenset()
        self._watch = ChangeWatch(REFRESH_S)
        self.recorded = 0
        self._reindex()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- queries ------------------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Shipment]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Shipment(*r) for r in rows]

    def get(self, shipment_id: str) -> Shipment | None:
        found = self._rows(f"SELECT {', '.join(_COLS)} FROM shipments WHERE id = ?", (shipment_id,))
        return found[0] if found else None

    def require(self, shipment_id: str) -> Shipment:
        s = self.get(shipment_id)
        if s is None:
            raise ShipmentNotFound(shipment_id)
        return s

    def list_shipments(
        self, status: str | None = None, asset: str | None = None, limit: int = 500
    ) -> list[Shipment]:
        w = Where()
        if status == "active":
            w.raw("stopped_at_ns IS NULL")
        elif status == "stopped":
            w.raw("stopped_at_ns IS NOT NULL AND approved_at_ns IS NULL AND rejected_at_ns IS NULL")
        elif status == "approved":
            w.raw("approved_at_ns IS NOT NULL")
        elif status == "rejected":
            w.raw("rejected_at_ns IS NOT NULL AND approved_at_ns IS NULL")
        where, args = w.eq("asset", asset).build()
        return self._rows(
            f"SELECT {', '.join(_COLS)} FROM shipments{where}"
            " ORDER BY started_at_ns DESC, id LIMIT ?",
            [*args, limit],
        )

    def active_for(self, asset: str) -> Shipment | None:
        found = self._rows(
            f"SELECT {', '.join(_COLS)} FROM shipments WHERE asset = ? AND stopped_at_ns IS NULL",
            (asset,),
        )
        return found[0] if found else None

    # -- changes ------------------------------------------------------------------------------
    def _reindex(self) -> None:
        """Rebuild the asset → shipments index that enrich() reads without a lock, and the ids
        `record()` keeps readings for."""
        since = time.time_ns() - RECENT_NS
        recent = self._rows(
            f"SELECT {', '.join(_COLS)} FROM shipments "
            "WHERE stopped_at_ns IS NULL OR stopped_at_ns >= ? ORDER BY started_at_ns DESC",
            (since,),
        )
        index: dict[str, list[Shipment]] = {}
        for s in recent:
            index.setdefault(s.asset, []).append(s)
        with self._lock:
            ids = self._db.execute("SELECT id FROM shipments").fetchall()
            self._watch.mark(self._db)
        self._index = {k: tuple(v) for k, v in index.items()}
        self._known = frozenset(r[0] for r in ids)

    def refresh(self) -> None:
        """Reload when another connection (the CLI) changed the file; at most every REFRESH_S."""
        if not self._watch.due():
            return
        with self._lock:
            changed = self._watch.changed(self._db)
        if changed:
            self._reindex()

    def start(
        self,
        asset: str,
        profile: str,
        by: str,
        *,
        shipment_id: str | None = None,
        site: str | None = None,
        product: str = "",
        origin: str = "",
        destination: str = "",
        note: str = "",
        now_ns: int | None = None,
        started_at_ns: int | None = None,
        reason: str | None = None,
    ) -> Shipment:
        """Start now, or at `started_at_ns` (a shipment recorded after the fact; the caller
        audits the reason)."""
        now = time.time_ns() if now_ns is None else now_ns
        start = now if started_at_ns is None else started_at_ns
        if not ID_RE.match(asset):
            raise ShipmentError("asset must be 1-64 letters, digits, '_', '.', ':' or '-'")
        if site is not None and not ID_RE.match(site):
            raise ShipmentError("site must be 1-64 letters, digits, '_', '.', ':' or '-'")
        if not profile:
            raise ShipmentError("a shipment needs a product profile")
        with self._lock:
            current = self.active_for(asset)
            if current is not None:
                raise ShipmentError(f"asset {asset} already has active shipment {current.id}")
            if shipment_id is None:
                stamp = datetime.fromtimestamp(start / 1e9, UTC).strftime("%Y%m%d-%H%M%S")
                base = f"SHP-{stamp}-{asset}"[:60]
                shipment_id, n = base, 1
                while self.get(shipment_id) is not None:
                    n += 1
                    shipment_id = f"{base}-{n}"
            elif not ID_RE.match(shipment_id):
                raise ShipmentError("shipment id must be 1-64 letters, digits, '_', '.', ':', '-'")
            elif self.get(shipment_id) is not None:
                raise ShipmentError(f"shipment {shipment_id} already exists")
            s = Shipment(
                shipment_id,
                asset,
                site,
                profile,
                product,
                origin,
                destination,
                note,
                start,
                by,
                reason,
            )
            self._db.execute(
                f"INSERT INTO shipments ({', '.join(_COLS)}) "
                f"VALUES ({', '.join('?' * len(_COLS))})",
                [getattr(s, c) for c in _COLS],
            )
            self._reindex()
        return s

    def stop(
        self,
        shipment_id: str,
        by: str,
        reason: str | None = None,
        now_ns: int | None = None,
        stopped_at_ns: int | None = None,
    ) -> tuple[Shipment, Shipment]:
        """Stop now, or at `stopped_at_ns` (after the start)."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            old = self.require(shipment_id)
            if not old.active:
                raise ShipmentError(f"shipment {shipment_id} was already stopped")
            if stopped_at_ns is not None and stopped_at_ns <= old.started_at_ns:
                raise ShipmentError(
                    f"shipment {shipment_id} cannot stop at or before its start "
                    f"({datetime.fromtimestamp(old.started_at_ns / 1e9, UTC).isoformat()})"
                )
            new = replace(
                old,
                stopped_at_ns=(
                    stopped_at_ns if stopped_at_ns is not None else max(now, old.started_at_ns + 1)
                ),
                stopped_by=by,
                stop_reason=reason,
            )
            self._db.execute(
                "UPDATE shipments SET stopped_at_ns = ?, stopped_by = ?, stop_reason = ? "
                "WHERE id = ?",
                (new.stopped_at_ns, by, reason, shipment_id),
            )
            self._reindex()
        return old, new

    def approve(
        self,
        shipment_id: str,
        by: str,
        name: str,
        meaning: str,
        digest: str | None = None,
        now_ns: int | None = None,
    ) -> tuple[Shipment, Shipment]:
        """Record QA's signed approval of the shipment report (once, after the stop)."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            old = self.require(shipment_id)
            self._check_open(old)
            new = replace(
                old,
                approved_at_ns=now,
                approved_by=by,
                approved_name=name,
                approval_meaning=meaning,
                approved_digest=digest,
            )
            self._db.execute(
                "UPDATE shipments SET approved_at_ns = ?, approved_by = ?, approved_name = ?, "
                "approval_meaning = ?, approved_digest = ? WHERE id = ?",
                (now, by, name, meaning, digest, shipment_id),
            )
            self._reindex()
        return old, new

    def reject(
        self,
        shipment_id: str,
        by: str,
        name: str,
        meaning: str,
        reason: str,
        now_ns: int | None = None,
    ) -> tuple[Shipment, Shipment]:
        """Record QA's signed rejection of the shipment report (once, after the stop): the
        goods are not released; the reason says why."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            old = self.require(shipment_id)
            self._check_open(old)
            new = replace(
                old,
                rejected_at_ns=now,
                rejected_by=by,
                rejected_name=name,
                rejection_meaning=meaning,
                rejection_reason=reason,
            )
            self._db.execute(
                "UPDATE shipments SET rejected_at_ns = ?, rejected_by = ?, rejected_name = ?, "
                "rejection_meaning = ?, rejection_reason = ? WHERE id = ?",
                (now, by, name, meaning, reason, shipment_id),
            )
            self._reindex()
        return old, new

    @staticmethod
    def _check_open(s: Shipment) -> None:
        """A report is approved or rejected once, after the stop."""
        if s.active:
            raise ShipmentError(f"shipment {s.id} is still active: stop it first")
        if s.approved_at_ns is not None:
            raise ShipmentError(f"shipment {s.id} was already approved by {s.approved_by}")
        if s.rejected_at_ns is not None:
            raise ShipmentError(f"shipment {s.id} was already rejected by {s.rejected_by}")

    # -- the data path ------------------------------------------------------------------------
    def enrich(self, readings: Sequence[Reading]) -> None:
        """JournalWriter enricher: tag readings of an asset inside a shipment (event time)."""
        self.refresh()
        index = self._index
        if not index:
            return
        for r in readings:
            tags = r.tags
            asset = tags.get("asset")
            if asset is None:
                continue
            candidates = index.get(asset)
            if candidates is None:
                continue
            for s in candidates:
                if s.contains(r.ts_ns) and (s.site is None or tags.get("site") == s.site):
                    if tags.get(TAG) != s.id:
                        r.tags = {**tags, TAG: s.id}  # never edit the shared dict
                    break

    def record(self, readings: Sequence[Reading]) -> None:
        """JournalWriter listener: keep tagged readings for the shipment report."""
        self.refresh()
        known = self._known
        if not known:
            return
        rows = [
            (
                sid,
                r.measurement,
                r.tags.get("device", ""),
                r.ts_ns,
                r.received_ns,
                encode(r),
            )
            for r in readings
            if (sid := r.tags.get(TAG)) is not None and sid in known
        ]
        if rows:
            self._insert(rows)

    def insert_readings(self, rows: list[tuple[str, str, str, int, int, str]]) -> None:
        """(shipment, measurement, device, ts_ns, received_ns, line) rows found later (a
        backdated shipment's readings, from the journal); duplicates are ignored."""
        if rows:
            self._insert(rows)

    def _insert(self, rows: list[tuple[str, str, str, int, int, str]]) -> None:
        with self._lock, transaction(self._db, immediate=False) as db:
            db.executemany(
                "INSERT OR IGNORE INTO shipment_readings (shipment_id, measurement, device, "
                "ts_ns, received_ns, line) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        self.recorded += len(rows)

    def recover(self, journal: JournalReader, batch: int = 5000) -> int:
        """Copy tagged journal rows the listener may have missed (call once at startup, in a
        worker thread, before the writer runs). Returns rows copied or already present."""
        recent = [
            s
            for s in self.list_shipments(limit=10_000)
            if s.active
            or (s.stopped_at_ns is not None and s.stopped_at_ns >= time.time_ns() - RECENT_NS)
        ]
        if not recent:
            return 0
        since = min(s.started_at_ns for s in recent) - 86_400 * 1_000_000_000
        known = self._known
        rows: list[tuple[str, str, str, int, int, str]] = []
        total = 0
        for jr in journal.lines_since(since):
            if "shipment=" not in jr.line:
                continue
            try:
                measurement, tags, _fields, ts = parse_line(jr.line)
            except LineProtocolError:
                continue
            sid = tags.get(TAG)
            if sid is None or sid not in known or ts is None:
                continue
            rows.append((sid, measurement, tags.get("device", ""), ts, jr.received_ns, jr.line))
            if len(rows) >= batch:
                self._insert(rows)
                total += len(rows)
                rows = []
        if rows:
            self._insert(rows)
            total += len(rows)
        return total

    def readings(self, shipment_id: str) -> Iterable[tuple[str, str, int, str]]:
        """(measurement, device, ts_ns, line) of a shipment, per device in time order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT measurement, device, ts_ns, line FROM shipment_readings "
                "WHERE shipment_id = ? ORDER BY device, measurement, ts_ns",
                (shipment_id,),
            ).fetchall()
        return rows

    def prune(self, before_ns: int, hold: RetentionHold) -> tuple[int, int, list[str]]:
        """Delete shipments stopped before `before_ns` (the records floor) with their readings,
        unless `hold` keeps their readings. Returns (shipments, readings, held reasons)."""
        old = self._rows(
            f"SELECT {', '.join(_COLS)} FROM shipments"
            " WHERE stopped_at_ns IS NOT NULL AND stopped_at_ns < ?",
            (before_ns,),
        )
        gone = readings = 0
        held: list[str] = []
        for sh in old:
            assert sh.stopped_at_ns is not None
            why = hold.held(sh.started_at_ns, sh.stopped_at_ns)
            if why:
                held.append(f"{sh.id}: {why}")
                continue
            with self._lock, transaction(self._db) as db:
                readings += db.execute(
                    "DELETE FROM shipment_readings WHERE shipment_id = ?", (sh.id,)
                ).rowcount
                db.execute("DELETE FROM shipments WHERE id = ?", (sh.id,))
            gone += 1
        if gone:
            self._reindex()
        return gone, readings, held

    def reading_count(self, shipment_id: str) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM shipment_readings WHERE shipment_id = ?", (shipment_id,)
                ).fetchone()[0]
            )

    def prune_readings(self, before_ns: int, hold: RetentionHold) -> tuple[int, list[str]]:
        """Delete the readings of shipments that stopped before `before_ns`, except those
        `hold` keeps (a lot's legs until its expiry plus 5 years). Returns (rows deleted, why
        the others were kept)."""
        kept: list[str] = []
        deleted = 0
        for s in self.list_shipments(limit=1_000_000):
            if s.stopped_at_ns is None or s.stopped_at_ns >= before_ns:
                continue
            why = hold.held(s.started_at_ns, s.stopped_at_ns)
            if why is not None:
                kept.append(f"shipment {s.id}: {why}")
                continue
            with self._lock, transaction(self._db) as db:
                cur = db.execute("DELETE FROM shipment_readings WHERE shipment_id = ?", (s.id,))
                deleted += cur.rowcount
        return deleted, kept
