"""Simulated PLCs served by pymodbus TCP servers on loopback, with fault injection.

Registers are refreshed lazily: every read first advances the process model to the current
simulated time, then writes the values into the block being read (pymodbus's SimDevice `action`
hook). A PLC nobody polls costs nothing, so a hundred of them fit in one process.

Communication faults are applied in that hook too (`exception` answers with an exception code,
`slow` delays the answer), except `unplug`, which closes the listening socket and every connection
and opens them again on the same port when the fault ends. The PLCs never accept writes: they count
them and answer "illegal function", so a test can prove the collector never wrote.

Each PLC also serves its clock (the layout's clock register): the simulated time as an epoch, so a
gateway reading it files a sped-up process under process time. By default the clocks start in the
past far enough never to run ahead of the wall clock for `horizon_s` simulated seconds (see
`SimClock`), because a gateway refuses device times from the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.plc.layout import Reg, encode_registers, profile, to_raw
from simulators.plc.models import MODELS, ProcessModel
from simulators.plc.spec import DEFAULT_HORIZON_S, FaultSpec, PlcScenario, PlcSpec

log = logging.getLogger("vigil.simulators.plc")


class SimClock:
    """Simulated seconds since start (wall time x speed), and the PLC clocks' epoch time.

    `start` is the epoch time of t=0. Left out, it is now at speed <= 1; at speed s > 1 it lies
    `horizon_s x (1 - 1/s)` in the past, so the simulated epoch reaches the wall clock after
    `horizon_s` simulated seconds (`horizon_s / s` wall seconds) and never runs ahead before.
    A paused clock stands still (a plant on hold until the gateway polls it).
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        start: datetime | float | None = None,
        horizon_s: float = DEFAULT_HORIZON_S,
        paused: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be > 0")
        self.speed = speed
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        wall = time.time()
        if start is None:
            self.start_s = wall - horizon_s * max(0.0, 1.0 - 1.0 / speed)
        elif isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("start needs a time zone (e.g. 2026-03-02T06:00:00Z)")
            self.start_s = start.timestamp()
        else:
            self.start_s = float(start)
        self._paused_at: float | None = 0.0 if paused else None
        self.listeners: list[asyncio.Event] = []
        """Set on pause and resume, so fault watchers recompute their waits."""

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def now(self) -> float:
        if self._paused_at is not None:
            return self._paused_at
        return (self._loop.time() - self._t0) * self.speed

    def epoch_s(self, t: float | None = None) -> float:
        """The PLC clocks' time (epoch seconds, UTC) at simulated time t (default now)."""
        return self.start_s + (self.now() if t is None else t)

    def wall(self, sim_s: float) -> float:
        """Wall seconds until `sim_s` simulated seconds have passed (inf while paused)."""
        return math.inf if self.paused else sim_s / self.speed

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self.now()
            self._notify()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._t0 = self._loop.time() - self._paused_at / self.speed
            self._paused_at = None
            self._notify()

    def _notify(self) -> None:
        for event in self.listeners:
            event.set()


class RunningPlc:
    """One simulated PLC: its model, its server, its faults and what it was asked."""

    def __init__(self, spec: PlcSpec, clock: SimClock) -> None:
        self.spec = spec
        self.clock = clock
        seed = spec.seed if spec.seed is not None else zlib.crc32(spec.name.encode())
        self.faults: list[FaultSpec] = list(spec.faults)
        self.model: ProcessModel = MODELS[spec.kind](
            spec.name, spec.params, random.Random(seed), self.fault
        )
        self.layout: list[Reg] = self.model.layout()
        """The process registers (what `profile()` maps as fields and tags)."""
        self.clock_reg: Reg = self.model.clock_register()
        """The PLC's clock register, served from the simulated clock."""
        self._by_fc: dict[int, list[Reg]] = {}
        for r in [*self.layout, self.clock_reg]:
            self._by_fc.setdefault(r.fc, []).append(r)
        self.host = spec.host
        self.port = spec.port
        self.requests: Counter[int] = Counter()
        """Reads answered, by function code."""
        self.writes = 0
        """Write requests received (and refused)."""
        self.plugged = False
        self._server: ModbusTcpServer | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        clock.listeners.append(self._changed)
        self._watch: asyncio.Task[None] | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def unit(self) -> int:
        return self.spec.unit

    def fault(self, kind: str, t: float | None = None) -> FaultSpec | None:
        """The fault of this kind active at simulated time t (default now), if any."""
        t = self.clock.now() if t is None else t
        for f in self.faults:
            if f.kind == kind and f.active(t):
                return f
        return None

    def inject(self, kind: str, duration_s: float | None = None, **params: Any) -> FaultSpec:
        """Start a fault now (simulated time), for duration_s simulated seconds or until cleared."""
        f = FaultSpec.model_validate(
            {"kind": kind, "at_s": self.clock.now(), "duration_s": duration_s, **params}
        )
        self.faults.append(f)
        self._changed.set()
        return f

    def clear(self, kind: str | None = None) -> None:
        """End active faults (of one kind, or all) now."""
        now = self.clock.now()
        kept = []
        for f in self.faults:
            if (kind is None or f.kind == kind) and f.active(now):
                f = f.model_copy(update={"duration_s": max(1e-9, now - f.at_s)})
            kept.append(f)
        self.faults = kept
        self._changed.set()

    def profile(self, device_clock: bool = False) -> dict[str, Any]:
        """This PLC's register map as a collector profile; with `device_clock`, including the
        clock register (`timestamp:`), so readings carry the simulated time as event time."""
        clock = self.clock_reg if device_clock else None
        return profile(self.layout, f"simulated {self.spec.kind}", clock=clock)

    def device_config(self, profile: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A collector `devices:` entry polling this PLC (profile default: named after the kind)."""
        d: dict[str, Any] = {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "unit": self.unit,
            "profile": profile or self.spec.kind,
            "equipment": self.name,
        }
        d.update(overrides)
        return d

    async def start(self) -> None:
        await self._plug()
        self._watch = asyncio.create_task(self._watch_unplug(), name=f"plc:{self.name}:unplug")

    async def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._unplug()

    # -- server ------------------------------------------------------------------------------

    def _sim_device(self) -> SimDevice:
        blocks: list[list[SimData]] = []
        for fc in (1, 2, 3, 4):
            regs = self._by_fc.get(fc, [])
            if not regs:
                # pymodbus needs every block; a single unused item stands in for an empty table
                dt = DataType.BITS if fc in (1, 2) else DataType.REGISTERS
                blocks.append([SimData(0, count=1, values=0 if fc > 2 else False, datatype=dt)])
                continue
            start = min(r.address for r in regs)
            end = max(r.address + r.count for r in regs)
            if fc in (1, 2):
                blocks.append(
                    [SimData(start, count=end - start, values=False, datatype=DataType.BITS)]
                )
            else:
                blocks.append(
                    [SimData(start, count=end - start, values=0, datatype=DataType.REGISTERS)]
                )
        return SimDevice(
            self.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=self._action
        )

    async def _plug(self) -> None:
        if self.plugged:
            return
        server = ModbusTcpServer(self._sim_device(), address=(self.host, self.port))
        await server.serve_forever(background=True)
        self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._server = server
        self.plugged = True

    async def _unplug(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        self.plugged = False

    async def _watch_unplug(self) -> None:
        """Follow the unplug faults: close the port while one is active."""
        while True:
            self._changed.clear()
            now = self.clock.now()
            want_plugged = self.fault("unplug", now) is None
            if want_plugged != self.plugged:
                if want_plugged:
                    try:
                        await self._plug()
                    except (OSError, RuntimeError):
                        log.warning("plc replug failed; retrying", extra={"plc": self.name})
                        await asyncio.sleep(0.2)
                        continue
                else:
                    await self._unplug()
            bounds = [
                b
                for f in self.faults
                if f.kind == "unplug"
                for b in (f.at_s, f.end_s)
                if b is not None and b > now
            ]
            timeout = self.clock.wall(min(bounds) - now) if bounds else None
            if timeout == math.inf:
                timeout = None  # paused: resume() wakes us
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()

    async def _action(
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            self.writes += 1
            return ExcCodes.ILLEGAL_FUNCTION
        now = self.clock.now()
        slow = self.fault("slow", now)
        if slow is not None and slow.delay_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(slow.delay_s):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return ExcCodes.DEVICE_FAILURE
        exc = self.fault("exception", now)
        if exc is not None:
            return ExcCodes(exc.code)
        self.requests[fc] += 1
        self.model.advance(now)
        values = self.model.values()
        clock = self.clock_reg
        unit = 1000 if clock.timestamp == "ms" else 1
        values[clock.name] = math.floor(self.clock.epoch_s(now) * unit)  # a clock shows whole units
        self._fill(fc, start, registers, values)
        return None

    def _fill(self, fc: int, start: int, registers: list[int], values: dict[str, Any]) -> None:
        """Write current values into a pymodbus block (bit blocks hold 16 bits per word)."""
        for r in self._by_fc.get(fc, []):
            v = values[r.name]
            if fc in (1, 2):
                word, bit = divmod(r.address, 16)
                i = word - start
                if v:
                    registers[i] |= 1 << bit
                else:
                    registers[i] &= ~(1 << bit)
                continue
            regs = encode_registers(to_raw(r, v), r.type, r.order, r.length)
            i = r.address - start
            registers[i : i + len(regs)] = regs


async def start_plcs(
    specs: Iterable[PlcSpec | dict[str, Any]],
    speed: float = 1.0,
    *,
    start: datetime | float | None = None,
    horizon_s: float = DEFAULT_HORIZON_S,
    paused: bool = False,
) -> list[RunningPlc]:
    """Start simulated PLCs (port 0 = a free loopback port; read `.port` afterwards).

    All share one simulated clock running `speed` times faster than wall time; `start`,
    `horizon_s` and `paused` as for `SimClock` (`plcs[0].clock.resume()` starts a paused plant).
    Stop them with `stop_plcs`.
    """
    clock = SimClock(speed, start=start, horizon_s=horizon_s, paused=paused)
    plcs = [
        RunningPlc(s if isinstance(s, PlcSpec) else PlcSpec.model_validate(s), clock) for s in specs
    ]
    started: list[RunningPlc] = []
    try:
        for plc in plcs:
            await plc.start()
            started.append(plc)
    except BaseException:
        await stop_plcs(started)
        raise
    return plcs


async def stop_plcs(plcs: Sequence[RunningPlc]) -> None:
    for plc in plcs:
        await plc.stop()
    # let answers released by stop() finish before the loop goes away
    for _ in range(3):
        await asyncio.sleep(0)


async def start_scenario(scenario: PlcScenario, speed: float | None = None) -> list[RunningPlc]:
    """Start a scenario's PLCs with its speed (or `speed`), clock start and horizon."""
    return await start_plcs(
        scenario.plcs,
        speed if speed is not None else scenario.speed,
        start=scenario.start,
        horizon_s=scenario.horizon_s,
    )


async def run_scenario(scenario: PlcScenario) -> None:
    """Serve a scenario's PLCs until cancelled (the entry for `vigil simulate`)."""
    plcs = await start_scenario(scenario)
    for plc in plcs:
        log.info(
            "simulated plc serving",
            extra={"plc": plc.name, "kind": plc.spec.kind, "port": plc.port, "unit": plc.unit},
        )
    try:
        await asyncio.Event().wait()
    finally:
        await stop_plcs(plcs)


def collector_config(
    plcs: Sequence[RunningPlc],
    *,
    line: str = "line-1",
    device_clock: bool = False,
    **device_settings: Any,
) -> dict[str, Any]:
    """A `kind: modbus` collector config polling these PLCs, one profile per distinct layout.

    `device_clock=True` maps each PLC's clock register, so readings carry simulated time as
    event time (`ts_from_receive` false) and rules judge a sped-up process in process time.
    """
    profiles: dict[str, Any] = {}
    devices: list[dict[str, Any]] = []
    for plc in plcs:
        prof = plc.profile(device_clock)
        name: str = plc.spec.kind
        if profiles.get(name, prof) != prof:  # e.g. generic banks of different sizes
            name = re.sub(r"[^A-Za-z0-9_]", "_", f"{plc.spec.kind}_{plc.name}")
        profiles[name] = prof
        devices.append(plc.device_config(profile=name))
    return {
        "kind": "modbus",
        "name": "plcs",
        "defaults": {"line": line, **device_settings},
        "profiles": profiles,
        "devices": devices,
    }
