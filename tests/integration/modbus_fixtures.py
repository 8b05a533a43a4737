"""Fixtures and helpers for the Modbus tests: real pymodbus servers on free loopback ports.

Use from a test module with `plc_factory = modbus_fixtures.plc_factory` (a module-level alias, so
pytest finds the fixture without an import that linters read as unused).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.modbus import DeviceStateChange, ModbusCollector, ModbusCollectorConfig
from gateway.core.reading import DeadLetter, Reading
from simulators.plc import PlcSpec, RunningPlc, start_plcs, stop_plcs
from tests.services import apoll

PlcFactory = Callable[..., Awaitable[list[RunningPlc]]]


async def wait_until(
    predicate: Callable[[], object], within_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `predicate` until true; fail naming `what` after `within_s` seconds."""
    await apoll(predicate, within_s, what=what)


class RecordingIngest:
    """An Ingest that keeps what it is given; `gate` cleared makes submit block (backpressure)."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.dead: list[DeadLetter] = []
        self.submits = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        await self.gate.wait()
        self.submits += 1
        self.readings.extend(readings)
        self.dead.extend(dead)
        if on_committed is not None:
            on_committed()

    def of(self, device: str) -> list[Reading]:
        return [r for r in self.readings if r.tags.get("device") == device]


@pytest.fixture
async def plc_factory() -> AsyncIterator[PlcFactory]:
    """Start simulated PLCs on free loopback ports; all are stopped after the test."""
    started: list[RunningPlc] = []

    async def make(
        specs: Sequence[PlcSpec | dict[str, Any]], speed: float = 1.0
    ) -> list[RunningPlc]:
        plcs = await start_plcs(specs, speed)
        started.extend(plcs)
        return plcs

    yield make
    await stop_plcs(started)


@pytest.fixture
async def register_server() -> AsyncIterator[ModbusTcpServer]:
    """A bare pymodbus server, unit 1, 1000 holding registers: tests write raw registers to it."""
    device = SimDevice(
        1,
        simdata=(
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=1000, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    yield server
    await server.shutdown()


def server_port(server: ModbusTcpServer) -> int:
    return int(server.transport.sockets[0].getsockname()[1])  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def running(
    config: ModbusCollectorConfig | dict[str, Any],
    ingest: RecordingIngest | None = None,
    changes: list[DeviceStateChange] | None = None,
) -> AsyncIterator[tuple[ModbusCollector, RecordingIngest]]:
    """Run a collector for the duration of the block; fail if run() ended by itself."""
    cfg = (
        config
        if isinstance(config, ModbusCollectorConfig)
        else ModbusCollectorConfig.model_validate(config)
    )
    ingest = ingest or RecordingIngest()
    cb = changes.append if changes is not None else None
    col = ModbusCollector(cfg, ingest, device_state_cb=cb)
    task = asyncio.create_task(col.run())
    try:
        yield col, ingest
        assert not task.done(), f"collector run() ended: {task}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
