"""What the benchmarks share: logger payloads, a burst from parallel publisher processes, counting
what VictoriaMetrics can answer for, and a process's memory and CPU from /proc.

The publishers are separate processes (one paho client each, QoS 1, every PUBACK awaited), so the
subscriber under test, bare client or gateway, does not share an interpreter with them.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho

from tests.services import Mosquitto, VictoriaMetrics

TOPIC_FILTER = "vigil/+/+/+/telemetry"
DEVICES = 500


def payloads(
    n: int, batch: int, t0_ms: int | None = None, prefix: str = "lg", devices: int = DEVICES
) -> list[tuple[str, bytes]]:
    """n messages of `batch` readings of `devices` loggers, timestamps 1 ms apart from t0 (by
    default a day ago)."""
    t0 = t0_ms if t0_ms is not None else int(time.time() * 1000) - 86_400_000
    out = []
    k = 0
    for i in range(n):
        dev = f"{prefix}{i % devices:04d}"
        entries = []
        for _ in range(batch):
            entries.append(
                {"ts": t0 + k, "temp_c": round(2.0 + (k % 600) / 100, 2), "rh_pct": 41.5}
            )
            k += 1
        body = entries[0] if batch == 1 else {"readings": entries}
        out.append((f"vigil/site1/room{i % 4}/{dev}/telemetry", orjson.dumps(body)))
    return out


def _paced(
    port: int,
    w: int,
    k: int,
    rate: float,
    t0_ms: int,
    go: mp.Event,  # type: ignore[valid-type]
    stop: mp.Event,  # type: ignore[valid-type]
    acked: Any,
) -> None:
    """Publish single-reading messages i = w, w + k, ... at their times start + i/rate until
    `stop`, made as they go (a long soak's messages would not fit in memory); counts PUBACKs."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-paced-{os.getpid()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    done = [0]

    def on_publish(*_: Any) -> None:
        done[0] += 1

    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    go.wait()
    t0 = time.perf_counter()
    published = 0
    i = w
    while not stop.is_set():
        ahead = t0 + i / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        body = {"ts": t0_ms + i, "temp_c": round(2.0 + (i % 600) / 100, 2), "rh_pct": 41.5}
        topic = f"vigil/site1/room{i % 4}/lg{i % DEVICES:04d}/telemetry"
        c.publish(topic, orjson.dumps(body), qos=1)
        published += 1
        i += k
    deadline = time.monotonic() + 600
    while done[0] < published and time.monotonic() < deadline:
        time.sleep(0.05)
    with acked.get_lock():
        acked.value += done[0]
    c.loop_stop()
    c.disconnect()


class Paced:
    """`publishers` processes sending single-reading messages of 500 loggers at `rate` in all,
    from `fire()` until `stop()`; with 4 (or any divisor of 500) publishers each logger's
    messages come from one of them, in order."""

    def __init__(self, port: int, rate: float, publishers: int = 4, t0_ms: int | None = None):
        ctx = mp.get_context("fork")
        self.go, self.stopping = ctx.Event(), ctx.Event()
        self.acked = ctx.Value("q", 0)
        t0 = t0_ms if t0_ms is not None else int(time.time() * 1000) - 86_400_000
        self.procs = [
            ctx.Process(
                target=_paced,
                args=(port, w, publishers, rate, t0, self.go, self.stopping, self.acked),
                daemon=True,
            )
            for w in range(publishers)
        ]
        for proc in self.procs:
            proc.start()

    def fire(self) -> None:
        self.go.set()

    def stop(self) -> int:
        """Stop; returns how many messages were published, every one acknowledged by the
        broker."""
        self.stopping.set()
        for proc in self.procs:
            proc.join(660)
        return int(self.acked.value)


def _publisher(
    port: int,
    msgs: list[tuple[str, bytes]],
    ready: mp.Barrier,  # type: ignore[valid-type]
    go: mp.Event,  # type: ignore[valid-type]
    done: mp.Queue,  # type: ignore[type-arg]
    rate: float | None,
    stop: mp.Event,  # type: ignore[valid-type]
    sent: Any,
) -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait()
    go.wait()
    t0 = time.perf_counter()
    infos = []
    for i, (topic, payload) in enumerate(msgs):
        if stop.is_set():
            break
        infos.append(c.publish(topic, payload, qos=1))
        if rate:
            ahead = t0 + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    for info in infos:
        info.wait_for_publish(600)
    with sent.get_lock():
        sent.value += len(infos)
    done.put(time.time_ns())
    c.loop_stop()
    c.disconnect()


class Burst:
    """`publishers` processes connected and waiting; `fire()` starts them all at once.

    Messages are split by topic, so each device's readings stay in order within one publisher.
    """

    def __init__(
        self,
        port: int,
        msgs: list[tuple[str, bytes]],
        publishers: int = 20,
        rate: float | None = None,
    ) -> None:
        ctx = mp.get_context("fork")
        by_topic: dict[str, int] = {}
        parts: list[list[tuple[str, bytes]]] = [[] for _ in range(publishers)]
        for topic, payload in msgs:
            slot = by_topic.setdefault(topic, len(by_topic) % publishers)
            parts[slot].append((topic, payload))
        parts = [part for part in parts if part]
        self.ready = ctx.Barrier(len(parts) + 1)
        self.go = ctx.Event()
        self.stopping = ctx.Event()
        self.sent = ctx.Value("q", 0)
        self.done: mp.Queue[int] = ctx.Queue()
        per = rate / len(parts) if rate else None
        self.procs = [
            ctx.Process(
                target=_publisher,
                args=(port, part, self.ready, self.go, self.done, per, self.stopping, self.sent),
                daemon=True,
            )
            for part in parts
        ]
        for p in self.procs:
            p.start()
        self.ready.wait(60)

    def fire(self) -> int:
        """Start publishing; returns the wall-clock start (ns)."""
        t = time.time_ns()
        self.go.set()
        return t

    def join(self, timeout: float = 900) -> int:
        """Wait for every PUBACK; returns the wall-clock time the last publisher finished (ns)."""
        ends = [self.done.get(timeout=timeout) for _ in self.procs]
        for p in self.procs:
            p.join(30)
        return max(ends)

    def stop(self) -> int:
        """Stop publishing (paced publishers); returns how many messages were published, every
        one of them acknowledged by the broker."""
        self.stopping.set()
        self.join()
        return self.sent.value


@contextlib.contextmanager
def services() -> Iterator[tuple[Path, Mosquitto, VictoriaMetrics]]:
    """A scratch directory with mq/, vm/ and gw/, mosquitto started in it and VictoriaMetrics
    made there (started by the caller, when its run wants the store up); both stopped after."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for d in ("mq", "vm", "gw"):
            (base / d).mkdir()
        broker = Mosquitto(base / "mq")
        broker.start()
        vm = VictoriaMetrics(base / "vm")  # its port is chosen now
        try:
            yield base, broker, vm
        finally:
            vm.stop()
            broker.stop()
            broker.remove()


def vm_count(url: str, series: str = "coldchain_temp_c", window: str = "3d") -> int:
    """Samples of `series` (a selector) VictoriaMetrics answers a query with, after flushing its
    buffers."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).read()
    q = urllib.parse.urlencode({"query": f"sum(count_over_time({series}[{window}]))"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=30) as r:
        result = json.load(r)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def wait_count(
    url: str, want: int, timeout: float, settle: float = 10.0, interval: float = 0.05
) -> tuple[int, int]:
    """Poll until VictoriaMetrics answers with `want` samples, or the count stops growing for
    `settle` s (something was lost), or `timeout`; returns (count, wall ns it was first seen)."""
    deadline = time.monotonic() + timeout
    last, seen_ns, changed = -1, time.time_ns(), time.monotonic()
    while time.monotonic() < deadline:
        n = vm_count(url)
        now = time.time_ns()
        if n != last:
            last, seen_ns, changed = n, now, time.monotonic()
        if n >= want or time.monotonic() - changed > settle:
            break
        time.sleep(interval)
    return last, seen_ns


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (/proc/PID/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores so far (/proc/stat): two readings give the share of
    the machine's CPU that everything on it used in between."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


class Profile:
    """py-spy sampling a process while a measurement runs (`--profile FILE`): folded stacks
    per thread, idle samples included, so waiting shows as well as work."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "-p",
                str(pid),
                "-o",
                str(out),
                "-f",
                "raw",
                "-r",
                str(rate),
                "--threads",
                "--idle",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
