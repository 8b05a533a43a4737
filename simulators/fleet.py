"""A scenario turned into assets and loggers, and their messages merged in simulated-time order.

Pure: building a Fleet and iterating `messages()` does no I/O and reads no clock (except
`resolve_start` when the scenario leaves its start open), so the whole traffic of a scenario can be
computed in a unit test and compared with what the runner published.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from simulators.loggers import (
    AssetSim,
    DeviceFaults,
    Logger,
    LoggerConfig,
    MalformedBurst,
    Outgoing,
)
from simulators.route import Route, Waypoint
from simulators.scenario import (
    AssetSpec,
    CompressorFailure,
    DeviceSpec,
    DoorOpen,
    Flatline,
    FreezeDip,
    HeatExcursion,
    LowBattery,
    Malformed,
    Offline,
    PowerFailure,
    Scenario,
)
from simulators.thermal import AssetFaults, Excursion, ThermalModel, Window, default_params


def derive_seed(seed: int, *parts: str) -> int:
    """A stable per-asset/per-device seed (Python's hash() is salted per process)."""
    h = hashlib.sha256("/".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big")


def resolve_start(scenario: Scenario, now: datetime | None = None) -> datetime:
    """Simulated time of t=0.

    An explicit `start` wins. Otherwise the simulated clock is placed so it never runs ahead of
    the wall clock (a gateway may reject readings from the future): at speed s > 1 the run takes
    duration/s of wall time, so t=0 is put duration*(1 - 1/s) in the past and the last reading is
    stamped about "now"; as fast as possible, the whole run lies in the past; at s <= 1 it is now.
    """
    if scenario.start is not None:
        return scenario.start.astimezone(UTC)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    d, s = scenario.duration, scenario.speed
    lead = d if s == 0 else d * (1 - 1 / s) if s > 1 else 0.0
    start = now - timedelta(seconds=math.ceil(lead))
    return start.replace(microsecond=0)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _window_ms(start: float, end: float) -> Window:
    return Window(_ms(start), math.inf if end == math.inf else _ms(end))


def _asset_faults(asset: AssetSpec) -> AssetFaults:
    doors, failures, power, excursions = [], [], [], []
    for f in asset.faults:
        w = Window(f.start, f.end)
        match f:
            case DoorOpen():
                doors.append(w)
            case CompressorFailure():
                failures.append(w)
            case PowerFailure():
                power.append(w)
            case FreezeDip() | HeatExcursion():
                excursions.append(Excursion(w, f.target_c, f.ramp))
    return AssetFaults(tuple(doors), tuple(failures), tuple(power), tuple(excursions))


def _device_faults(dev: DeviceSpec) -> DeviceFaults:
    offline, low, flat, bad = [], [], [], []
    for f in dev.faults:
        match f:
            case Offline():
                offline.append(_window_ms(f.start, f.end))
            case LowBattery():
                low.append((_window_ms(f.start, f.end), f.level_pct))
            case Flatline():
                flat.append((_window_ms(f.start, f.end), f.value_c))
            case Malformed():
                bad.append(
                    MalformedBurst(_ms(f.start), tuple(f.variants), f.count, f.oversize_bytes)
                )
    return DeviceFaults(tuple(offline), tuple(low), tuple(flat), tuple(bad))


class Fleet:
    """Every asset and logger of a scenario. `messages()` is single-use."""

    def __init__(self, scenario: Scenario, *, start: datetime | None = None) -> None:
        self.scenario = scenario
        self.start = start.astimezone(UTC) if start is not None else resolve_start(scenario)
        self.start_epoch_ms = _ms(self.start.timestamp())
        self.duration_ms = _ms(scenario.duration)
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        day_offset_s = (self.start - midnight).total_seconds()
        self.assets: list[AssetSim] = []
        self.loggers: list[Logger] = []
        prefix = scenario.broker.topic_prefix
        for site in scenario.sites:
            for asset in site.assets:
                overrides = asset.thermal.as_params()
                if overrides["ambient_c"] is None:
                    overrides["ambient_c"] = site.ambient_c
                try:
                    params = default_params(asset.kind, asset.band, **overrides)
                except ValueError as e:
                    raise ValueError(f"asset {site.id}/{asset.id}: {e}") from None
                model = ThermalModel(
                    params,
                    seed=derive_seed(scenario.seed, site.id, asset.id),
                    day_offset_s=day_offset_s,
                    faults=_asset_faults(asset),
                )
                route = (
                    Route([Waypoint(w.at, w.lat, w.lon) for w in asset.route])
                    if asset.route
                    else None
                )
                sim = AssetSim(site.id, asset.id, asset.kind, model, route)
                self.assets.append(sim)
                for dev in asset.devices:
                    config = LoggerConfig(
                        site=site.id,
                        asset=asset.id,
                        device=dev.id,
                        interval_ms=_ms(dev.interval or scenario.interval),
                        phase_ms=_ms(dev.phase),
                        ts_format=dev.ts_format,
                        fields=tuple(dev.fields),
                        offset_c=dev.offset_c,
                        noise_c=dev.noise_c,
                        battery_pct=dev.battery_pct,
                        battery_drain_pct_per_day=dev.battery_drain_pct_per_day,
                        buffer_size=dev.buffer_size,
                        max_batch=dev.max_batch,
                        topic_prefix=prefix,
                    )
                    self.loggers.append(
                        Logger(
                            config,
                            sim,
                            seed=derive_seed(scenario.seed, site.id, asset.id, dev.id),
                            start_epoch_ms=self.start_epoch_ms,
                            faults=_device_faults(dev),
                        )
                    )
        self._used = False

    def messages(self, until_ms: int | None = None) -> Iterator[Outgoing]:
        """Everything the fleet sends with 0 <= t < until_ms (default: the duration), in
        simulated-time order; ties broken by event kind, then by device order in the file."""
        if self._used:
            raise RuntimeError("Fleet.messages() can run only once: build a new Fleet")
        self._used = True
        end = self.duration_ms if until_ms is None else until_ms
        heap = [(*lg.next_time(), i) for i, lg in enumerate(self.loggers)]
        heapq.heapify(heap)
        while heap:
            t, _, i = heap[0]
            if t >= end:
                return
            lg = self.loggers[i]
            yield from lg.fire()
            heapq.heapreplace(heap, (*lg.next_time(), i))

    def pending(self) -> dict[str, tuple[int, int]]:
        """Per device key: (readings still buffered, readings dropped by a full buffer)."""
        return {lg.key: (lg.buffered, lg.dropped) for lg in self.loggers}
