"""The journal's archive: readings past the hot window, in compact daily segments, for years.

The journal keeps `retention_hours` of forwarded readings; older ones move here instead of being
deleted, because GSP wants monitoring records kept for years (`retention.records_years`, at least
5). A segment is one SQLite file per UTC day of commit (`YYYY/journal-YYYY-MM-DD.sqlite`) holding
the journal's chain links with their rows zlib-compressed in one blob per link (~5x smaller than
the journal), so the hash chain goes on verifying across journal and archive (chain.py).

Once a day is over its segment is sealed: its file's SHA-256 goes into `manifest.jsonl`, one JSON
entry per line, each carrying the hash of the entry before it (the manifest is chained too).
A sealed segment is deleted only when its day is older than the records floor and no
`RetentionHold` (lots: expiry + 5 years) claims its readings; the deletion is a manifest entry
recording where the chain resumes.

Reports read it through `History` (journal and archive together, by event time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.core.ports import RetentionHold
from gateway.core.sqlite import connect, connect_readonly, transaction
from gateway.pipeline.chain import GENESIS, ChainWalker, Link

log = logging.getLogger("vigil.archive")

FORMAT = 1
"""Segment format version (meta table); a newer one is refused, never misread."""
MANIFEST = "manifest.jsonl"
DAY_NS = 86_400 * 10**9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    seq INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    committed_ns INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    rows BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS links_ts ON links(max_ts, min_ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ArchiveError(Exception):
    """An archive this vigil cannot use (a newer format, a manifest that does not parse)."""


@dataclass(frozen=True, slots=True)
class ArchivedLink:
    """A link with its rows, as the journal hands it over."""

    link: Link
    received: Sequence[int]
    flags: Sequence[int]
    lines: Sequence[str]


def pack_rows(received: Sequence[int], flags: Sequence[int], lines: Sequence[str]) -> bytes:
    body = struct.pack(f"<{len(received)}q", *received) + bytes(flags)
    return zlib.compress(body + "\n".join(lines).encode("utf-8", "surrogatepass"), 6)


def unpack_rows(blob: bytes, count: int) -> tuple[tuple[int, ...], bytes, list[str]]:
    data = zlib.decompress(blob)
    received = struct.unpack_from(f"<{count}q", data, 0)
    flags = data[8 * count : 9 * count]
    text = data[9 * count :].decode("utf-8", "surrogatepass")
    return received, flags, text.split("\n") if count else []


def line_ts(line: str) -> int:
    """The event time of an encoded line (its last token; the encoder always writes one)."""
    return int(line.rsplit(" ", 1)[1])


def day_of(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


def day_end_ns(day: str) -> int:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return int((start + timedelta(days=1)).timestamp()) * 10**9


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class ExpireResult:
    deleted_segments: int
    deleted_readings: int
    held: list[str]
    """Segments past the floor kept because a record holds their readings (with the reason)."""


class Archive:
    """The archive directory. Writes come from the journal (one writer); reads from anywhere."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- layout -------------------------------------------------------------------------------
    def segment_path(self, day: str) -> Path:
        return self.root / day[:4] / f"journal-{day}.sqlite"

    def segments(self) -> list[tuple[str, Path]]:
        """(day, file) of every segment on disk, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.glob("*/journal-*.sqlite"):
            day = p.stem.removeprefix("journal-")
            found.append((day, p))
        return sorted(found)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    # -- manifest -----------------------------------------------------------------------------
    def manifest(self) -> list[dict[str, Any]]:
        """The manifest's entries; a torn last line (a crash while appending) is left out."""
        path = self.manifest_path
        if not path.exists():
            return []
        entries = []
        lines = path.read_text().splitlines()
        for i, text in enumerate(lines):
            if not text.strip():
                continue
            try:
                entries.append(json.loads(text))
            except ValueError:
                if i == len(lines) - 1:
                    log.warning("archive manifest: torn last line ignored", extra={"line": i + 1})
                    break
                raise ArchiveError(f"{path}: line {i + 1} is not JSON") from None
        return entries

    def _append_manifest(self, entry: dict[str, Any]) -> dict[str, Any]:
        entries = self.manifest()
        entry["prev"] = entries[-1]["hash"] if entries else GENESIS
        entry["hash"] = _entry_hash(entry)
        good = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        path = self.manifest_path
        if path.exists() and path.read_text() != good:  # drop a torn line before appending
            tmp = path.with_suffix(".tmp")
            tmp.write_text(good)
            os.replace(tmp, path)
        with path.open("a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return entry

    def sealed_days(self) -> set[str]:
        return {e["day"] for e in self.manifest() if e.get("kind") == "sealed"}

    # -- writing (the journal's prune) --------------------------------------------------------
    def last_seq(self) -> int:
        """The newest link archived (0: none), so a prune interrupted after writing the archive
        and before deleting from the journal finishes without writing anything twice."""
        segs = self.segments()
        for _day, path in reversed(segs):
            db = connect_readonly(path)
            try:
                row = db.execute("SELECT MAX(seq) FROM links").fetchone()
            finally:
                db.close()
            if row and row[0] is not None:
                return int(row[0])
        deleted = [e for e in self.manifest() if e.get("kind") == "deleted"]
        return int(deleted[-1]["last_seq"]) if deleted else 0

    def append(self, links: Sequence[ArchivedLink]) -> None:
        """Write links (in seq order) into their days' segments, one transaction per segment."""
        by_day: dict[str, list[ArchivedLink]] = {}
        for item in links:
            by_day.setdefault(day_of(item.link.committed_ns), []).append(item)
        for day, items in by_day.items():
            path = self.segment_path(day)
            path.parent.mkdir(parents=True, exist_ok=True)
            db = connect(path, wal=False)
            try:
                db.executescript(_SCHEMA)
                with transaction(db):
                    db.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?), ('day', ?)",
                        (str(FORMAT), day),
                    )
                    db.executemany(
                        "INSERT OR IGNORE INTO links (seq, first_id, last_id, count, committed_ns,"
                        " prev_hash, hash, min_ts, max_ts, rows) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [_row(item) for item in items],
                    )
            finally:
                db.close()

    def seal_before(self, day: str) -> list[dict[str, Any]]:
        """Seal every unsealed segment of a day before `day`: no more links can come to it."""
        sealed = self.sealed_days()
        out = []
        for seg_day, path in self.segments():
            if seg_day >= day or seg_day in sealed:
                continue
            out.append(self._seal(seg_day, path))
        return out

    def _seal(self, day: str, path: Path) -> dict[str, Any]:
        db = connect_readonly(path)
        try:
            first = db.execute(
                "SELECT seq, first_id, prev_hash FROM links ORDER BY seq LIMIT 1"
            ).fetchone()
            last = db.execute("SELECT seq, last_id, hash FROM links ORDER BY seq DESC LIMIT 1")
            last_row = last.fetchone()
            stats = db.execute(
                "SELECT COUNT(*), SUM(count), MIN(min_ts), MAX(max_ts) FROM links"
            ).fetchone()
        finally:
            db.close()
        entry = {
            "kind": "sealed",
            "day": day,
            "file": str(path.relative_to(self.root)),
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
            "links": stats[0],
            "readings": stats[1] or 0,
            "first_seq": first[0],
            "first_id": first[1],
            "prev_head": first[2],
            "last_seq": last_row[0],
            "last_id": last_row[1],
            "head": last_row[2],
            "min_ts": stats[2],
            "max_ts": stats[3],
            "sealed_ns": time.time_ns(),
        }
        os.chmod(path, 0o444)  # sealed: nothing of vigil writes it again
        log.info("archive segment sealed", extra={"day": day, "readings": entry["readings"]})
        return self._append_manifest(entry)

    def expire(self, now_ns: int, keep_ns: int, hold: RetentionHold) -> ExpireResult:
        """Delete sealed segments whose day ended more than `keep_ns` ago, unless held."""
        deleted = readings = 0
        held: list[str] = []
        gone = {e["day"] for e in self.manifest() if e.get("kind") == "deleted"}
        for e in self.manifest():
            if e.get("kind") != "sealed" or e["day"] in gone:
                continue
            if day_end_ns(e["day"]) + keep_ns > now_ns:
                continue
            why = hold.held(int(e["min_ts"]), int(e["max_ts"]) + 1)
            if why:
                held.append(f"{e['day']}: {why}")
                continue
            path = self.root / e["file"]
            if path.exists():
                os.chmod(path, 0o644)
                path.unlink()
            self._append_manifest(
                {
                    "kind": "deleted",
                    "day": e["day"],
                    "file": e["file"],
                    "readings": e["readings"],
                    "first_seq": e["first_seq"],
                    "last_seq": e["last_seq"],
                    "last_id": e["last_id"],
                    "prev_head": e["prev_head"],
                    "head": e["head"],
                    "deleted_ns": now_ns,
                    "reason": "older than retention.records_years",
                }
            )
            deleted += 1
            readings += int(e["readings"])
        return ExpireResult(deleted, readings, held)

    # -- reading ------------------------------------------------------------------------------
    def iter_links(
        self, *, after_seq: int = 0, before_seq: int | None = None
    ) -> Iterator[ArchivedLink]:
        """Every archived link with its rows, in seq order."""
        for _day, path in self.segments():
            db = _open_segment(path)
            try:
                cur = db.execute(
                    "SELECT seq, first_id, last_id, count, committed_ns, prev_hash, hash, rows"
                    " FROM links WHERE seq > ? AND seq < ? ORDER BY seq",
                    (after_seq, before_seq if before_seq is not None else 2**62),
                )
                for seq, first, last, count, committed, prev, h, blob in cur:
                    received, flags, lines = unpack_rows(blob, count)
                    yield ArchivedLink(
                        Link(seq, first, last, count, committed, prev, h), received, flags, lines
                    )
            finally:
                db.close()

    def rows_between(self, start_ns: int, end_ns: int) -> Iterator[tuple[int, int, str]]:
        """(id, received_ns, line) of archived readings with event time in [start, end)."""
        for _day, path in self.segments():
            db = _open_segment(path)
            try:
                cur = db.execute(
                    "SELECT first_id, count, rows FROM links WHERE max_ts >= ? AND min_ts < ?"
                    " ORDER BY seq",
                    (start_ns, end_ns),
                )
                for first, count, blob in cur:
                    received, _flags, lines = unpack_rows(blob, count)
                    for i, line in enumerate(lines):
                        if start_ns <= line_ts(line) < end_ns:
                            yield first + i, received[i], line
            finally:
                db.close()

    def bytes_used(self) -> int:
        return sum(p.stat().st_size for _d, p in self.segments())

    def verify(self, walker: ChainWalker, before_seq: int | None = None) -> list[str]:
        """Check the manifest chain and the sealed files' hashes, then feed every archived link
        (before `before_seq`) to `walker`, across days deleted after the floor. Returns the
        problems found outside the links (the walker holds those of the links)."""
        problems: list[str] = []
        prev = GENESIS
        sealed: dict[str, dict[str, Any]] = {}
        deleted: set[str] = set()
        for i, e in enumerate(self.manifest()):
            if e.get("prev") != prev:
                problems.append(f"manifest entry {i + 1} ({e.get('day')}): previous hash differs")
            if _entry_hash(e) != e.get("hash"):
                problems.append(f"manifest entry {i + 1} ({e.get('day')}): content changed")
            prev = e.get("hash", "")
            if e.get("kind") == "sealed":
                sealed[e["day"]] = e
            else:
                deleted.add(e["day"])
        for day, e in sealed.items():
            path = self.root / e["file"]
            if day in deleted:
                continue
            if not path.exists():
                problems.append(f"segment {e['file']} is missing (sealed, never deleted)")
            elif file_sha256(path) != e["sha256"]:
                problems.append(f"segment {e['file']}: file does not match its manifest hash")
        if problems:
            return problems
        for item in self.iter_links(before_seq=before_seq):
            self.bridge(walker, item.link.seq)
            if not walker.step(item.link, item.received, item.flags, item.lines):
                break
        return problems

    def bridge(self, walker: ChainWalker, next_seq: int) -> None:
        """Move `walker` over days deleted after the floor, up to the link before `next_seq`:
        each deletion recorded where the chain stood before and after the deleted links."""
        gaps = {int(e["first_seq"]): e for e in self.manifest() if e.get("kind") == "deleted"}
        while walker.seq + 1 < next_seq and walker.failure is None:
            g = gaps.get(walker.seq + 1)
            if g is None or g["prev_head"] != walker.hash:
                return
            walker.seq, walker.hash = int(g["last_seq"]), g["head"]
            walker.last_id = int(g["last_id"])


def _row(item: ArchivedLink) -> tuple[Any, ...]:
    link = item.link
    stamps = [line_ts(line) for line in item.lines]
    return (
        link.seq,
        link.first_id,
        link.last_id,
        link.count,
        link.committed_ns,
        link.prev_hash,
        link.hash,
        min(stamps) if stamps else 0,
        max(stamps) if stamps else 0,
        pack_rows(item.received, item.flags, item.lines),
    )


def _open_segment(path: Path) -> sqlite3.Connection:
    sealed = not os.access(path, os.W_OK) or (path.stat().st_mode & 0o222) == 0
    db = connect_readonly(path, immutable=sealed)
    row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if row and int(row[0]) > FORMAT:
        db.close()
        raise ArchiveError(
            f"{path}: archive segment format {row[0]} is newer than this vigil reads ({FORMAT})"
        )
    return db
