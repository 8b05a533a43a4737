"""Test helpers: an ApiContext in a temporary directory with a real journal, rules engine and
alert store, a cheap password hasher, and one user per role. Used by tests/, not by the gateway."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from alert_rules import AlertStore, RulesConfig, RulesEngine
from gateway.api.context import ALERTS_FILE, ApiContext, open_stores
from gateway.auth import LoginLimiter, Role
from gateway.journal import Journal
from gateway.metrics import Counters
from gateway.reading import Reading

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
        engine = self.ctx.engine
        return engine.process(readings) if engine is not None else []

    def close(self) -> None:
        self.ctx.close()
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


def make_rig(tmp_path: Path, *, rules: dict[str, Any] | None = None, users: bool = True) -> Rig:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    journal = Journal(data / "journal.sqlite")
    engine = RulesEngine(RulesConfig.model_validate(rules or RULES), AlertStore(data / ALERTS_FILE))
    stores = open_stores(data, hasher=FAST_HASHER)
    ctx = ApiContext(
        journal=journal,
        counters=Counters(),
        engine=engine,
        alert_store=None,
        limiter=LoginLimiter(max_failures=5, window_s=60),
        gateway_name="test-gw",
        **stores,
    )
    if users:
        for role in Role:
            ctx.users.add(USERS[role], FULL_NAMES[role], role, PASSWORDS[role])
    return Rig(ctx, data)
