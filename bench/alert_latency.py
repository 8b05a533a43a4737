"""Publish → alert notification latency, at a steady message rate (DESIGN §6: p99 < 100 ms at 5k/s).

A paho publisher sends logger readings at the given rate for many devices; a few times a second a
fresh device reports 12 °C, which the 2-8 °C vaccine profile's `high` rule alarms on at once.
The gateway (`vigil run`, rules on, MQTT state notifier and e-mail to a local aiosmtpd) publishes
the alert's retained state message; a subscriber measures publish → notification for each.

    .venv/bin/python bench/alert_latency.py [--rates 1000,5000] [--seconds 20] [--breaches 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Profile, cpu_s, machine_busy  # noqa: E402
from tests.gateway_proc import GatewayProcess  # noqa: E402
from tests.services import Mosquitto, free_port  # noqa: E402

PUBLISHERS = 4
"""Publisher processes, each paced at rate/4: one Python client sharing its interpreter with the
subscriber and the SMTP server fell seconds behind at 5,000 msg/s, which showed as latency."""


def _publisher(
    port: int,
    w: int,
    k: int,
    n: int,
    rate: int,
    every: int,
    go: Any,
    out: Any,
) -> None:
    """Publish messages i = w, w + k, ... of n at their times t0 + i/rate (QoS 1), a breach
    every `every`; put ({spike device: publish ns}, last PUBACK ns) on `out`. With k dividing
    500, each logger's messages come from one process, in order."""
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-alert-pub-{w}")
    pub.max_inflight_messages_set(2000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    go.wait()
    t0 = time.perf_counter()
    spikes: dict[str, int] = {}
    infos = []
    for i in range(w, n, k):
        ahead = t0 + i / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        ts = int(time.time() * 1000)
        if i % every == every - 1:
            device = f"spike{i // every:06d}"
            body = orjson.dumps({"ts": ts, "temp_c": 12.0})
            topic = f"vigil/wh1/spikes/{device}/telemetry"
            spikes[device] = time.time_ns()
        else:
            body = orjson.dumps({"ts": ts, "temp_c": 5.0 + (i % 7) / 10})
            topic = f"vigil/wh1/room1/lg{i % 500:04d}/telemetry"
        infos.append(pub.publish(topic, body, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    out.put((spikes, time.time_ns()))
    pub.loop_stop()
    pub.disconnect()


class Inbox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 OK"


def run_rate(
    rate: int,
    seconds: float,
    breaches_per_s: int,
    base: Path,
    synchronous: str,
    profile: Path | None = None,
    keep_log: Path | None = None,
) -> dict[str, float]:
    broker = Mosquitto(base / "mq")
    broker.start()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    gw = GatewayProcess(
        base / "gw",
        broker.url,
        None,
        rules={"bindings": [{"profile": "vaccine_2_8", "measurement": "coldchain"}]},
        journal={"synchronous": synchronous},
        notifiers={
            "channels": {
                "state": {"kind": "mqtt", "topic_prefix": "vigil/alerts"},
                "mail": {
                    "kind": "email",
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "tls": "none",
                    "from": "vigil@bench.local",
                },
            },
            "routes": {
                "coldchain": {
                    "severities": ["critical", "high"],
                    "channels": ["state", "mail"],
                    "recipients": {"mail": ["a@bench.local", "b@bench.local", "c@bench.local"]},
                }
            },
        },
    )
    notified_ns: dict[str, int] = {}
    brokered_ns: dict[str, int] = {}

    def on_message(_c, _u, msg):  # type: ignore[no-untyped-def]
        now = time.time_ns()
        if msg.topic.endswith("/telemetry"):  # a spike, as the broker hands it to any subscriber
            brokered_ns.setdefault(msg.topic.split("/")[-2], now)
        elif msg.payload and msg.topic.endswith("vaccine_2_8.high"):
            # vigil/alerts/{site}/{asset}/{device}/{rule}
            notified_ns.setdefault(msg.topic.split("/")[-2], now)

    # Two subscribers: on one connection, the broker's Nagle would hold an alert back behind a
    # spike just sent on it until the subscriber's delayed ACK (~40 ms), which is not the gateway.
    subs = []
    for name, topic, qos in (
        ("bench-alert-sub", "vigil/alerts/#", 1),
        ("bench-spike-sub", "vigil/wh1/spikes/+/telemetry", 0),
    ):
        sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=name)
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(topic, qos=qos)
        sub.loop_start()
        subs.append(sub)
    ctx = mp.get_context("fork")
    every = max(1, rate // breaches_per_s)
    n = int(rate * seconds)
    go = ctx.Event()
    out: mp.Queue[tuple[dict[str, int], int]] = ctx.Queue()
    pubs = [
        ctx.Process(target=_publisher, args=(broker.port, w, PUBLISHERS, n, rate, every, go, out))
        for w in range(PUBLISHERS)
    ]
    for proc in pubs:
        proc.start()
    spy: Profile | None = None
    try:
        gw.start()
        if profile is not None:
            assert gw.proc is not None
            spy = Profile(gw.proc.pid, profile)
        assert gw.proc is not None
        cpu0 = cpu_s(gw.proc.pid)
        busy0 = machine_busy()
        t0 = time.time_ns()
        go.set()
        sent_ns: dict[str, int] = {}
        last_ns = t0
        for _ in pubs:
            spikes, end_ns = out.get(timeout=seconds + 120)
            sent_ns.update(spikes)
            last_ns = max(last_ns, end_ns)
        busy1 = machine_busy()  # while publishing: what the load left of the two cores
        for proc in pubs:
            proc.join(10)
        achieved = n / ((last_ns - t0) / 1e9)
        k = len(sent_ns)
        # a gateway that cannot keep up is reported (alerts notified of those raised), not fatal
        deadline = time.monotonic() + 60
        while len(notified_ns) < k and time.monotonic() < deadline:
            time.sleep(0.1)
        notified = dict(notified_ns)
        latencies = [(notified[d] - t) / 1e9 for d, t in sent_ns.items() if d in notified]
        mails = inbox.count
        cpu_us = (cpu_s(gw.proc.pid) - cpu0) / n * 1e6
        busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
        if spy is not None:
            spy.stop()
            spy = None
        stages = _stages(gw, sent_ns, dict(brokered_ns), notified)
    finally:
        if spy is not None:
            spy.stop()
        gw.stop()
        if keep_log is not None:
            shutil.copy(gw.log, keep_log)
        for proc in pubs:
            if proc.is_alive():
                proc.kill()
        for sub in subs:
            sub.loop_stop()
        smtp.stop()
        broker.stop()
        broker.remove()
    lat = sorted(x * 1000 for x in latencies)
    return stages | {
        "cpu_us": cpu_us,
        "busy": busy,
        "rate": rate,
        "achieved": achieved,
        "alerts": len(lat),
        "raised": k,
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "max": lat[-1],
        "mails": mails,
    }


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _stages(
    gw: GatewayProcess, sent: dict[str, int], brokered: dict[str, int], notified: dict[str, int]
) -> dict[str, float]:
    """p50/p99 of each stage of an alert's way: publish → the broker hands it to a bare
    subscriber; from the journal, publish → received by the collector (`received_ns`), →
    committed (its chain link's `committed_ns`); → notified."""
    rows = gw.query(
        "SELECT r.line, r.received_ns, c.committed_ns FROM readings r JOIN chain c "
        "ON r.id BETWEEN c.first_id AND c.last_id WHERE r.line LIKE 'coldchain,%device=spike%'"
    )
    broker = [(brokered[d] - sent[d]) / 1e6 for d in sent if d in brokered]
    recv, commit, notify = [], [], []
    for line, received, committed in rows:
        device = line.split("device=", 1)[1].split(",", 1)[0].split(" ", 1)[0]
        if device in sent and device in notified:
            recv.append((received - sent[device]) / 1e6)
            commit.append((committed - received) / 1e6)
            notify.append((notified[device] - committed) / 1e6)
    out: dict[str, float] = {}
    stages = {"to_broker": broker, "to_received": recv, "to_committed": commit}
    for name, xs in (*stages.items(), ("to_notified", notify)):
        if xs:
            out[f"{name}_p50"] = statistics.median(xs)
            out[f"{name}_p99"] = _pct(xs, 0.99)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="1000,5000")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--breaches", type=int, default=10, help="alerts per second")
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument("--profile", type=Path, help="py-spy the gateway: raw stacks to FILE.RATE")
    ap.add_argument("--keep-log", type=Path, help="copy the gateway's log to FILE.RATE")
    args = ap.parse_args()
    rows = []
    for rate in (int(r) for r in args.rates.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            (base / "mq").mkdir()
            (base / "gw").mkdir()
            spy = Path(f"{args.profile}.{rate}") if args.profile else None
            log = Path(f"{args.keep_log}.{rate}") if args.keep_log else None
            rows.append(
                run_rate(rate, args.seconds, args.breaches, base, args.synchronous, spy, log)
            )
            print(rows[-1], flush=True)
    print()
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"command: .venv/bin/python bench/alert_latency.py {' '.join(sys.argv[1:])}")
    print(f"journal synchronous={args.synchronous}")
    print(
        "| target msg/s | achieved msg/s | alerts | p50 ms | p99 ms | max ms | e-mails "
        "| gateway CPU per message | machine CPU busy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rate']:,} | {r['achieved']:,.0f} | {r['alerts']} of {r['raised']} | "
            f"{r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} | {r['mails']} | {r['cpu_us']:.0f} µs | "
            f"{100 * r['busy']:.0f} % |"
        )
    print()
    print(
        "stages, ms (p50 / p99): publish → at a bare subscriber; publish → received "
        "→ committed → notified"
    )
    for r in rows:
        print(
            f"{r['rate']:,}/s: "
            + ", ".join(
                f"{k} {r.get(k + '_p50', 0):.1f} / {r.get(k + '_p99', 0):.1f}"
                for k in ("to_broker", "to_received", "to_committed", "to_notified")
            )
        )


if __name__ == "__main__":
    main()
