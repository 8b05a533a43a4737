"""`vigil demo`: the whole system on embedded defaults, visible within seconds, every time.

An embedded amqtt broker on 127.0.0.1 (unless VIGIL_MQTT_URL names one), simulated PLCs, the
gateway with its journal (InfluxDB only when VIGIL_INFLUX_URL is set) and a live view of what
flows. Once the gateway has subscribed, truck-01 uploads the two hours it buffered while offline
(`demo_truck_history`: the one retrospective batch), then the live scenario (`demo_live`) runs
and loops until stopped: the warehouse loggers, the trucks and the PLCs stamp their readings with
the wall clock, so the alerts they raise are live ones, within seconds.

Each run starts from a fresh demo data directory (`data/demo`, marked as the demo's own): stale
rule state of an earlier run can never hide this run's alerts. A VIGIL_DATA_DIR that is not a
demo directory is used as it is (resumed), never emptied. The printed hints say which
VIGIL_DATA_DIR `vigil audit verify` and `vigil report` need afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from rich.console import Group
from rich.live import Live
from rich.table import Table

from alert_rules import AlertEvent
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.core.logs import setup_logging
from gateway.core.reading import Reading
from gateway.core.schema import COLDCHAIN, PROCESS
from simulators import scenarios
from simulators.plc import collector_config, demo_specs, start_plcs, stop_plcs
from simulators.runner import run_scenario
from simulators.scenario import Scenario, load_scenario

log = logging.getLogger("vigil.demo")

DEMO_BROKER_PORT = 1884
DEMO_DATA_DIR = Path("data/demo")
DEMO_MARKER = ".vigil-demo"
"""Marks a data directory as the demo's own: the next run may empty it."""
SHIPMENT_ASSET = "truck-02"
DEMO_RULES = {
    "bindings": [
        {"profile": "crt", "site": "wh-shanghai", "asset": "room-a"},
        {"profile": "vaccine_2_8", "site": "wh-shanghai", "asset": "room-b"},
        {"profile": "vaccine_2_8", "site": "wh-shanghai", "asset": "fridge-*"},
        {"profile": ["vaccine_2_8", "who_shipping_indicator"], "site": "fleet-east"},
        {"profile": "steam_steriliser", "measurement": PROCESS.name, "device": "AC-*"},
        {"profile": "freeze_dryer", "measurement": PROCESS.name, "device": "FD-*"},
        {"profile": "annex1_grade_b", "measurement": PROCESS.name, "device": "CR-*"},
        {"profile": "filling_line", "measurement": PROCESS.name, "device": "FL-*"},
    ]
}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_embedded_broker(port: int) -> Any:

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    return broker


def prepare_data_dir(path: Path) -> str:
    """Empty a demo data directory left by an earlier run ("fresh"); use any other one as it is
    ("resumed"): only a directory the demo marked as its own is ever emptied."""
    if path.is_dir() and any(path.iterdir()):
        if not (path / DEMO_MARKER).exists():
            return "resumed"
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / DEMO_MARKER).write_text("vigil demo data: emptied by the next `vigil demo`\n")
    return "fresh"


def hints(data_dir: Path, shipment: str | None) -> list[str]:
    """What to try afterwards, with the data directory the commands need."""
    env = f"VIGIL_DATA_DIR={data_dir}"
    out = [f"{env} vigil audit verify", f"{env} vigil journal verify"]
    if shipment:
        out.append(f"{env} vigil report shipment {shipment} --format pdf")
    return out


@dataclass
class LiveState:
    """What the live view shows: the latest value per device, fed by the journal listener."""

    latest: dict[str, tuple[Reading, float]] = field(default_factory=dict)
    logins: str = ""
    alerts: dict[tuple[str, str], AlertEvent] = field(default_factory=dict)
    printer: Callable[[str], None] | None = None
    """Plain mode: each alert raised is printed as it happens."""
    started: float = field(default_factory=time.monotonic)

    def on_alert(self, event: AlertEvent) -> None:
        self.alerts[(event.alert.rule, event.alert.source)] = event
        a = event.alert
        if self.printer is not None and event.kind in ("raised", "reactivated"):
            when = "retrospective" if a.retrospective else "live"
            self.printer(
                f"+{time.monotonic() - self.started:.0f}s alert {event.kind} ({when}): "
                f"{a.severity} {a.rule} {a.source}: {a.message}"
            )

    def __call__(self, readings: Sequence[Reading]) -> None:
        now = time.monotonic()
        for r in readings:
            if r.measurement in (COLDCHAIN.name, PROCESS.name):
                self.latest[r.device] = (r, now)


def render(gw: Gateway, state: LiveState, mqtt_url: str, started: float) -> Group:
    c = gw.counters
    gw.refresh_counters()
    api = gw.config.api
    head = Table(
        title=f"vigil demo — broker {mqtt_url} — web http://{api.host}:{api.port}/ — "
        f"journal {gw.config.journal_path}",
        caption=state.logins,
        expand=True,
    )
    for col in (
        "uptime",
        "received",
        "journaled",
        "dead letters",
        "forwarded",
        "backlog",
        "journal",
        "rate/s",
    ):
        head.add_column(col, justify="right")
    head.add_row(
        f"{time.monotonic() - started:.0f} s",
        str(c.received),
        str(c.journaled),
        str(c.dead_letters),
        str(c.forwarded) if gw.sink else "off (journal only)",
        str(c.journal_backlog),
        f"{c.journal_bytes / 1e6:.1f} MB",
        f"{c.ingest_rate:.0f}",
    )
    devices = Table(title="latest readings", expand=True)
    for col in ("device", "site / line", "asset / equipment", "event time (UTC)", "values", "age"):
        devices.add_column(col)
    now = time.monotonic()
    for name in sorted(state.latest):
        r, seen = state.latest[name]
        # measurements first, switches and counters after
        fields = sorted(r.fields.items(), key=lambda kv: not isinstance(kv[1], float))[:4]
        values = ", ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields
        )
        ts = time.strftime("%m-%d %H:%M:%S", time.gmtime(r.ts_ns / 1e9))
        devices.add_row(
            name,
            r.tags.get("site") or r.tags.get("line", ""),
            r.tags.get("asset") or r.tags.get("equipment", ""),
            ts,
            values,
            f"{now - seen:.0f} s",
        )
    alerts = Table(title="alerts (latest event per rule and source)", expand=True)
    for col in ("state", "severity", "rule", "source", "message"):
        alerts.add_column(col)
    for ev in sorted(state.alerts.values(), key=lambda e: -e.alert.raised_at)[:12]:
        a = ev.alert
        alerts.add_row(
            str(a.state),
            str(a.severity),
            a.rule,
            a.source,
            a.message + (" (retrospective)" if a.retrospective else ""),
        )
    return Group(head, devices, alerts)


DEMO_USERS = {
    "operator": ("Demo Operator", "operator"),
    "qa": ("Demo QA", "qa"),
    "regulator": ("Demo Regulator", "viewer"),
}


def _demo_users(gw: Gateway) -> dict[str, str]:
    """One user per role with a password of this data dir, so the web page can be tried."""
    if gw.api is None:
        return {}
    secrets_file = gw.config.gateway.data_dir / "demo-logins.txt"
    if secrets_file.exists():
        return dict(line.split(" ", 1) for line in secrets_file.read_text().splitlines() if line)
    logins = {}
    for username, (name, role) in DEMO_USERS.items():
        password = secrets.token_urlsafe(9)
        gw.api.users.add(username, name, role, password)
        logins[username] = password
    secrets_file.write_text("".join(f"{u} {p}\n" for u, p in logins.items()))
    secrets_file.chmod(0o600)
    return logins


async def _wait_subscribed(gw: Gateway, stop: asyncio.Event, within_s: float = 20.0) -> None:
    """Until the MQTT collector has subscribed: what the simulators send before would be lost
    (the embedded broker keeps no session for a subscriber it has not seen)."""
    deadline = time.monotonic() + within_s
    while not stop.is_set() and time.monotonic() < deadline:
        if any(st.kind == "mqtt" and st.online for st in gw.sources()):
            return
        await asyncio.sleep(0.1)
    log.warning("the gateway did not subscribe within %.0f s; starting the simulators", within_s)


async def _simulate(history: Scenario, live: Scenario, mqtt_url: str, stop: asyncio.Event) -> None:
    """truck-01's buffered upload first (so its live readings come after it), then the live
    scenario again and again: a demo left running never ends in a flood of stale alerts."""
    await run_scenario(history, mqtt_url, stop=stop)
    while not stop.is_set():
        await run_scenario(live, mqtt_url, stop=stop)


def _start_shipment(gw: Gateway) -> str | None:
    """A shipment on truck-02, so `vigil report shipment` has something to report."""
    registry = gw.records.shipments
    active = registry.active_for(SHIPMENT_ASSET)
    if active is not None:
        return active.id
    new = registry.start(
        SHIPMENT_ASSET,
        "vaccine_2_8",
        "demo",
        site="fleet-east",
        product="demo vaccine",
        origin="wh-shanghai",
        destination="Hangzhou",
    )
    gw.records.audit.record(
        "demo", "shipment.start", "shipment", new.id, None, new.to_dict(), "vigil demo"
    )
    return str(new.id)


async def run_demo(seconds: float | None = None, plain: bool = False) -> None:

    setup_logging("WARNING" if not plain else "INFO")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    broker = None
    mqtt_url = os.environ.get("VIGIL_MQTT_URL")
    if not mqtt_url:
        port = DEMO_BROKER_PORT if _port_free(DEMO_BROKER_PORT) else _free_port()
        broker = await start_embedded_broker(port)
        mqtt_url = f"mqtt://127.0.0.1:{port}"

    env_dir = os.environ.get("VIGIL_DATA_DIR")
    data_dir = Path(env_dir) if env_dir else DEMO_DATA_DIR
    how = prepare_data_dir(data_dir)
    plcs = await start_plcs(demo_specs(), speed=1.0)  # live: PLC clocks read the wall clock
    cfg = parse_config(
        {
            "gateway": {"name": "demo", "data_dir": str(data_dir), "metrics_interval_s": 5},
            # amqtt speaks MQTT 3.1.1
            "mqtt": {"url": mqtt_url, "client_id": "vigil-demo", "protocol": "3.1.1"},
            "collectors": [
                {"kind": "mqtt", "name": "loggers"},
                # the PLCs' own clocks (the wall clock at speed 1): cycles filed under PLC time
                collector_config(plcs, line="fill-finish-1", device_clock=True),
            ],
            "rules": DEMO_RULES,
            "api": {"host": "127.0.0.1", "port": int(os.environ.get("VIGIL_API_PORT", "8080"))},
        },
        "(demo defaults)",
        env={k: v for k, v in os.environ.items() if k != "VIGIL_DATA_DIR"},
    )
    say: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
    state = LiveState(printer=say if plain else None)
    gw = Gateway(cfg, listeners=[state])
    logins = _demo_users(gw)
    state.logins = "web page log-ins: " + ", ".join(f"{u} / {p}" for u, p in logins.items())
    if gw.alerting is not None:
        gw.alerting.event_sinks.append(state.on_alert)
    history = load_scenario(scenarios.path("demo_truck_history"))
    live = load_scenario(scenarios.path("demo_live"))

    gw_task = asyncio.create_task(gw.run(stop), name="gateway")
    await _wait_subscribed(gw, stop)
    shipment = _start_shipment(gw)
    tips = hints(data_dir, shipment)
    state.logins += " — afterwards: " + "; ".join(tips)
    sim_task = asyncio.create_task(_simulate(history, live, mqtt_url, stop), name="simulators")
    started = time.monotonic()
    state.started = started
    deadline = started + seconds if seconds else None
    try:
        if plain:
            say(
                f"vigil demo running ({how} data dir {data_dir}): web page "
                f"http://{cfg.api.host}:{cfg.api.port}/ — {state.logins}"
            )
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await stop.wait()
                gw.refresh_counters()
                c = gw.counters
                say(
                    f"received={c.received} journaled={c.journaled} "
                    f"dead_letters={c.dead_letters} devices={len(state.latest)} "
                    f"alerts={len(state.alerts)}"
                )
        else:
            with Live(render(gw, state, mqtt_url, started), refresh_per_second=2) as live_view:
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await stop.wait()
                    live_view.update(render(gw, state, mqtt_url, started))
    finally:
        stop.set()
        await asyncio.wait([gw_task, sim_task], timeout=12)
        await stop_plcs(plcs)
        if broker is not None:
            await broker.shutdown()
    print(f"demo stopped: {gw.counters.journaled} readings journaled in {cfg.journal_path}")
    print("try, with the demo's data directory:")
    for tip in tips:
        print(f"  {tip}")
