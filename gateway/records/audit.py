"""The audit trail (21 CFR 11.10(e), EU Annex 11 §9): append-only, hash-chained, in SQLite.

Each row records who, what, when, the old value, the new value and the reason, and carries the
SHA-256 of the row before it, so changing, inserting or deleting a row anywhere but at the very end
breaks the chain at that row; `verify()` names the first broken one. SQLite triggers refuse UPDATE
and DELETE, so no code path of the gateway (API, CLI) can edit or remove a row; the chain catches
edits made by other means (a raw file editor, a dropped trigger).

Deleting the newest rows leaves a valid shorter chain: `head()` gives the last row's number and
hash for an operator to record elsewhere (docs/api.md, "Audit trail").

Electronic signatures (21 CFR 11.50) are audit rows with a `signature` part: printed name,
user name, time and meaning, covered by the row's hash like everything else.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.sqlite import Where, connect, connect_readonly, transaction

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    reason TEXT,
    signature TEXT,
    client TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_entity ON audit(entity, entity_id, seq);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: DELETE refused'); END;
"""

_HASHED = (
    "seq",
    "ts_ns",
    "actor",
    "action",
    "entity",
    "entity_id",
    "old_value",
    "new_value",
    "reason",
    "signature",
    "client",
    "prev_hash",
)

_SECRET_KEY = re.compile(
    r"^(?P<head>\s*-?\s*[\"']?[\w.-]*(?:password|passwd|token|secret|api_key|apikey)[\w.-]*"
    r"[\"']?\s*:\s*)(?P<value>\S.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def redact_config(text: str) -> str:
    """YAML text with the values of password/token/secret keys replaced, before it is stored."""
    return _SECRET_KEY.sub(lambda m: f"{m.group('head')}'***'", text)


def _row_hash(row: dict[str, Any]) -> str:
    canonical = json.dumps([row[k] for k in _HASHED], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class Signature:
    """A signature manifestation (21 CFR 11.50): printed name, user, time and meaning."""

    name: str
    username: str
    meaning: str
    signed_at_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "username": self.username,
            "meaning": self.meaning,
            "signed_at_ns": self.signed_at_ns,
        }


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    ts_ns: int
    actor: str
    action: str
    entity: str
    entity_id: str
    old_value: Any
    new_value: Any
    reason: str | None
    signature: dict[str, Any] | None
    client: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    """Rows checked (all of them when ok)."""
    first_broken: int | None = None
    """seq of the first row that does not fit the chain."""
    problem: str | None = None
    head_hash: str = GENESIS

    def describe(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.rows} rows, head {self.head_hash}"
        return f"audit chain BROKEN at row {self.first_broken}: {self.problem}"


class AuditTrail:
    """The audit table. Thread-safe; several processes may append (each append is IMMEDIATE)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = connect(self.path, synchronous="FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def open_readonly(cls, path: Path | str, *, immutable: bool = False) -> AuditTrail:
        """The trail opened for reading only (verification of a live file or of a backup):
        nothing is created or changed in it."""
        trail = cls.__new__(cls)
        trail.path = Path(path)
        trail._lock = threading.Lock()
        trail._db = connect_readonly(trail.path, immutable=immutable)
        return trail

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ------------------------------------------------------------------------------
    def record(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str | int,
        old: Any = None,
        new: Any = None,
        reason: str | None = None,
        signature: Signature | None = None,
        client: str | None = None,
        ts_ns: int | None = None,
    ) -> AuditRow:
        """Append one row; returns it with its number and hash."""
        row: dict[str, Any] = {
            "ts_ns": time.time_ns() if ts_ns is None else ts_ns,
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "old_value": _dump(old),
            "new_value": _dump(new),
            "reason": reason,
            "signature": _dump(signature.to_dict()) if signature else None,
            "client": client,
        }
        with self._lock:
            with transaction(self._db) as db:
                last = db.execute(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                row["seq"] = (last[0] + 1) if last else 1
                row["prev_hash"] = last[1] if last else GENESIS
                row["hash"] = _row_hash(row)
                cols = [*_HASHED, "hash"]
                db.execute(
                    f"INSERT INTO audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols],
                )
        return self._to_row(row)

    def record_config(
        self,
        path: Path | str,
        text: str,
        actor: str = "system",
        reason: str | None = None,
        changed: list[str] | None = None,
        client: str | None = None,
    ) -> AuditRow | None:
        """A `config.change` row when the config differs from the one last recorded (at
        startup, and at each reload), with the old and new text.

        Secret values are redacted before the text is stored; the hash is of the real text.
        `changed` names what a reload changed (sections, rules). Returns the new row, or None
        when nothing changed.
        """
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        last = self.last(action="config.change")
        old = last.new_value if last is not None else None
        if isinstance(old, dict) and old.get("sha256") == digest:
            return None
        new: dict[str, Any] = {"path": str(path), "sha256": digest, "text": redact_config(text)}
        if changed is not None:
            new["changed"] = changed
        if reason is None:
            reason = "first run with this audit trail" if last is None else "config file changed"
        return self.record(
            actor, "config.change", "config", str(path), old, new, reason, client=client
        )

    # -- reading ------------------------------------------------------------------------------
    @staticmethod
    def _to_row(d: dict[str, Any]) -> AuditRow:
        return AuditRow(
            seq=d["seq"],
            ts_ns=d["ts_ns"],
            actor=d["actor"],
            action=d["action"],
            entity=d["entity"],
            entity_id=d["entity_id"],
            old_value=_load(d["old_value"]),
            new_value=_load(d["new_value"]),
            reason=d["reason"],
            signature=_load(d["signature"]),
            client=d["client"],
            prev_hash=d["prev_hash"],
            hash=d["hash"],
        )

    def _query(self, sql: str, args: list[Any]) -> list[AuditRow]:
        with self._lock:
            cur = self._db.execute(sql, args)
            names = [c[0] for c in cur.description]
            rows = cur.fetchall()
        return [self._to_row(dict(zip(names, r, strict=True))) for r in rows]

    def rows(
        self,
        *,
        after_seq: int = 0,
        since_ns: int | None = None,
        until_ns: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        entity: str | None = None,
        entity_id: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        before_seq: int | None = None,
    ) -> list[AuditRow]:
        where, args = (
            Where()
            .raw("seq > ?", after_seq)
            .lt("seq", before_seq)
            .eq("actor", actor)
            .eq("entity", entity)
            .eq("entity_id", entity_id)
            .eq_or_prefix("action", action)
            .ge("ts_ns", since_ns)
            .lt("ts_ns", until_ns)
            .build()
        )
        order = "DESC" if newest_first else "ASC"
        args.append(limit)
        return self._query(f"SELECT * FROM audit{where} ORDER BY seq {order} LIMIT ?", args)

    def last(self, **filters: Any) -> AuditRow | None:
        found = self.rows(limit=1, newest_first=True, **filters)
        return found[0] if found else None

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest row: record it elsewhere to detect tail truncation."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def _iter_all(self, chunk: int = 5000) -> Iterator[dict[str, Any]]:
        after = -(2**63)
        while True:
            with self._lock:
                cur = self._db.execute(
                    "SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, chunk)
                )
                names = [c[0] for c in cur.description]
                rows = cur.fetchall()
            if not rows:
                return
            for r in rows:
                yield dict(zip(names, r, strict=True))
            after = rows[-1][0]

    def verify(self) -> VerifyResult:
        """Walk the chain from the first row; the first row that does not fit is named."""
        prev_hash, expected_seq, n = GENESIS, 1, 0
        for row in self._iter_all():
            seq = row["seq"]
            if seq != expected_seq:
                what = "missing" if seq > expected_seq else "out of order"
                return VerifyResult(
                    False,
                    n,
                    expected_seq,
                    f"row {expected_seq} is {what} (next row found is {seq})",
                    prev_hash,
                )
            if row["prev_hash"] != prev_hash:
                return VerifyResult(
                    False,
                    n,
                    seq,
                    f"prev_hash does not match row {seq - 1}'s hash "
                    "(a row before it was changed, or rows were inserted or removed)",
                    prev_hash,
                )
            try:
                actual = _row_hash(row)
            except (KeyError, TypeError, ValueError) as e:
                return VerifyResult(False, n, seq, f"row cannot be hashed: {e}", prev_hash)
            if actual != row["hash"]:
                return VerifyResult(
                    False,
                    n,
                    seq,
                    "content does not match its hash (the row was changed)",
                    prev_hash,
                )
            prev_hash, expected_seq, n = row["hash"], seq + 1, n + 1
        return VerifyResult(True, n, None, None, prev_hash)
