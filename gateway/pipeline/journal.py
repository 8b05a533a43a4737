"""The journal: the gateway's durable record of every reading and every rejected message.

SQLite in WAL mode. Readings are stored as line protocol, encoded once at commit. Each sink keeps a
cursor; a row is deleted only when every sink has it and its retention period has passed. When
the size budget is used up the journal refuses new rows (the caller stops acknowledging, so the
broker keeps the messages) instead of deleting anything unsent.

The budget is checked against what is about to be written: `reading_bytes` / `dead_letter_bytes`
estimate what a row will take in SQLite's pages (calibrated against `used_bytes()`; see
`cell_bytes`), so the journal writer commits only the messages that fit.

All methods are blocking; the gateway calls them from worker threads, one writer at a time.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.core.lineprotocol import encode
from gateway.core.ports import JournalRow
from gateway.core.reading import DeadLetter, Reading
from gateway.core.sqlite import Synchronous, connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    ts_from_receive INTEGER NOT NULL DEFAULT 0,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    source TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    sink TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ns INTEGER NOT NULL,
    sink TEXT NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    status INTEGER NOT NULL,
    message TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


class JournalFull(Exception):
    """The size budget is used up; nothing was written."""


# -- row size estimates ---------------------------------------------------------------------------
PAGE_SIZE = 4096
"""SQLite's default page size, which the journal uses (estimates assume it)."""
ROWID_BYTES = 4
"""The rowid varint of a cell: 4 bytes for ids up to 2**28 (5 up to 2**35: 1 % more)."""
RESERVE_PAGES = 2
"""Kept free of the estimate: a page a new row may open, a page an interior split may take."""
INTERIOR_SHARE = 1.01
"""B-tree interior pages: about 1 % on top of the leaf pages (measured: 0.2-0.3 %)."""


def _varint(n: int) -> int:
    for i in range(1, 9):
        if n < 1 << (7 * i):
            return i
    return 9


def cell_bytes(payload: int, page: int = PAGE_SIZE) -> float:
    """Bytes of database file one table row of `payload` record bytes takes, amortised.

    SQLite's table b-tree, appended to in rowid order, fills each leaf page with whole cells
    (cell = record + its size varint + rowid varint + a 2-byte pointer; page header 8 bytes) and
    starts a new page when the next cell does not fit; a record larger than `page - 35` keeps a
    part on the leaf and the rest on overflow pages of `page - 4` bytes. So a row costs
    `page / (cells per page)`, plus its overflow pages. Checked against `used_bytes()` for
    lines of 20 .. 9000 bytes and dead letters of 10 B .. 10 KiB, the estimate is within -1 ..
    +12 % of what SQLite used (over by up to one row per page; tests/unit/test_journal.py).
    For the logger protocol (~66-byte lines) SQLite uses ~86 bytes per row, ~20 of overhead.
    """
    usable = page - 8
    max_local = page - 35
    min_local = (page - 12) * 32 // 255 - 23
    if payload <= max_local:
        local, overflow = payload, 0
    else:
        k = min_local + (payload - min_local) % (page - 4)
        local = k if k <= max_local else min_local
        overflow = math.ceil((payload - local) / (page - 4))
    cell = local + _varint(payload) + ROWID_BYTES + 2 + (4 if overflow else 0)
    return (overflow * page + page / max(1, usable // cell)) * INTERIOR_SHARE


_READING_BYTES: list[float] = []


def reading_bytes(line_bytes: int) -> float:
    """Estimated bytes a readings row with a line of `line_bytes` UTF-8 bytes takes."""
    if line_bytes < len(_READING_BYTES):
        return _READING_BYTES[line_bytes]
    # record: header (size, 3 serial types, the line's) + received_ns (8) + the line
    return cell_bytes(4 + _varint(2 * line_bytes + 13) + 8 + line_bytes)


_READING_BYTES.extend(reading_bytes(n) for n in range(8192))


def dead_letter_bytes(d: DeadLetter) -> float:
    """Estimated bytes a dead_letters row takes (source and reason as UTF-8, payload as is)."""
    src, body, why = len(d.source.encode()), len(d.payload), len(d.reason.encode())
    header = 3 + _varint(2 * src + 13) + _varint(2 * body + 12) + _varint(2 * why + 13)
    return cell_bytes(header + 8 + src + body + why)


@dataclass(slots=True)
class Batch:
    """Consecutive journal rows as one InfluxDB write body."""

    body: str
    first_id: int
    last_id: int
    count: int


class Journal:
    def __init__(
        self,
        path: Path,
        max_bytes: int = 1 << 30,
        retention_s: float = 7 * 86_400,
        dead_letter_retention_s: float = 90 * 86_400,
        synchronous: Synchronous = "FULL",
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.retention_ns = int(retention_s * 1e9)
        self.dead_retention_ns = int(dead_letter_retention_s * 1e9)
        self._wlock = threading.Lock()
        self.synchronous = synchronous
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()
        self._db.executescript(_SCHEMA)
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        # FULL (default): a committed batch survives power loss, not only a process crash.
        return connect(self.path, synchronous=self.synchronous)

    def _reader(self) -> sqlite3.Connection:
        """One read connection per thread, so sinks read while the writer writes (WAL)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    # -- size ---------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes held by live data: the file's pages less the free ones."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

    def file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                total += p.stat().st_size
        return total

    def fill_ratio(self) -> float:
        return self.used_bytes() / self.max_bytes

    def room(self) -> int:
        """Bytes that may still be written: the budget left, less RESERVE_PAGES (estimates are
        amortised over pages, SQLite allocates whole ones). Negative when over."""
        return self.max_bytes - self.used_bytes() - RESERVE_PAGES * self._page_size

    # -- writing ------------------------------------------------------------------------------
    def append(self, readings: Sequence[Reading], dead: Sequence[DeadLetter]) -> int:
        """Commit readings and dead letters in one transaction; returns the last reading id.

        Raises JournalFull (writing nothing) when the budget is used up.
        """
        if self.used_bytes() >= self.max_bytes:
            raise JournalFull(
                f"journal {self.path} holds {self.used_bytes()} of {self.max_bytes} bytes"
            )
        rows = []
        for r in readings:
            rows.append((r.received_ns, 1 if r.ts_from_receive else 0, encode(r)))
        with self._wlock:
            return self._append(rows, dead)

    def write(self, rows: list[tuple[int, int, str]], dead: Sequence[DeadLetter]) -> int:
        """Commit encoded rows `(received_ns, ts_from_receive, line)` and dead letters in one
        transaction, whatever the budget says (the journal writer checks it before, per message);
        returns the last reading id."""
        with self._wlock:
            return self._append(rows, dead)

    def _append(self, rows: list[tuple[int, int, str]], dead: Sequence[DeadLetter]) -> int:
        db = self._db
        with transaction(db):
            if rows:
                db.executemany(
                    "INSERT INTO readings (received_ns, ts_from_receive, line) VALUES (?, ?, ?)",
                    rows,
                )
            if dead:
                db.executemany(
                    "INSERT INTO dead_letters (received_ns, source, payload, reason)"
                    " VALUES (?, ?, ?, ?)",
                    [(d.received_ns, d.source, d.payload, d.reason) for d in dead],
                )
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name='readings'").fetchone()
        return int(last[0]) if last else 0

    # -- sinks --------------------------------------------------------------------------------
    def register_sink(self, sink: str) -> int:
        """Declare a sink; a new one starts at the oldest row still held. Returns its cursor."""
        with self._wlock:
            self._db.execute(
                "INSERT OR IGNORE INTO cursors (sink, position) "
                "VALUES (?, (SELECT COALESCE(MIN(id), 1) - 1 FROM readings))",
                (sink,),
            )
        return self.cursor(sink)

    def cursor(self, sink: str) -> int:
        row = (
            self._reader()
            .execute("SELECT position FROM cursors WHERE sink = ?", (sink,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def read_after(self, position: int, limit: int) -> list[JournalRow]:
        cur = self._reader().execute(
            "SELECT id, received_ns, line FROM readings WHERE id > ? ORDER BY id LIMIT ?",
            (position, limit),
        )
        return [JournalRow(*r) for r in cur]

    def read_batch(self, position: int, limit: int) -> Batch | None:
        """The next rows after `position` as one line-protocol body, joined by SQLite itself."""
        row = (
            self._reader()
            .execute(
                "SELECT group_concat(line, char(10)), MIN(id), MAX(id), COUNT(*) FROM"
                " (SELECT id, line FROM readings WHERE id > ? ORDER BY id LIMIT ?)",
                (position, limit),
            )
            .fetchone()
        )
        if not row or not row[3]:
            return None
        return Batch(body=row[0], first_id=row[1], last_id=row[2], count=row[3])

    def advance(self, sink: str, position: int) -> None:
        with self._wlock:
            self._db.execute("UPDATE cursors SET position = ? WHERE sink = ?", (position, sink))

    def quarantine(
        self, sink: str, first_id: int, last_id: int, status: int, message: str, body: str
    ) -> None:
        """Keep a batch the store refused, with its answer, and move the sink past it."""
        with self._wlock:
            self._quarantine(sink, first_id, last_id, status, message, body)

    def _quarantine(
        self, sink: str, first_id: int, last_id: int, status: int, message: str, body: str
    ) -> None:
        db = self._db
        with transaction(db):
            db.execute(
                "INSERT INTO quarantine"
                " (created_ns, sink, first_id, last_id, status, message, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time_ns(), sink, first_id, last_id, status, message, body),
            )
            db.execute("UPDATE cursors SET position = ? WHERE sink = ?", (last_id, sink))

    # -- counts -------------------------------------------------------------------------------
    def last_id(self) -> int:
        row = (
            self._reader()
            .execute("SELECT seq FROM sqlite_sequence WHERE name='readings'")
            .fetchone()
        )
        return int(row[0]) if row else 0

    def backlog(self, sink: str) -> int:
        return self.last_id() - self.cursor(sink)

    def count(self, table: str) -> int:
        if table not in ("readings", "dead_letters", "quarantine"):
            raise ValueError(table)
        return int(self._reader().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        cur = self._reader().execute(
            "SELECT source, payload, reason, received_ns FROM dead_letters"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [DeadLetter(s, bytes(p), r, t) for s, p, r, t in cur]

    def lines_since(self, received_after_ns: int) -> Iterable[JournalRow]:
        """Rows received after a time, in order: rebuilding state (rules) after a restart."""
        cur = self._reader().execute(
            "SELECT id, received_ns, line FROM readings WHERE received_ns > ? ORDER BY id",
            (received_after_ns,),
        )
        for r in cur:
            yield JournalRow(*r)

    def lines_containing(self, text: str, received_after_ns: int) -> Iterable[JournalRow]:
        """Rows received after a time whose line holds `text` (e.g. a tag as line protocol
        writes it), in order: one device's history, filtered by SQLite before decoding."""
        cur = self._reader().execute(
            "SELECT id, received_ns, line FROM readings"
            " WHERE received_ns > ? AND instr(line, ?) > 0 ORDER BY id",
            (received_after_ns, text),
        )
        for r in cur:
            yield JournalRow(*r)

    def pruned_before_ns(self) -> int | None:
        """Rows received before this time may have been deleted by retention; None when no row
        ever was (the oldest row held is the first one written)."""
        row = (
            self._reader()
            .execute("SELECT id, received_ns FROM readings ORDER BY id LIMIT 1")
            .fetchone()
        )
        if row is None:
            return None if self.last_id() == 0 else time.time_ns()
        return None if row[0] == 1 else int(row[1])

    # -- retention ----------------------------------------------------------------------------
    def prune(self, now_ns: int | None = None) -> int:
        """Delete rows every sink has taken and that are past retention. Returns rows deleted."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._wlock:
            return self._prune(now_ns)

    def _prune(self, now_ns: int) -> int:
        row = self._db.execute("SELECT MIN(position) FROM cursors").fetchone()
        taken = row[0] if row and row[0] is not None else None
        if taken is None:
            # No sink has ever been registered: the journal is the only record (demo mode).
            taken = self.last_id()
        cutoff = now_ns - self.retention_ns
        deleted = self._db.execute(
            "DELETE FROM readings WHERE id <= ? AND received_ns < ?", (taken, cutoff)
        ).rowcount
        self._db.execute(
            "DELETE FROM dead_letters WHERE received_ns < ?", (now_ns - self.dead_retention_ns,)
        )
        return int(deleted)

    def close(self) -> None:
        self._db.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
