"""Per-device liveness of MQTT loggers: a device is offline when no message came from it within
`missed_intervals` of its expected interval.

The expected interval is configured per subscription (`expected_interval_s`) or learned per
device as the median of the gaps between its recent messages (gaps under a second, a buffered
upload arriving as a burst, are ignored; the result is at least `min_interval_s`). Until
`learn_samples` gaps are known, `initial_interval_s` applies. Pure bookkeeping on receive times:
the collector calls `seen()` per message and `statuses()` when asked for its status.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from collectors.mqtt.config import LivenessConfig
from gateway.core.ports import SourceStatus

S = 1_000_000_000
BURST_S = 1.0
"""Gaps shorter than this are messages of one upload, not the device's rhythm."""
GAPS_KEPT = 15


@dataclass(slots=True)
class DeviceLiveness:
    measurement: str
    device: str
    tags: dict[str, str]
    configured_s: float | None
    last_ns: int
    online_since_ns: int
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=GAPS_KEPT))


class Liveness:
    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self.devices: dict[tuple[str, str], DeviceLiveness] = {}
        self.untracked = 0
        """Devices not tracked because `max_devices` were tracked already."""

    def interval_s(self, d: DeviceLiveness) -> float:
        """The expected interval: configured, else learned, else the initial one."""
        cfg = self.config
        if d.configured_s is not None:
            return d.configured_s
        if len(d.gaps) >= cfg.learn_samples:
            return max(cfg.min_interval_s, statistics.median(d.gaps))
        return cfg.initial_interval_s

    def limit_ns(self, d: DeviceLiveness) -> int:
        return int(self.interval_s(d) * self.config.missed_intervals * S)

    def seen(
        self,
        measurement: str,
        tags: dict[str, str],
        received_ns: int,
        expected_s: float | None = None,
    ) -> None:
        device = tags.get("device", "")
        if not device:
            return
        key = (measurement, device)
        d = self.devices.get(key)
        if d is None:
            if len(self.devices) >= self.config.max_devices:
                self.untracked += 1
                return
            self.devices[key] = DeviceLiveness(
                measurement, device, dict(tags), expected_s, received_ns, received_ns
            )
            return
        gap = (received_ns - d.last_ns) / S
        if gap <= 0:
            return  # a message of the same wake-up (or the clock stepped back)
        if received_ns - d.last_ns > self.limit_ns(d):
            d.online_since_ns = received_ns  # back after being offline
        if gap >= BURST_S:
            d.gaps.append(gap)
        d.last_ns = received_ns
        d.configured_s = expected_s
        if tags != d.tags:
            d.tags = dict(tags)

    def online(self, d: DeviceLiveness, now_ns: int) -> tuple[bool, int]:
        """(online, since when) at `now_ns`."""
        limit = self.limit_ns(d)
        if now_ns - d.last_ns > limit:
            return False, d.last_ns + limit
        return True, d.online_since_ns

    def statuses(
        self, collector: str, address: str, now_ns: int, connection_error: str = ""
    ) -> list[SourceStatus]:
        out = []
        for d in self.devices.values():
            online, since = self.online(d, now_ns)
            error = ""
            if not online:
                error = connection_error or (
                    f"no message for {(now_ns - d.last_ns) / S:.3g} s (expected every "
                    f"{self.interval_s(d):.3g} s)"
                )
            out.append(
                SourceStatus(
                    collector,
                    "mqtt",
                    address,
                    d.device,
                    online,
                    since,
                    error,
                    d.last_ns,
                    d.measurement,
                    dict(d.tags),
                )
            )
        return out
