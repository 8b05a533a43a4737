"""End-to-end ingest benchmark: MQTT → journal → VictoriaMetrics, next to the raw MQTT ceiling.

Every run pre-loads the broker: the subscriber (a bare paho client, or the gateway) first makes its
persistent session, goes away, N messages are published and queued, then it comes back and drains
them. Timing starts at the first message received and stops when the last one is received (the
ceiling) or forwarded to VictoriaMetrics (the gateway). Medians over --runs, all in one invocation,
so ratios compare like with like on a shared machine.

    .venv/bin/python bench/ingest.py [--messages 200000] [--batch-messages 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gateway_proc import GatewayProcess  # noqa: E402
from tests.services import Mosquitto, VictoriaMetrics, poll  # noqa: E402


def payloads(n: int, batch: int) -> list[tuple[str, bytes]]:
    t0 = int(time.time() * 1000) - 86_400_000
    out = []
    k = 0
    for i in range(n):
        dev = f"lg{i % 500:04d}"
        entries = []
        for _ in range(batch):
            entries.append(
                {"ts": t0 + k, "temp_c": round(2.0 + (k % 600) / 100, 2), "rh_pct": 41.5}
            )
            k += 1
        body = entries[0] if batch == 1 else {"readings": entries}
        out.append((f"vigil/site1/room{i % 4}/{dev}/telemetry", orjson.dumps(body)))
    return out


def preload(port: int, msgs: list[tuple[str, bytes]], qos: int) -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    # at most 30 000 outstanding: message ids are 16-bit and must not wrap onto unconfirmed ones
    for start in range(0, len(msgs), 30_000):
        infos = [c.publish(t, p, qos=qos) for t, p in msgs[start : start + 30_000]]
        for info in infos:
            info.wait_for_publish(300)
    c.loop_stop()
    c.disconnect()


def ceiling(broker: Mosquitto, msgs: list[tuple[str, bytes]], qos: int) -> float:
    """Messages/s a bare paho subscriber drains from the broker (threaded network loop)."""
    cid = f"bench-raw-{time.time_ns()}"
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c, _u, _m):  # type: ignore[no-untyped-def]
        nonlocal got, first, last
        if got == 0:
            first = time.perf_counter()
        got += 1
        if got == len(msgs):
            last = time.perf_counter()
            done.set()

    def connect() -> paho.Client:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
        c.on_message = on_message
        c.connect("127.0.0.1", broker.port)
        c.subscribe("vigil/+/+/+/telemetry", qos=qos)
        return c

    c = connect()
    c.loop(1)
    c.loop(1)
    c.disconnect()
    preload(broker.port, msgs, qos)
    c = connect()
    c.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"raw subscriber got {got} of {len(msgs)}")
    c.loop_stop()
    c.disconnect()
    return len(msgs) / (last - first)


PROTOCOL = "3.1.1"


PROTOCOL = "3.1.1"
"""The gateway's MQTT version (--protocol)."""


def gateway_run(
    broker: Mosquitto,
    vm: VictoriaMetrics,
    msgs: list[tuple[str, bytes]],
    readings: int,
    workdir: Path,
) -> float:
    """Readings/s from the first received to the last forwarded to VictoriaMetrics."""
    gw = GatewayProcess(
        workdir,
        broker.url,
        vm.url,
        journal={"max_bytes": 8 << 30},
        gateway={"name": "bench", "data_dir": str(workdir / "data"), "metrics_interval_s": 3600},
        mqtt={"url": broker.url, "client_id": "vigil-bench", "protocol": PROTOCOL},
    )
    gw.start()
    gw.stop()
    preload(broker.port, msgs, 1)
    gw.start()
    try:
        # only the benchmark's own rows count: the gateway also journals its KPI points
        def forwarded() -> bool:
            cur = gw.query("SELECT position FROM cursors WHERE sink='influx'")
            rows = gw.query("SELECT COUNT(*), MAX(id) FROM readings WHERE line LIKE 'coldchain,%'")[
                0
            ]
            return bool(cur) and rows[0] >= readings and cur[0][0] >= rows[1]

        poll(forwarded, 900, interval=0.05, what="gateway to forward everything")
        end = time.time_ns()
        db = sqlite3.connect(gw.journal)
        first = db.execute(
            "SELECT MIN(received_ns) FROM readings WHERE line LIKE 'coldchain,%'"
        ).fetchone()[0]
        db.close()
    finally:
        gw.stop()

    # VictoriaMetrics must hold every reading (it indexes what it accepted within seconds)
    def stored() -> int:
        per_series: dict[str, set[int]] = {}
        for s in vm.export('{__name__="coldchain_temp_c"}'):
            per_series.setdefault(s["metric"]["device"], set()).update(s["timestamps"])
        return sum(len(ts) for ts in per_series.values())

    poll(
        lambda: stored() >= readings,
        60,
        interval=1,
        what="VictoriaMetrics to hold every reading",
        show=lambda: f"{stored()} of {readings}",
    )
    return readings / ((end - first) / 1e9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--batch-messages", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--protocol", default="3.1.1", choices=["3.1.1", "5"])
    args = ap.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol

    single = payloads(args.messages, 1)
    batched = payloads(args.batch_messages, args.batch_size)
    results: dict[str, list[float]] = {
        k: [] for k in ("raw_qos0", "raw_qos1", "gw_single", "gw_batch")
    }
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            for d in ("mq", "vm1", "vm2", "gw1", "gw2"):
                (base / d).mkdir()
            # QoS 0 messages are queued for an offline session only when asked: the ceiling needs it
            broker = Mosquitto(base / "mq", extra_config="queue_qos0_messages true\n")
            broker.start()
            try:
                results["raw_qos0"].append(ceiling(broker, single, 0))
                results["raw_qos1"].append(ceiling(broker, single, 1))
                vm = VictoriaMetrics(base / "vm1")
                vm.start()
                try:
                    results["gw_single"].append(
                        gateway_run(broker, vm, single, len(single), base / "gw1")
                    )
                finally:
                    vm.stop()
                vm = VictoriaMetrics(base / "vm2")
                vm.start()
                try:
                    results["gw_batch"].append(
                        gateway_run(
                            broker, vm, batched, len(batched) * args.batch_size, base / "gw2"
                        )
                    )
                finally:
                    vm.stop()
            finally:
                broker.stop()
                broker.remove()
        print(
            f"run {run + 1}: " + ", ".join(f"{k}={v[-1]:,.0f}/s" for k, v in results.items()),
            flush=True,
        )

    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"command: {' '.join(['.venv/bin/python', 'bench/ingest.py', *sys.argv[1:]])}")
    print(f"gateway MQTT protocol {PROTOCOL}")
    print(f"| measure | median of {args.runs} | runs |")
    print("|---|---|---|")
    for k, v in results.items():
        unit = "msg/s" if k.startswith("raw") else "readings/s"
        print(f"| {k} | {med[k]:,.0f} {unit} | {', '.join(f'{x:,.0f}' for x in v)} |")
    print(f"| gw_single / raw_qos1 | {med['gw_single'] / med['raw_qos1']:.2f} | |")
    print(f"| gw_single / raw_qos0 | {med['gw_single'] / med['raw_qos0']:.2f} | |")


if __name__ == "__main__":
    main()
