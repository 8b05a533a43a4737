"""Anchors: the audit head and journal chain head recorded outside the data directory.

A hash chain detects a changed or removed row anywhere but at the very end: deleting the newest
rows leaves a valid, shorter chain. So the heads are written where the gateway's files are not:
into InfluxDB every hour (measurement `audit_head`, gateway/app.py) and into every backup's
MANIFEST.json. `vigil audit verify --anchor FILE|influx` compares the live trail and journal with
an anchor: a head behind the anchor means rows were cut off, and how many; a row whose hash differs
from the anchored one means the chain was rewritten.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient

from gateway.core.schema import AUDIT_HEAD
from gateway.pipeline.archive import Archive
from gateway.pipeline.influx_sink import InfluxConfig
from gateway.pipeline.journal import link_of
from gateway.records.audit import AuditTrail


class AnchorError(Exception):
    """No anchor could be read (the message says from where and why)."""


@dataclass(frozen=True, slots=True)
class Anchor:
    source: str
    """Where it came from, for the report."""
    audit_seq: int
    audit_hash: str
    journal_batch: int | None = None
    journal_hash: str | None = None


def from_file(path: Path) -> Anchor:
    """A backup (its folder or MANIFEST.json) or any JSON with the same `audit_head`."""
    if path.is_dir():
        path = path / "MANIFEST.json"
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise AnchorError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError:
        raise AnchorError(f"{path}: not JSON (a backup's MANIFEST.json, or an anchor)") from None
    if not isinstance(data, dict) or "audit_head" not in data:
        raise AnchorError(f"{path}: no audit_head in it")
    jh = data.get("journal_head") or {}
    return Anchor(
        f"{path} ({data.get('created', 'undated')})",
        int(data["audit_head"]["seq"]),
        str(data["audit_head"]["hash"]),
        int(jh["batch"]) if "batch" in jh else None,
        str(jh["hash"]) if "hash" in jh else None,
    )


def _flux_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def from_influx(cfg: InfluxConfig, gateway: str) -> Anchor:
    """The newest `audit_head` of `gateway` in InfluxDB: with InfluxQL from a version 1 target
    (`influx.version: 1`), with Flux from a version 2 one (InfluxDB 2.x, 1.8+ with Flux)."""
    if cfg.version == 1:
        return _from_influxql(cfg, gateway)
    flux = (
        f"from(bucket: {_flux_str(cfg.bucket)}) |> range(start: 0)"
        f" |> filter(fn: (r) => r._measurement == {_flux_str(AUDIT_HEAD.name)}"
        f" and r.gateway == {_flux_str(gateway)}) |> last()"
    )
    try:
        with InfluxDBClient(
            url=cfg.url, token=cfg.token, org=cfg.org, timeout=int(cfg.timeout_s * 1000)
        ) as client:
            tables = client.query_api().query(flux)
    except Exception as e:
        raise AnchorError(f"InfluxDB {cfg.url}: {type(e).__name__}: {e}") from None
    values: dict[str, Any] = {}
    when: datetime | None = None
    for table in tables:
        for rec in table.records:
            values[rec.get_field()] = rec.get_value()
            t = rec.get_time()
            when = t if when is None or (t is not None and t > when) else when
    if "audit_seq" not in values or "audit_hash" not in values:
        raise AnchorError(
            f"InfluxDB {cfg.url}: no {AUDIT_HEAD.name} of gateway {gateway!r} in bucket "
            f"{cfg.bucket!r} (the gateway writes one every gateway.anchor_interval_s)"
        )
    stamp = when.astimezone(UTC).isoformat() if when else "undated"
    return Anchor(
        f"InfluxDB {cfg.url} bucket {cfg.bucket} ({stamp})",
        int(values["audit_seq"]),
        str(values["audit_hash"]),
        int(values["journal_batch"]) if "journal_batch" in values else None,
        str(values["journal_hash"]) if "journal_hash" in values else None,
    )


def _from_influxql(cfg: InfluxConfig, gateway: str) -> Anchor:
    """InfluxDB 1.x: `SELECT ... ORDER BY time DESC LIMIT 1` over /query."""
    name = gateway.replace("\\", "\\\\").replace("'", "\\'")
    q = (
        'SELECT "audit_seq", "audit_hash", "journal_batch", "journal_hash"'
        f' FROM "{AUDIT_HEAD.name}" WHERE "gateway" = \'{name}\' ORDER BY time DESC LIMIT 1'
    )
    args = {"q": q, "db": cfg.database, "epoch": "ms"}
    if cfg.retention_policy:
        args["rp"] = cfg.retention_policy
    req = urllib.request.Request(f"{cfg.url.rstrip('/')}/query?{urllib.parse.urlencode(args)}")
    if cfg.username:
        basic = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {basic}")
    elif cfg.token:
        req.add_header("Authorization", f"Token {cfg.token}")
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout_s) as r:
            body = json.load(r)
    except (OSError, ValueError) as e:
        raise AnchorError(f"InfluxDB {cfg.url}: {type(e).__name__}: {e}") from None
    try:
        series = body["results"][0].get("series") or []
        row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    except (KeyError, IndexError, TypeError):
        raise AnchorError(
            f"InfluxDB {cfg.url}: no {AUDIT_HEAD.name} of gateway {gateway!r} in database "
            f"{cfg.database!r} ({body.get('results', body)})"
        ) from None
    stamp = datetime.fromtimestamp(row["time"] / 1000, UTC).isoformat()
    return Anchor(
        f"InfluxDB {cfg.url} database {cfg.database} ({stamp})",
        int(row["audit_seq"]),
        str(row["audit_hash"]),
        int(row["journal_batch"]) if row.get("journal_batch") is not None else None,
        str(row["journal_hash"]) if row.get("journal_hash") is not None else None,
    )


def check_audit(audit: AuditTrail, anchor: Anchor) -> tuple[bool, str]:
    """The trail against the anchor: (ok, what to tell the user)."""
    seq, _ = audit.head()
    if seq < anchor.audit_seq:
        missing = anchor.audit_seq - seq
        return False, (
            f"audit trail TRUNCATED: the anchor ({anchor.source}) records row {anchor.audit_seq}, "
            f"the trail ends at row {seq}: the newest {missing} rows are missing"
        )
    rows = audit.rows(after_seq=anchor.audit_seq - 1, limit=1)
    if not rows or rows[0].hash != anchor.audit_hash:
        return False, (
            f"audit row {anchor.audit_seq} does not match the anchor ({anchor.source}): the trail "
            "was rewritten up to it"
        )
    return True, (
        f"anchor OK: audit row {anchor.audit_seq} matches {anchor.source}; "
        f"{seq - anchor.audit_seq} rows since"
    )


def check_journal(journal: Path, archive: Archive, anchor: Anchor) -> tuple[bool, str]:
    """The journal chain against the anchor's journal head (when it has one)."""
    if anchor.journal_batch is None or not anchor.journal_hash:
        return True, "the anchor has no journal head"
    found, head = link_of(journal, archive, anchor.journal_batch)
    if found is None:
        if head < anchor.journal_batch:
            return False, (
                f"journal TRUNCATED: the anchor records batch {anchor.journal_batch}, the chain "
                f"ends at batch {head}: the newest {anchor.journal_batch - head} batches are "
                "missing"
            )
        return True, f"journal batch {anchor.journal_batch} is past the records floor (deleted)"
    if found != anchor.journal_hash:
        return False, (
            f"journal batch {anchor.journal_batch} does not match the anchor: the chain was "
            "rewritten up to it"
        )
    return True, f"anchor OK: journal batch {anchor.journal_batch} matches; head batch {head}"
