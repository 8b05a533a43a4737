"""Faults a simulated PLC can be given: communication faults and process faults by PLC kind."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "unplug",
    "exception",
    "slow",
    "short_hold",
    "steam_pressure_drop",
    "door_open",
    "particle_spike",
]
COMM_FAULTS = frozenset({"unplug", "exception", "slow"})
PROCESS_FAULTS: dict[str, frozenset[str]] = {
    "short_hold": frozenset({"autoclave"}),
    "steam_pressure_drop": frozenset({"autoclave"}),
    "door_open": frozenset({"cleanroom"}),
    "particle_spike": frozenset({"cleanroom"}),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultSpec(Strict):
    kind: FaultKind
    at_s: float = Field(0.0, ge=0)
    """Start, simulated seconds after the PLCs started (for inject(): after now)."""
    duration_s: float | None = Field(None, gt=0)
    """Simulated seconds; None = until cleared."""
    delay_s: float = Field(2.0, ge=0, le=3600)
    """slow: wall seconds before each answer."""
    code: int = Field(4, ge=1, le=11)
    """exception: Modbus exception code (4 server device failure, 6 busy, 2 illegal address)."""
    hold_s: float = Field(300.0, gt=0)
    """short_hold: the hold phase ends after this many seconds while the fault is active."""
    drop_kpa: float = Field(30.0, gt=0)
    """steam_pressure_drop: steam supply this far below the setpoint's saturation pressure."""
    dp_pa: float = Field(2.0, ge=-50, le=100)
    """door_open: differential pressure while the door stands open."""
    factor: float = Field(50.0, gt=0)
    """particle_spike: counts multiplied by this."""

    def active(self, t: float) -> bool:
        return self.at_s <= t and (self.duration_s is None or t < self.at_s + self.duration_s)

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.at_s + self.duration_s
