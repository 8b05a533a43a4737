"""The Reading: one timestamped point from one device, the unit that flows through vigil.

A Reading carries several fields measured at the same instant (a logger sends temp_c and rh_pct
together); rules look at the field they care about. It is a slotted dataclass, not a pydantic
model, because tens of thousands are made per second on the ingest path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FieldValue = float | int | bool | str


@dataclass(slots=True)
class Reading:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ns: int
    """Event time, UTC nanoseconds: the device's own timestamp when it sent one."""
    received_ns: int = field(default_factory=time.time_ns)
    ts_from_receive: bool = False
    """Quality flag: the device sent no timestamp, so ts_ns is the receive time."""

    @property
    def device(self) -> str:
        return self.tags.get("device", "")

    @property
    def series(self) -> tuple[str, str]:
        """(measurement, device): the unit rules keep their state per."""
        return (self.measurement, self.tags.get("device", ""))


@dataclass(slots=True)
class DeadLetter:
    """A message that could not become readings, kept whole with the reason."""

    source: str
    """Where it came from: an MQTT topic, or modbus://host:port/unit."""
    payload: bytes
    reason: str
    received_ns: int = field(default_factory=time.time_ns)


def internal_error(exc: BaseException, limit: int = 500) -> str:
    """The dead-letter reason for an unexpected exception: `internal error: <type>: <text>`."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not escape the containment it is used in
        text = "?"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"internal error: {type(exc).__name__}: {text}"
