"""Lots and their legs: where a batch of product was, when, and which loggers watched it.

A **lot** (batch number 批号, product, product profile, expiry date, optional traceability codes
追溯码 at package level) moves through **legs**: storage in a site's room, a truck or container
(a transport leg: its shipment, gateway/records/shipments.py), a cross-dock, a destination. A leg
is an asset (a room, a truck) and its devices (all of the asset's loggers unless listed) from a
start to a stop; one leg may carry several lots (a truck load), and a lot's legs never overlap:
opening a lot's next leg closes the one it is in, at the new leg's start.

`DATA_DIR/lots.sqlite` holds lots, legs, the stages a geofence recorded, the release decisions,
and every reading of every leg (`leg_readings`: the journal deletes rows after
`retention_hours`; a lot's readings are kept until its expiry plus `retention_years`, never
fewer than 5, as China's Vaccine Administration Law asks of the receiver).

On the data path:

* `enrich(readings)` (a JournalWriter enricher, before commit, ahead of the shipments' one):
  positions of trucks on a geofence-driven leg start and stop it (gateway/records/geofence.py),
  then readings inside a leg (event time) get the tags `profile` (its lots' product profiles:
  the rules engine binds their rules for the leg's duration) and, on a transport leg, `lot`
  (the shipments' enricher adds `shipment`). A tag dict is shared between readings: a reading
  gets a new dict, never an edited one.
* `record(readings)` (a JournalWriter listener, after commit) keeps the readings of every leg,
  and marks a lot's release decision as needing review when a reading arrives after it with an
  event time before it (a late upload inside a signed leg).
* `backfill(leg, journal)` copies what the journal already holds when a leg is opened or closed
  at a past time (a truck whose logger uploads on arrival, recorded after the fact).

Opening, closing and deciding return old and new records; the callers audit them (the API and
the CLI with their user; geofence changes are audited here, by `geofence`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alert_rules.budget import LegSeries
from gateway.core.lineprotocol import LineProtocolError, encode, parse_line
from gateway.core.ports import JournalReader
from gateway.core.reading import Reading
from gateway.core.sqlite import ChangeWatch, connect, transaction
from gateway.records.audit import AuditTrail
from gateway.records.geofence import SiteConfig, StageChange, StageTracker
from gateway.records.shipments import Shipment, ShipmentError, ShipmentRegistry

log = logging.getLogger("vigil.lots")

S = 1_000_000_000
LegKind = Literal["storage", "transport", "cross_dock", "destination"]
KINDS: tuple[LegKind, ...] = ("storage", "transport", "cross_dock", "destination")
DecisionKind = Literal["release", "quarantine", "reject"]
DECISIONS: tuple[DecisionKind, ...] = ("release", "quarantine", "reject")
FIELD = "temp_c"
"""The field legs, budgets and the chain judge."""
PAST_TOLERANCE_NS = 300 * S
"""A start or stop more than this before now is "in the past" and needs a reason; more than
this ahead of now is refused."""
RECENT_NS = 30 * 86_400 * S
"""Stopped legs this recent stay in the tagging index, for late buffered uploads."""
BACKFILL_MARGIN_NS = 86_400 * S
"""Journal rows received up to this long before a leg's start are searched for its readings
(a logger's clock may run ahead of the gateway's)."""
MIN_RETENTION_YEARS = 5
REFRESH_S = 1.0
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class TraceabilityConfig(BaseModel):
    """The `traceability:` section of the gateway config (docs/traceability.md)."""

    model_config = ConfigDict(extra="forbid")

    sites: dict[str, SiteConfig] = Field(default_factory=dict)
    """Site (the readings' `site` tag, or a leg's origin/destination) → name and geofence."""
    retention_years: int = Field(MIN_RETENTION_YEARS, ge=MIN_RETENTION_YEARS)
    """A lot's readings are kept this long after its expiry (never fewer than 5 years)."""
    budget_interval_s: float = Field(10.0, gt=0)
    """How often stability budgets of lots with new readings are worked out again."""


class LotError(ValueError):
    """A change that is not allowed (the message says why)."""


class LotConflict(LotError):
    """A change that conflicts with the current state (HTTP 409)."""


class LotNotFound(KeyError):
    pass


def _dt(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Lot:
    id: str
    product: str
    profile: str
    expiry: str
    """ISO date, YYYY-MM-DD."""
    codes: tuple[str, ...]
    note: str
    created_at_ns: int
    created_by: str

    def retention_until(self, years: int) -> date:
        """The day until which its readings are kept: expiry plus `years`."""
        d = date.fromisoformat(self.expiry)
        try:
            return d.replace(year=d.year + years)
        except ValueError:  # 29 February
            return d.replace(year=d.year + years, day=28)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["codes"] = list(self.codes)
        return d


@dataclass(frozen=True, slots=True)
class Leg:
    id: str
    kind: LegKind
    site: str | None
    asset: str
    devices: tuple[str, ...]
    """The loggers that watch it; empty: every device of the asset."""
    profile: str
    """A product profile of its own (a shipment's), besides its lots' profiles."""
    origin: str
    destination: str
    geofence: bool
    """Started by leaving the origin's geofence, stopped by entering the destination's."""
    interval_s: float | None
    """The loggers' configured logging interval; None: learned (median spacing)."""
    note: str
    created_at_ns: int
    created_by: str
    started_at_ns: int | None = None
    started_by: str | None = None
    start_reason: str | None = None
    stopped_at_ns: int | None = None
    stopped_by: str | None = None
    stop_reason: str | None = None
    lots: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.started_at_ns is None:
            return "planned" if self.stopped_at_ns is None else "cancelled"
        return "active" if self.stopped_at_ns is None else "closed"

    def contains(self, ts_ns: int) -> bool:
        return (
            self.started_at_ns is not None
            and self.started_at_ns <= ts_ns
            and (self.stopped_at_ns is None or ts_ns < self.stopped_at_ns)
        )

    def covers(self, tags: dict[str, str]) -> bool:
        """Whether a reading with these tags comes from this leg's asset and devices."""
        if tags.get("asset") != self.asset:
            return False
        if self.site is not None and tags.get("site") != self.site:
            return False
        return not self.devices or tags.get("device") in self.devices

    def overlaps(self, start: int, end: int | None) -> bool:
        if self.started_at_ns is None:
            return False
        mine_end = self.stopped_at_ns if self.stopped_at_ns is not None else math.inf
        other_end = end if end is not None else math.inf
        return self.started_at_ns < other_end and start < mine_end

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        d["lots"] = list(self.lots)
        d["status"] = self.status
        return d


@dataclass(frozen=True, slots=True)
class Decision:
    seq: int
    lot_id: str
    decision: DecisionKind
    decided_at_ns: int
    decided_by: str
    signer_name: str
    meaning: str
    comment: str | None
    evidence_sha256: str
    """SHA-256 of the chain report's content the decision was based on."""
    review_at_ns: int | None = None
    review_reason: str | None = None
    """Why the decision needs review: evidence changed after it (a late upload)."""

    @property
    def needs_review(self) -> bool:
        return self.review_at_ns is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["needs_review"] = self.needs_review
        return d


@dataclass(frozen=True, slots=True)
class StageRow:
    leg_id: str
    at_ns: int
    stage: str
    lat: float
    lon: float


@dataclass(slots=True)
class LegChange:
    """What opening, starting or closing a leg changed, for the audit trail."""

    old: Leg | None
    new: Leg
    closed: list[tuple[Leg, Leg]] = field(default_factory=list)
    """Legs of its lots closed at its start (old, new)."""
    shipment: tuple[Shipment | None, Shipment] | None = None
    """Its shipment (transport legs): (old, new)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    profile TEXT NOT NULL,
    expiry TEXT NOT NULL,
    codes TEXT NOT NULL DEFAULT '[]',
    note TEXT NOT NULL DEFAULT '',
    created_at_ns INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS legs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    site TEXT,
    asset TEXT NOT NULL,
    devices TEXT NOT NULL DEFAULT '[]',
    profile TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    destination TEXT NOT NULL DEFAULT '',
    geofence INTEGER NOT NULL DEFAULT 0,
    interval_s REAL,
    note TEXT NOT NULL DEFAULT '',
    created_at_ns INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    started_at_ns INTEGER,
    started_by TEXT,
    start_reason TEXT,
    stopped_at_ns INTEGER,
    stopped_by TEXT,
    stop_reason TEXT
);
CREATE INDEX IF NOT EXISTS legs_asset ON legs(asset, started_at_ns);
CREATE TABLE IF NOT EXISTS leg_lots (
    leg_id TEXT NOT NULL,
    lot_id TEXT NOT NULL,
    PRIMARY KEY (leg_id, lot_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leg_lots_lot ON leg_lots(lot_id);
CREATE TABLE IF NOT EXISTS leg_stages (
    leg_id TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    stage TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    PRIMARY KEY (leg_id, at_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leg_readings (
    asset TEXT NOT NULL,
    device TEXT NOT NULL,
    measurement TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    site TEXT,
    received_ns INTEGER NOT NULL,
    value REAL,
    lat REAL,
    lon REAL,
    line TEXT NOT NULL,
    PRIMARY KEY (asset, device, measurement, ts_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    lot_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    decided_at_ns INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    signer_name TEXT NOT NULL,
    meaning TEXT NOT NULL,
    comment TEXT,
    evidence_sha256 TEXT NOT NULL,
    review_at_ns INTEGER,
    review_reason TEXT
);
CREATE INDEX IF NOT EXISTS decisions_lot ON decisions(lot_id, seq);
"""

_LEG_COLS = (
    "id, kind, site, asset, devices, profile, origin, destination, geofence, interval_s, note, "
    "created_at_ns, created_by, started_at_ns, started_by, start_reason, stopped_at_ns, "
    "stopped_by, stop_reason"
)
_DECISION_COLS = (
    "seq, lot_id, decision, decided_at_ns, decided_by, signer_name, meaning, comment, "
    "evidence_sha256, review_at_ns, review_reason"
)
_Row = tuple[str, str, str, int, str | None, int, float | None, float | None, float | None, str]
"""A leg_readings row: asset, device, measurement, ts, site, received, value, lat, lon, line."""


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _check_id(what: str, value: str) -> None:
    if not _ID.match(value):
        raise LotError(f"{what} must be 1-64 letters, digits, '_', '.', ':' or '-'")


class LotRegistry:
    def __init__(
        self,
        path: Path | str,
        shipments: ShipmentRegistry,
        *,
        config: TraceabilityConfig | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shipments = shipments
        self.config = config or TraceabilityConfig()
        self.audit = audit
        """Where geofence-driven changes are audited (by `geofence`)."""
        self._lock = threading.RLock()
        # NORMAL: a leg reading lost to a power failure is still in the journal (backfill).
        self._db = connect(self.path, synchronous="NORMAL")
        self._db.executescript(_SCHEMA)
        self._index: dict[str, tuple[Leg, ...]] = {}
        self._lot_profiles: dict[str, str] = {}
        self._trackers: dict[str, tuple[Leg, StageTracker]] = {}
        self._fenced: dict[str, tuple[str, ...]] = {}
        """asset → ids of its geofence-driven legs that are planned or active."""
        self._decided: dict[str, tuple[int, int]] = {}
        """lot → (seq, decided_at_ns) of its newest decision not yet flagged for review."""
        self._tag_cache: dict[tuple[str, ...], dict[str, str]] = {}
        self._dirty: set[str] = set()
        self._backfill: set[str] = set()
        self._watch = ChangeWatch(REFRESH_S)
        self.recorded = 0
        self.adopt_shipments()
        self._reindex()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- lots ---------------------------------------------------------------------------------
    def create_lot(
        self,
        lot_id: str,
        product: str,
        profile: str,
        expiry: date,
        by: str,
        *,
        codes: Sequence[str] = (),
        note: str = "",
        now_ns: int | None = None,
    ) -> Lot:
        _check_id("lot", lot_id)
        if not product.strip():
            raise LotError("a lot needs a product")
        if not profile:
            raise LotError("a lot needs a product profile")
        codes = tuple(dict.fromkeys(c.strip() for c in codes if c.strip()))
        now = time.time_ns() if now_ns is None else now_ns
        lot = Lot(lot_id, product, profile, expiry.isoformat(), codes, note, now, by)
        with self._lock:
            if self.get_lot(lot_id) is not None:
                raise LotConflict(f"lot {lot_id} already exists")
            self._db.execute(
                "INSERT INTO lots (id, product, profile, expiry, codes, note, created_at_ns, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (lot_id, product, profile, lot.expiry, json.dumps(codes), note, now, by),
            )
            self._reindex()
        return lot

    def get_lot(self, lot_id: str) -> Lot | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, product, profile, expiry, codes, note, created_at_ns, created_by "
                "FROM lots WHERE id = ?",
                (lot_id,),
            ).fetchone()
        return None if row is None else _lot(row)

    def require_lot(self, lot_id: str) -> Lot:
        lot = self.get_lot(lot_id)
        if lot is None:
            raise LotNotFound(lot_id)
        return lot

    def list_lots(self, limit: int = 500, code: str | None = None) -> list[Lot]:
        """Newest first; `code`: the lots carrying that traceability code."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, product, profile, expiry, codes, note, created_at_ns, created_by "
                "FROM lots ORDER BY created_at_ns DESC, id LIMIT ?",
                (limit if code is None else 1_000_000,),
            ).fetchall()
        lots = [_lot(r) for r in rows]
        if code is not None:
            lots = [lot for lot in lots if code in lot.codes][:limit]
        return lots

    def retention_until(self, lot: Lot) -> date:
        return lot.retention_until(self.config.retention_years)

    # -- legs: queries ------------------------------------------------------------------------
    def _legs(self, where: str = "", args: Sequence[Any] = ()) -> list[Leg]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_LEG_COLS} FROM legs {where}", args).fetchall()
            ids = [r[0] for r in rows]
            lots: dict[str, list[str]] = {i: [] for i in ids}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for leg_id, lot_id in self._db.execute(
                    f"SELECT leg_id, lot_id FROM leg_lots WHERE leg_id IN "
                    f"({', '.join('?' * len(chunk))}) ORDER BY lot_id",
                    chunk,
                ):
                    lots[leg_id].append(lot_id)
        return [_leg(r, lots[r[0]]) for r in rows]

    def get_leg(self, leg_id: str) -> Leg | None:
        found = self._legs("WHERE id = ?", (leg_id,))
        return found[0] if found else None

    def require_leg(self, leg_id: str) -> Leg:
        leg = self.get_leg(leg_id)
        if leg is None:
            raise LotNotFound(leg_id)
        return leg

    def legs_of(self, lot_id: str) -> list[Leg]:
        """A lot's legs in the order it went through them (planned ones last)."""
        legs = self._legs("WHERE id IN (SELECT leg_id FROM leg_lots WHERE lot_id = ?)", (lot_id,))
        return sorted(legs, key=lambda g: (g.started_at_ns is None, g.started_at_ns or 0, g.id))

    def list_legs(
        self, status: str | None = None, asset: str | None = None, limit: int = 500
    ) -> list[Leg]:
        terms, args = [], []
        if status == "planned":
            terms.append("started_at_ns IS NULL AND stopped_at_ns IS NULL")
        elif status == "cancelled":
            terms.append("started_at_ns IS NULL AND stopped_at_ns IS NOT NULL")
        elif status == "active":
            terms.append("started_at_ns IS NOT NULL AND stopped_at_ns IS NULL")
        elif status == "closed":
            terms.append("started_at_ns IS NOT NULL AND stopped_at_ns IS NOT NULL")
        if asset is not None:
            terms.append("asset = ?")
            args.append(asset)
        where = f"WHERE {' AND '.join(terms)} " if terms else ""
        return self._legs(
            f"{where}ORDER BY started_at_ns IS NULL DESC, started_at_ns DESC, id LIMIT ?",
            [*args, limit],
        )

    def stages(self, leg_id: str) -> list[StageRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT leg_id, at_ns, stage, lat, lon FROM leg_stages WHERE leg_id = ? "
                "ORDER BY at_ns",
                (leg_id,),
            ).fetchall()
        return [StageRow(*r) for r in rows]

    # -- legs: changes ------------------------------------------------------------------------
    def _when(self, what: str, at_ns: int | None, reason: str | None, now: int) -> int:
        """The time of a start or stop: now, or an explicit time (in the past with a reason)."""
        if at_ns is None:
            return now
        if at_ns > now + PAST_TOLERANCE_NS:
            raise LotError(f"{what} {_dt(at_ns)} is in the future (now {_dt(now)})")
        if at_ns < now - PAST_TOLERANCE_NS and not (reason and reason.strip()):
            raise LotError(
                f"{what} {_dt(at_ns)} is in the past: give a reason (it is kept in the audit trail)"
            )
        return at_ns

    def open_leg(
        self,
        lots: Sequence[str],
        kind: str,
        asset: str,
        by: str,
        *,
        leg_id: str | None = None,
        site: str | None = None,
        devices: Sequence[str] = (),
        profile: str = "",
        origin: str = "",
        destination: str = "",
        geofence: bool = False,
        planned: bool = False,
        interval_s: float | None = None,
        note: str = "",
        started_at_ns: int | None = None,
        reason: str | None = None,
        now_ns: int | None = None,
    ) -> LegChange:
        """Open a leg for `lots` now or at `started_at_ns`; or plan it (`planned`, geofence
        legs only: it starts when its truck leaves the origin's geofence). A transport leg is
        also a shipment of the same id. A lot's open leg is closed at the new leg's start."""
        now = time.time_ns() if now_ns is None else now_ns
        if kind not in KINDS:
            raise LotError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        _check_id("asset", asset)
        if site is not None:
            _check_id("site", site)
        for d in devices:
            _check_id("device", d)
        if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
            raise LotError("interval_s must be a positive number of seconds")
        lots = list(dict.fromkeys(lots))
        if kind != "transport" and not lots:
            raise LotError(f"a {kind} leg needs at least one lot")
        if geofence:
            if kind != "transport":
                raise LotError("only a transport leg is driven by geofences")
            for role, name in (("origin", origin), ("destination", destination)):
                site_cfg = self.config.sites.get(name)
                if site_cfg is None or site_cfg.geofence is None:
                    known = [k for k, v in self.config.sites.items() if v.geofence is not None]
                    raise LotError(
                        f"{role} {name!r} has no geofence (traceability.sites with a geofence: "
                        f"{', '.join(sorted(known)) or 'none'})"
                    )
        if planned and not geofence:
            raise LotError("only a geofence leg can be planned (it starts on leaving the origin)")
        if planned and started_at_ns is not None:
            raise LotError("a planned leg starts on leaving the origin: give no start time")
        start = None if planned else self._when("start", started_at_ns, reason, now)
        with self._lock:
            found = [self.get_lot(lot) for lot in lots]
            missing = [lot for lot, f in zip(lots, found, strict=True) if f is None]
            if missing:
                raise LotNotFound(", ".join(missing))
            known_lots = [f for f in found if f is not None]
            if kind == "transport" and not profile:
                profiles = sorted({lot.profile for lot in known_lots})
                if len(profiles) != 1:
                    raise LotError(
                        "give the shipment's profile: its lots have "
                        + ("none" if not profiles else f"several ({', '.join(profiles)})")
                    )
                profile = profiles[0]
            if leg_id is None:
                stamp = datetime.fromtimestamp((start or now) / 1e9, UTC).strftime("%Y%m%d-%H%M%S")
                prefix = "SHP" if kind == "transport" else "LEG"
                base = f"{prefix}-{stamp}-{asset}"[:60]
                leg_id, n = base, 1
                while self.get_leg(leg_id) is not None or self.shipments.get(leg_id):
                    n += 1
                    leg_id = f"{base}-{n}"
            else:
                _check_id("leg id", leg_id)
                if self.get_leg(leg_id) is not None or self.shipments.get(leg_id) is not None:
                    raise LotConflict(f"leg {leg_id} already exists")
            leg = Leg(
                leg_id,
                kind,
                site,
                asset,
                tuple(dict.fromkeys(devices)),
                profile,
                origin,
                destination,
                geofence,
                interval_s,
                note,
                now,
                by,
                lots=tuple(sorted(lots)),
            )
            change = LegChange(None, leg)
            if start is not None:
                change.closed = self._make_room(lots, start, leg_id, by)
                leg = replace(leg, started_at_ns=start, started_by=by, start_reason=reason)
                change.new = leg
                if kind == "transport":
                    change.shipment = (None, self._start_shipment(leg, known_lots, now))
            with transaction(self._db) as db:
                for old, new in change.closed:
                    db.execute(
                        "UPDATE legs SET stopped_at_ns = ?, stopped_by = ?, stop_reason = ? "
                        "WHERE id = ?",
                        (new.stopped_at_ns, new.stopped_by, new.stop_reason, old.id),
                    )
                db.execute(
                    f"INSERT INTO legs ({_LEG_COLS}) VALUES ({', '.join('?' * 19)})",
                    _leg_values(leg),
                )
                db.executemany(
                    "INSERT INTO leg_lots (leg_id, lot_id) VALUES (?, ?)",
                    [(leg_id, lot) for lot in lots],
                )
            self._dirty.update(lots)
            if start is not None and start < now - PAST_TOLERANCE_NS:
                self._backfill.add(leg_id)
            self._reindex()
        return change

    def _make_room(
        self, lots: Sequence[str], start: int, leg_id: str, by: str
    ) -> list[tuple[Leg, Leg]]:
        """Check that no lot is elsewhere from `start` on; the legs they are in, closed at
        `start` (old, new)."""
        closing: dict[str, tuple[Leg, Leg]] = {}
        for lot in lots:
            for other in self.legs_of(lot):
                if other.started_at_ns is None or other.id == leg_id:
                    continue
                if other.stopped_at_ns is None and other.started_at_ns < start:
                    if other.id not in closing:
                        closing[other.id] = (
                            other,
                            replace(
                                other,
                                stopped_at_ns=start,
                                stopped_by=by,
                                stop_reason=f"lot {lot} moved to leg {leg_id}",
                            ),
                        )
                    continue
                if other.overlaps(start, None):
                    end = _dt(other.stopped_at_ns) if other.stopped_at_ns else "now"
                    raise LotConflict(
                        f"lot {lot} is in {other.kind} leg {other.id} from "
                        f"{_dt(other.started_at_ns)} to {end}: a lot is in one place at a time"
                    )
        moving = set(lots)
        for old, _new in closing.values():
            if old.kind == "transport" and self.shipments.get(old.id) is not None:
                raise LotConflict(
                    f"lot is still on transport leg {old.id} (shipment): stop the shipment first"
                )
            staying = sorted(set(old.lots) - moving)
            if staying:
                raise LotConflict(
                    f"{old.kind} leg {old.id} also holds lot(s) {', '.join(staying)}: close it, "
                    "or move its lots together (give each lot its own leg to move it alone)"
                )
        return list(closing.values())

    def _start_shipment(self, leg: Leg, lots: Sequence[Lot], now: int) -> Shipment:
        try:
            return self.shipments.start(
                leg.asset,
                leg.profile,
                leg.started_by or leg.created_by,
                shipment_id=leg.id,
                site=leg.site,
                product=", ".join(sorted({lot.product for lot in lots})),
                origin=leg.origin,
                destination=leg.destination,
                note=leg.note,
                now_ns=now,
                started_at_ns=leg.started_at_ns,
                reason=leg.start_reason,
            )
        except ShipmentError as e:
            raise LotConflict(str(e)) from None

    def start_leg(
        self,
        leg_id: str,
        by: str,
        *,
        started_at_ns: int | None = None,
        reason: str | None = None,
        now_ns: int | None = None,
        automatic: bool = False,
    ) -> LegChange:
        """Start a planned leg (now, at an explicit time, or where its geofence says)."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            old = self.require_leg(leg_id)
            if old.started_at_ns is not None:
                raise LotConflict(f"leg {leg_id} has started already")
            start = started_at_ns if automatic and started_at_ns is not None else None
            if start is None:
                start = self._when("start", started_at_ns, reason, now)
            closed = self._make_room(old.lots, start, leg_id, by)
            new = replace(old, started_at_ns=start, started_by=by, start_reason=reason)
            change = LegChange(old, new, closed)
            if new.kind == "transport":
                lots = [lot for lot in (self.get_lot(i) for i in new.lots) if lot is not None]
                change.shipment = (None, self._start_shipment(new, lots, now))
            with transaction(self._db) as db:
                for o, n in closed:
                    db.execute(
                        "UPDATE legs SET stopped_at_ns = ?, stopped_by = ?, stop_reason = ? "
                        "WHERE id = ?",
                        (n.stopped_at_ns, n.stopped_by, n.stop_reason, o.id),
                    )
                db.execute(
                    "UPDATE legs SET started_at_ns = ?, started_by = ?, start_reason = ? "
                    "WHERE id = ?",
                    (start, by, reason, leg_id),
                )
            self._dirty.update(new.lots)
            if start < now - PAST_TOLERANCE_NS:
                self._backfill.add(leg_id)
            self._reindex()
        return change

    def close_leg(
        self,
        leg_id: str,
        by: str,
        *,
        stopped_at_ns: int | None = None,
        reason: str | None = None,
        now_ns: int | None = None,
        automatic: bool = False,
    ) -> LegChange:
        """Close a leg now or at `stopped_at_ns` (after its start; in the past with a reason);
        a transport leg's shipment stops with it."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            if self.get_leg(leg_id) is None and self.shipments.get(leg_id) is not None:
                self.adopt_shipments()
            old = self.require_leg(leg_id)
            if old.stopped_at_ns is not None:
                raise LotConflict(f"leg {leg_id} was already closed")
            if old.started_at_ns is None:
                if automatic:
                    raise LotConflict(f"leg {leg_id} is only planned: it has not started")
                # a plan that will not happen: cancelled, so its geofences start nothing
                new = replace(old, stopped_at_ns=now, stopped_by=by, stop_reason=reason)
                self._db.execute(
                    "UPDATE legs SET stopped_at_ns = ?, stopped_by = ?, stop_reason = ? "
                    "WHERE id = ?",
                    (now, by, reason, leg_id),
                )
                self._reindex()
                return LegChange(old, new)
            if automatic and stopped_at_ns is not None:
                stop = stopped_at_ns
            else:
                stop = self._when("stop", stopped_at_ns, reason, now)
                if stopped_at_ns is None:
                    stop = max(stop, old.started_at_ns + 1)
            if stop <= old.started_at_ns:
                raise LotError(
                    f"leg {leg_id} cannot stop at {_dt(stop)}, at or before its start "
                    f"{_dt(old.started_at_ns)}"
                )
            new = replace(old, stopped_at_ns=stop, stopped_by=by, stop_reason=reason)
            change = LegChange(old, new)
            ship = self.shipments.get(leg_id)
            if ship is not None and ship.active:
                try:
                    change.shipment = self.shipments.stop(
                        leg_id, by, reason, now_ns=now, stopped_at_ns=stop
                    )
                except ShipmentError as e:
                    raise LotConflict(str(e)) from None
            with self._lock:
                self._db.execute(
                    "UPDATE legs SET stopped_at_ns = ?, stopped_by = ?, stop_reason = ? "
                    "WHERE id = ?",
                    (stop, by, reason, leg_id),
                )
            self._dirty.update(new.lots)
            self._reindex()
        return change

    def adopt_shipments(self) -> int:
        """Give every shipment without a leg (made before lots existed, or by an older
        version) its transport leg, and bring transport legs' times in line with their
        shipments (the shipment is the authority). Returns legs added."""
        added = 0
        with self._lock:
            have = {
                r[0]: r[1:]
                for r in self._db.execute(
                    "SELECT id, started_at_ns, stopped_at_ns FROM legs WHERE kind = 'transport'"
                )
            }
            for s in self.shipments.list_shipments(limit=1_000_000):
                if s.id not in have:
                    leg = Leg(
                        s.id,
                        "transport",
                        s.site,
                        s.asset,
                        (),
                        s.profile,
                        s.origin,
                        s.destination,
                        False,
                        None,
                        s.note,
                        s.started_at_ns,
                        s.started_by,
                        s.started_at_ns,
                        s.started_by,
                        s.start_reason,
                        s.stopped_at_ns,
                        s.stopped_by,
                        s.stop_reason,
                    )
                    self._db.execute(
                        f"INSERT INTO legs ({_LEG_COLS}) VALUES ({', '.join('?' * 19)})",
                        _leg_values(leg),
                    )
                    added += 1
                elif have[s.id] != (s.started_at_ns, s.stopped_at_ns):
                    self._db.execute(
                        "UPDATE legs SET started_at_ns = ?, stopped_at_ns = ?, "
                        "stopped_by = COALESCE(stopped_by, ?) WHERE id = ?",
                        (s.started_at_ns, s.stopped_at_ns, s.stopped_by, s.id),
                    )
        return added

    # -- the index the data path reads without the lock ---------------------------------------
    def _reindex(self) -> None:
        since = time.time_ns() - RECENT_NS
        legs = self._legs(
            "WHERE started_at_ns IS NOT NULL AND (stopped_at_ns IS NULL OR stopped_at_ns >= ?) "
            "ORDER BY started_at_ns",
            (since,),
        )
        index: dict[str, list[Leg]] = {}
        for g in legs:
            index.setdefault(g.asset, []).append(g)
        with self._lock:
            profiles = dict(self._db.execute("SELECT id, profile FROM lots").fetchall())
            decided = self._db.execute(
                "SELECT d.lot_id, d.seq, d.decided_at_ns FROM decisions d "
                "WHERE d.review_at_ns IS NULL AND d.seq = "
                "(SELECT MAX(seq) FROM decisions WHERE lot_id = d.lot_id)"
            ).fetchall()
            self._watch.mark(self._db)
        fenced_legs = [g for g in self._legs("WHERE geofence = 1 AND stopped_at_ns IS NULL")]
        trackers: dict[str, tuple[Leg, StageTracker]] = {}
        for g in fenced_legs:
            kept = self._trackers.get(g.id)
            if kept is not None:
                kept[1].started = g.started_at_ns is not None
                trackers[g.id] = (g, kept[1])
                continue
            origin = self.config.sites.get(g.origin)
            dest = self.config.sites.get(g.destination)
            if origin is None or dest is None or origin.geofence is None or dest.geofence is None:
                continue  # the config lost a fence: the leg waits for a person
            stages = self.stages(g.id)
            trackers[g.id] = (
                g,
                StageTracker(
                    origin.geofence,
                    dest.geofence,
                    started=g.started_at_ns is not None,
                    stage=stages[-1].stage if stages else None,  # type: ignore[arg-type]
                    last_ns=stages[-1].at_ns if stages else None,
                ),
            )
        fenced: dict[str, list[str]] = {}
        for leg_id, (g, _t) in trackers.items():
            fenced.setdefault(g.asset, []).append(leg_id)
        self._lot_profiles = profiles
        self._decided = {lot: (seq, at) for lot, seq, at in decided}
        self._trackers = trackers
        self._fenced = {k: tuple(v) for k, v in fenced.items()}
        self._tag_cache = {}
        self._index = {k: tuple(v) for k, v in index.items()}

    def refresh(self) -> None:
        """Reload when another connection (the CLI) changed the file; at most every REFRESH_S."""
        if not self._watch.due():
            return
        with self._lock:
            changed = self._watch.changed(self._db)
        if changed:
            self.adopt_shipments()
            self._reindex()

    def _tags_for(self, legs: Sequence[Leg]) -> dict[str, str]:
        key = tuple(g.id for g in legs)
        hit = self._tag_cache.get(key)
        if hit is not None:
            return hit
        profiles: set[str] = set()
        tags: dict[str, str] = {}
        for g in legs:
            if g.profile:
                profiles.add(g.profile)
            profiles.update(self._lot_profiles[lot] for lot in g.lots if lot in self._lot_profiles)
            if g.kind == "transport" and g.lots and "lot" not in tags:
                tags["lot"] = ",".join(g.lots)
        if profiles:
            tags["profile"] = ",".join(sorted(profiles))
        if len(self._tag_cache) > 10_000:
            self._tag_cache.clear()
        self._tag_cache[key] = tags
        return tags

    # -- the data path ------------------------------------------------------------------------
    def enrich(self, readings: Sequence[Reading]) -> None:
        """JournalWriter enricher: geofence stages first, then the legs' tags (event time)."""
        self.refresh()
        if self._fenced:
            self._follow_fences(readings)
        index = self._index
        if not index:
            return
        for r in readings:
            tags = r.tags
            legs = index.get(tags.get("asset", ""))
            if legs is None:
                continue
            ts = r.ts_ns
            covering = [g for g in legs if g.contains(ts) and g.covers(tags)]
            if not covering:
                continue
            add = self._tags_for(covering)
            if any(tags.get(k) != v for k, v in add.items()):
                r.tags = {**tags, **add}  # never edit the shared dict

    def _follow_fences(self, readings: Sequence[Reading]) -> None:
        fenced = self._fenced
        moves = []
        for r in readings:
            ids = fenced.get(r.tags.get("asset", ""))
            if ids is None:
                continue
            lat, lon = _num(r.fields.get("lat")), _num(r.fields.get("lon"))
            if lat is not None and lon is not None:
                moves.append((r.ts_ns, lat, lon, r.tags, ids))
        moves.sort(key=lambda m: m[0])
        for ts, lat, lon, tags, ids in moves:
            for leg_id in ids:
                entry = self._trackers.get(leg_id)
                if entry is None or not entry[0].covers(tags):
                    continue
                change = entry[1].feed(ts, lat, lon)
                if change is not None:
                    self._apply_stage(entry[0], change)

    def _apply_stage(self, leg: Leg, change: StageChange) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO leg_stages (leg_id, at_ns, stage, lat, lon) "
                "VALUES (?, ?, ?, ?, ?)",
                (leg.id, change.at_ns, change.stage, change.lat, change.lon),
            )
        try:
            if change.start:
                c = self.start_leg(
                    leg.id,
                    "geofence",
                    started_at_ns=change.at_ns,
                    reason=f"left the geofence of {leg.origin}",
                    automatic=True,
                )
                self._audit("leg.start", c)
                self._backfill.add(leg.id)  # another logger's earlier batch may hold its start
                log.info(
                    "leg started by its geofence",
                    extra={"leg": leg.id, "asset": leg.asset, "at": _dt(change.at_ns)},
                )
            if change.stop:
                c = self.close_leg(
                    leg.id,
                    "geofence",
                    stopped_at_ns=change.at_ns,
                    reason=f"entered the geofence of {leg.destination}",
                    automatic=True,
                )
                self._audit("leg.close", c)
                log.info(
                    "leg ended by its geofence",
                    extra={"leg": leg.id, "asset": leg.asset, "at": _dt(change.at_ns)},
                )
        except (LotError, LotNotFound) as e:
            # e.g. a lot on the truck is still on another shipment: a person must sort it out
            log.warning(
                "geofence change refused; the leg needs a person",
                extra={"leg": leg.id, "stage": change.stage, "reason": str(e)},
            )
            if self.audit is not None:
                self.audit.record(
                    "geofence",
                    "leg.geofence_refused",
                    "leg",
                    leg.id,
                    None,
                    {"stage": change.stage, "at_ns": change.at_ns},
                    str(e),
                )

    def _audit(self, action: str, change: LegChange) -> None:
        if self.audit is None:
            return
        new = change.new
        reason = new.stop_reason if action == "leg.close" else new.start_reason
        for old, closed in change.closed:
            self.audit.record(
                "geofence",
                "leg.close",
                "leg",
                old.id,
                old.to_dict(),
                closed.to_dict(),
                closed.stop_reason,
            )
        self.audit.record(
            "geofence",
            action,
            "leg",
            new.id,
            change.old.to_dict() if change.old else None,
            new.to_dict(),
            reason,
        )
        if change.shipment is not None:
            old_s, new_s = change.shipment
            self.audit.record(
                "geofence",
                "shipment.stop" if action == "leg.close" else "shipment.start",
                "shipment",
                new_s.id,
                old_s.to_dict() if old_s else None,
                new_s.to_dict(),
                reason,
            )

    def record(self, readings: Sequence[Reading]) -> None:
        """JournalWriter listener: keep the readings of every leg; flag decisions whose
        evidence a late reading changed."""
        index = self._index
        if not index:
            return
        rows: list[_Row] = []
        lots_touched: set[str] = set()
        late: list[tuple[str, int, _Row]] = []
        decided = self._decided
        for r in readings:
            tags = r.tags
            legs = index.get(tags.get("asset", ""))
            if legs is None:
                continue
            ts = r.ts_ns
            covering = [g for g in legs if g.contains(ts) and g.covers(tags)]
            if not covering:
                continue
            row = _row(r, encode(r))
            rows.append(row)
            for g in covering:
                lots_touched.update(g.lots)
                for lot in g.lots:
                    d = decided.get(lot)
                    if d is not None and ts < d[1] < r.received_ns:
                        late.append((lot, d[0], row))
        if not rows:
            return
        with self._lock:
            fresh = [entry for entry in late if not self._has(entry[2])]
            with transaction(self._db, immediate=False) as db:
                db.executemany(
                    "INSERT OR IGNORE INTO leg_readings (asset, device, measurement, ts_ns, "
                    "site, received_ns, value, lat, lon, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)",
                    rows,
                )
            self._dirty.update(lots_touched)
        self.recorded += len(rows)
        if fresh:
            self._flag(fresh)

    def _has(self, row: _Row) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM leg_readings WHERE asset = ? AND device = ? AND measurement = ? "
                "AND ts_ns = ?",
                row[:4],
            ).fetchone()
            is not None
        )

    def _flag(self, late: list[tuple[str, int, _Row]]) -> None:
        """Mark decisions as needing review: readings arrived after them inside their
        evidence."""
        by_decision: dict[tuple[str, int], list[_Row]] = {}
        for lot, seq, row in late:
            by_decision.setdefault((lot, seq), []).append(row)
        now = time.time_ns()
        for (lot, seq), rows in by_decision.items():
            first = min(rows, key=lambda r: r[3])
            reason = (
                f"{len(rows)} reading(s) of {first[0]}/{first[1]} with event times before the "
                f"decision arrived after it (first at {_dt(first[3])}, received "
                f"{_dt(first[5])}): the evidence changed"
            )
            with self._lock:
                cur = self._db.execute(
                    "UPDATE decisions SET review_at_ns = ?, review_reason = ? "
                    "WHERE seq = ? AND review_at_ns IS NULL",
                    (now, reason, seq),
                )
                self._decided.pop(lot, None)
                self._dirty.add(lot)
            if cur.rowcount and self.audit is not None:
                self.audit.record(
                    "system",
                    "lot.review_needed",
                    "lot",
                    lot,
                    {"decision_seq": seq},
                    {"decision_seq": seq, "needs_review": True},
                    reason,
                )

    def backfill(self, leg: Leg, journal: JournalReader) -> int:
        """Copy the leg's readings the journal already holds (a leg opened or closed at a past
        time, or started by a geofence after another logger's upload). Blocking; returns rows
        found."""
        if leg.started_at_ns is None:
            return 0
        start, stop = leg.started_at_ns, leg.stopped_at_ns
        needle = f"asset={leg.asset}"
        rows: list[_Row] = []
        ship: list[tuple[str, str, str, int, int, str]] = []
        is_shipment = leg.kind == "transport" and self.shipments.get(leg.id) is not None
        for jr in journal.lines_since(start - BACKFILL_MARGIN_NS):
            if needle not in jr.line:
                continue
            try:
                measurement, tags, fields, ts = parse_line(jr.line)
            except LineProtocolError:
                continue
            if ts is None or ts < start or (stop is not None and ts >= stop):
                continue
            if not leg.covers(tags):
                continue
            r = Reading(measurement, tags, fields, ts, jr.received_ns)
            rows.append(_row(r, jr.line))
            if is_shipment:
                ship.append(
                    (leg.id, measurement, tags.get("device", ""), ts, jr.received_ns, jr.line)
                )
        if rows:
            with self._lock, transaction(self._db, immediate=False) as db:
                db.executemany(
                    "INSERT OR IGNORE INTO leg_readings (asset, device, measurement, ts_ns, "
                    "site, received_ns, value, lat, lon, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)",
                    rows,
                )
                self._dirty.update(leg.lots)
        self.shipments.insert_readings(ship)
        return len(rows)

    def take_backfills(self) -> list[Leg]:
        """Legs waiting for a backfill from the journal (taken: call backfill on each)."""
        with self._lock:
            ids, self._backfill = self._backfill, set()
        return [g for g in (self.get_leg(i) for i in sorted(ids)) if g is not None]

    def mark_recent_dirty(self) -> None:
        """Mark the lots of legs open or closed in the last 30 days as changed (at startup:
        what was worked out before a restart is worked out again)."""
        index = self._index
        with self._lock:
            self._dirty.update(lot for legs in index.values() for g in legs for lot in g.lots)

    def take_dirty(self) -> set[str]:
        """Lots whose readings, legs or decisions changed since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

    # -- reading a leg back -------------------------------------------------------------------
    def _leg_rows(self, leg: Leg, what: str) -> list[tuple[Any, ...]]:
        if leg.started_at_ns is None:
            return []
        terms = ["asset = ?", "ts_ns >= ?"]
        args: list[Any] = [leg.asset, leg.started_at_ns]
        if leg.stopped_at_ns is not None:
            terms.append("ts_ns < ?")
            args.append(leg.stopped_at_ns)
        if leg.site is not None:
            terms.append("site = ?")
            args.append(leg.site)
        if leg.devices:
            terms.append(f"device IN ({', '.join('?' * len(leg.devices))})")
            args += list(leg.devices)
        with self._lock:
            return self._db.execute(
                f"SELECT {what} FROM leg_readings WHERE {' AND '.join(terms)} "
                "ORDER BY device, ts_ns",
                args,
            ).fetchall()

    def leg_points(self, leg: Leg) -> dict[str, list[tuple[int, float]]]:
        """device → sorted (event time, temp_c) of the leg."""
        out: dict[str, list[tuple[int, float]]] = {}
        for device, ts, value in self._leg_rows(leg, "device, ts_ns, value"):
            if value is not None:
                out.setdefault(device, []).append((ts, value))
        return out

    def positions(self, leg: Leg) -> list[tuple[int, float, float]]:
        """(event time, lat, lon) of the leg's loggers, in time order."""
        rows = self._leg_rows(leg, "ts_ns, lat, lon")
        return sorted(
            (ts, lat, lon) for ts, lat, lon in rows if lat is not None and lon is not None
        )

    def leg_lines(self, leg: Leg) -> list[tuple[str, str, int, str]]:
        """(measurement, device, ts_ns, line), per device in time order."""
        return [
            (m, d, ts, line)
            for m, d, ts, line in self._leg_rows(leg, "measurement, device, ts_ns, line")
        ]

    def lot_series(self, lot_id: str) -> list[LegSeries]:
        """The started legs of a lot as its stability budget sees them."""
        out = []
        for g in self.legs_of(lot_id):
            if g.started_at_ns is None:
                continue
            interval = round(g.interval_s * S) if g.interval_s else None
            out.append(LegSeries(g.id, g.started_at_ns, self.leg_points(g), interval))
        return out

    # -- release decisions --------------------------------------------------------------------
    def decide(
        self,
        lot_id: str,
        decision: str,
        by: str,
        name: str,
        meaning: str,
        evidence_sha256: str,
        comment: str | None = None,
        now_ns: int | None = None,
    ) -> tuple[Decision | None, Decision]:
        """QA's release, quarantine or rejection of a lot (signed by the caller); returns the
        previous decision and this one."""
        if decision not in DECISIONS:
            raise LotError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            self.require_lot(lot_id)
            old = self.decision(lot_id)
            cur = self._db.execute(
                "INSERT INTO decisions (lot_id, decision, decided_at_ns, decided_by, "
                "signer_name, meaning, comment, evidence_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (lot_id, decision, now, by, name, meaning, comment, evidence_sha256),
            )
            seq = int(cur.lastrowid or 0)
            self._dirty.add(lot_id)
            self._reindex()
        new = Decision(
            seq,
            lot_id,
            decision,
            now,
            by,
            name,
            meaning,
            comment,
            evidence_sha256,
        )
        return old, new

    def decision(self, lot_id: str) -> Decision | None:
        """The lot's current (newest) decision."""
        found = self.decisions(lot_id)
        return found[-1] if found else None

    def decisions(self, lot_id: str) -> list[Decision]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DECISION_COLS} FROM decisions WHERE lot_id = ? ORDER BY seq",
                (lot_id,),
            ).fetchall()
        return [Decision(*r) for r in rows]

    # -- retention ----------------------------------------------------------------------------
    def held(self, start_ns: int, end_ns: int) -> str | None:
        """RetentionHold: why readings with event times in [start, end) must be kept, or None.
        Every reading of a lot's legs is kept until the lot's expiry plus retention_years."""
        today = datetime.now(UTC).date()
        years = self.config.retention_years
        with self._lock:
            rows = self._db.execute(
                "SELECT l.id, l.expiry, g.id, g.kind, g.site, g.asset, g.started_at_ns, "
                "g.stopped_at_ns FROM legs g JOIN leg_lots j ON j.leg_id = g.id "
                "JOIN lots l ON l.id = j.lot_id WHERE g.started_at_ns IS NOT NULL "
                "AND g.started_at_ns < ? AND (g.stopped_at_ns IS NULL OR g.stopped_at_ns > ?) "
                "ORDER BY l.expiry DESC",
                (end_ns, start_ns),
            ).fetchall()
        for lot_id, expiry, leg_id, kind, site, asset, started, stopped in rows:
            until = Lot(lot_id, "", "", expiry, (), "", 0, "").retention_until(years)
            if until < today:
                continue
            where = f"{site}/{asset}" if site else asset
            to = _dt(stopped) if stopped is not None else "still open"
            return (
                f"readings of lot {lot_id} ({kind} leg {leg_id} on {where}, {_dt(started)} to "
                f"{to}) are kept until {until.isoformat()}: the lot expires {expiry}, plus "
                f"{years} years (traceability.retention_years)"
            )
        return None

    def prune_readings(self, before_ns: int) -> tuple[int, list[str]]:
        """Delete leg readings older than `before_ns` that no kept lot holds. Returns (rows
        deleted, why the others were kept)."""
        kept: list[str] = []
        deleted = 0
        for g in self._legs("WHERE started_at_ns IS NOT NULL AND started_at_ns < ?", (before_ns,)):
            assert g.started_at_ns is not None
            end = min(g.stopped_at_ns or before_ns, before_ns)
            why = self.held(g.started_at_ns, end)
            if why is not None:
                kept.append(why)
                continue
            terms = ["asset = ?", "ts_ns >= ?", "ts_ns < ?"]
            args: list[Any] = [g.asset, g.started_at_ns, end]
            if g.devices:
                terms.append(f"device IN ({', '.join('?' * len(g.devices))})")
                args += list(g.devices)
            with self._lock, transaction(self._db) as db:
                deleted += db.execute(
                    f"DELETE FROM leg_readings WHERE {' AND '.join(terms)}", args
                ).rowcount
        return deleted, sorted(set(kept))


def _lot(row: tuple[Any, ...]) -> Lot:
    lot_id, product, profile, expiry, codes, note, created, by = row
    return Lot(lot_id, product, profile, expiry, tuple(json.loads(codes)), note, created, by)


def _leg(row: tuple[Any, ...], lots: Iterable[str]) -> Leg:
    vals = list(row)
    vals[4] = tuple(json.loads(vals[4]))
    vals[8] = bool(vals[8])
    vals.append(tuple(lots))
    return Leg(*vals)


def _leg_values(g: Leg) -> list[Any]:
    return [
        g.id,
        g.kind,
        g.site,
        g.asset,
        json.dumps(list(g.devices)),
        g.profile,
        g.origin,
        g.destination,
        int(g.geofence),
        g.interval_s,
        g.note,
        g.created_at_ns,
        g.created_by,
        g.started_at_ns,
        g.started_by,
        g.start_reason,
        g.stopped_at_ns,
        g.stopped_by,
        g.stop_reason,
    ]


def _row(r: Reading, line: str) -> _Row:
    f = r.fields
    tags = r.tags
    return (
        tags.get("asset", ""),
        tags.get("device", ""),
        r.measurement,
        r.ts_ns,
        tags.get("site"),
        r.received_ns,
        _num(f.get(FIELD)),
        _num(f.get("lat")),
        _num(f.get("lon")),
        line,
    )
