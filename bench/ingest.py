"""End-to-end ingest benchmark: a burst from parallel publishers, first publish → last point
queryable, the gateway next to a bare MQTT subscriber (and, with --node-red, Node-RED) in one run.

Each leg subscribes first; then `--publishers` processes (paho, QoS 1) publish their share of the
burst at once. The bare subscriber (paho, threaded network loop, automatic acknowledgement, stores
nothing) is timed from the first publish to the last message received: the ceiling. The gateway
(the real `vigil run` child: rules on, API on, journal `synchronous=FULL`, acknowledgement after
commit) and Node-RED (mqtt in → function → influxdb out, v2 API) are timed from the first publish
until VictoriaMetrics answers a query with every reading (it is flushed before each query); what
it never answers with is reported lost. Medians and ratios over --runs, all in one invocation, so
they compare like with like on a shared machine.

    .venv/bin/python bench/ingest.py [--messages 100000] [--batch-messages 4000] [--runs 3]
        [--publishers 20] [--node-red]

--node-red installs Node-RED 4 and node-red-contrib-influxdb with npm into bench/.node-red/ the
first time (not part of the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from subprocess import PIPE

import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import TOPIC_FILTER, Burst, Profile, cpu_s, payloads, wait_count  # noqa: E402
from tests.gateway_proc import GatewayProcess  # noqa: E402
from tests.services import Mosquitto, VictoriaMetrics, free_port, poll  # noqa: E402

NODE_RED_DIR = ROOT / "bench" / ".node-red"
CPU_US: dict[str, list[float]] = {"gw1": [], "gw2": [], "gb1": [], "gb2": []}
"""The gateway's CPU time per reading (µs), per leg (its work dir) and run."""


def ceiling(broker: Mosquitto, msgs: list[tuple[str, bytes]], publishers: int) -> float:
    """Messages/s from the first publish to the last message a bare paho subscriber receives."""
    got = 0
    last = 0
    done = threading.Event()

    def on_message(_c, _u, _m):  # type: ignore[no-untyped-def]
        nonlocal got, last
        got += 1
        if got == len(msgs):
            last = time.time_ns()
            done.set()

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{time.time_ns()}")
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda *_a: subscribed.set()
    c.connect("127.0.0.1", broker.port)
    c.subscribe(TOPIC_FILTER, qos=1)
    c.loop_start()
    burst = Burst(broker.port, msgs, publishers)
    try:
        if not subscribed.wait(10):
            raise RuntimeError("bare subscriber did not subscribe")
        first = burst.fire()
        burst.join()
        if not done.wait(600):
            raise RuntimeError(f"bare subscriber got {got} of {len(msgs)}")
    finally:
        c.loop_stop()
        c.disconnect()
    return len(msgs) / ((last - first) / 1e9)


def gateway_leg(
    broker: Mosquitto,
    msgs: list[tuple[str, bytes]],
    readings: int,
    publishers: int,
    workdir: Path,
    profile: Path | None = None,
    code: Path | None = None,
) -> tuple[float, int]:
    """(readings/s first publish → all queryable, readings lost); `code`: run the gateway of
    that checkout instead of this one."""
    vm = VictoriaMetrics(workdir)
    vm.start()
    gw = GatewayProcess(
        workdir,
        broker.url,
        vm.url,
        journal={"max_bytes": 8 << 30},
        gateway={"name": "bench", "data_dir": str(workdir / "data"), "metrics_interval_s": 3600},
        mqtt={"url": broker.url, "client_id": f"vigil-bench-{time.time_ns()}"},
    )
    gw.cwd = code
    try:
        gw.start()
        burst = Burst(broker.port, msgs, publishers)
        assert gw.proc is not None
        spy = Profile(gw.proc.pid, profile) if profile is not None else None
        cpu0 = cpu_s(gw.proc.pid)
        first = burst.fire()
        burst.join()
        count, seen = wait_count(vm.url, readings, timeout=900)
        CPU_US[workdir.name].append((cpu_s(gw.proc.pid) - cpu0) / readings * 1e6)
        if spy is not None:
            spy.stop()
    finally:
        gw.stop()
        vm.stop()
    return readings / ((seen - first) / 1e9), readings - count


def _node_red() -> Path:
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    contrib = NODE_RED_DIR / "node_modules" / "node-red-contrib-influxdb"
    if not red.exists() or not contrib.exists():
        print(
            f"installing node-red@4 and node-red-contrib-influxdb with npm into {NODE_RED_DIR}",
            flush=True,
        )
        NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "node-red@4",
                "node-red-contrib-influxdb",
            ],
            cwd=NODE_RED_DIR,
            check=True,
        )
    return red


Flow = list[dict[str, object]]


def node_red_flow(broker_port: int, vm_url: str) -> tuple[Flow, dict[str, object]]:
    """mqtt in (QoS 1) → function (topic → tags, JSON → fields) → influxdb out (v2 API, ms)."""
    func = (
        "const p = msg.topic.split('/');\n"
        "const b = msg.payload;\n"
        "const rows = b.readings || [b];\n"
        "const out = rows.map(r => [{temp_c: r.temp_c, rh_pct: r.rh_pct, time: r.ts},\n"
        "  {site: p[1], asset: p[2], device: p[3]}]);\n"
        "msg.payload = out;\n"
        "return msg;\n"
    )
    flows: Flow = [
        {"id": "tab1", "type": "tab", "label": "bench"},
        {
            "id": "broker1",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(broker_port),
            "clientid": f"node-red-bench-{time.time_ns()}",
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
            "autoConnect": True,
        },
        {
            "id": "in1",
            "type": "mqtt in",
            "z": "tab1",
            "topic": TOPIC_FILTER,
            "qos": "1",
            "datatype": "json",
            "broker": "broker1",
            "inputs": 0,
            "wires": [["fn1"]],
        },
        {
            "id": "fn1",
            "type": "function",
            "z": "tab1",
            "func": func,
            "outputs": 1,
            "wires": [["out1"]],
        },
        {
            "id": "influx1",
            "type": "influxdb",
            "influxdbVersion": "2.0",
            "url": vm_url,
            "rejectUnauthorized": False,
            "timeout": "10",
        },
        {
            "id": "out1",
            "type": "influxdb out",
            "z": "tab1",
            "influxdb": "influx1",
            "measurement": "coldchain",
            "precisionV18FluxV20": "ms",
            "org": "o",
            "bucket": "b",
            "wires": [],
        },
    ]
    return flows, {"influx1": {"token": "t"}}


def node_red_leg(
    broker: Mosquitto,
    msgs: list[tuple[str, bytes]],
    readings: int,
    publishers: int,
    workdir: Path,
) -> tuple[float, int]:
    """(readings/s first publish → last point queryable, readings lost) for Node-RED."""
    red = _node_red()
    vm = VictoriaMetrics(workdir)
    vm.start()
    user = workdir / "node-red"
    user.mkdir()
    flows, creds = node_red_flow(broker.port, vm.url)
    (user / "flows.json").write_text(json.dumps(flows))
    (user / "flows_cred.json").write_text(json.dumps(creds))
    (user / "node_modules").symlink_to(NODE_RED_DIR / "node_modules")
    (user / "settings.js").write_text(
        "module.exports = {\n"
        f"  uiHost: '127.0.0.1', uiPort: {free_port()}, httpAdminRoot: false,\n"
        "  flowFile: 'flows.json', credentialSecret: false,\n"
        "  logging: {console: {level: 'info'}},\n"
        "};\n"
    )
    log = workdir / "node-red.log"
    node = shutil.which("node") or "node"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [node, str(red), "--userDir", str(user), "--settings", str(user / "settings.js")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(
            lambda: b"Connected to broker" in log.read_bytes(),
            60,
            interval=0.2,
            what="Node-RED to connect",
        )
        time.sleep(1)  # it subscribes right after connecting; nothing says when it is done
        burst = Burst(broker.port, msgs, publishers)
        first = burst.fire()
        burst.join()
        count, seen = wait_count(vm.url, readings, timeout=900, settle=15)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # still busy with its backlog
            proc.kill()
            proc.wait(10)
        vm.stop()
    return count / ((seen - first) / 1e9), readings - count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000, help="single-reading messages")
    ap.add_argument("--batch-messages", type=int, default=4_000, help="messages of --batch-size")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--publishers", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--node-red", action="store_true", help="add the Node-RED leg")
    ap.add_argument("--profile", type=Path, help="py-spy the gateway: raw stacks to FILE.LEG.RUN")
    ap.add_argument("--baseline", help="also run the gateway of this git ref (e.g. main)")
    args = ap.parse_args()
    if args.node_red:
        _node_red()
    base_code: Path | None = None
    if args.baseline:
        base_code = Path(tempfile.mkdtemp(prefix="vigil-baseline-"))
        git = subprocess.Popen(["git", "-C", str(ROOT), "archive", args.baseline], stdout=PIPE)
        subprocess.run(["tar", "-x", "-C", str(base_code)], stdin=git.stdout, check=True)
        if git.wait() != 0:
            raise SystemExit(f"git archive {args.baseline} failed")

    results: dict[str, list[float]] = {"raw": [], "gw_single": [], "gw_batch": []}
    lost: dict[str, list[int]] = {"gw_single": [], "gw_batch": []}
    if args.node_red:
        results["node_red"] = []
        lost["node_red"] = []
    if base_code is not None:
        for k in ("base_single", "base_batch"):
            results[k] = []
            lost[k] = []
    for run in range(args.runs):
        t0 = int(time.time() * 1000) - 86_400_000
        single = payloads(args.messages, 1, t0)
        batched = payloads(args.batch_messages, args.batch_size, t0)
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            for d in ("mq", "gw1", "gw2", "gb1", "gb2", "nr"):
                (base / d).mkdir()
            broker = Mosquitto(base / "mq")
            broker.start()
            try:
                results["raw"].append(ceiling(broker, single, args.publishers))
                spy = f"{args.profile}.single.{run + 1}" if args.profile else None
                rate, n = gateway_leg(
                    broker,
                    single,
                    len(single),
                    args.publishers,
                    base / "gw1",
                    Path(spy) if spy else None,
                )
                results["gw_single"].append(rate)
                lost["gw_single"].append(n)
                total = len(batched) * args.batch_size
                spy = f"{args.profile}.batch.{run + 1}" if args.profile else None
                rate, n = gateway_leg(
                    broker,
                    batched,
                    total,
                    args.publishers,
                    base / "gw2",
                    Path(spy) if spy else None,
                )
                results["gw_batch"].append(rate)
                lost["gw_batch"].append(n)
                if base_code is not None:
                    rate, n = gateway_leg(
                        broker, single, len(single), args.publishers, base / "gb1", None, base_code
                    )
                    results["base_single"].append(rate)
                    lost["base_single"].append(n)
                    rate, n = gateway_leg(
                        broker, batched, total, args.publishers, base / "gb2", None, base_code
                    )
                    results["base_batch"].append(rate)
                    lost["base_batch"].append(n)
                if args.node_red:
                    rate, n = node_red_leg(
                        broker, single, len(single), args.publishers, base / "nr"
                    )
                    results["node_red"].append(rate)
                    lost["node_red"].append(n)
            finally:
                broker.stop()
                broker.remove()
        print(
            f"run {run + 1}: "
            + ", ".join(f"{k}={v[-1]:,.0f}/s" for k, v in results.items())
            + f", gw_single/raw={results['gw_single'][-1] / results['raw'][-1]:.2f}"
            + ", lost "
            + ", ".join(f"{k}={v[-1]}" for k, v in lost.items()),
            flush=True,
        )

    if base_code is not None:
        shutil.rmtree(base_code, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    ratios = [g / r for g, r in zip(results["gw_single"], results["raw"], strict=True)]
    print()
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"command: {' '.join(['.venv/bin/python', 'bench/ingest.py', *sys.argv[1:]])}")
    print(f"| measure | median of {args.runs} | runs | lost |")
    print("|---|---|---|---|")
    for k, v in results.items():
        unit = "msg/s" if k == "raw" else "readings/s"
        gone = ", ".join(str(x) for x in lost[k]) if k in lost else ""
        print(f"| {k} | {med[k]:,.0f} {unit} | {', '.join(f'{x:,.0f}' for x in v)} | {gone} |")
    print(
        f"| gw_single / raw, per run | median {statistics.median(ratios):.2f} | "
        f"{', '.join(f'{x:.2f}' for x in ratios)} | |"
    )
    if args.node_red:
        print(f"| node_red / raw | {med['node_red'] / med['raw']:.2f} | | |")
    legs = [("gw1", "single"), ("gw2", "batch")]
    if base_code is not None:
        legs += [("gb1", f"single, {args.baseline}"), ("gb2", f"batch, {args.baseline}")]
    for leg, name in legs:
        us = CPU_US[leg]
        print(
            f"| gateway CPU per reading, {name} | {statistics.median(us):.1f} µs | "
            f"{', '.join(f'{x:.1f}' for x in us)} | |"
        )


if __name__ == "__main__":
    main()
