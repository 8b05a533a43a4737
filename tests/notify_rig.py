"""Helpers for the notifier tests: the real rules engine with the vaccine_2_8 profile on a
manual clock, a notifier attached to it, and a fixture that runs notifiers' workers.

Use from a test module with `running = notify_rig.running` (a module-level alias, so pytest
finds the fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from alert_rules import AlertEvent, AlertStore, ManualClock, RulesConfig, RulesEngine
from gateway.core.reading import Reading
from gateway.notifiers import MqttLink, Notifier, NotifiersConfig
from tests.services import apoll

S = 1_000_000_000
MIN = 60 * S
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z
FAST = {"retry_min_s": 0.05, "retry_max_s": 0.2, "timeout_s": 2}


async def until(predicate: Callable[[], Any], deadline_s: float = 15.0, what: str = "it") -> Any:
    """Poll without blocking the event loop (the notifier runs on it) until a deadline."""
    return await apoll(predicate, deadline_s, what=what)


class Fridges:
    """The real rules engine with the vaccine_2_8 profile on site wh1, fed one reading at a time."""

    def __init__(self, path: Path) -> None:
        config = RulesConfig.model_validate(
            {"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]}
        )
        self.clock = ManualClock(T0)
        self.engine = RulesEngine(config, AlertStore(path), self.clock)

    def temps(self, asset: str, start_min: int, temps: list[float]) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        tags = {"site": "wh1", "asset": asset, "device": f"lg-{asset}"}
        for i, t in enumerate(temps):
            ts = T0 + (start_min + i) * MIN
            self.clock.set(ts + S)
            events += self.engine.process([Reading("coldchain", tags, {"temp_c": t}, ts, ts + S)])
        return events

    def alert_id(self, rule: str, asset: str) -> int:
        [a] = [a for a in self.engine.store.list_alerts(rule=rule) if a.tags["asset"] == asset]
        return a.id

    def notifier(
        self, config: NotifiersConfig, mqtt: MqttLink | None = None, **kw: Any
    ) -> Notifier:
        """A notifier on this engine's store, attached to its transitions."""
        n = Notifier(config, self.engine.store, mqtt, **kw)
        n.attach(self.engine.alerts)
        return n


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Notifier], Awaitable[Notifier]]]:
    """Start notifiers' workers; whatever a test leaves running is closed at teardown."""
    started: list[tuple[Notifier, asyncio.Task[None]]] = []

    async def start(n: Notifier) -> Notifier:
        started.append((n, asyncio.create_task(n.run())))
        await asyncio.sleep(0)
        return n

    yield start
    for n, task in started:
        await n.close(timeout=0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
