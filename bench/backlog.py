"""Backlog drain: readings journaled while the TSDB is down, drained when it comes back, while
live traffic goes on.

The gateway (`vigil run`, rules and API on, `synchronous=FULL`) starts with VictoriaMetrics down.
A paced live publisher (single-reading messages, devices `live*`) runs from start to end. The
backlog (100-reading messages, devices `lg*`) is published by --publishers processes and
journaled. Then VictoriaMetrics starts: the drain rate is every row the journal held at that
moment over the time until the sink's cursor passes the last of them. Live traffic keeps
flowing meanwhile; at the end VictoriaMetrics must answer with every backlog and every live
reading (nothing lost).

    .venv/bin/python bench/backlog.py [--readings 1000000] [--live-rate 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Burst, payloads, services, vm_count, wait_count  # noqa: E402
from tests.gateway_proc import GatewayProcess  # noqa: E402
from tests.services import poll  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000, help="backlog readings")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--publishers", type=int, default=20)
    ap.add_argument("--live-rate", type=float, default=1000, help="live messages/s")
    ap.add_argument("--sink-batch", type=int, default=5000, help="influx.batch_size")
    ap.add_argument(
        "--live-max-s", type=float, default=400, help="live messages prepared (s at the rate)"
    )
    args = ap.parse_args()

    t0 = int(time.time() * 1000) - 2 * 86_400_000
    backlog = payloads(args.readings // args.batch_size, args.batch_size, t0)
    readings = len(backlog) * args.batch_size
    live_t0 = int(time.time() * 1000) - 86_400_000
    live_msgs = payloads(
        int(args.live_rate * args.live_max_s), 1, live_t0, prefix="live", devices=200
    )
    with services() as (base, broker, vm):
        gw = GatewayProcess(
            base / "gw",
            broker.url,
            vm.url,
            journal={"max_bytes": 16 << 30},
            gateway={"name": "bench", "data_dir": str(base / "gw" / "data")},
            mqtt={"url": broker.url, "client_id": "vigil-bench-backlog"},
            influx={
                "url": vm.url,
                "token": "t",
                "org": "o",
                "bucket": "b",
                "batch_size": args.sink_batch,
                "flush_interval_s": 0.2,
                "retry_max_s": 2,
            },
        )
        live: Burst | None = None
        try:
            gw.start()
            live = Burst(broker.port, live_msgs, 2, rate=args.live_rate)
            live.fire()
            burst = Burst(broker.port, backlog, args.publishers)
            b0 = burst.fire()
            burst.join()
            poll(
                lambda: _lines(gw, "lg") >= readings,
                900,
                interval=0.5,
                what="the backlog journaled",
                show=lambda: f"{_lines(gw, 'lg')} of {readings}",
            )
            journaled_s = (time.time_ns() - b0) / 1e9
            time.sleep(5)  # live traffic alone for a moment, the store still down
            up_ns = time.time_ns()
            vm.start()
            held = gw.query("SELECT MAX(id), COUNT(*) FROM readings")[0]
            last_id, pending = int(held[0]), int(held[1])
            first_ns = 0

            def drained() -> bool:
                nonlocal first_ns
                cur = gw.query("SELECT position FROM cursors WHERE sink='influx'")[0][0]
                if not first_ns and cur > 0:
                    first_ns = time.time_ns()
                return bool(cur >= last_id)

            poll(drained, 1800, interval=0.05, what="the backlog forwarded")
            done_ns = time.time_ns()
            if live.done.qsize():
                raise SystemExit("the live publisher ran out before the drain ended: --live-max-s")
            live_during = int(
                gw.query(
                    "SELECT COUNT(*) FROM readings WHERE line LIKE '%device=live%' "
                    f"AND received_ns BETWEEN {up_ns} AND {done_ns}"
                )[0][0]
            )
            time.sleep(5)  # live traffic after the drain
            sent = live.stop()
            live = None
            backlog_count, _ = wait_count(vm.url, readings, timeout=300)
            live_count = 0

            def all_live() -> bool:
                nonlocal live_count
                live_count = vm_count(vm.url, 'coldchain_temp_c{device=~"live.*"}')
                return live_count >= sent

            poll(all_live, 120, interval=0.5, what="every live reading in VictoriaMetrics")
            backlog_count = vm_count(vm.url, 'coldchain_temp_c{device=~"lg.*"}')
        finally:
            if live is not None:
                live.stop()
            gw.stop()
    drain_s = (done_ns - up_ns) / 1e9
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"command: .venv/bin/python bench/backlog.py {' '.join(sys.argv[1:])}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| backlog published and journaled | {readings:,} readings in {journaled_s:.1f} s |")
    print(f"| rows held when the store came back | {pending:,} |")
    print(f"| drained, store up → cursor past them | {drain_s:.1f} s: {pending / drain_s:,.0f}/s |")
    if first_ns:
        s = (done_ns - first_ns) / 1e9
        print(f"| drained, first write → cursor past them | {s:.1f} s: {pending / s:,.0f}/s |")
    print(
        f"| live readings journaled during the drain | {live_during:,} "
        f"({live_during / drain_s:,.0f}/s; paced at {args.live_rate:,.0f}/s) |"
    )
    print(f"| live readings sent / in VictoriaMetrics | {sent:,} / {live_count:,} |")
    print(f"| backlog readings in VictoriaMetrics | {backlog_count:,} of {readings:,} |")
    print(f"| lost | {readings - backlog_count + sent - live_count} |")


def _lines(gw: GatewayProcess, prefix: str) -> int:
    """Journaled readings of devices `prefix*` (their lines carry `device=PREFIX`)."""
    return int(gw.query(f"SELECT COUNT(*) FROM readings WHERE line LIKE '%device={prefix}%'")[0][0])


if __name__ == "__main__":
    main()
