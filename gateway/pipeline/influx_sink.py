"""The InfluxDB sink: forwards journal rows to InfluxDB in batches, from its own cursor.

Batches by size and time. 429, 5xx and connection errors are retried with backoff (the cursor does
not move, so nothing is lost); any other 4xx moves the batch to quarantine with the server's
message. Writes are idempotent in InfluxDB (same series and timestamp overwrite), so replaying rows
after a crash is safe.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import aiohttp
from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from pydantic import BaseModel, ConfigDict, Field

from gateway.core.metrics import Counters
from gateway.pipeline.journal import Batch, Journal

log = logging.getLogger("vigil.influx")

SINK_NAME = "influx"


class InfluxConfig(BaseModel):
    """The `influx:` section of the gateway config."""

    model_config = ConfigDict(extra="forbid")

    url: str
    token: str = Field("", repr=False)
    org: str = "vigil"
    bucket: str = "vigil"
    batch_size: int = Field(5000, gt=0, le=100_000)
    flush_interval_s: float = Field(0.5, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    retry_min_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)


class InfluxSink:
    def __init__(
        self,
        config: InfluxConfig,
        journal: Journal,
        counters: Counters,
        committed: asyncio.Event,
        name: str = SINK_NAME,
    ) -> None:
        self.config = config
        self.journal = journal
        self.counters = counters
        self.committed = committed
        self.name = name
        self.position = journal.register_sink(name)
        self.connected = False

    async def run(self) -> None:
        cfg = self.config
        async with InfluxDBClientAsync(
            url=cfg.url, token=cfg.token, org=cfg.org, timeout=int(cfg.timeout_s * 1000)
        ) as client:
            write_api = client.write_api()
            while True:
                batch = await self._next_batch()
                await self._send(write_api, batch)

    async def _next_batch(self) -> Batch:
        """Rows after the cursor: a full batch at once, else what is there after flush_interval."""
        cfg = self.config
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            self.committed.clear()
            batch = await asyncio.to_thread(self.journal.read_batch, self.position, cfg.batch_size)
            if batch is not None and batch.count >= cfg.batch_size:
                return batch
            if batch is not None:
                if deadline is None:
                    deadline = loop.time() + cfg.flush_interval_s
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return batch
            else:
                remaining = cfg.flush_interval_s
            try:
                await asyncio.wait_for(self.committed.wait(), remaining)
            except TimeoutError:
                pass

    async def _send(self, write_api: Any, batch: Batch, *, retry: bool = True) -> bool:
        """Write one batch, retrying on 429/5xx/connection errors (unless `retry` is False: then
        False after the first such failure); a batch refused otherwise is quarantined."""
        cfg = self.config
        body = batch.body.encode()
        first, last = batch.first_id, batch.last_id
        backoff = cfg.retry_min_s
        while True:
            try:
                await write_api.write(
                    bucket=cfg.bucket, org=cfg.org, record=body, write_precision=WritePrecision.NS
                )
                break
            except ApiException as e:
                status = int(e.status or 0)
                message = _message(e)
                if status == 429 or status >= 500 or status == 0:
                    delay = _retry_after(e) or backoff
                    self._failed(f"HTTP {status}: {message}", delay)
                    if not retry:
                        return False
                else:
                    # The server will never take this batch as it is: keep it aside, move on.
                    await asyncio.to_thread(
                        self.journal.quarantine,
                        self.name,
                        first,
                        last,
                        status,
                        message,
                        body.decode(),
                    )
                    self.counters.quarantined += batch.count
                    self.position = last
                    log.error(
                        "InfluxDB refused a batch; quarantined",
                        extra={"status": status, "rows": batch.count, "server_message": message},
                    )
                    return True
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                self._failed(f"{type(e).__name__}: {e}", backoff)
                if not retry:
                    return False
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, cfg.retry_max_s)
        await asyncio.to_thread(self.journal.advance, self.name, last)
        self.position = last
        self.counters.forwarded += batch.count
        if not self.connected:
            log.info("InfluxDB writes succeeding", extra={"url": cfg.url})
        self.connected = True
        return True

    def _failed(self, why: str, retry_in: float) -> None:
        self.counters.sink_errors += 1
        if self.connected or self.counters.sink_errors == 1:
            log.warning(
                "InfluxDB write failed; retrying", extra={"error": why, "retry_in_s": retry_in}
            )
        self.connected = False

    async def flush(self, timeout_s: float) -> bool:
        """At shutdown: send what is left within the time given; True when nothing is left.

        When the last write had failed (the store is down), one attempt is made and no retries:
        the rows wait in the journal for the next start, and the stop is not held up."""
        deadline = time.monotonic() + timeout_s
        cfg = self.config
        async with InfluxDBClientAsync(
            url=cfg.url, token=cfg.token, org=cfg.org, timeout=int(max(1.0, timeout_s) * 1000)
        ) as client:
            write_api = client.write_api()
            while time.monotonic() < deadline:
                batch = await asyncio.to_thread(
                    self.journal.read_batch, self.position, cfg.batch_size
                )
                if batch is None:
                    return True
                try:
                    sent = await asyncio.wait_for(
                        self._send(write_api, batch, retry=self.connected),
                        max(0.1, deadline - time.monotonic()),
                    )
                except TimeoutError:
                    return False
                if not sent:
                    return False
        return False


def _message(e: ApiException) -> str:
    body = e.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    return str(body or e.reason or "")[:2000]


def _retry_after(e: ApiException) -> float | None:
    headers: Any = e.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
