"""The durable outbox: every notification is a row in the alert store's SQLite file, written in
the same transaction as the alert transition it tells of, deleted only once delivered or given
up. A crash between raising an alert and telling people loses nothing: the rows are there at the
next start and go out then.

Each row is one delivery: one channel, one recipient unit (an SMS number; everyone else on a
channel together), one transition. Its key — a UUID derived from (gateway, alert id,
transition, channel, recipients) — is the idempotency key receivers see (webhook
`X-Vigil-Delivery`, DingTalk `msgUuid`, Aliyun `OutId`, Tencent `SessionContext`): the same on
every attempt and after a restart. State channels (MQTT) keep one row per topic: a newer state
replaces a waiting one (`superseded`).

`notification_log` keeps what happened to each (sent, a failed attempt, failed, gave up,
dropped, superseded) with the receiver's answer: it is part of the alert's history.

Single-threaded like the alert store: the rules engine, the API's alert actions and the
notifier workers all run on the gateway's event loop, and the store commits what they write.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass, fields
from typing import Any

from alert_rules.model import Alert, AlertEvent, AlertState, EventKind, Priority
from alert_rules.store import AlertStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    coalesce_key TEXT,
    alert_id INTEGER NOT NULL,
    transition INTEGER NOT NULL,
    event TEXT NOT NULL,
    recipients TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_channel ON outbox(channel, id);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_coalesce ON outbox(channel, coalesce_key)
    WHERE coalesce_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS notification_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL,
    transition INTEGER NOT NULL,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipients TEXT NOT NULL,
    key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    detail TEXT,
    at_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notification_log_alert ON notification_log(alert_id, id);
"""

SENT = "sent"
RETRY = "retry"
"""An attempt failed; another follows."""
FAILED = "failed"
"""Refused for good (a permanent error): not retried."""
GAVE_UP = "gave_up"
"""Still failing when its retry budget (`give_up_after_s`) ran out."""
DROPPED = "dropped"
"""Refused when stored: the channel's outbox held `max_queue` notifications already."""
SUPERSEDED = "superseded"
"""A newer state of the same alert replaced it (state channels)."""
KEY_NAMESPACE = uuid.UUID("6f1c2a8e-3d47-5b0a-9c1e-7a2f4b8d9e10")


def delivery_key(
    gateway: str, alert_id: int, transition: int, channel: str, recipients: tuple[str, ...]
) -> str:
    """The idempotency key: stable for (gateway, alert, transition, channel, recipients)."""
    name = "\x1f".join([gateway, str(alert_id), str(transition), channel, *recipients])
    return uuid.uuid5(KEY_NAMESPACE, name).hex


_ALERT_FIELDS = tuple(f.name for f in fields(Alert))


def event_to_json(event: AlertEvent) -> str:
    """The event as stored in a row (once per event, whatever the number of rows)."""
    a = event.alert
    alert = {name: getattr(a, name) for name in _ALERT_FIELDS}
    alert["severity"], alert["state"] = str(a.severity), str(a.state)
    return json.dumps(
        {
            "kind": str(event.kind),
            "alert": alert,
            "old_state": None if event.old_state is None else str(event.old_state),
            "new_state": str(event.new_state),
            "at_ns": event.at_ns,
            "wall_ns": event.wall_ns,
            "by": event.by,
            "reason": event.reason,
            "annunciate": event.annunciate,
            "excursion_start_ns": event.excursion_start_ns,
            "value": event.value,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def event_from_json(text: str) -> AlertEvent:
    d = json.loads(text)
    a = dict(d["alert"])
    a["severity"] = Priority(a["severity"])
    a["state"] = AlertState(a["state"])
    return AlertEvent(
        EventKind(d["kind"]),
        Alert(**a),
        None if d["old_state"] is None else AlertState(d["old_state"]),
        AlertState(d["new_state"]),
        d["at_ns"],
        d["wall_ns"],
        d["by"],
        d["reason"],
        d["annunciate"],
        d.get("excursion_start_ns"),
        d.get("value"),
    )


@dataclass(slots=True)
class OutboxRow:
    id: int
    key: str
    channel: str
    alert_id: int
    transition: int
    event: AlertEvent
    recipients: tuple[str, ...]
    created_ns: int
    attempts: int
    last_error: str | None


class Outbox:
    """The `outbox` and `notification_log` tables, on the alert store's connection."""

    def __init__(self, store: AlertStore) -> None:
        self.store = store
        self.db: sqlite3.Connection = store.db
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def commit(self) -> None:
        self.store.commit()

    # -- storing (inside the alert transition's transaction: no commit here) ------------------
    def add(
        self,
        key: str,
        channel: str,
        coalesce_key: str | None,
        event: AlertEvent,
        transition: int,
        recipients: tuple[str, ...],
        now_ns: int,
        doc: str | None = None,
    ) -> list[OutboxRow]:
        """Store one delivery; returns the rows it superseded (same channel and coalescing
        key, still waiting), which are deleted: the new row goes to the back of the line."""
        replaced: list[OutboxRow] = []
        if coalesce_key is not None:
            replaced = self._rows("WHERE channel = ? AND coalesce_key = ?", (channel, coalesce_key))
            for row in replaced:
                self.db.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
        self.db.execute(
            "INSERT OR IGNORE INTO outbox (key, channel, coalesce_key, alert_id, transition, "
            "event, recipients, doc, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                channel,
                coalesce_key,
                event.alert.id,
                transition,
                str(event.kind),
                json.dumps(list(recipients), ensure_ascii=False),
                doc if doc is not None else event_to_json(event),
                now_ns,
            ),
        )
        return replaced

    def orphans(self, channels: set[str]) -> list[OutboxRow]:
        """Rows of channels that are no longer configured (a changed config)."""
        rows = self._rows("ORDER BY id", ())
        return [r for r in rows if r.channel not in channels]

    def waits(self, channel: str, coalesce_key: str) -> bool:
        """A row with this coalescing key waits (a newer state would replace it)."""
        row = self.db.execute(
            "SELECT 1 FROM outbox WHERE channel = ? AND coalesce_key = ?", (channel, coalesce_key)
        ).fetchone()
        return row is not None

    def count(self, channel: str) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM outbox WHERE channel = ?", (channel,))
        return int(row.fetchone()[0])

    # -- delivering ---------------------------------------------------------------------------
    def get(self, row_id: int) -> OutboxRow | None:
        rows = self._rows("WHERE id = ?", (row_id,))
        return rows[0] if rows else None

    def ids(self, channel: str) -> list[int]:
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT id FROM outbox WHERE channel = ? ORDER BY id", (channel,)
            )
        ]

    def heads(self, channel: str) -> list[tuple[int, str]]:
        """(id, alert and recipients) of a channel's waiting rows, oldest first: rows of the
        same alert for the same recipients go out in this order."""
        return [
            (int(r[0]), f"{r[1]}|{r[2]}")
            for r in self.db.execute(
                "SELECT id, alert_id, recipients FROM outbox WHERE channel = ? ORDER BY id",
                (channel,),
            )
        ]

    def attempt_failed(self, row: OutboxRow, error: str, now_ns: int) -> None:
        """Count the attempt and keep its error (the row stays for the next one)."""
        self.db.execute(
            "UPDATE outbox SET attempts = ?, last_error = ? WHERE id = ?",
            (row.attempts, error, row.id),
        )
        self.log(row, RETRY, error, now_ns)

    def finish(self, row: OutboxRow, outcome: str, detail: str | None, now_ns: int) -> None:
        """Delete the row and record how it ended (sent, failed, gave up, superseded).

        Not committed here: the rules engine commits the store at least once a second (its
        tick) and the notifier at close. A crash before that sends the row again after the
        restart, with the same key (at least once); no fsync per delivery holds up ingest."""
        self.db.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
        self.log(row, outcome, detail, now_ns)

    def log(self, row: OutboxRow, outcome: str, detail: str | None, now_ns: int) -> None:
        self.db.execute(
            "INSERT INTO notification_log (alert_id, transition, event, channel, recipients, "
            "key, outcome, attempts, detail, at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.alert_id,
                row.transition,
                str(row.event.kind),
                row.channel,
                json.dumps(list(row.recipients), ensure_ascii=False),
                row.key,
                outcome,
                row.attempts,
                detail,
                now_ns,
            ),
        )

    def history(self, alert_id: int) -> list[dict[str, Any]]:
        """What happened to an alert's notifications, oldest first."""
        cur = self.db.execute(
            "SELECT * FROM notification_log WHERE alert_id = ? ORDER BY id", (alert_id,)
        )
        names = [c[0] for c in cur.description]
        out = []
        for r in cur.fetchall():
            d = dict(zip(names, r, strict=True))
            d["recipients"] = json.loads(d["recipients"])
            out.append(d)
        return out

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[OutboxRow]:
        cur = self.db.execute(
            "SELECT id, key, channel, alert_id, transition, doc, recipients, created_ns, "
            f"attempts, last_error FROM outbox {where}",
            args,
        )
        return [
            OutboxRow(
                id=r[0],
                key=r[1],
                channel=r[2],
                alert_id=r[3],
                transition=r[4],
                event=event_from_json(r[5]),
                recipients=tuple(json.loads(r[6])),
                created_ns=r[7],
                attempts=r[8],
                last_error=r[9],
            )
            for r in cur.fetchall()
        ]
