"""Test helpers: an ApiContext in a temporary directory with a real journal, rules engine and
alert store, a cheap password hasher, and one user per role; cold-chain readings and the
simulated autoclave's process readings. Used by tests/, not by the gateway."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher

from alert_rules import AlertStore, RulesConfig, RulesEngine
from gateway.api.context import ApiContext, build_context
from gateway.api.tokens import LoginLimiter
from gateway.core.metrics import Counters
from gateway.core.reading import Reading
from gateway.pipeline.journal import Journal
from gateway.records import Records
from gateway.records.users import Role

if TYPE_CHECKING:
    from simulators.plc.spec import FaultSpec

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""Argon2id with tiny parameters: tests hash hundreds of times."""

PASSWORDS = {role: f"{role.value}-password-1" for role in Role}
USERS = {role: f"{role.value}1" for role in Role}
FULL_NAMES = {
    Role.VIEWER: "Vera Viewer",
    Role.OPERATOR: "Otto Operator",
    Role.QA: "Quinn Quality",
    Role.ADMIN: "Ada Admin",
}

RULES = {
    "bindings": [
        {"site": "wh1", "profile": "vaccine_2_8"},
        {"asset": "truck-*", "profile": "vaccine_2_8"},
        {"equipment": "autoclave-*", "profile": "steam_steriliser"},
    ],
}


@dataclass
class Rig:
    """An ApiContext plus what tests need to drive it."""

    ctx: ApiContext
    data_dir: Path
    tokens: dict[Role, str] = field(default_factory=dict)

    def headers(self, role: Role) -> dict[str, str]:
        if role not in self.tokens:
            self.tokens[role] = self.ctx.tokens.issue(USERS[role])[0]
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def feed(self, readings: list[Reading]) -> list[Any]:
        """What the journal writer does after a commit: shipment tags, journal, listeners."""
        self.ctx.shipments.enrich(readings)
        self.ctx.journal.append(readings, [])
        self.ctx.shipments.record(readings)
        self.ctx.live.observe(readings)
        self.ctx.history.observe(readings)
        engine = self.ctx.engine
        return engine.process(readings) if engine is not None else []

    def close(self) -> None:
        self.ctx.records.close()
        if self.ctx.engine is not None:
            self.ctx.engine.store.close()
        self.ctx.journal.close()


def coldchain(
    temp: float,
    ts_ns: int | None = None,
    *,
    site: str = "wh1",
    asset: str = "fridge-1",
    device: str = "logger-1",
    **fields: Any,
) -> Reading:
    ts = time.time_ns() if ts_ns is None else ts_ns
    return Reading(
        "coldchain",
        {"site": site, "asset": asset, "device": device},
        {"temp_c": float(temp), **fields},
        ts,
        time.time_ns(),
    )


def autoclave(
    start_ns: int,
    until_s: float,
    *,
    device: str = "AC-01",
    equipment: str = "autoclave-1",
    line: str = "L1",
    step_s: float = 5.0,
    faults: Sequence[FaultSpec] = (),
    **params: Any,
) -> list[Reading]:
    """`process` readings of the simulated autoclave (simulators/plc/models.py) every `step_s`
    from `start_ns` (event time, received at once), tagged with phase and batch like the Modbus
    collector does. Short phases by default: 10 s idle, 2 min heat-up, the 15 min hold the
    steam_steriliser profile needs to pass, 2 min cool-down, 20 s unloading, 60 s idle between
    loads; a cycle ends with the first idle reading after it. FaultSpec(kind="short_hold",
    at_s=..., hold_s=...) makes a load fail."""
    from simulators.plc.layout import AUTOCLAVE_PHASES
    from simulators.plc.models import Autoclave

    params = {
        "start_delay_s": 10,
        "heatup_s": 120,
        "cooldown_s": 120,
        "complete_s": 20,
        "idle_s": 60,
        **params,
    }

    def fault(kind: str, t: float) -> FaultSpec | None:
        return next((f for f in faults if f.kind == kind and f.active(t)), None)

    model = Autoclave(device, params, random.Random(7), fault)
    out = []
    for i in range(int(until_s / step_s) + 1):
        t = i * step_s
        model.advance(t)
        v = model.values()
        tags = {
            "line": line,
            "equipment": equipment,
            "device": device,
            "phase": AUTOCLAVE_PHASES[int(v.pop("phase"))],
        }
        batch = v.pop("batch")
        if batch:
            tags["batch"] = str(batch)
        ts = start_ns + round(t * 1e9)
        out.append(Reading("process", tags, v, ts, ts))
    return out


AUTOCLAVE_CYCLE_S = 10 + 120 + 900 + 120 + 20
"""Start delay to the end of unloading with autoclave()'s defaults: the first idle reading
after it ends the first cycle; each further load adds idle_s (60) + its own phases."""


def make_rig(tmp_path: Path, *, rules: dict[str, Any] | None = None, users: bool = True) -> Rig:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    journal = Journal(data / "journal.sqlite")
    engine = RulesEngine(
        RulesConfig.model_validate(rules or RULES), AlertStore(data / "alerts.sqlite")
    )
    ctx = build_context(
        data,
        journal,
        Counters(),
        Records.open(data, hasher=FAST_HASHER),
        engine=engine,
        limiter=LoginLimiter(max_failures=5, window_s=60),
        gateway_name="test-gw",
    )
    if users:
        for role in Role:
            ctx.users.add(USERS[role], FULL_NAMES[role], role, PASSWORDS[role])
    return Rig(ctx, data)
