"""The journal writer: the one place readings become durable, in batches, in arrival order.

Collectors submit through a bounded queue (backpressure). One transaction per batch of messages;
after commit the messages' acknowledgements run, then the readings go to listeners (rules) and the
sinks are woken.

Size budget: before each transaction the writer estimates what every queued message (one
`submit`, with one acknowledgement) will take in the journal and commits, in order, the ones that
fit in `journal.max_bytes`; the first one that does not fit, and every later one, is held: not
written, not acknowledged (the broker keeps it), retried after pruning every `full_retry_s`. While
messages are held the writer takes nothing new from its queue, so collectors wait (backpressure).
The gateway's own readings (`submit(..., internal=True)`: gateway counters, alerts, alarm KPIs,
cycle summaries) are exempt from the budget and go through even then: they are small, and the
journal-full alarm itself is one of them.

Fill alarms: after every commit the writer looks at the fill (two PRAGMAs) and, when it crosses
80 %, 95 % or 100 % (up or down), writes a `vigil_gateway` reading with field `journal_fill` at
once, which the built-in `gateway_health` rules turn into alerts. While messages are held the fill
is reported as at least 1.0: the budget has no room for what is waiting.

One reading the encoder refuses never costs its batch: it becomes a dead letter
("internal error: cannot encode reading: ...") carrying the reading, and the rest is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from gateway.core.lineprotocol import encode
from gateway.core.metrics import FILL_LEVELS, Counters
from gateway.core.reading import DeadLetter, Reading, internal_error
from gateway.pipeline.journal import Journal, dead_letter_bytes, reading_bytes

log = logging.getLogger("vigil.ingest")

Listener = Callable[[Sequence[Reading]], None]
Enricher = Callable[[Sequence[Reading]], None]
"""Adds tags to readings before they are committed (the active shipment of an asset)."""

ENCODER_SOURCE = "vigil://journal-writer"
"""Dead-letter source of a reading the line-protocol encoder refused."""


@dataclass(slots=True)
class _Item:
    readings: Sequence[Reading]
    dead: Sequence[DeadLetter]
    on_committed: Callable[[], None] | None
    internal: bool = False
    enriched: bool = False
    rows: list[tuple[int, int, str]] | None = None
    """Encoded rows, once prepared (a held item is encoded once, however often it is retried)."""
    good: list[Reading] = field(default_factory=list)
    """The readings that encoded, in order."""
    bad: list[DeadLetter] = field(default_factory=list)
    """Its dead letters, plus one per reading the encoder refused."""
    size: float = 0.0
    """Estimated journal bytes."""
    warned: bool = False


@dataclass
class JournalWriter:
    journal: Journal
    counters: Counters
    queue_messages: int = 10_000
    max_batch_readings: int = 20_000
    full_retry_s: float = 1.0
    listeners: list[Listener] = field(default_factory=list)
    enrichers: list[Enricher] = field(default_factory=list)
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set after each commit; sinks wait on it."""
    gateway_name: str = "vigil"
    """Tag `gateway` of the `vigil_gateway` readings written at fill crossings."""

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(self.queue_messages)
        self._internal: deque[_Item] = deque()
        self._held: list[_Item] = []
        self._wake = asyncio.Event()
        self._fill_level = 0.0
        self._drain_warned = False
        self.fill = 0.0
        """Journal fill after the last commit (at least 1.0 while messages are held)."""

    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
        *,
        internal: bool = False,
    ) -> None:
        """Queue for the journal; blocks while the queue is full (backpressure).

        `internal=True`: the gateway's own readings, exempt from the size budget and never
        blocking (they are few and small).
        """
        item = _Item(readings, dead, on_committed, internal)
        if internal:
            self._internal.append(item)
        else:
            await self._queue.put(item)
        self._wake.set()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._internal) + len(self._held)

    @property
    def holding(self) -> bool:
        """Messages are waiting for room in the journal (they are not acknowledged)."""
        return bool(self._held)

    def fill_now(self) -> float:
        """The journal's fill as the alarms see it: at least 1.0 while messages are held."""
        raw = self.journal.fill_ratio()
        return max(raw, 1.0) if self._held else raw

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        retry_at = 0.0
        while True:
            self._wake.clear()
            batch = self._take_internal()
            with_external = False
            if self._held:
                if loop.time() >= retry_at:
                    await asyncio.to_thread(self.journal.prune)
                    batch += self._held  # still held (and reported so) until the commit returns
                    with_external = True
            else:
                external = self._take_external(self.max_batch_readings)
                batch += external
                with_external = bool(external)
            if not batch:
                timeout = max(0.0, retry_at - loop.time()) if self._held else None
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            held, raw_fill = await self._commit(batch)
            if with_external:
                self._held = held
                if held:
                    retry_at = loop.time() + self.full_retry_s
            self._note_fill(raw_fill)

    async def drain(self) -> None:
        """At shutdown, after collectors have stopped: commit once what fits of everything held
        and queued, and return. It never waits for room: what does not fit is not acknowledged
        and the broker delivers it again on the next start."""
        if self._held:
            await asyncio.to_thread(self.journal.prune)
        batch = self._take_internal() + self._held + self._take_external(None)
        if not batch:
            return
        held, raw_fill = await self._commit(batch)
        self._held = held
        self._note_fill(raw_fill)
        if held and not self._drain_warned:  # (the gateway drains twice at shutdown)
            self._drain_warned = True
            log.warning(
                "journal full at shutdown: messages not committed are not acknowledged; "
                "the broker delivers them again",
                extra={"messages": len(held), "readings": sum(len(i.readings) for i in held)},
            )

    def _take_internal(self) -> list[_Item]:
        out = list(self._internal)
        self._internal.clear()
        return out

    def _take_external(self, max_readings: int | None) -> list[_Item]:
        out: list[_Item] = []
        n = 0
        while not self._queue.empty() and (max_readings is None or n < max_readings):
            item = self._queue.get_nowait()
            out.append(item)
            n += len(item.readings)
        return out

    async def _commit(self, batch: list[_Item]) -> tuple[list[_Item], float]:
        """Write what fits; returns (the held items, the raw fill after the commit)."""
        for item in batch:
            if not item.enriched:
                item.enriched = True
                for enrich in self.enrichers:
                    try:
                        enrich(item.readings)
                    except Exception:
                        self.counters.listener_errors += 1
                        log.exception("journal enricher failed; readings kept without it")
        taken, held, raw_fill = await asyncio.to_thread(self._write, batch)
        if taken:
            readings = [r for item in taken for r in item.good]
            self.counters.journaled += len(readings)
            self.counters.dead_letters += sum(len(item.bad) for item in taken)
            for item in taken:
                if item.on_committed is not None:
                    try:
                        item.on_committed()
                    except Exception:
                        log.exception("acknowledgement callback failed")
            for listener in self.listeners:
                try:
                    listener(readings)
                except Exception:
                    self.counters.listener_errors += 1
                    log.exception("journal listener failed")
            self.committed.set()
        return held, raw_fill

    def _write(self, batch: list[_Item]) -> tuple[list[_Item], list[_Item], float]:
        """In a worker thread: encode, pick in order what fits the budget, commit it."""
        journal = self.journal
        for item in batch:
            if item.rows is None:
                _prepare(item)
        room: float = journal.room()
        taken: list[_Item] = []
        held: list[_Item] = []
        for item in batch:
            if item.internal:
                taken.append(item)
            elif held or item.size > room:
                held.append(item)
            else:
                room -= item.size
                taken.append(item)
        first = held[0] if held else None
        if first is not None and not first.warned and first.size > journal.max_bytes / 2:
            first.warned = True
            log.warning(
                "a message batch takes more than half of journal.max_bytes; it waits until that "
                "much is free (raise max_bytes, or lower the collector's max_batch_messages)",
                extra={"estimated_bytes": int(first.size), "max_bytes": journal.max_bytes},
            )
        rows = [row for item in taken for row in item.rows or ()]
        dead = [d for item in taken for d in item.bad]
        if rows or dead:
            journal.write(rows, dead)
        return taken, held, journal.fill_ratio()

    def _note_fill(self, raw_fill: float) -> None:
        """Full / not full, the fill alarms' log lines, and a `journal_fill` reading when the fill
        crossed 80 %, 95 % or 100 % since the last one."""
        c = self.counters
        full = bool(self._held)
        if full and not c.journal_full:
            log.error(
                "journal full: not acknowledging until space frees up",
                extra={"journal": str(self.journal.path), "max_bytes": self.journal.max_bytes},
            )
        elif c.journal_full and not full:
            log.warning("journal has room again; acknowledging")
        c.journal_full = full
        fill = max(raw_fill, 1.0) if full else raw_fill
        self.fill = fill
        c.check_fill(fill)
        level = max((t for t in FILL_LEVELS if fill >= t), default=0.0)
        if level != self._fill_level:
            self._fill_level = level
            point = Reading(
                "vigil_gateway",
                {"gateway": self.gateway_name},
                {"journal_fill": fill},
                time.time_ns(),
            )
            self._internal.append(_Item([point], (), None, internal=True))
            self._wake.set()


def _prepare(item: _Item) -> None:
    """Encode an item's readings once and estimate its size; a reading that cannot be encoded
    becomes a dead letter instead of failing the batch."""
    rows: list[tuple[int, int, str]] = []
    good: list[Reading] = []
    bad = [_clean(d) for d in item.dead]
    size = 0.0
    for r in item.readings:
        try:
            line = encode(r)
            n = len(line) if line.isascii() else len(line.encode())
            row = (int(r.received_ns), 1 if r.ts_from_receive else 0, line)
        except Exception as e:
            reason = "cannot encode reading: " + internal_error(e).removeprefix("internal error: ")
            bad.append(
                DeadLetter(
                    ENCODER_SOURCE, _dump_reading(r), f"internal error: {reason}", _received(r)
                )
            )
            continue
        rows.append(row)
        good.append(r)
        size += reading_bytes(n)
    for d in bad:
        size += dead_letter_bytes(d)
    item.rows, item.good, item.bad, item.size = rows, good, bad, size


def _received(r: object) -> int:
    value = getattr(r, "received_ns", None)
    return value if type(value) is int else time.time_ns()


def _dump_reading(r: Reading) -> bytes:
    """The refused reading as JSON (or, when even that fails, its repr), for the dead letter."""
    try:
        return orjson.dumps(
            {
                "measurement": r.measurement,
                "tags": r.tags,
                "fields": r.fields,
                "ts_ns": r.ts_ns,
                "received_ns": r.received_ns,
                "ts_from_receive": r.ts_from_receive,
            },
            default=repr,
        )
    except Exception:
        return repr(r).encode("utf-8", "backslashreplace")


def _text(s: object) -> str:
    s = s if isinstance(s, str) else str(s)
    try:
        s.encode()
    except UnicodeEncodeError:  # lone surrogates: SQLite would refuse the whole transaction
        return s.encode("utf-8", "backslashreplace").decode()
    return s


def _clean(d: DeadLetter) -> DeadLetter:
    """A dead letter SQLite will take whatever a collector put in it."""
    payload = d.payload
    if not isinstance(payload, bytes):
        try:
            payload = bytes(payload)
        except Exception:
            payload = repr(payload).encode("utf-8", "backslashreplace")
    source, reason = _text(d.source), _text(d.reason)
    received = d.received_ns if type(d.received_ns) is int else time.time_ns()
    if (
        payload is d.payload
        and source is d.source
        and reason is d.reason
        and received is d.received_ns
    ):
        return d
    return DeadLetter(source, payload, reason, received)
