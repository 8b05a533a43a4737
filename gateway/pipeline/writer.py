"""The journal writer: the one place readings become durable, in batches, in arrival order.

Collectors submit through a bounded queue (backpressure). One transaction per batch of messages;
after commit the messages' acknowledgements run, then the readings go to listeners (rules) and the
sinks are woken. When the journal is full nothing is acknowledged until space frees up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.core.metrics import Counters
from gateway.core.reading import DeadLetter, Reading
from gateway.pipeline.journal import Journal, JournalFull

log = logging.getLogger("vigil.ingest")

Listener = Callable[[Sequence[Reading]], None]
Enricher = Callable[[Sequence[Reading]], None]
"""Adds tags to readings before they are committed (the active shipment of an asset)."""


@dataclass(slots=True)
class _Item:
    readings: Sequence[Reading]
    dead: Sequence[DeadLetter]
    on_committed: Callable[[], None] | None


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

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(self.queue_messages)

    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        await self._queue.put(_Item(readings, dead, on_committed))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            n = len(batch[0].readings)
            while n < self.max_batch_readings and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                n += len(item.readings)
            await self._commit(batch)

    async def drain(self) -> None:
        """Commit whatever is queued now (at shutdown, after collectors have stopped)."""
        batch: list[_Item] = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        readings = [r for item in batch for r in item.readings]
        dead = [d for item in batch for d in item.dead]
        for enrich in self.enrichers:
            enrich(readings)
        while True:
            try:
                await asyncio.to_thread(self.journal.append, readings, dead)
                break
            except JournalFull as e:
                if not self.counters.journal_full:
                    log.error("journal full: not acknowledging until space frees up: %s", e)
                self.counters.journal_full = True
                await asyncio.to_thread(self.journal.prune)
                await asyncio.sleep(self.full_retry_s)
        self.counters.journal_full = False
        self.counters.journaled += len(readings)
        self.counters.dead_letters += len(dead)
        for item in batch:
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
