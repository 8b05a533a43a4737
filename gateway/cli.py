"""The `vigil` command line (DESIGN §3)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from dashboards.cli import app as dashboards_app
from gateway.admin_cli import audit_app, report_app, user_app
from gateway.app import Gateway
from gateway.config import ConfigError, config_warnings, load_config
from gateway.core.logs import setup_logging
from gateway.demo import run_demo
from gateway.lot_cli import lot_app, shipment_app
from gateway.notifiers import NotifierSetupError
from gateway.ops_cli import backup, journal_app, restore, service_app
from simulators.cli import simulate as run_simulation

GC_THRESHOLDS = (20_000, 20, 20)
"""Python's defaults (700, 10, 10) collect the young generation every few dozen messages and walk
every object made at start-up in each full collection: 16 % of the gateway's CPU in a burst and
pauses of 100 ms and more (docs/benchmarks.md)."""


def _settle_gc() -> None:
    """For the gateway process, once its objects are built: leave them (modules, models, the
    config) out of every later collection, and collect less often. Reference counting still
    frees nearly everything at once; collections only look for cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


app = typer.Typer(no_args_is_help=True, add_completion=False, help="vigil: GxP monitoring gateway")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _reload_on_sighup(gateway: Gateway) -> None:
    """SIGHUP: re-read the config file (`systemctl reload vigil`)."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[object]] = set()

    def reload() -> None:
        task = loop.create_task(gateway.reload("system:SIGHUP", "SIGHUP"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("-c", "--config", help="config YAML")] = None,
) -> None:
    """Run the gateway."""

    try:
        cfg = load_config(config)
    except ConfigError as e:
        for p in e.problems:
            typer.echo(p, err=True)
        raise typer.Exit(2) from None
    setup_logging(cfg.gateway.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        try:
            gateway = Gateway(cfg)
        except NotifierSetupError as e:
            for p in e.problems:
                typer.echo(f"{config}: {p}", err=True)
            raise typer.Exit(2) from None
        path = config or (
            Path(os.environ["VIGIL_CONFIG"]) if os.environ.get("VIGIL_CONFIG") else None
        )
        _reload_on_sighup(gateway)
        _settle_gc()
        await gateway.run(stop, config_path=path)

    asyncio.run(main())


@app.command("check-config")
def check_config(file: Path) -> None:
    """Validate a config file: exit 0 (printing warnings), or exit 2 listing every error."""
    try:
        cfg = load_config(file)
    except ConfigError as e:
        for p in e.problems:
            typer.echo(p, err=True)
        raise typer.Exit(2) from None
    warnings = config_warnings(cfg, str(file))
    for w in warnings:
        typer.echo(f"warning: {w}")
    typer.echo(f"{file}: OK" + (f" ({len(warnings)} warning(s))" if warnings else ""))


@app.command()
def demo(
    seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
    plain: Annotated[bool, typer.Option(help="print lines instead of a live view")] = False,
) -> None:
    """Run everything on embedded defaults, live: broker, simulators, gateway, live view."""

    asyncio.run(run_demo(seconds=seconds, plain=plain or not sys.stdout.isatty()))


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="a scenario file, or a shipped name: demo")],
    mqtt_url: Annotated[str | None, typer.Option(help="broker (default VIGIL_MQTT_URL)")] = None,
    duration: Annotated[
        str | None, typer.Option(help="simulated time to run: seconds, or 90s, 6h")
    ] = None,
    speed: Annotated[float | None, typer.Option(help="simulated seconds per wall second")] = None,
) -> None:
    """Drive simulated loggers (and PLCs) from a scenario file."""

    run_simulation(Path(scenario), mqtt_url, duration, speed)


app.add_typer(dashboards_app, name="dashboards", help="Grafana dashboards: export, push")
app.add_typer(user_app, name="user", help="Users: add, list, disable, enable, set-password")
app.add_typer(audit_app, name="audit", help="Audit trail: verify, show")
app.add_typer(report_app, name="report", help="Reports: shipment ID --format pdf|csv")
app.add_typer(journal_app, name="journal", help="Journal: verify its hash chain")
app.add_typer(service_app, name="service", help="systemd service: install")
app.command("backup")(backup)
app.command("restore")(restore)
app.add_typer(lot_app, name="lot", help="Lots: create, list, show, leg, decide, report")
app.add_typer(shipment_app, name="shipment", help="Shipments (transport legs): start, stop")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
