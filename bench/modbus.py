"""Benchmark: the Modbus collector polling N simulated PLCs x M registers at 1 Hz.

    .venv/bin/python bench/modbus.py                        # 100 devices x 100 registers, 30 s
    .venv/bin/python bench/modbus.py --devices 200 --duration 60

The simulated PLCs (generic register banks: float32 values and uint16 counters) run in separate
processes (`python -m simulators.plc`), so the collector's CPU is measured alone: process CPU time
of this process over wall time, in % of one core (target: < 50 %, DESIGN §6). Readings go to a
counting Ingest, so the journal is not part of the number. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.modbus import ModbusCollector, ModbusCollectorConfig  # noqa: E402
from gateway.core.reading import DeadLetter, Reading  # noqa: E402
from simulators.plc.layout import generic_layout, profile  # noqa: E402


class CountingIngest:
    def __init__(self) -> None:
        self.readings = 0
        self.fields = 0
        self.dead = 0

    async def submit(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        self.readings += len(readings)
        self.fields += sum(len(r.fields) for r in readings)
        self.dead += len(dead)


def _split_registers(registers: int) -> tuple[int, int]:
    """M registers as float32 values (half the registers) and uint16 counters (the other half)."""
    n_float = registers // 4
    return n_float, registers - 2 * n_float


async def _start_servers(
    devices: int, registers: int, procs: int, workdir: Path
) -> tuple[list[subprocess.Popen[str]], list[dict[str, Any]]]:
    n_float, n_uint = _split_registers(registers)
    servers: list[subprocess.Popen[str]] = []
    endpoints: list[dict[str, Any]] = []
    for k in range(procs):
        plcs = [
            {
                "name": f"PLC-{i:04d}",
                "kind": "generic",
                "params": {"float32": n_float, "uint16": n_uint},
            }
            for i in range(k, devices, procs)
        ]
        path = workdir / f"plcs-{k}.yaml"
        path.write_text(yaml.safe_dump({"speed": 1.0, "plcs": plcs}))
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
            [sys.executable, "-m", "simulators.plc", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        servers.append(proc)
        assert proc.stdout is not None
        while True:
            line = await asyncio.to_thread(proc.stdout.readline)
            if not line:
                raise RuntimeError(f"PLC server process {k} exited: {proc.wait()}")
            msg = json.loads(line)
            if "ready" in msg:
                break
            endpoints.append(msg)
    return servers, endpoints


def _proc_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these processes (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def main(args: argparse.Namespace) -> dict[str, Any]:
    n_float, n_uint = _split_registers(args.registers)
    with tempfile.TemporaryDirectory() as tmp:
        servers, endpoints = await _start_servers(
            args.devices, args.registers, args.server_procs, Path(tmp)
        )
        try:
            cfg = ModbusCollectorConfig.model_validate(
                {
                    "kind": "modbus",
                    "defaults": {
                        "line": "bench",
                        "interval_s": args.interval,
                        "timeout_s": args.timeout,
                        "max_gap": args.max_gap,
                    },
                    "profiles": {"bank": profile(generic_layout(n_float, n_uint))},
                    "devices": [
                        {"name": e["name"], "host": e["host"], "port": e["port"], "profile": "bank"}
                        for e in endpoints
                    ],
                }
            )
            ingest = CountingIngest()
            col = ModbusCollector(cfg, ingest)
            task = asyncio.create_task(col.run())
            await asyncio.sleep(args.warmup)
            s0 = col.stats.snapshot()
            r0 = ingest.readings
            cpu0, wall0 = time.process_time(), time.monotonic()
            srv0 = _proc_cpu([p.pid for p in servers])
            poll_times: list[float] = []
            end = wall0 + args.duration
            while time.monotonic() < end:
                await asyncio.sleep(1.0)
                poll_times.extend(d.last_poll_s for d in col.devices.values() if d.online)
            cpu1, wall1 = time.process_time(), time.monotonic()
            srv1 = _proc_cpu([p.pid for p in servers])
            s1 = col.stats.snapshot()
            r1 = ingest.readings
            offline = sum(1 for d in col.devices.values() if d.online is not True)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            for p in servers:
                p.terminate()
            for p in servers:
                p.wait(timeout=10)
    wall = wall1 - wall0
    d = {k: s1[k] - s0[k] for k in s1}
    points = len(generic_layout(n_float, n_uint))
    cycles = wall / args.interval
    poll_times.sort()
    result = {
        "devices": args.devices,
        "registers_per_device": args.registers,
        "points_per_device": points,
        "interval_s": args.interval,
        "duration_s": round(wall, 2),
        "collector_cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / wall, 1),
        "plc_servers_cpu_pct_of_one_core": round(100 * (srv1 - srv0) / wall, 1),
        "requests_per_cycle_planned": col.requests_per_cycle,
        "requests_per_cycle_measured": round(d["requests"] / cycles, 1),
        "requests_per_cycle_unmerged": points * args.devices,
        "polls_per_s": round(d["polls_ok"] / wall, 1),
        "readings_per_s": round((r1 - r0) / wall, 1),
        "fields_per_s": round(d["readings"] * points / wall, 0),
        "missed_cycles": d["missed_cycles"],
        "polls_failed": d["polls_failed"],
        "devices_not_online": offline,
        "poll_ms_p50": round(1000 * statistics.median(poll_times), 2) if poll_times else None,
        "poll_ms_p99": round(1000 * poll_times[int(0.99 * (len(poll_times) - 1))], 2)
        if poll_times
        else None,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    return result


def _print(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    target = "PASS" if result["collector_cpu_pct_of_one_core"] < 50 else "FAIL"
    print(f"{'target < 50 % of one core':<{width}}  {target}")
    print(json.dumps(result))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--registers", type=int, default=100, help="registers per device (>= 4)")
    ap.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--max-gap", type=int, default=16)
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--server-procs", type=int, default=1, help="processes serving the PLCs")
    _print(asyncio.run(main(ap.parse_args())))
