"""The journal: the gateway's durable record of every reading and every rejected message.

SQLite in WAL mode. Readings are stored as line protocol, encoded once at commit. Each sink keeps a
cursor; a row is deleted only when every sink has it and its retention period has passed. When
the size budget is used up the journal refuses new rows (the caller stops acknowledging, so the
broker keeps the messages) instead of deleting anything unsent.

The budget is checked against what is about to be written: `reading_bytes` / `dead_letter_bytes`
estimate what a row will take in SQLite's pages (calibrated against `used_bytes()`; see
`cell_bytes`), so the journal writer commits only the messages that fit.

Every commit of readings adds a link to the journal's hash chain (chain.py): one SHA-256 per
batch. Pruning does not delete readings: forwarded rows past `retention_hours` move, whole links
at a time, into the archive's daily segments (archive.py), and the journal records a checkpoint
(the last link moved) where its own part of the chain now starts.

The schema carries a version (`PRAGMA user_version`): an older journal is migrated when opened
(0 → 1: readings of vigil 0.1.0 get links, so the chain covers them from then on); a newer one is
refused, so an older vigil never misreads what a newer one wrote.

All methods are blocking; the gateway calls them from worker threads, one writer at a time.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.core.lineprotocol import encode
from gateway.core.ports import JournalRow
from gateway.core.reading import DeadLetter, Reading
from gateway.core.sqlite import Synchronous, connect, connect_readonly, transaction
from gateway.pipeline.archive import Archive, ArchivedLink, day_of, line_ts
from gateway.pipeline.chain import GENESIS, ChainResult, ChainWalker, Link, link_hash, rows_hash

log = logging.getLogger("vigil.journal")

SCHEMA_VERSION = 1
"""0: vigil 0.1.0 (no chain). 1: the hash chain (`chain`, `checkpoints`)."""

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
CREATE TABLE IF NOT EXISTS chain (
    seq INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    committed_ns INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    last_id INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
);
"""

MIGRATION_LINK_ROWS = 10_000
"""Readings per link when a journal of vigil 0.1.0 is given its chain."""
ARCHIVE_CHUNK_ROWS = 100_000
"""Readings moved to the archive per transaction while pruning."""
MAX_LATE_RECEIVE_NS = 86_400 * 10**9
"""History by event time looks at rows received up to a day before the range starts (a device
clock ahead by up to `max_future_skew_s`); buffered uploads arrive after, never before."""


class JournalFull(Exception):
    """The size budget is used up; nothing was written."""


class JournalVersionError(Exception):
    """The journal was written by a newer vigil: refused rather than misread."""


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one prune moved to the archive (for the audit trail and the log)."""

    readings: int
    links: int
    checkpoint_seq: int
    checkpoint_hash: str
    dead_letters: int
    sealed: list[str]


# -- row size estimates ---------------------------------------------------------------------------
PAGE_SIZE = 4096
"""SQLite's default page size, which the journal uses (estimates assume it)."""
ROWID_BYTES = 4
"""The rowid varint of a cell: 4 bytes for ids up to 2**28 (5 up to 2**35: 1 % more)."""
RESERVE_PAGES = 2
"""Kept free of the estimate: a page a new row may open, a page an interior split may take."""
INTERIOR_SHARE = 1.01
"""B-tree interior pages: about 1 % on top of the leaf pages (measured: 0.2-0.3 %)."""


def _link_bytes() -> int:
    # record: header (8 serial types) + seq, ids, count, time (5 integers, <= 8 bytes each)
    # + two 64-character hex hashes
    return math.ceil(cell_bytes(9 + 5 * 8 + 2 * 64))


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


LINK_BYTES = _link_bytes()
"""The `chain` row one commit adds (kept out of the room for readings)."""

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
        archive_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.retention_ns = int(retention_s * 1e9)
        self.dead_retention_ns = int(dead_letter_retention_s * 1e9)
        self._wlock = threading.Lock()
        self.synchronous = synchronous
        self.archive = Archive(archive_dir or path.parent / "archive")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self._db.close()
            raise JournalVersionError(
                f"{path}: journal schema {version} was written by a newer vigil; this one knows "
                f"up to {SCHEMA_VERSION}. Install that vigil again, or restore a backup made "
                "with this one (docs/operations.md, Upgrade)"
            )
        self._db.executescript(_SCHEMA)
        if version < 1:
            self._migrate_chain()
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._local = threading.local()
        self._head = self._load_head()
        self._archived_seq = self.archive.last_seq()
        self.prune_reports: list[PruneReport] = []
        """Prunes not yet audited; the gateway takes them (`take_prune_reports`)."""

    def _connect(self) -> sqlite3.Connection:
        # FULL (default): a committed batch survives power loss, not only a process crash.
        return connect(self.path, synchronous=self.synchronous)

    def _migrate_chain(self) -> None:
        """Schema 0 → 1: link the readings already held (vigil 0.1.0 kept no chain), in runs of
        consecutive ids of at most MIGRATION_LINK_ROWS, so verification covers them too."""
        db = self._db
        with transaction(db):
            seq, prev = 0, GENESIS
            now = time.time_ns()
            run: list[tuple[int, int, int, str]] = []
            linked = 0

            def close_run() -> None:
                nonlocal seq, prev, linked
                if not run:
                    return
                seq += 1
                first, last = run[0][0], run[-1][0]
                h = link_hash(
                    prev,
                    seq,
                    first,
                    last,
                    now,
                    [r[1] for r in run],
                    [r[2] for r in run],
                    [r[3] for r in run],
                )
                db.execute(
                    "INSERT INTO chain VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (seq, first, last, len(run), now, prev, h),
                )
                linked += len(run)
                prev = h
                run.clear()

            cur = db.execute(
                "SELECT id, received_ns, ts_from_receive, line FROM readings ORDER BY id"
            )
            for row in cur:
                if run and (row[0] != run[-1][0] + 1 or len(run) >= MIGRATION_LINK_ROWS):
                    close_run()
                run.append(row)
            close_run()
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if linked:
            log.warning(
                "journal migrated to schema 1: readings of the previous release linked into the "
                "hash chain",
                extra={"journal": str(self.path), "readings": linked, "batches": seq},
            )

    def _load_head(self) -> tuple[int, str, int]:
        """(seq, hash, committed_ns) of the newest link, or of the last checkpoint."""
        row = self._db.execute(
            "SELECT seq, hash, committed_ns FROM chain ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row:
            return int(row[0]), str(row[1]), int(row[2])
        cp = self._db.execute(
            "SELECT seq, hash, created_ns FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return (int(cp[0]), str(cp[1]), int(cp[2])) if cp else (0, GENESIS, 0)

    def head(self) -> tuple[int, str]:
        """(batch, hash) of the newest link: what reports print and anchors record."""
        seq, h, _ = self._head
        return seq, h

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
        amortised over pages, SQLite allocates whole ones) and the commit's chain link.
        Negative when over."""
        return self.max_bytes - self.used_bytes() - RESERVE_PAGES * self._page_size - LINK_BYTES

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
        head = self._head
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
            if rows:
                # one link per commit; ids are consecutive (one writer, AUTOINCREMENT)
                seq, first = head[0] + 1, int(last[0]) - len(rows) + 1
                committed = max(time.time_ns(), head[2])  # never backwards: days stay in order
                h = rows_hash(head[1], seq, first, committed, rows)
                db.execute(
                    "INSERT INTO chain VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (seq, first, int(last[0]), len(rows), committed, head[1], h),
                )
                head = (seq, h, committed)
        self._head = head
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
        """Move whole links every sink has taken and whose readings are all past retention into
        the archive; delete expired dead letters. Returns the readings moved."""
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
        moved = links = 0
        last: Link | None = None
        try:
            while True:
                batch = self._eligible(int(taken), cutoff)
                if not batch:
                    break
                self._move(batch)
                moved += sum(link.count for link in batch)
                links += len(batch)
                last = batch[-1]
        except (OSError, sqlite3.Error) as e:
            # nothing is deleted from the journal unless the archive took it; it fills up and
            # the journal alarms say so
            log.error(
                "cannot write the archive: readings stay in the journal",
                extra={"archive": str(self.archive.root), "error": f"{type(e).__name__}: {e}"},
            )
        dead = self._db.execute(
            "DELETE FROM dead_letters WHERE received_ns < ?", (now_ns - self.dead_retention_ns,)
        ).rowcount
        oldest = self._db.execute("SELECT MIN(committed_ns) FROM chain").fetchone()[0]
        try:
            sealed = self.archive.seal_before(day_of(oldest if oldest is not None else now_ns))
        except OSError as e:
            sealed = []
            log.error("cannot seal the archive's finished days", extra={"error": str(e)})
        if last is not None or dead or sealed:
            report = PruneReport(
                moved,
                links,
                last.seq if last else 0,
                last.hash if last else "",
                int(dead),
                [e["day"] for e in sealed],
            )
            self.prune_reports.append(report)
            if moved:
                log.info(
                    "journal pruned: readings moved to the archive",
                    extra={
                        "readings": moved,
                        "batches": links,
                        "checkpoint": report.checkpoint_seq,
                    },
                )
        return moved

    def take_prune_reports(self) -> list[PruneReport]:
        with self._wlock:
            out, self.prune_reports = self.prune_reports, []
        return out

    def _eligible(self, taken: int, cutoff: int) -> list[Link]:
        """The oldest links (a prefix, up to ARCHIVE_CHUNK_ROWS readings) fully taken by every
        sink whose readings were all received before `cutoff`."""
        out: list[Link] = []
        rows = 0
        cur = self._db.execute(
            "SELECT seq, first_id, last_id, count, committed_ns, prev_hash, hash FROM chain"
            " WHERE last_id <= ? ORDER BY seq LIMIT 1000",
            (taken,),
        )
        for r in cur.fetchall():
            link = Link(*r)
            newest = self._db.execute(
                "SELECT MAX(received_ns) FROM readings WHERE id BETWEEN ? AND ?",
                (link.first_id, link.last_id),
            ).fetchone()[0]
            if newest is not None and newest >= cutoff:
                break
            out.append(link)
            rows += link.count
            if rows >= ARCHIVE_CHUNK_ROWS:
                break
        return out

    def _move(self, links: list[Link]) -> None:
        """Archive links (unless an interrupted prune already did), then delete them here and
        record the checkpoint, in one transaction."""
        db = self._db
        todo = [link for link in links if link.seq > self._archived_seq]
        if todo:
            items = []
            for link in todo:
                rows = db.execute(
                    "SELECT received_ns, ts_from_receive, line FROM readings"
                    " WHERE id BETWEEN ? AND ? ORDER BY id",
                    (link.first_id, link.last_id),
                ).fetchall()
                received, flags, lines = zip(*rows, strict=True) if rows else ((), (), ())
                items.append(ArchivedLink(link, received, flags, lines))
            self.archive.append(items)
            self._archived_seq = todo[-1].seq
        first, last = links[0], links[-1]
        with transaction(db):
            db.execute(
                "DELETE FROM readings WHERE id BETWEEN ? AND ?", (first.first_id, last.last_id)
            )
            db.execute("DELETE FROM chain WHERE seq <= ?", (last.seq,))
            db.execute(
                "INSERT INTO checkpoints (seq, hash, last_id, readings, created_ns)"
                " VALUES (?, ?, ?, ?, ?)",
                (last.seq, last.hash, last.last_id, sum(x.count for x in links), time.time_ns()),
            )

    def close(self) -> None:
        self._db.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()


# -- read-only: verification and history (CLI, backups, reports) ----------------------------------
def verify_chain(journal_path: Path, archive: Archive) -> ChainResult:
    """Walk the chain from its start through the archive and the journal; the first link that
    does not fit is named. Reads one snapshot of the journal; safe while the gateway runs."""
    db = connect_readonly(journal_path)
    try:
        db.execute("BEGIN")
        links = [
            Link(*r)
            for r in db.execute(
                "SELECT seq, first_id, last_id, count, committed_ns, prev_hash, hash"
                " FROM chain ORDER BY seq"
            )
        ]
        cp = db.execute(
            "SELECT seq, hash, last_id FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        walker = ChainWalker()
        problems = archive.verify(walker, before_seq=links[0].seq if links else None)
        if problems:
            return _broken(walker, "; ".join(problems))
        if walker.failure is not None:
            return walker.result()
        if cp is not None:
            archive.bridge(walker, int(cp[0]) + 1)
            if (walker.seq, walker.hash) != (int(cp[0]), str(cp[1])):
                return _broken(
                    walker,
                    f"the journal's checkpoint is batch {cp[0]} but the archive "
                    f"({archive.root}) ends at batch {walker.seq}: archived batches are missing "
                    "or changed (is retention.archive_dir right?)",
                )
        rows: Iterator[tuple[int, int, int, str]] = iter(
            db.execute("SELECT id, received_ns, ts_from_receive, line FROM readings ORDER BY id")
        )
        pending = next(rows, None)
        floor = int(cp[2]) if cp is not None else 0
        for link in links:
            received: list[int] = []
            flags: list[int] = []
            lines: list[str] = []
            while pending is not None and pending[0] <= link.last_id:
                if pending[0] > floor:
                    received.append(pending[1])
                    flags.append(pending[2])
                    lines.append(pending[3])
                pending = next(rows, None)
            if not walker.step(link, received, flags, lines):
                return walker.result()
        if pending is not None:
            extra = 1 + sum(1 for _ in rows)
            return _broken(
                walker,
                f"{extra} readings from id {pending[0]} on are in no batch after the head "
                "(added to the file after the fact)",
            )
        return walker.result()
    finally:
        db.close()


def _broken(walker: ChainWalker, problem: str) -> ChainResult:
    return ChainResult(False, walker.links, walker.readings, walker.seq, walker.hash, None, problem)


def read_head(journal_path: Path) -> tuple[int, str]:
    """(batch, hash) of a journal's newest link, read-only (backups, anchors, the CLI)."""
    db = connect_readonly(journal_path)
    try:
        row = db.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            row = db.execute(
                "SELECT seq, hash FROM checkpoints ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)
    except sqlite3.OperationalError:  # a journal of vigil 0.1.0, before its migration
        return 0, GENESIS
    finally:
        db.close()


class History:
    """Readings by event time from the journal and its archive together: what reports of any
    period read, however long ago it was moved out of the hot journal."""

    def __init__(self, journal_path: Path, archive: Archive) -> None:
        self.journal_path = journal_path
        self.archive = archive

    def rows_between(self, start_ns: int, end_ns: int) -> Iterator[JournalRow]:
        """Rows with event time in [start, end): the archive's first, then the journal's."""
        db = connect_readonly(self.journal_path)
        try:
            db.execute("BEGIN")  # the archive holds everything before this snapshot's links
            row = db.execute("SELECT MIN(first_id) FROM chain").fetchone()
            hot_first = int(row[0]) if row and row[0] is not None else None
            since = db.execute(
                "SELECT MIN(first_id) FROM chain WHERE committed_ns >= ?",
                (start_ns - MAX_LATE_RECEIVE_NS,),
            ).fetchone()[0]
            for rid, received, line in self.archive.rows_between(start_ns, end_ns):
                if hot_first is None or rid < hot_first:
                    yield JournalRow(rid, received, line)
            if since is not None:
                cur = db.execute(
                    "SELECT id, received_ns, line FROM readings WHERE id >= ? ORDER BY id",
                    (since,),
                )
                for rid, received, line in cur:
                    if start_ns <= line_ts(line) < end_ns:
                        yield JournalRow(rid, received, line)
        finally:
            db.close()


def link_of(journal_path: Path, archive: Archive, seq: int) -> tuple[str | None, int]:
    """(hash of link `seq` from the journal or its archive, or None; the head batch)."""
    head, _ = read_head(journal_path)
    db = connect_readonly(journal_path)
    try:
        row = db.execute("SELECT hash FROM chain WHERE seq = ?", (seq,)).fetchone()
    finally:
        db.close()
    if row:
        return str(row[0]), head
    for item in archive.iter_links(after_seq=seq - 1, before_seq=seq + 1):
        return item.link.hash, head
    return None, head
