"""Modbus TCP collector: one poll task per device, one submitter, readings of measurement `process`.

Each device polls on its own schedule over its own connection, so a device that hangs, refuses or
answers with exceptions costs only its own task time and never delays the others. One poll of a
device is one Reading (all its fields at the poll's timestamp), tagged line/equipment/device plus
batch/phase when the register map carries them.

Event time: when the register map marks the device's clock (`timestamp: s|ms`), the reading is
filed under the device's time, because rules (F0, hold times) and regulators judge process time,
not when the gateway happened to ask. A clock that is unset, too far ahead of the gateway or going
backwards withholds the poll's reading and dead-letters it with its values: a wrong time is never
journaled, and no data vanishes silently. Without a clock entry the gateway's clock at the poll is
used and the reading is flagged `ts_from_receive`.

Backpressure: readings wait in one bounded buffer that a single submitter hands to `Ingest.submit`
in batches. While the buffer is full the devices skip their polls and count a missed cycle: a slow
journal costs samples, never unbounded memory. A poll that overruns its interval also counts the
cycles it missed; the schedule then moves on instead of bursting to catch up.

The collector only ever reads (fc 1-4): monitoring stays independent of control.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collectors.modbus.config import DeviceSpec, ModbusCollectorConfig
from collectors.modbus.decode import (
    BIT_FUNCTIONS,
    DecodeError,
    Point,
    decode_clock,
    decode_point,
    finish,
    registers_to_bytes,
)
from collectors.modbus.planner import ReadRequest
from gateway.core.eventtime import DEFAULT_MIN_EVENT_NS, EventWindow, dt_to_ns, fmt_ns
from gateway.core.lineprotocol import name_problem
from gateway.core.metrics import Counters, Stats
from gateway.core.ports import Ingest, SourceStatus
from gateway.core.reading import DeadLetter, FieldValue, Reading, internal_error
from gateway.core.schema import PROCESS
from gateway.core.supervisor import raise_if_cancelled

log = logging.getLogger("vigil.collectors.modbus")


def _iso(ns: int) -> str:
    """UTC time with milliseconds, for dead-letter reasons (never raises)."""
    return fmt_ns(ns)


MEASUREMENT = PROCESS.name

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
RETRYABLE_EXCEPTIONS = frozenset({5, 6, 10, 11})
"""Exception codes that say "not now" rather than "never": worth a retry within the poll."""

_READERS = {
    1: "read_coils",
    2: "read_discrete_inputs",
    3: "read_holding_registers",
    4: "read_input_registers",
}
"""The only client calls the collector makes. There is deliberately no path to a write."""


@dataclass
class ModbusStats(Stats):
    """Counters over the collector's lifetime (all devices)."""

    polls: int = 0
    polls_ok: int = 0
    polls_failed: int = 0
    requests: int = 0
    request_errors: int = 0
    timeouts: int = 0
    exception_responses: int = 0
    retries: int = 0
    connects: int = 0
    missed_cycles: int = 0
    """Scheduled polls not made: previous poll overran, or buffer full (see backpressure_skips)."""
    backpressure_skips: int = 0
    readings: int = 0
    decode_errors: int = 0
    clock_rejects: int = 0
    """Polls withheld (and dead-lettered) because the device clock was unset, ahead or backwards."""
    dead_letters: int = 0
    submits: int = 0
    submit_errors: int = 0
    state_changes: int = 0
    device_errors: int = 0
    """Unexpected exceptions caught in a device task (bugs); the task carries on."""
    internal_errors: int = 0
    """Responses whose decoding raised something unexpected: dead-lettered with their items."""


@dataclass(frozen=True, slots=True)
class DeviceStateChange:
    """Passed to `device_state_cb` whenever a device goes online or offline.

    The first determination after start counts as a change (from unknown).
    """

    device: str
    line: str
    equipment: str
    online: bool
    reason: str
    """Why it went offline (timeout, refused, exception code); empty when online."""
    ts_ns: int
    source: str
    """modbus://host:port/unit."""


DeviceStateCallback = Callable[[DeviceStateChange], Awaitable[None] | None]


@dataclass
class DeviceStatus:
    """Live state of one device, for the API and the gateway's metrics."""

    name: str
    source: str
    requests_per_poll: int
    online: bool | None = None
    """None until the first poll has decided."""
    since_ns: int = 0
    last_error: str = ""
    consecutive_failures: int = 0
    offline_count: int = 0
    polls_ok: int = 0
    polls_failed: int = 0
    missed_cycles: int = 0
    last_reading_ns: int = 0
    """Event time of the last reading."""
    last_reading_received_ns: int = 0
    """When the last reading was taken (gateway clock)."""
    last_poll_s: float = 0.0
    """Duration of the last poll, seconds."""
    clock_offset_s: float | None = None
    """Device clock minus gateway clock at the last poll (None: no clock register, or unread)."""
    clock_error: str = ""
    """Why the device clock is refused right now; empty while it is fine."""


class _PollError(Exception):
    def __init__(self, reason: str, *, retry: bool, close: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.close = close


@dataclass
class _Device:
    spec: DeviceSpec
    plan: list[ReadRequest]
    status: DeviceStatus
    base_tags: dict[str, str]
    client: AsyncModbusTcpClient | None = None
    retry_at: float = 0.0
    reconnect_delay: float = 0.0
    bad_points: dict[str, str] = field(default_factory=dict)
    """Point name → last decode error, so a persistently bad value is dead-lettered once."""
    clock: Point | None = None
    """The device's clock register, when its map has one."""
    last_clock_ns: int = 0
    """Device time of the last reading let through: the clock may not go back behind it."""
    min_event_ns: int = DEFAULT_MIN_EVENT_NS
    """The device's `min_event_time`: an earlier clock is refused."""


def clock_problem(
    name: str,
    clock_ns: int,
    last_ns: int,
    received_ns: int,
    max_future_skew_s: float,
    min_ns: int = DEFAULT_MIN_EVENT_NS,
) -> str:
    """Why a device clock reading cannot be an event time, or "" when it can.

    Refused: outside the event-time window (gateway/core/eventtime.py: before `min_ns`, the
    device's `min_event_time`, or more than `max_future_skew_s` ahead of the gateway's clock
    `received_ns`), or earlier than the device time last let through (`last_ns`; 0: none yet).
    An unchanged clock (a seconds clock polled faster than it ticks) is not going backwards and
    passes.
    """
    why = EventWindow(min_ns, max_future_skew_s).problem(clock_ns, received_ns)
    if why:
        return f"{name}: device clock {_iso(clock_ns)} {why}"
    if clock_ns < last_ns:
        return (
            f"{name}: device clock went backwards by {(last_ns - clock_ns) / 1e9:.3f} s "
            f"({_iso(last_ns)} -> {_iso(clock_ns)})"
        )
    return ""


class ModbusCollector:
    kind = "modbus"

    def __init__(
        self,
        config: ModbusCollectorConfig,
        ingest: Ingest,
        counters: Counters | None = None,
        *,
        device_state_cb: DeviceStateCallback | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._ingest = ingest
        self._counters = counters or Counters()
        self._cb = device_state_cb
        self.stats = ModbusStats()
        self._counters.register(f"collector:{config.name}", self.stats)
        self._devices: list[_Device] = []
        for spec in config.devices:
            if not spec.enabled:
                continue
            plan = config.plan_for(spec)
            source = f"modbus://{spec.host}:{spec.port}/{spec.unit}"
            self._devices.append(
                _Device(
                    spec=spec,
                    plan=plan,
                    status=DeviceStatus(spec.name, source, len(plan)),
                    clock=config.clock_for(spec),
                    min_event_ns=max(0, dt_to_ns(spec.min_event_time)),
                    base_tags={
                        "line": spec.line or "",
                        "equipment": spec.equipment_tag,
                        "device": spec.name,
                    },
                )
            )
        self._meta = {d.spec.name: config.field_meta_for(d.spec) for d in self._devices}
        self._pending: list[Reading] = []
        self._pending_dead: list[DeadLetter] = []
        self._wake = asyncio.Event()
        self._cb_tasks: set[asyncio.Task[None]] = set()

    # -- public view -------------------------------------------------------------------------

    @property
    def devices(self) -> Mapping[str, DeviceStatus]:
        return {d.spec.name: d.status for d in self._devices}

    def status(self) -> list[SourceStatus]:
        return [
            SourceStatus(
                self.name,
                self.kind,
                d.status.source,
                d.spec.name,
                d.status.online,
                d.status.since_ns,
                d.status.last_error,
                d.status.last_reading_received_ns,
                MEASUREMENT,
                dict(d.base_tags),
                *self._meta[d.spec.name],
            )
            for d in self._devices
        ]

    @property
    def plans(self) -> Mapping[str, list[ReadRequest]]:
        """Read plan per device: len(plan) is the requests one poll makes."""
        return {d.spec.name: d.plan for d in self._devices}

    @property
    def requests_per_cycle(self) -> int:
        return sum(len(d.plan) for d in self._devices)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- run ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every enabled device until cancelled. Safe to call again after it raised."""
        self._wake = asyncio.Event()
        n = max(1, len(self._devices))
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._submit_loop(), name="modbus:submit")
                for i, dev in enumerate(self._devices):
                    # Spread first polls over one interval so 100 devices do not poll in lockstep.
                    offset = dev.spec.interval_s * i / n
                    tg.create_task(self._device_task(dev, offset), name=f"modbus:{dev.spec.name}")
        finally:
            for dev in self._devices:
                self._close(dev)

    async def _device_task(self, dev: _Device, offset: float) -> None:
        """Keep one device's poll loop alive: a bug in one poll must not stop the device."""
        while True:
            try:
                await self._device_loop(dev, offset)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.device_errors += 1
                log.exception(
                    "modbus device loop failed; continuing", extra={"device": dev.spec.name}
                )
                self._close(dev)
                offset = dev.spec.interval_s

    async def _device_loop(self, dev: _Device, offset: float) -> None:
        loop = asyncio.get_running_loop()
        spec = dev.spec
        interval = spec.interval_s
        next_at = loop.time() + offset
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                behind = int(-delay // interval)
                if behind:
                    self._missed(dev, behind)
                    next_at += behind * interval
            next_at += interval
            if dev.retry_at > loop.time():
                continue  # offline, backing off: not a missed cycle, a deliberate pause
            if len(self._pending) >= self.config.max_pending:
                self.stats.backpressure_skips += 1
                self._missed(dev, 1)
                continue
            await self._poll(dev)
            raise_if_cancelled()

    def _missed(self, dev: _Device, n: int) -> None:
        self.stats.missed_cycles += n
        dev.status.missed_cycles += n

    # -- one poll ----------------------------------------------------------------------------

    async def poll_once(self, device: str) -> Reading | None:
        """Poll one device now, off its schedule, and return its Reading without queueing it.

        For probing a device from the CLI and for tests; state, counters and dead letters (queued
        only while `run` is running) update as usual.
        """
        for dev in self._devices:
            if dev.spec.name == device:
                return await self._poll(dev, queue=False)
        raise KeyError(f"no enabled device {device!r}")

    async def _poll(self, dev: _Device, *, queue: bool = True) -> Reading | None:
        loop = asyncio.get_running_loop()
        spec = dev.spec
        self.stats.polls += 1
        started = loop.time()
        ts_ns = 0
        attempts = 1 if dev.status.online is False else 1 + spec.retries
        error: _PollError | None = None
        payloads: list[list[int] | list[bool]] = []
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
                await asyncio.sleep(spec.retry_backoff_s * 2 ** (attempt - 1))
            ts_ns = time.time_ns()  # the values are those of the attempt that succeeds
            try:
                payloads = await self._read_all(dev)
                error = None
                break
            except _PollError as e:
                error = e
                if e.close:
                    self._close(dev)
                if not e.retry:
                    break
        dev.status.last_poll_s = loop.time() - started
        if error is not None:
            self._poll_failed(dev, error.reason)
            return None
        received_ns = time.time_ns()
        self.stats.polls_ok += 1
        self._counters.received += 1
        dev.status.polls_ok += 1
        dev.status.consecutive_failures = 0
        dev.reconnect_delay = 0.0
        dev.retry_at = 0.0
        if dev.status.online is not True:
            self._set_state(dev, True, "")
        try:
            return self._emit(dev, payloads, ts_ns, received_ns, queue=queue)
        except Exception as e:
            # One response that cannot be decoded or emitted, for whatever reason, is kept as
            # a dead letter with its raw items; the device's loop goes on.
            self._internal_dead_letter(dev, payloads, e)
            return None

    def _internal_dead_letter(
        self, dev: _Device, payloads: list[list[int] | list[bool]], exc: Exception
    ) -> None:
        self.stats.internal_errors += 1
        log.exception(
            "modbus response could not be handled; dead-lettered", extra={"device": dev.spec.name}
        )
        try:
            requests = [
                {"fc": req.fc, "address": req.address, "count": req.count, "items": items}
                for req, items in zip(
                    dev.plan, ([int(v) for v in p] for p in payloads), strict=False
                )
            ]
            body = orjson.dumps({"device": dev.spec.name, "requests": requests})
        except Exception:
            body = repr(payloads).encode("utf-8", "backslashreplace")
        self._pending_dead.append(DeadLetter(dev.status.source, body, internal_error(exc)))
        self.stats.dead_letters += 1
        self._wake.set()

    async def _read_all(self, dev: _Device) -> list[list[int] | list[bool]]:
        spec = dev.spec
        client = dev.client
        if client is None or not client.connected:
            self._close(dev)
            client = AsyncModbusTcpClient(
                spec.host,
                port=spec.port,
                timeout=spec.timeout_s,
                retries=0,
                reconnect_delay=0,  # we reconnect ourselves, on our schedule
                name=f"vigil-{spec.name}",
            )
            self.stats.connects += 1
            try:
                async with asyncio.timeout(spec.timeout_s + 1.0):
                    ok = await client.connect()
            except (TimeoutError, OSError, ModbusException) as e:
                client.close()
                raise _PollError(
                    f"connect failed: {e or type(e).__name__}", retry=True, close=True
                ) from e
            if not ok:
                client.close()
                raise _PollError(
                    f"cannot connect to {spec.host}:{spec.port}", retry=True, close=True
                )
            dev.client = client
        out: list[list[int] | list[bool]] = []
        for req in dev.plan:
            self.stats.requests += 1
            read = getattr(client, _READERS[req.fc])
            try:
                async with asyncio.timeout(spec.timeout_s + 1.0):
                    rr = await read(req.address, count=req.count, device_id=spec.unit)
            except (TimeoutError, ModbusException, OSError) as e:
                self.stats.request_errors += 1
                timed_out = isinstance(e, TimeoutError) or "No response" in str(e)
                if timed_out:
                    self.stats.timeouts += 1
                    reason = f"timeout after {spec.timeout_s:g} s (fc {req.fc} @ {req.address})"
                else:
                    reason = f"{type(e).__name__}: {e} (fc {req.fc} @ {req.address})"
                # Close so a late answer can never be taken for the next request's.
                raise _PollError(reason, retry=True, close=True) from e
            if rr.isError():
                self.stats.request_errors += 1
                self.stats.exception_responses += 1
                code = int(getattr(rr, "exception_code", 0) or 0)
                name = EXCEPTION_NAMES.get(code, "unknown")
                raise _PollError(
                    f"exception {code:#04x} {name} (fc {req.fc} @ {req.address}+{req.count})",
                    retry=code in RETRYABLE_EXCEPTIONS,
                    close=False,
                )
            if req.fc in BIT_FUNCTIONS:
                bits = list(rr.bits)
                if len(bits) < req.count:
                    raise _PollError(
                        f"short answer: {len(bits)} of {req.count} bits "
                        f"(fc {req.fc} @ {req.address})",
                        retry=True,
                        close=True,
                    )
                out.append(bits[: req.count])
            else:
                regs = list(rr.registers)
                if len(regs) != req.count:
                    raise _PollError(
                        f"short answer: {len(regs)} of {req.count} registers "
                        f"(fc {req.fc} @ {req.address})",
                        retry=True,
                        close=True,
                    )
                out.append(regs)
        return out

    def _emit(
        self,
        dev: _Device,
        payloads: list[list[int] | list[bool]],
        ts_ns: int,
        received_ns: int,
        *,
        queue: bool,
    ) -> Reading | None:
        fields: dict[str, FieldValue] = {}
        tags = dict(dev.base_tags)
        dead: list[DeadLetter] = []
        clock_ns: int | None = None
        clock_error = ""
        clock_items: list[int] = []
        for req, payload in zip(dev.plan, payloads, strict=True):
            raw = b"" if req.fc in BIT_FUNCTIONS else registers_to_bytes(payload)  # type: ignore[arg-type]
            for p in req.points:
                off = p.address - req.address
                if p.timestamp is not None:
                    clock_items = [int(v) for v in payload[off : off + p.count]]
                    try:
                        clock_ns = decode_clock(p, raw[off * 2 : (off + p.count) * 2])
                    except DecodeError as e:
                        clock_error = f"{p.name}: {e}"
                    continue
                try:
                    if req.fc in BIT_FUNCTIONS:
                        value = finish(p, bool(payload[off]))
                    else:
                        value = decode_point(p, raw[off * 2 : (off + p.count) * 2])
                    if p.tag:  # a PLC string can hold what line protocol cannot carry
                        why = name_problem("tag value", str(value)) if str(value) else ""
                        if why:
                            raise DecodeError(why)
                except DecodeError as e:
                    self.stats.decode_errors += 1
                    reason = f"{p.name}: {e}"
                    if dev.bad_points.get(p.name) != str(e):
                        dev.bad_points[p.name] = str(e)
                        dead.append(self._dead_letter(dev, p, payload, off, reason))
                    continue
                if dev.bad_points:
                    dev.bad_points.pop(p.name, None)
                if p.tag:
                    text = str(value)
                    if text:
                        tags[p.name] = text
                else:
                    fields[p.name] = value
        reading = None
        if dev.clock is not None and fields:
            if clock_ns is not None:
                clock_error = self._check_clock(dev, clock_ns, received_ns)
            if clock_error:
                dead.append(
                    self._clock_dead_letter(dev, clock_items, clock_ns, clock_error, tags, fields)
                )
                fields = {}  # withheld: the dead letter carries them
            else:
                assert clock_ns is not None
                ts_ns = dev.last_clock_ns = clock_ns
            self._clock_state(dev, clock_error)
        if fields:
            reading = Reading(
                MEASUREMENT, tags, fields, ts_ns, received_ns, ts_from_receive=dev.clock is None
            )
            dev.status.last_reading_ns = ts_ns
            dev.status.last_reading_received_ns = received_ns
        if dead:  # always kept: a bad value is a fact about the device, however it was polled
            self._pending_dead.extend(dead)
            self.stats.dead_letters += len(dead)
            self._wake.set()
        if queue and reading is not None:
            self._pending.append(reading)
            self.stats.readings += 1
            self._counters.readings_parsed += 1
            self._wake.set()
        return reading

    def _check_clock(self, dev: _Device, clock_ns: int, received_ns: int) -> str:
        """Why this device time cannot be the reading's event time; empty when it can."""
        assert dev.clock is not None
        dev.status.clock_offset_s = (clock_ns - received_ns) / 1e9
        return clock_problem(
            dev.clock.name,
            clock_ns,
            dev.last_clock_ns,
            received_ns,
            dev.spec.max_future_skew_s,
            dev.min_event_ns,
        )

    def _clock_state(self, dev: _Device, error: str) -> None:
        st = dev.status
        if error:
            self.stats.clock_rejects += 1
            if not st.clock_error:
                log.warning(
                    "modbus device clock refused; readings withheld and dead-lettered",
                    extra={"device": dev.spec.name, "reason": error},
                )
        elif st.clock_error:
            log.info("modbus device clock accepted again", extra={"device": dev.spec.name})
        st.clock_error = error

    def _clock_dead_letter(
        self,
        dev: _Device,
        items: list[int],
        clock_ns: int | None,
        reason: str,
        tags: dict[str, str],
        fields: dict[str, FieldValue],
    ) -> DeadLetter:
        """One per withheld poll: the clock's registers and the values filed nowhere else."""
        p = dev.clock
        assert p is not None
        body: dict[str, Any] = {
            "device": dev.spec.name,
            "field": p.name,
            "fc": p.fc,
            "address": p.address,
            "type": p.type,
            "order": p.order,
            "timestamp": p.timestamp,
            "items": items,
            "clock_ns": clock_ns if clock_ns is not None and clock_ns < 1 << 63 else None,
            "tags": tags,
            "fields": fields,
        }
        return DeadLetter(dev.status.source, orjson.dumps(body), f"{reason}; reading withheld")

    def _dead_letter(
        self, dev: _Device, p: Point, payload: list[int] | list[bool], off: int, reason: str
    ) -> DeadLetter:
        items = [int(v) for v in payload[off : off + p.count]]
        body: dict[str, Any] = {
            "device": dev.spec.name,
            "field": p.name,
            "fc": p.fc,
            "address": p.address,
            "type": p.type,
            "order": p.order,
            "items": items,
        }
        return DeadLetter(dev.status.source, orjson.dumps(body), reason)

    def _poll_failed(self, dev: _Device, reason: str) -> None:
        loop = asyncio.get_running_loop()
        spec = dev.spec
        self.stats.polls_failed += 1
        st = dev.status
        st.polls_failed += 1
        st.consecutive_failures += 1
        st.last_error = reason
        log.debug("modbus poll failed", extra={"device": spec.name, "reason": reason})
        if st.online is not False and st.consecutive_failures >= spec.offline_after:
            self._set_state(dev, False, reason)
        if st.online is False:
            dev.reconnect_delay = min(
                spec.reconnect_max_s, max(spec.interval_s, dev.reconnect_delay * 2)
            )
            dev.retry_at = loop.time() + dev.reconnect_delay - 0.5 * spec.interval_s
            # (half an interval early so the attempt lands on the poll grid, not one cycle late)

    def _set_state(self, dev: _Device, online: bool, reason: str) -> None:
        st = dev.status
        st.online = online
        st.since_ns = time.time_ns()
        self.stats.state_changes += 1
        if online:
            log.info("modbus device online", extra={"device": dev.spec.name})
        else:
            st.offline_count += 1
            log.warning("modbus device offline", extra={"device": dev.spec.name, "reason": reason})
        if self._cb is None:
            return
        change = DeviceStateChange(
            device=dev.spec.name,
            line=dev.base_tags["line"],
            equipment=dev.base_tags["equipment"],
            online=online,
            reason=reason,
            ts_ns=st.since_ns,
            source=st.source,
        )
        try:
            res = self._cb(change)
            if asyncio.iscoroutine(res):
                task = asyncio.create_task(res)
                self._cb_tasks.add(task)
                task.add_done_callback(self._cb_done)
        except Exception:
            log.exception("device_state_cb failed", extra={"device": dev.spec.name})

    def _cb_done(self, task: asyncio.Task[None]) -> None:
        self._cb_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("device_state_cb failed", exc_info=task.exception())

    def _close(self, dev: _Device) -> None:
        if dev.client is not None:
            with contextlib.suppress(Exception):
                dev.client.close()
            dev.client = None

    # -- submit ------------------------------------------------------------------------------

    async def _submit_loop(self) -> None:
        """Hand buffered readings to the journal in batches; wait while it is busy."""
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let polls finishing in the same loop turn join this batch
            readings, self._pending = self._pending, []
            dead, self._pending_dead = self._pending_dead, []
            if not readings and not dead:
                continue
            try:
                await self._ingest.submit(readings, dead)
                self.stats.submits += 1
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.submit_errors += 1
                log.exception("modbus submit failed; retrying")
                self._pending[:0] = readings
                self._pending_dead[:0] = dead
                self._wake.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
