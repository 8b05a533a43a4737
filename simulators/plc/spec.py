"""YAML-describable specs for simulated PLCs and their faults.

```yaml
speed: 60            # simulated seconds per wall second
start: 2026-03-02T06:00:00Z   # the PLCs' clocks at t=0 (default: see PlcScenario.start)
plcs:
  - name: AC-01
    kind: autoclave
    port: 0          # 0 = any free loopback port
    params: {hold_s: 900, setpoint_c: 121.5}
    faults:
      - {kind: steam_pressure_drop, at_s: 900, duration_s: 120, drop_kpa: 40}
      - {kind: unplug, at_s: 3000, duration_s: 60}
```

Fault times are simulated seconds from start; `slow` delays are wall seconds (they model the
network, not the process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from simulators.plc.faults import PROCESS_FAULTS, FaultSpec
from simulators.plc.models import params_model

DEFAULT_HORIZON_S = 86_400.0
"""Simulated seconds for which the PLC clocks stay behind the wall clock by default (one day)."""

PlcKind = Literal["autoclave", "freeze_dryer", "cleanroom", "filling_line", "generic"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlcSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: PlcKind
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    unit: int = Field(1, ge=1, le=247)
    seed: int | None = None
    """Noise seed; default derived from the name so runs repeat."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific process parameters (see simulators/plc/models.py)."""
    faults: list[FaultSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> PlcSpec:
        try:
            params_model(self.kind).model_validate(self.params)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise ValueError(f"params.{loc}: {first['msg']}") from None
        for i, f in enumerate(self.faults):
            kinds = PROCESS_FAULTS.get(f.kind)
            if kinds is not None and self.kind not in kinds:
                raise ValueError(
                    f"faults.{i}.kind: {f.kind} applies to {', '.join(sorted(kinds))}, "
                    f"not {self.kind}"
                )
        return self


class PlcScenario(Strict):
    """The PLC part of a `vigil simulate` scenario file."""

    speed: float = Field(1.0, gt=0, le=100_000)
    start: AwareDatetime | None = None
    """The PLC clocks' time at t=0. Default: now at speed <= 1; faster, `horizon_s x (1 - 1/speed)`
    before now, so the clocks reach the wall clock only after `horizon_s` simulated seconds
    (a gateway refuses device times from the future)."""
    horizon_s: float = Field(DEFAULT_HORIZON_S, gt=0)
    """Simulated seconds the default start keeps the PLC clocks at or behind the wall clock."""
    plcs: list[PlcSpec] = Field(default_factory=list)


def load_scenario(source: str | Path | dict[str, Any]) -> PlcScenario:
    """A scenario from a YAML file or an already-parsed mapping (other top-level keys ignored)."""
    data: Any = source
    if isinstance(source, (str, Path)):
        data = yaml.safe_load(Path(source).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError("a PLC scenario is a mapping with `plcs:` (and optionally `speed:`)")
    return PlcScenario.model_validate(
        {k: v for k, v in data.items() if k in PlcScenario.model_fields}
    )


def demo_specs() -> list[PlcSpec]:
    """One PLC of each process kind on free ports, with a few events to look at (`vigil demo`)."""
    return [
        PlcSpec(name="AC-01", kind="autoclave"),
        PlcSpec(name="FD-01", kind="freeze_dryer"),
        PlcSpec(
            name="CR-B1",
            kind="cleanroom",
            faults=[
                FaultSpec(kind="particle_spike", at_s=20, duration_s=60, factor=20),
                FaultSpec(kind="door_open", at_s=120, duration_s=90),
            ],
        ),
        PlcSpec(name="FL-01", kind="filling_line", params={"setup_s": 60}),
    ]
