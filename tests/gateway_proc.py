"""Run the real gateway (`vigil run`) as a child process for integration tests, and feed it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import yaml

from tests.services import free_port, poll


class GatewayProcess:
    def __init__(self, workdir: Path, mqtt_url: str, influx_url: str | None, **extra: Any) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.config_path = workdir / "vigil.yaml"
        cfg: dict[str, Any] = {
            "gateway": {"name": "test-gw", "data_dir": str(self.data), "metrics_interval_s": 1},
            "mqtt": {"url": mqtt_url, "client_id": f"vigil-test-{os.getpid()}-{id(self)}"},
            "collectors": [{"kind": "mqtt", "max_future_skew_s": 300}],
            "api": {"port": free_port()},
        }
        if influx_url:
            cfg["influx"] = {
                "url": influx_url,
                "token": "t",
                "org": "o",
                "bucket": "b",
                "flush_interval_s": 0.2,
                "retry_max_s": 2,
            }
        for key, value in extra.items():
            cfg[key] = value
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.api_port = int(cfg["api"]["port"])
        self.log = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env_extra: dict[str, str] = {}
        """Environment for the gateway (VIGIL_* overrides such as secrets)."""
        self.cwd: Path | None = None
        """Where the gateway runs from: a checkout of other code (benchmark baselines)."""

    @property
    def journal(self) -> Path:
        return self.data / "journal.sqlite"

    def start(self, wait_subscribed: bool = True) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(self.env_extra)
        marker = b"connected and subscribed"
        before = self.log.read_bytes().count(marker) if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
            )
        if wait_subscribed:
            poll(
                lambda: (
                    self.log.read_bytes().count(marker) > before or self.proc.poll() is not None
                ),
                30,
                what="gateway to subscribe",
            )  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.log.read_text()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("gateway did not stop within 15 s of SIGTERM") from None
        self.proc = None
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.journal, timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def journaled(self) -> int:
        if not self.journal.exists():
            return 0
        return (
            int(self.query("SELECT seq FROM sqlite_sequence WHERE name='readings'")[0][0])
            if self.query("SELECT seq FROM sqlite_sequence WHERE name='readings'")
            else 0
        )


class Publisher:
    """A paho QoS 1 publisher that rides out broker restarts: every message is confirmed."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.sent = 0

    def publish_all(
        self,
        messages: list[tuple[str, bytes]],
        rate: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        infos = []
        t0 = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if stop is not None and stop.is_set():
                break
            if not self.client.is_connected():  # broker restarting: wait, paho resends in-flight
                poll(self.client.is_connected, 60, interval=0.02, what="publisher reconnect")
            info = self.client.publish(topic, payload, qos=1)
            if info.rc == paho.MQTT_ERR_NO_CONN:  # lost between the check and the send
                poll(self.client.is_connected, 60, interval=0.02, what="publisher reconnect")
                info = self.client.publish(topic, payload, qos=1)
            infos.append(info)
            self.sent += 1
            if rate:
                ahead = t0 + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        # paho keeps and resends what a broker restart interrupts; wait until each is confirmed
        for info in infos:
            poll(info.is_published, 120, interval=0.02, what=f"PUBACK for mid {info.mid}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def logger_messages(
    n: int,
    devices: int = 5,
    batch: int = 1,
    t0_ms: int | None = None,
) -> tuple[list[tuple[str, bytes]], dict[str, set[int]]]:
    """n messages of `batch` readings from `devices` loggers, and what VictoriaMetrics must hold."""
    t0_ms = t0_ms if t0_ms is not None else int(time.time() * 1000) - 3_600_000
    msgs: list[tuple[str, bytes]] = []
    expected: dict[str, set[int]] = {}
    k = 0
    for i in range(n):
        dev = f"lg{i % devices:03d}"
        topic = f"vigil/site1/room{i % 2}/{dev}/telemetry"
        entries = []
        for _ in range(batch):
            ts = t0_ms + k * 10
            k += 1
            entries.append({"ts": ts, "temp_c": 2.0 + (k % 60) / 10, "rh_pct": 40.0})
            expected.setdefault(dev, set()).add(ts)
        body = entries[0] if batch == 1 else {"readings": entries}
        msgs.append((topic, orjson.dumps(body)))
    return msgs, expected


def vm_by_device(vm: Any, field: str = "temp_c") -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for row in vm.export(f'{{__name__="coldchain_{field}"}}'):
        out.setdefault(row["metric"]["device"], set()).update(int(t) for t in row["timestamps"])
    return out


def diff(got: dict[str, set[int]], want: dict[str, set[int]]) -> str:
    """What is missing and what is extra, per series, briefly."""
    out = []
    for key in sorted(set(got) | set(want)):
        missing = want.get(key, set()) - got.get(key, set())
        extra = got.get(key, set()) - want.get(key, set())
        if missing or extra:
            out.append(
                f"{key}: {len(missing)} missing {sorted(missing)[:3]}, "
                f"{len(extra)} extra {sorted(extra)[:3]}"
            )
    return "; ".join(out) or "no difference"
