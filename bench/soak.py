"""Soak: the gateway's memory over a long steady load, with rules and the API on.

`vigil run` (vaccine rules bound to every logger, API on, journal `synchronous=FULL`, sink to
VictoriaMetrics) takes single-reading messages of 500 loggers at --rate for --minutes; the API's
/ready and /metrics are read every few seconds. The gateway's RSS is sampled every --sample
seconds; the report gives the first, maximum and last values after the warm-up and the slope of a
least-squares line through them (MB per hour), and checks VictoriaMetrics holds every reading.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Paced, cpu_s, rss_mb, services, slope, vm_count  # noqa: E402
from tests.gateway_proc import GatewayProcess  # noqa: E402
from tests.services import poll  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=2000, help="messages/s")
    ap.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=60, help="seconds left out of the slope")
    args = ap.parse_args()
    seconds = args.minutes * 60
    samples: list[tuple[float, float]] = []
    with services() as (base, broker, vm):
        vm.start()
        gw = GatewayProcess(
            base / "gw",
            broker.url,
            vm.url,
            rules={"bindings": [{"profile": "vaccine_2_8", "measurement": "coldchain"}]},
            gateway={"name": "bench", "data_dir": str(base / "gw" / "data")},
            mqtt={"url": broker.url, "client_id": "vigil-bench-soak"},
        )
        pub: Paced | None = None
        try:
            gw.start()
            assert gw.proc is not None
            pid = gw.proc.pid
            api = f"http://127.0.0.1:{gw.api_port}"
            pub = Paced(broker.port, args.rate)
            start = time.monotonic()
            pub.fire()
            cpu0 = cpu_s(pid)
            api_s: list[float] = []
            api_failed = 0
            while (now := time.monotonic() - start) < seconds:
                samples.append((now, rss_mb(pid)))
                for path in ("/ready", "/metrics"):
                    t = time.monotonic()
                    try:
                        with urllib.request.urlopen(api + path, timeout=30) as r:
                            r.read()
                    except OSError:  # a slow answer is reported, not fatal
                        api_failed += 1
                    api_s.append(time.monotonic() - t)
                time.sleep(max(0.0, args.sample - (time.monotonic() - start - now)))
            cpu = cpu_s(pid) - cpu0
            wall = time.monotonic() - start
            sent = pub.stop()
            pub = None
            stored = 0

            def all_stored() -> bool:
                nonlocal stored
                stored = vm_count(vm.url)
                return stored >= sent

            poll(all_stored, 300, interval=1, what="every reading in VictoriaMetrics")
        finally:
            if pub is not None:
                pub.stop()
            gw.stop()
    kept = [(t, m) for t, m in samples if t >= args.warmup] or samples
    per_h = slope([t for t, _ in kept], [m for _, m in kept]) * 3600
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"command: .venv/bin/python bench/soak.py {' '.join(sys.argv[1:])}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| messages sent / in VictoriaMetrics | {sent:,} / {stored:,} ({sent / wall:,.0f}/s) |")
    print(f"| gateway CPU | {100 * cpu / wall:.0f} % of one core |")
    api_s.sort()
    print(
        f"| API requests (/ready, /metrics) | {len(api_s)}, {api_failed} failed; "
        f"median {1000 * api_s[len(api_s) // 2]:.0f} ms, max {1000 * api_s[-1]:.0f} ms |"
    )
    print(
        f"| RSS after {args.warmup:.0f} s warm-up / max / end | {kept[0][1]:.1f} / "
        f"{max(m for _, m in kept):.1f} / {kept[-1][1]:.1f} MB |"
    )
    print(f"| RSS slope after warm-up | {per_h:+.1f} MB/h over {kept[-1][0] - kept[0][0]:.0f} s |")
    print("RSS samples (s, MB): " + " ".join(f"{t:.0f}:{m:.1f}" for t, m in samples))


if __name__ == "__main__":
    main()
