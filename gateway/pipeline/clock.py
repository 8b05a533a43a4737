"""The gateway's own clock, judged two ways: the system's time-sync status and its devices' clocks.

Every event time a device does not stamp comes from the gateway clock, and the event-time checks
(future skew, retrospective alerts) trust it, so it is watched rather than trusted blindly:

* `sync_status()` asks the system: `timedatectl show -p NTPSynchronized` (systemd-timesyncd and
  chrony under systemd), else `chronyc tracking`. None where neither can tell (a container).
* `ClockWatch` compares it with the devices' clocks: for each device, the smallest
  (receive time - device time) within the window (its freshest reading: network and buffering
  only ever add to the difference), then the median over devices. Positive: the gateway clock is
  ahead of its devices'. Buffered uploads do not move it; one device with a wrong clock does not
  either. A device counts only once it has been heard over at least half the window: a burst of
  replayed old messages (a broker delivering a backlog after an outage) looks like a clock ahead
  for as long as it lasts, a clock error does not go away.

Both become fields of the `vigil_gateway` reading (`clock_synced`, `clock_skew_s`) that the
built-in `gateway_health` rules turn into alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import statistics
from collections import deque
from collections.abc import Sequence

from gateway.core.reading import Reading
from gateway.core.schema import RESERVED_MEASUREMENTS

log = logging.getLogger("vigil.clock")

PROBE_TIMEOUT_S = 5.0
SAMPLES_PER_DEVICE = 64
"""Per-batch minima kept per device (the window is usually reached first)."""


class ClockWatch:
    """Device clock offsets from committed readings (a journal listener); cheap per batch."""

    def __init__(self, window_s: float = 600.0, min_devices: int = 3) -> None:
        self.window_ns = int(window_s * 1e9)
        self.min_devices = min_devices
        self._offsets: dict[str, deque[tuple[int, int]]] = {}

    def observe(self, readings: Sequence[Reading]) -> None:
        best: dict[str, tuple[int, int]] = {}
        for r in readings:
            if r.ts_from_receive or r.measurement in RESERVED_MEASUREMENTS:
                continue
            device = r.tags.get("device")
            if not device:
                continue
            off = r.received_ns - r.ts_ns
            seen = best.get(device)
            if seen is None or off < seen[1]:
                best[device] = (r.received_ns, off)
        for device, sample in best.items():
            q = self._offsets.get(device)
            if q is None:
                q = self._offsets[device] = deque(maxlen=SAMPLES_PER_DEVICE)
            q.append(sample)

    def skew_s(self, now_ns: int) -> float | None:
        """Median over devices of each one's smallest offset in the window; None with fewer
        than `min_devices` devices heard in the window."""
        since = now_ns - self.window_ns
        minima = []
        for device, q in list(self._offsets.items()):
            while q and q[0][0] < since:
                q.popleft()
            if not q:
                del self._offsets[device]
                continue
            if q[-1][0] - q[0][0] >= self.window_ns // 2:
                minima.append(min(off for _t, off in q))
        if len(minima) < self.min_devices:
            return None
        return statistics.median(minima) / 1e9


async def _run(*cmd: str) -> str | None:
    """Its standard output, or None when it is missing, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError:
        return None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    return out.decode(errors="replace") if proc.returncode == 0 else None


async def sync_status() -> bool | None:
    """True: the system clock is synchronised; False: it says it is not; None: cannot tell."""
    out = await _run("timedatectl", "show", "-p", "NTPSynchronized", "--value")
    if out is not None and out.strip() in ("yes", "no"):
        return out.strip() == "yes"
    out = await _run("chronyc", "-n", "tracking")
    if out is not None:
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Leap status":
                return value.strip() != "Not synchronised"
    return None
