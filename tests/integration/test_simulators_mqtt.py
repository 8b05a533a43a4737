"""Simulators against a real Mosquitto: what a subscriber receives is exactly what SimStats says,
in order per device, paced by `speed`, and the runner survives a broker restart."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from simulators.cli import simulate
from simulators.fleet import Fleet
from simulators.loggers import Outgoing
from simulators.protocol import decode
from simulators.runner import run_scenario
from simulators.scenario import Scenario, parse_scenario
from tests.services import Mosquitto, free_port, poll

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
BARRIER = "vigil/_test/barrier"


class Recorder:
    """A paho subscriber on its own thread: every (topic, payload) on vigil/# in arrival order."""

    def __init__(self, port: int, client_id: str = "", persistent: bool = False) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        self.client.max_queued_messages_set(0)
        self.port = port
        self.messages: list[tuple[str, bytes, float]] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe("vigil/#", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), time.monotonic()))

    def __enter__(self) -> Recorder:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber not subscribed"
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def count(self) -> int:
        with self._lock:
            return sum(1 for t, _, _ in self.messages if t != BARRIER)

    def barrier(self) -> None:
        """Wait until everything the broker routed before now has arrived here (a duplicate or a
        stray message would be counted): our own marker comes back behind it on this connection."""
        marker = f"{time.monotonic_ns()}".encode()
        self.client.publish(BARRIER, marker, qos=1)
        poll(lambda: any(p == marker for _, p, _ in list(self.messages)), 10, what="barrier")

    def by_topic(self) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = defaultdict(list)
        with self._lock:
            for t, p, _ in self.messages:
                if t != BARRIER:
                    out[t].append(p)
        return out


def fleet_scenario(**top: Any) -> Scenario:
    """Two sites, every asset kind, an offline logger, an epoch-ms logger and malformed messages."""
    data: dict[str, Any] = {
        "name": "it-fleet",
        "seed": 5,
        "duration": "3h",
        "speed": "max",
        "interval": "60s",
        "sites": [
            {
                "id": "wh-it",
                "assets": [
                    {"id": "room-a", "kind": "warehouse_room", "devices": [{"id": "it-room-t1"}]},
                    {
                        "id": "fridge-{n}",
                        "count": 2,
                        "kind": "fridge",
                        "devices": [{"id": "it-{asset}-t1", "phase": "15s"}],
                        "faults": [{"kind": "door_open", "start": "1h", "duration": "10m"}],
                    },
                ],
            },
            {
                "id": "fleet-it",
                "assets": [
                    {
                        "id": "truck-01",
                        "kind": "truck",
                        "devices": [
                            {
                                "id": "it-truck-t1",
                                "ts_format": "epoch_ms",
                                "faults": [
                                    {"kind": "offline", "start": "30m", "duration": "90m"},
                                    {
                                        "kind": "malformed",
                                        "start": "2h10m",
                                        "oversize_bytes": 300_000,
                                    },
                                ],
                            }
                        ],
                        "faults": [{"kind": "compressor_failure", "start": "1h", "duration": "1h"}],
                    }
                ],
            },
        ],
    }
    data.update(top)
    return parse_scenario(data)


async def test_subscriber_receives_exactly_what_stats_count(mosquitto: Mosquitto) -> None:
    scenario = fleet_scenario()
    expected = list(Fleet(scenario, start=START).messages())
    acked: list[Outgoing] = []
    with Recorder(mosquitto.port) as sub:
        stats = await run_scenario(scenario, mosquitto.url, start=START, on_publish=acked.append)
        poll(lambda: sub.count() >= stats.messages, timeout=20, what="all messages delivered")
        sub.barrier()
        received = sub.by_topic()
    assert stats.messages == len(expected) == sub.count()
    assert stats.readings == sum(m.readings for m in expected)
    assert not stats.stopped and stats.reconnects == 0
    assert len(stats.devices) == 4 and all(
        d.buffered == d.dropped == 0 for d in stats.devices.values()
    )
    truck = stats.devices["fleet-it/truck-01/it-truck-t1"]
    assert (truck.batches, truck.malformed, truck.readings) == (1, 9, 180)
    # Per device: the same bytes in the same order as the pure fleet computed them.
    want: dict[str, list[bytes]] = defaultdict(list)
    for m in expected:
        want[m.topic].append(m.payload)
    assert received == want
    for key, d in stats.devices.items():
        msgs = received[d.topic]
        assert len(msgs) == d.messages, key
        good = [decode(p, max_bytes=400_000) for p in msgs if not _is_malformed(p)]
        ts = [int(r["ts"]) for rows in good for r in rows]  # type: ignore[call-overload]
        assert len(ts) == d.readings and ts == sorted(ts) and len(set(ts)) == len(ts), key
    assert Counter(m.kind for m in acked) == Counter(m.kind for m in expected)


def _is_malformed(payload: bytes) -> bool:
    try:
        decode(payload, max_bytes=200_000, max_ts_ms=int(time.time() * 1000) + 86_400_000)
    except ValueError:
        return True
    return False


async def test_speed_paces_simulated_time_against_the_wall_clock(mosquitto: Mosquitto) -> None:
    scenario = fleet_scenario().with_overrides(duration=1200, speed=1200)  # 1 s of wall time
    with Recorder(mosquitto.port) as sub:
        stats = await run_scenario(scenario, mosquitto.url)
        poll(lambda: sub.count() >= stats.messages, timeout=10, what="paced messages")
        arrivals = [t for topic, _, t in sub.messages if topic != BARRIER]
    assert stats.messages == 4 * 20
    assert 0.9 <= stats.wall_seconds < 4.0
    assert arrivals[-1] - arrivals[0] >= 0.5, "spread over the run, not one burst"
    # auto start: the last reading is stamped no later than the wall clock
    assert stats.start.timestamp() + stats.sim_seconds <= time.time() + 1


async def test_stop_event_ends_the_run_early(mosquitto: Mosquitto) -> None:
    scenario = fleet_scenario().with_overrides(duration=7200, speed=600)  # would take 12 s
    stop = asyncio.Event()
    published = 0

    def after_ten(_: Outgoing) -> None:
        nonlocal published
        published += 1
        if published >= 10:
            stop.set()

    with Recorder(mosquitto.port) as sub:
        t0 = time.monotonic()
        stats = await run_scenario(scenario, mosquitto.url, stop=stop, on_publish=after_ten)
        assert time.monotonic() - t0 < 3
        poll(lambda: sub.count() >= stats.messages, timeout=10, what="messages before stop")
        sub.barrier()
        assert sub.count() == stats.messages
    assert stats.stopped and 10 <= stats.messages < 100
    assert stats.sim_seconds < 7200


async def test_runner_resends_across_a_broker_restart(mosquitto: Mosquitto) -> None:
    scenario = fleet_scenario(
        duration="20m",
        interval="5s",
        speed=300,  # 4 s of wall time, ~1200 messages
        sites=[
            {
                "id": "wh-rs",
                "assets": [
                    {
                        "id": "fridge-{n:02d}",
                        "count": 5,
                        "kind": "fridge",
                        "devices": [{"id": "rs-{asset}-t1"}],
                    }
                ],
            }
        ],
    )
    expected = list(Fleet(scenario, start=START).messages())
    restart: list[asyncio.Task[None]] = []
    acked: list[Outgoing] = []

    def on_publish(out: Outgoing) -> None:
        acked.append(out)
        if len(acked) == 300:
            restart.append(asyncio.create_task(asyncio.to_thread(mosquitto.restart)))

    with Recorder(mosquitto.port, client_id="it-recorder", persistent=True) as sub:
        stats = await run_scenario(scenario, mosquitto.url, start=START, on_publish=on_publish)
        await restart[0]
        want = {(m.topic, m.payload) for m in expected}
        poll(
            lambda: want <= {(t, p) for t, p, _ in list(sub.messages)},
            timeout=30,
            what="every message after the restart",
        )
    assert stats.reconnects >= 1
    assert stats.messages == len(expected) == len(acked)
    assert not stats.stopped


async def test_unreachable_broker_at_start_is_an_error() -> None:
    scenario = fleet_scenario()
    with pytest.raises(aiomqtt.MqttError):
        await run_scenario(scenario, f"mqtt://127.0.0.1:{free_port()}")


def test_cli_simulate_uses_env_url_and_prints_a_summary(
    mosquitto: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "duration": "1h",
                "speed": "max",
                "sites": [
                    {
                        "id": "cli",
                        "assets": [{"id": "f1", "kind": "fridge", "devices": [{"id": "cli-t1"}]}],
                    }
                ],
            }
        )
    )
    monkeypatch.setenv("VIGIL_MQTT_URL", mosquitto.url)
    with Recorder(mosquitto.port) as sub:
        simulate(path, None, "30m", None)
        poll(lambda: sub.count() >= 30, timeout=10, what="CLI messages")
    out = capsys.readouterr().out
    assert "cli/f1/cli-t1" in out and out.splitlines()[-1].split()[:3] == ["total", "30", "30"]
    with pytest.raises(SystemExit) as bad:
        simulate(tmp_path / "missing.yaml", None, None, None)
    assert bad.value.code == 2
