"""Publish → alert notification latency, at a steady message rate (DESIGN §6: p99 < 100 ms at 5k/s).

A paho publisher sends logger readings at the given rate for many devices; a few times a second a
fresh device reports 12 °C, which the 2-8 °C vaccine profile's `high` rule alarms on at once.
The gateway (`vigil run`, rules on, MQTT state notifier and e-mail to a local aiosmtpd) publishes
the alert's retained state message; a subscriber measures publish → notification for each.

    .venv/bin/python bench/alert_latency.py [--rates 1000,5000] [--seconds 20] [--breaches 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Profile, cpu_s  # noqa: E402
from tests.gateway_proc import GatewayProcess  # noqa: E402
from tests.services import Mosquitto, free_port  # noqa: E402


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
    published: dict[str, int] = {}
    sent_ns: dict[str, int] = {}
    notified_ns: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def on_message(_c, _u, msg):  # type: ignore[no-untyped-def]
        now = time.time_ns()
        if not msg.payload:
            return
        if not msg.topic.endswith("vaccine_2_8.high"):
            return
        device = msg.topic.split("/")[-2]  # vigil/alerts/{site}/{asset}/{device}/{rule}
        with lock:
            t = published.pop(device, None)
        if t is not None:
            latencies.append((now - t) / 1e9)
            notified_ns[device] = now

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-alert-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("vigil/alerts/#", qos=1)
    sub.loop_start()
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-alert-pub")
    pub.max_inflight_messages_set(2000)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    spy: Profile | None = None
    try:
        gw.start()
        if profile is not None:
            assert gw.proc is not None
            spy = Profile(gw.proc.pid, profile)
        every = max(1, rate // breaches_per_s)
        assert gw.proc is not None
        cpu0 = cpu_s(gw.proc.pid)
        t0 = time.perf_counter()
        n = int(rate * seconds)
        k = 0
        for i in range(n):
            ts = int(time.time() * 1000)
            if i % every == every - 1:
                device = f"spike{k:06d}"
                k += 1
                body = orjson.dumps({"ts": ts, "temp_c": 12.0})
                with lock:
                    published[device] = sent_ns[device] = time.time_ns()
            else:
                device = f"lg{i % 500:04d}"
                body = orjson.dumps({"ts": ts, "temp_c": 5.0 + (i % 7) / 10})
            pub.publish(f"vigil/wh1/room1/{device}/telemetry", body, qos=1)
            ahead = t0 + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        achieved = n / (time.perf_counter() - t0)
        # a gateway that cannot keep up is reported (alerts notified of those raised), not fatal
        deadline = time.monotonic() + 60
        while len(latencies) < k and time.monotonic() < deadline:
            time.sleep(0.1)
        mails = inbox.count
        cpu_us = (cpu_s(gw.proc.pid) - cpu0) / n * 1e6
        if spy is not None:
            spy.stop()
            spy = None
        stages = _stages(gw, sent_ns, notified_ns)
    finally:
        if spy is not None:
            spy.stop()
        gw.stop()
        if keep_log is not None:
            shutil.copy(gw.log, keep_log)
        pub.loop_stop()
        sub.loop_stop()
        smtp.stop()
        broker.stop()
        broker.remove()
    lat = sorted(x * 1000 for x in latencies)
    return stages | {
        "cpu_us": cpu_us,
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


def _stages(gw: GatewayProcess, sent: dict[str, int], notified: dict[str, int]) -> dict[str, float]:
    """p50/p99 of each stage of an alert's way, from the journal: publish → received by the
    collector (`received_ns`), → committed (its chain link's `committed_ns`), → notified."""
    rows = gw.query(
        "SELECT r.line, r.received_ns, c.committed_ns FROM readings r JOIN chain c "
        "ON r.id BETWEEN c.first_id AND c.last_id WHERE r.line LIKE 'coldchain,%device=spike%'"
    )
    recv, commit, notify = [], [], []
    for line, received, committed in rows:
        device = line.split("device=", 1)[1].split(",", 1)[0].split(" ", 1)[0]
        if device in sent and device in notified:
            recv.append((received - sent[device]) / 1e6)
            commit.append((committed - received) / 1e6)
            notify.append((notified[device] - committed) / 1e6)
    out: dict[str, float] = {}
    for name, xs in (("to_received", recv), ("to_committed", commit), ("to_notified", notify)):
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
        "| gateway CPU per message |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rate']:,} | {r['achieved']:,.0f} | {r['alerts']} of {r['raised']} | "
            f"{r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} | {r['mails']} | {r['cpu_us']:.0f} µs |"
        )
    print()
    print("stages, ms (p50 / p99): publish → received → committed → notified")
    for r in rows:
        print(
            f"{r['rate']:,}/s: "
            + ", ".join(
                f"{k} {r.get(k + '_p50', 0):.1f} / {r.get(k + '_p99', 0):.1f}"
                for k in ("to_received", "to_committed", "to_notified")
            )
        )


if __name__ == "__main__":
    main()
