"""`modbus_output`: an on-site siren or tower light on a coil (function 5) or holding register
(function 6) of a relay/IO module dedicated to alarm outputs.

The output is a function of the alert store, not a stream of messages: it is on while any
alert its routes carry is active or unacknowledged (and not shelved, suppressed or out of
service), off once every such alert is acknowledged and back to normal. So it needs no outbox:
at start it is computed from the open alerts, then kept up to date from each event, written
when it changes and written again every `refresh_s` (a module that lost power gets the state
back). A write that fails is retried with the channel's backoff until it succeeds.

The configuration refuses a module that a Modbus collector polls (gateway/config.py): the
gateway never writes to a production PLC, and the collectors never write at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from alert_rules.model import Alert, AlertEvent, AlertState
from gateway.notifiers.config import ModbusOutputChannel

log = logging.getLogger("vigil.notifiers.modbus_output")

S = AlertState


def wants_output(alert: Alert) -> bool:
    """Annunciated and either unacknowledged or still active."""
    return alert.state in (S.UNACKNOWLEDGED, S.RTN_UNACKNOWLEDGED) or (
        alert.state is S.ACKNOWLEDGED and alert.active
    )


class ModbusOutput:
    kind = "modbus_output"

    def __init__(
        self,
        name: str,
        config: ModbusOutputChannel,
        on_result: Callable[[bool, str], Awaitable[None]],
    ) -> None:
        """`on_result(ok, detail)` is told of every write (counts, the channel-failing alarm)."""
        self.name = name
        self.config = config
        self.on_result = on_result
        self.alerts: set[int] = set()
        """Ids of the alerts that want the output on."""
        self.written: bool | None = None
        """What the module holds as far as we know (None: not written since start)."""
        self._wake = asyncio.Event()
        self._client: AsyncModbusTcpClient | None = None
        self.switches = 0

    @property
    def desired(self) -> bool:
        return bool(self.alerts)

    def seed(self, alerts: Iterable[Alert]) -> None:
        for a in alerts:
            self._account(a)

    def observe(self, event: AlertEvent) -> None:
        """One event of an alert this channel's routes carry (synchronous, no I/O)."""
        self._account(event.alert)
        self._wake.set()

    def _account(self, alert: Alert) -> None:
        if wants_output(alert):
            self.alerts.add(alert.id)
        else:
            self.alerts.discard(alert.id)

    async def run(self) -> None:
        cfg = self.config
        delay = cfg.retry_min_s
        last_write = 0.0
        while True:
            want = self.desired
            due = time.monotonic() - last_write >= cfg.refresh_s
            if want != self.written or due:
                try:
                    await self.write(want)
                except (ModbusException, OSError, TimeoutError) as e:
                    self.written = None
                    detail = f"write to modbus://{cfg.address} failed: {type(e).__name__}: {e}"
                    log.warning(detail, extra={"channel": self.name})
                    await self.on_result(False, detail)
                    await self._sleep(delay * random.uniform(0.9, 1.1))
                    delay = min(delay * 2, cfg.retry_max_s)
                    continue
                delay = cfg.retry_min_s
                last_write = time.monotonic()
                if want != self.written:
                    self.switches += 1
                    log.info(
                        "alarm output switched",
                        extra={"channel": self.name, "on": want, "alerts": sorted(self.alerts)},
                    )
                self.written = want
                await self.on_result(True, f"output {'on' if want else 'off'}")
            await self._sleep(cfg.refresh_s)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def write(self, on: bool) -> None:
        cfg = self.config
        client = self._client
        if client is None or not client.connected:
            client = AsyncModbusTcpClient(
                cfg.host,
                port=cfg.port,
                timeout=cfg.timeout_s,
                retries=0,
                reconnect_delay=0,
                name=f"vigil-output-{self.name}",
            )
            if not await client.connect():
                client.close()
                raise ConnectionError(f"cannot connect to {cfg.host}:{cfg.port}")
            self._client = client
        try:
            if cfg.coil is not None:
                resp = await client.write_coil(cfg.coil, on, device_id=cfg.unit)
            else:
                assert cfg.holding_register is not None
                value = cfg.on_value if on else cfg.off_value
                resp = await client.write_register(cfg.holding_register, value, device_id=cfg.unit)
        except (ModbusException, OSError, TimeoutError):
            self._drop()
            raise
        if resp.isError():
            raise ModbusException(f"exception response {resp}")

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    async def close(self) -> None:
        self._drop()
