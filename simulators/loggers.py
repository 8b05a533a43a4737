"""Simulated data loggers: sample an asset, buffer while offline, upload the backlog on reconnect.

A logger is a small discrete-event machine on the simulated clock (integer milliseconds from the
scenario start): it never touches the network or the wall clock, it only says what it would send
and when (`Outgoing`). The runner decides how fast simulated time passes and does the publishing.
Its sensor noise comes from its own seeded RNG, drawn once per sample even when the value is
overridden by a fault, so a fault changes only the readings inside it.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from simulators.protocol import (
    ALL_FIELDS,
    Field,
    MalformedVariant,
    Reading,
    TsFormat,
    encode_batch,
    encode_reading,
    format_ts,
    malformed,
    topic,
)
from simulators.route import Route
from simulators.thermal import AssetKind, ThermalModel, ThermalState, Window

MessageKind = Literal["reading", "batch", "malformed"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message a device sends at simulated time t_ms."""

    t_ms: int
    device: str
    """"site/asset/device": the key of SimStats.devices."""
    topic: str
    payload: bytes
    kind: MessageKind
    readings: int
    """Readings carried (0 for a malformed message)."""
    variant: MalformedVariant | None = None


class AssetSim:
    """An asset's thermal model shared by its loggers (they see the same air)."""

    def __init__(
        self,
        site: str,
        asset: str,
        kind: AssetKind,
        model: ThermalModel,
        route: Route | None = None,
    ) -> None:
        self.site = site
        self.asset = asset
        self.kind = kind
        self.model = model
        self.route = route
        """A truck's route: its loggers report their position."""
        self._last: ThermalState | None = None

    def state_at(self, t_s: float) -> ThermalState:
        if self._last is None or self._last.t_s != t_s:
            self._last = self.model.state_at(t_s)
        return self._last


@dataclass(frozen=True, slots=True)
class LoggerConfig:
    site: str
    asset: str
    device: str
    interval_ms: int = 60_000
    phase_ms: int = 0
    ts_format: TsFormat = "iso"
    fields: tuple[Field, ...] = ALL_FIELDS
    offset_c: float = 0.0
    noise_c: float = 0.05
    battery_pct: float = 95.0
    battery_drain_pct_per_day: float = 0.5
    buffer_size: int = 10_000
    max_batch: int = 1000
    topic_prefix: str = "vigil"


@dataclass(frozen=True, slots=True)
class MalformedBurst:
    t_ms: int
    variants: tuple[MalformedVariant, ...]
    count: int = 1
    oversize_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class DeviceFaults:
    """Device-side faults; windows are in simulated ms."""

    offline: tuple[Window, ...] = ()
    low_battery: tuple[tuple[Window, float], ...] = ()
    flatline: tuple[tuple[Window, float | None], ...] = ()
    malformed: tuple[MalformedBurst, ...] = ()


# Same-instant order: the backlog goes before the live reading taken at the reconnect instant.
_RECONNECT, _MALFORMED, _SAMPLE = 0, 1, 2


@dataclass(order=True, slots=True)
class _Event:
    t_ms: int
    prio: int
    seq: int
    arg: object = field(compare=False, default=None)


class Logger:
    """One device. Drive it with `next_time()` / `fire()` in time order (Fleet does)."""

    def __init__(
        self,
        config: LoggerConfig,
        asset: AssetSim,
        *,
        seed: int,
        start_epoch_ms: int,
        faults: DeviceFaults | None = None,
    ) -> None:
        if config.interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        self.config = config
        self.asset = asset
        self.faults = faults or DeviceFaults()
        self.key = f"{config.site}/{config.asset}/{config.device}"
        self.topic = topic(config.site, config.asset, config.device, config.topic_prefix)
        self.start_epoch_ms = start_epoch_ms
        self.dropped = 0
        """Readings lost because the offline buffer was full (oldest go first)."""
        self._rng = random.Random(seed)
        self._buffer: deque[Reading] = deque()
        self._flat: dict[int, tuple[float, float]] = {}
        self._seq = 0
        self._events: list[_Event] = []
        self._push(config.phase_ms, _SAMPLE)
        for w in self.faults.offline:
            if w.end_s != float("inf"):
                self._push(int(w.end_s), _RECONNECT)
        for burst in self.faults.malformed:
            self._push(burst.t_ms, _MALFORMED, burst)

    def _push(self, t_ms: int, prio: int, arg: object = None) -> None:
        self._seq += 1
        heapq.heappush(self._events, _Event(t_ms, prio, self._seq, arg))

    @property
    def buffered(self) -> int:
        """Readings taken while offline and not uploaded yet."""
        return len(self._buffer)

    def next_time(self) -> tuple[int, int]:
        e = self._events[0]
        return e.t_ms, e.prio

    def offline(self, t_ms: int) -> bool:
        return any(t_ms in w for w in self.faults.offline)

    def fire(self) -> list[Outgoing]:
        """Run the next event; what the device sends because of it (maybe nothing)."""
        e = heapq.heappop(self._events)
        if e.prio == _SAMPLE:
            self._push(e.t_ms + self.config.interval_ms, _SAMPLE)
            reading = self.reading_at(e.t_ms)
            if self.offline(e.t_ms):
                if len(self._buffer) >= self.config.buffer_size:
                    self._buffer.popleft()
                    self.dropped += 1
                self._buffer.append(reading)
                return []
            return [self._out(e.t_ms, encode_reading(reading), "reading", 1)]
        if e.prio == _RECONNECT:
            return self.upload(e.t_ms)
        assert isinstance(e.arg, MalformedBurst)
        return self.malformed_burst(e.t_ms, e.arg)

    def upload(self, t_ms: int) -> list[Outgoing]:
        """The backlog as batches of at most max_batch readings, oldest first; empties it."""
        if self.offline(t_ms) or not self._buffer:
            return []
        items = list(self._buffer)
        self._buffer.clear()
        n = self.config.max_batch
        return [
            self._out(t_ms, encode_batch(chunk), "batch", len(chunk))
            for chunk in (items[i : i + n] for i in range(0, len(items), n))
        ]

    def malformed_burst(self, t_ms: int, burst: MalformedBurst) -> list[Outgoing]:
        epoch_ms = self.start_epoch_ms + t_ms
        return [
            self._out(
                t_ms, malformed(v, epoch_ms, oversize_bytes=burst.oversize_bytes), "malformed", 0, v
            )
            for _ in range(burst.count)
            for v in burst.variants
        ]

    def _out(
        self,
        t_ms: int,
        payload: bytes,
        kind: MessageKind,
        readings: int,
        variant: MalformedVariant | None = None,
    ) -> Outgoing:
        return Outgoing(t_ms, self.key, self.topic, payload, kind, readings, variant)

    def reading_at(self, t_ms: int) -> Reading:
        """The reading this logger takes at t_ms. Consumes noise: call once per sample, in order."""
        c = self.config
        state = self.asset.state_at(t_ms / 1000.0)
        temp = state.temp_c + c.offset_c + self._rng.gauss(0.0, c.noise_c)
        rh = state.rh_pct + self._rng.gauss(0.0, c.noise_c * 10)
        for i, (w, value) in enumerate(self.faults.flatline):
            if t_ms in w:
                temp, rh = self._flat.setdefault(i, (temp if value is None else value, rh))
                break
        battery = c.battery_pct - c.battery_drain_pct_per_day * t_ms / 86_400_000
        for w, level in self.faults.low_battery:
            if t_ms in w:
                battery = min(battery, level)
        values: dict[str, object] = {
            "temp_c": round(temp, 2),
            "rh_pct": round(min(100.0, max(0.0, rh)), 1),
            "battery_pct": round(max(0.0, battery)),
            "door_open": state.door_open,
            "power_ok": state.power_ok,
        }
        out: Reading = {"ts": format_ts(self.start_epoch_ms + t_ms, c.ts_format)}
        for name in c.fields:
            if name in values:
                out[name] = values[name]
        route = self.asset.route
        if route is not None:
            out["lat"], out["lon"], out["speed_kmh"] = route.at(t_ms / 1000.0)
        return out


def sample_times(config: LoggerConfig, until_ms: int) -> Sequence[int]:
    """The simulated instants a logger samples at before until_ms."""
    return range(config.phase_ms, until_ms, config.interval_ms)
