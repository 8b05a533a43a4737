"""`vigil simulate SCENARIO.yaml`: run a scenario against a broker and print what was sent.

The gateway's CLI registers `simulate`; `python -m simulators` calls the same function, so the
simulators can run before (or without) the rest of vigil.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import aiomqtt
import yaml

from simulators import scenarios
from simulators.plc import load_scenario as load_plcs
from simulators.plc import start_scenario, stop_plcs
from simulators.runner import DEFAULT_MQTT_URL, SimStats, run_scenario
from simulators.scenario import Scenario, ScenarioError, load_scenario, parse_duration

PROGRESS_EVERY_S = 10.0


def resolve_scenario_path(name_or_path: Path | str) -> Path:
    """A file path, or the name of a shipped scenario ("demo") when no such file exists."""
    p = Path(name_or_path)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return p
    try:
        return scenarios.path(str(p))
    except FileNotFoundError:
        return p


def broker_url(option: str | None, scenario: Scenario) -> str:
    """Option > VIGIL_MQTT_URL > the scenario's broker.url > mqtt://127.0.0.1:1883."""
    return option or os.environ.get("VIGIL_MQTT_URL") or scenario.broker.url or DEFAULT_MQTT_URL


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_stats(stats: SimStats) -> str:
    rows: list[tuple[str, ...]] = [
        ("device", "messages", "readings", "batches", "malformed", "buffered", "dropped")
    ]
    for key, d in stats.devices.items():
        rows.append(
            (
                key,
                *map(str, (d.messages, d.readings, d.batches, d.malformed, d.buffered, d.dropped)),
            )
        )
    rows.append(("total", str(stats.messages), str(stats.readings), "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    head = (
        f"simulated {_hms(stats.sim_seconds)} from {stats.start.isoformat()} in "
        f"{stats.wall_seconds:.1f} s wall"
        + (", stopped early" if stats.stopped else "")
        + (f", {stats.reconnects} reconnects" if stats.reconnects else "")
    )
    return "\n".join([head, *lines])


async def _run(scenario: Scenario, url: str) -> SimStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sent = [0, 0]
    last = [time.monotonic()]

    def progress(out: object) -> None:
        sent[0] += 1
        sent[1] += getattr(out, "readings", 0)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            t = getattr(out, "t_ms", 0) / 1000.0
            print(
                f"  sim {_hms(t)} / {_hms(scenario.duration)}: "
                f"{sent[0]} messages, {sent[1]} readings",
                file=sys.stderr,
                flush=True,
            )

    plcs = await _start_plcs({"plcs": scenario.plcs, "speed": scenario.speed or 1.0})
    try:
        return await run_scenario(
            scenario,
            url,
            stop=stop,
            on_publish=progress,
            username=os.environ.get("VIGIL_MQTT_USERNAME") or None,
            password=os.environ.get("VIGIL_MQTT_PASSWORD") or None,
        )
    finally:
        await _stop_plcs(plcs)


async def _start_plcs(doc: dict[str, object]) -> list[object]:
    """Serve the scenario's simulated PLCs (Modbus TCP) next to its loggers."""
    if not doc.get("plcs"):
        return []

    plcs = await start_scenario(load_plcs(doc))
    for plc in plcs:
        print(f"  PLC {plc.name} ({plc.spec.kind}) on 127.0.0.1:{plc.port}", file=sys.stderr)
    return list(plcs)


async def _stop_plcs(plcs: list[object]) -> None:
    if plcs:
        await stop_plcs(plcs)  # type: ignore[arg-type]


async def _serve_plcs_only(path: Path, duration: float | None) -> None:

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    text = await asyncio.to_thread(path.read_text)
    plcs = await _start_plcs(yaml.safe_load(text) or {})
    print("serving simulated PLCs; Ctrl-C stops", file=sys.stderr)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await stop.wait()
    finally:
        await _stop_plcs(plcs)


def _plcs_only(path: Path) -> bool:

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and bool(doc.get("plcs")) and not doc.get("sites")


def simulate(
    scenario_path: Path,
    mqtt_url: str | None,
    duration: float | str | None,
    speed: float | None,
) -> None:
    """Run a scenario file (or a shipped scenario's name) against the broker.

    `duration` (simulated seconds, or "6h") and `speed` (0: as fast as possible) override the
    file. Exits 2 on a bad scenario, 1 when the broker cannot be reached.
    """
    path = resolve_scenario_path(scenario_path)
    if _plcs_only(path):
        secs = None if duration is None else float(parse_duration(duration))  # type: ignore[arg-type]
        try:
            asyncio.run(_serve_plcs_only(path, secs))
        except (ValueError, OSError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    try:
        scenario = load_scenario(path)
        secs = None if duration is None else float(parse_duration(duration))  # type: ignore[arg-type]
        scenario = scenario.with_overrides(duration=secs, speed=speed)
    except (ScenarioError, ValueError) as e:
        print(str(e), file=sys.stderr)
        raise SystemExit(2) from None
    url = broker_url(mqtt_url, scenario)
    pace = "as fast as possible" if scenario.speed == 0 else f"at {scenario.speed:g}x"
    print(
        f"simulating {scenario.name} ({scenario.device_count()} loggers, "
        f"{_hms(scenario.duration)}) {pace} against {url.split('@')[-1]}",
        file=sys.stderr,
    )
    try:
        stats = asyncio.run(_run(scenario, url))
    except (aiomqtt.MqttError, OSError, ValueError) as e:
        print(f"cannot publish to {url.split('@')[-1]}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(format_stats(stats))
