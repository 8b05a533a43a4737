"""The ports between the parts of vigil: what a collector hands its output to, what it reports
about its devices, and how a record store reads the journal back. Collectors depend on these,
never on the journal, the app or the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class SourceStatus:
    """One device, or one connection, as its collector sees it right now.

    Every collector kind reports the same shape, so /api/v1/devices and /metrics show a PLC that
    stops answering and a broker connection that drops the same way.
    """

    collector: str
    """The collector's name in the config."""
    kind: str
    """The collector kind (mqtt, modbus)."""
    address: str
    """Where it is reached: modbus://host:port/unit, mqtt://host:port."""
    device: str = ""
    """The `device` tag of its readings; empty for a connection that is not one device."""
    online: bool | None = None
    """None until the collector has decided."""
    since_ns: int = 0
    """When `online` last changed (wall clock)."""
    last_error: str = ""
    last_seen_ns: int = 0
    """When data last came from it (wall clock); 0: never."""
    measurement: str = ""
    """The measurement of its readings (empty for a connection)."""
    tags: dict[str, str] = field(default_factory=dict)
    """The tags its readings carry (line/equipment/device, site/asset/device): the rules bind
    a device's liveness alarm (`device_offline`) by them, before any reading arrived."""
    units: dict[str, str] = field(default_factory=dict)
    """Units of its fields where its configuration names them (a register map's `unit`)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Labels of its fields where its configuration names them (a register map's `label`)."""


class Collector(Protocol):
    """A collector kind's running instance (collectors/ registers the kinds).

    Built from its config, the ingest port and the gateway's counters; `run` is supervised (an
    exception restarts it with backoff) and must be safe to call again.
    """

    name: str

    async def run(self) -> None: ...

    def status(self) -> list[SourceStatus]:
        """Its devices and connections, online or not (cheap: called per API request)."""
        ...


@dataclass(slots=True)
class JournalRow:
    """A reading as the journal committed it: its row id, receive time and line protocol."""

    id: int
    received_ns: int
    line: str


class JournalReader(Protocol):
    def lines_since(self, received_after_ns: int) -> Iterable[JournalRow]:
        """Rows received after a time, in commit order."""
        ...


class RetentionHold(Protocol):
    """What must outlive the normal retention period: readings that belong to a record still
    kept (a lot's storage and transport legs until the lot's expiry plus 5 years). Pruning of
    the journal and its archives asks before deleting anything."""

    def held(self, start_ns: int, end_ns: int) -> str | None:
        """Why readings with event times in [start, end) must be kept, or None if nothing
        holds them."""
        ...


@dataclass(frozen=True, slots=True)
class DevicePattern:
    """The readings one part of a collector's config can produce, as far as the config says:
    `vigil check-config` asks the rules whether any binding can match them."""

    where: str
    """The config key it comes from, e.g. `collectors[0].subscriptions[1]`."""
    what: str
    """What a user recognises: a topic template, a device name."""
    measurement: str | None
    """None: named by the payload (line protocol)."""
    tags: dict[str, str | None]
    """Tag key → its fixed value, or None when any value may come (a `{site}` topic segment)."""
    open_tags: bool = False
    """True when the payload may carry tags of its own (line protocol)."""
