"""What collectors hand their output to. Collectors depend on this, never on the journal itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.core.reading import DeadLetter, Reading


class Ingest(Protocol):
    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        """Queue readings and dead letters for the journal.

        Blocks while the journal's queue is full (backpressure). `on_committed` is called once
        everything passed here is durably committed; MQTT uses it to acknowledge QoS 1 messages.
        """
        ...
