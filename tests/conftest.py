"""Fixtures that start real services on free loopback ports (DESIGN §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_proc import GatewayProcess
from tests.services import InfluxDB1, Mosquitto, VictoriaMetrics


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()
    broker.remove()


@pytest.fixture
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    vm.start()
    yield vm
    vm.stop()


@pytest.fixture(scope="module")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """A real InfluxDB 1.x (`influxd`), shared by a module's tests."""
    server = InfluxDB1(tmp_path_factory.mktemp("influxdb1"))
    server.start()
    yield server
    server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Debian's Chromium, kept off the network (it would try Google's hosts at every start)."""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium driven by playwright; no browser download, Debian's binary."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Build a `vigil run` child process; any still running at teardown is killed."""
    made: list[GatewayProcess] = []

    def make(mqtt_url: str, influx_url: str | None, **extra: Any) -> GatewayProcess:
        gw = GatewayProcess(tmp_path, mqtt_url, influx_url, **extra)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        if gw.proc is not None:
            gw.proc.kill()
            gw.proc.wait(10)
