"""The journal's hash chain: one link per committed batch of readings.

GSP forbids editing or deleting monitoring records; a SQLite file can be edited by anyone who can
write it. So every commit of readings adds a link: the SHA-256 of the previous link's hash, the
link's own numbers, and the batch's committed rows (their receive times, quality flags and line
protocol). Changing, adding or removing a reading breaks the link that holds it; `verify_links`
names the first broken one. One hash per batch, not per reading, keeps the commit path cheap.

The same links travel with the rows into the archive segments (gateway/pipeline/archive.py), so
the chain stays verifiable from its start across the hot journal and years of archive. Deleting
the newest links leaves a shorter valid chain: the head (batch number and hash) is anchored
outside the gateway (InfluxDB `audit_head`, backup manifests, printed on reports).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64
"""The previous hash of the first link."""


@dataclass(frozen=True, slots=True)
class Link:
    """One committed batch: readings first_id..last_id (ids are consecutive within a batch)."""

    seq: int
    first_id: int
    last_id: int
    count: int
    committed_ns: int
    prev_hash: str
    hash: str

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.committed_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"batch {self.seq} (readings {self.first_id}..{self.last_id}, committed {when})"


Row = tuple[int, int, str]
"""A committed reading as the chain sees it: (received_ns, ts_from_receive 0/1, line)."""


def link_hash(
    prev_hash: str,
    seq: int,
    first_id: int,
    last_id: int,
    committed_ns: int,
    received: Sequence[int],
    flags: Sequence[int],
    lines: Sequence[str],
) -> str:
    """SHA-256 over the previous hash, the link's numbers and its rows, in id order.

    Receive times are packed as little-endian int64 and flags as bytes, so the hash is the same
    on every machine; lines are joined by newlines (a line never holds one) as UTF-8.
    """
    h = hashlib.sha256()
    h.update(f"{prev_hash}\n{seq} {first_id} {last_id} {len(lines)} {committed_ns}\n".encode())
    h.update(struct.pack(f"<{len(received)}q", *received))
    h.update(bytes(flags))
    h.update("\n".join(lines).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def rows_hash(
    prev_hash: str, seq: int, first_id: int, committed_ns: int, rows: Sequence[Row]
) -> str:
    """`link_hash` of a batch of rows as the journal commits them (ids first_id onwards)."""
    received, flags, lines = zip(*rows, strict=True) if rows else ((), (), ())
    return link_hash(
        prev_hash, seq, first_id, first_id + len(rows) - 1, committed_ns, received, flags, lines
    )


def head_line(seq: int, head_hash: str) -> str:
    """The journal position a report was computed from, as printed on it: a regulator finds
    the same batch and hash with `vigil journal verify` or in the `audit_head` anchors."""
    return f"journal chain batch {seq}, head {head_hash}"


@dataclass(frozen=True, slots=True)
class ChainResult:
    ok: bool
    links: int
    """Links checked (all of them when ok)."""
    readings: int
    head_seq: int
    head_hash: str
    broken: Link | None = None
    problem: str | None = None

    def describe(self, what: str = "journal chain") -> str:
        if self.ok:
            return (
                f"{what} OK: {self.links} batches, {self.readings} readings, "
                f"head batch {self.head_seq} {self.head_hash}"
            )
        if self.broken is None:
            return f"{what} BROKEN after batch {self.head_seq}: {self.problem}"
        return f"{what} BROKEN at {self.broken.describe()}: {self.problem}"


class ChainWalker:
    """Checks links in order, each against its rows, from a known starting point.

    `start_seq`/`start_hash`: the link before the first one expected (0 and GENESIS from the
    beginning; a checkpoint's after pruning).
    """

    def __init__(self, start_seq: int = 0, start_hash: str = GENESIS) -> None:
        self.seq = start_seq
        self.hash = start_hash
        self.links = 0
        self.readings = 0
        self.last_id: int | None = None
        self.failure: tuple[Link, str] | None = None

    def step(
        self, link: Link, received: Sequence[int], flags: Sequence[int], lines: Sequence[str]
    ) -> bool:
        """Check one link against its rows; False (and `failure` set) at the first problem."""
        if self.failure is not None:
            return False
        problem = self._problem(link, received, flags, lines)
        if problem:
            self.failure = (link, problem)
            return False
        self.seq, self.hash, self.last_id = link.seq, link.hash, link.last_id
        self.links += 1
        self.readings += link.count
        return True

    def _problem(
        self, link: Link, received: Sequence[int], flags: Sequence[int], lines: Sequence[str]
    ) -> str:
        if link.seq != self.seq + 1:
            what = "missing" if link.seq > self.seq + 1 else "out of order"
            return f"batch {self.seq + 1} is {what} (the next batch found is {link.seq})"
        if link.prev_hash != self.hash:
            return (
                f"its previous hash does not match batch {self.seq}'s hash (a batch before it "
                "was changed, or batches were inserted or removed)"
            )
        if self.last_id is not None and link.first_id != self.last_id + 1:
            return (
                f"its first reading is {link.first_id}, the batch before ended at {self.last_id}"
                " (readings between them were removed, or ids were changed)"
            )
        if len(lines) != link.count or link.last_id - link.first_id + 1 != link.count:
            return (
                f"it holds {len(lines)} readings, its link says {link.count} "
                "(readings were added or deleted)"
            )
        actual = link_hash(
            link.prev_hash,
            link.seq,
            link.first_id,
            link.last_id,
            link.committed_ns,
            received,
            flags,
            lines,
        )
        if actual != link.hash:
            return "its readings do not match its hash (a reading was changed)"
        return ""

    def result(self) -> ChainResult:
        if self.failure is not None:
            link, problem = self.failure
            return ChainResult(False, self.links, self.readings, self.seq, self.hash, link, problem)
        return ChainResult(True, self.links, self.readings, self.seq, self.hash)
