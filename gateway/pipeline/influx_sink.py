r"""The InfluxDB sink: forwards journal rows to InfluxDB in batches, from its own cursor.

Two write APIs, chosen by `influx.version`: 2 (the default) writes to `/api/v2/write` (InfluxDB
2.x, 3.x, 1.8+ and compatible stores) with a token, org and bucket; 1 writes to the v1 `/write`
endpoint (InfluxDB 1.x, and the v1-compatible API of 2.x and 3.x) with a database, an optional
retention policy and a user and password (or a token). Both follow the same rules: batches by size
and time; 429, 5xx and connection errors are retried with backoff (the cursor does not move, so
nothing is lost); any other 4xx moves the batch to quarantine with the server's message. Writes
are idempotent in InfluxDB (same series and timestamp overwrite), so replaying rows after a crash
is safe.

InfluxDB 1.x reads a backslash in a name literally, where the journal's line protocol (the v2
reference's) writes it `\\`: the v1 path rewrites such lines. A name ending in a backslash, or
holding one before a comma, space or equals sign, cannot be written to 1.x at all: those lines are
quarantined alone, with the reason, and the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any, Literal, Protocol

import aiohttp
from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gateway.core.lineprotocol import INT64_MAX, INT64_MIN, LineProtocolError, parse_line
from gateway.core.metrics import Counters
from gateway.core.reading import FieldValue
from gateway.pipeline.journal import Batch, Journal

log = logging.getLogger("vigil.influx")

SINK_NAME = "influx"


def _version(v: Any) -> Any:
    """`VIGIL_INFLUX_VERSION=1` arrives as text."""
    return int(v) if isinstance(v, str) and v.strip() in ("1", "2") else v


class InfluxConfig(BaseModel):
    """The `influx:` section of the gateway config."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[Literal[1, 2], BeforeValidator(_version)] = 2
    """2: /api/v2/write (token, org, bucket); 1: /write (database, retention_policy, username
    and password, or a token)."""
    url: str
    token: str = Field("", repr=False)
    org: str = "vigil"
    bucket: str = "vigil"
    database: str = "vigil"
    """Version 1: the database (created beforehand: CREATE DATABASE)."""
    retention_policy: str = ""
    """Version 1: empty for the database's default retention policy."""
    username: str = ""
    password: str = Field("", repr=False)
    batch_size: int = Field(5000, gt=0, le=100_000)
    flush_interval_s: float = Field(0.5, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    retry_min_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _credentials(self) -> InfluxConfig:
        if self.version == 1 and not self.database:
            raise ValueError("version 1 needs a database")
        if bool(self.username) != bool(self.password) and self.version == 1:
            raise ValueError("give both username and password, or neither")
        return self


@dataclass(slots=True)
class HttpRefused(Exception):
    """InfluxDB answered a write with an error status."""

    status: int
    message: str
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.status == 0


class Writer(Protocol):
    """One write API: `write(body)` returns on success, raises HttpRefused or a connection
    error (aiohttp.ClientError, TimeoutError, OSError) otherwise."""

    async def __aenter__(self) -> Writer: ...

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def prepare(self, body: str) -> tuple[str, list[tuple[str, str]]]:
        """(what to send, [(line, why it cannot be sent)])."""
        ...

    async def write(self, body: str) -> None: ...


class V2Writer:
    """/api/v2/write through influxdb-client."""

    def __init__(self, cfg: InfluxConfig, timeout_s: float) -> None:
        self.cfg = cfg
        self.client = InfluxDBClientAsync(
            url=cfg.url, token=cfg.token, org=cfg.org, timeout=int(timeout_s * 1000)
        )

    async def __aenter__(self) -> V2Writer:
        self.api: Any = self.client.write_api()  # its write_precision is typed as an enum
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.client.close()

    def prepare(self, body: str) -> tuple[str, list[tuple[str, str]]]:
        return body, []

    async def write(self, body: str) -> None:
        cfg = self.cfg
        try:
            await self.api.write(
                bucket=cfg.bucket,
                org=cfg.org,
                record=body.encode(),
                write_precision=WritePrecision.NS,
            )
        except ApiException as e:
            raise HttpRefused(int(e.status or 0), _message(e), _retry_after(e)) from None


class V1Writer:
    """The v1 `/write` endpoint over aiohttp: database, retention policy, nanosecond precision;
    HTTP basic auth with username and password, or `Authorization: Token` with a token."""

    def __init__(self, cfg: InfluxConfig, timeout_s: float) -> None:
        self.cfg = cfg
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self.params["rp"] = cfg.retention_policy
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        if cfg.username:
            basic = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {basic}"
        elif cfg.token:
            self.headers["Authorization"] = f"Token {cfg.token}"
        self.url = cfg.url.rstrip("/") + "/write"

    async def __aenter__(self) -> V1Writer:
        self.session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.session.close()

    def prepare(self, body: str) -> tuple[str, list[tuple[str, str]]]:
        if "\\" not in body:
            return body, []
        good: list[str] = []
        bad: list[tuple[str, str]] = []
        for line in body.split("\n"):
            try:
                good.append(to_v1(line))
            except LineProtocolError as e:
                bad.append((line, str(e)))
        return "\n".join(good), bad

    async def write(self, body: str) -> None:
        async with self.session.post(
            self.url, params=self.params, data=body.encode(), headers=self.headers
        ) as r:
            if r.status == 204 or 200 <= r.status < 300:
                return
            text = (await r.text())[:2000]
            message = r.headers.get("X-Influxdb-Error") or text
            retry = r.headers.get("Retry-After")
            raise HttpRefused(r.status, message, _float(retry))


# -- InfluxDB 1.x line protocol -----------------------------------------------------------------
# 1.x escapes only the element's special characters (a comma, space or equals sign); a backslash
# before anything else is itself, and one before a special character cannot be written.
_V1_MEAS = str.maketrans({",": r"\,", " ": r"\ "})
_V1_KEY = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_V1_STR = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_V1_UNSAFE_MEAS = re.compile(r"\\(?=[, ]|$)")
_V1_UNSAFE_KEY = re.compile(r"\\(?=[, =]|$)")


def _v1_name(what: str, s: str, esc: dict[int, str], unsafe: re.Pattern[str]) -> str:
    if "\\" in s and unsafe.search(s):
        raise LineProtocolError(
            f"{what} {s!r} has a backslash before a comma, space or equals sign or at its end, "
            "which InfluxDB 1.x line protocol cannot carry"
        )
    return s.translate(esc)


def _v1_field(value: FieldValue) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise LineProtocolError(f"integer field value {value} is outside the int64 range")
        return f"{value}i"
    return f'"{value.translate(_V1_STR)}"'


def to_v1(line: str) -> str:
    """A journal line as InfluxDB 1.x line protocol; LineProtocolError when 1.x cannot carry it."""
    if "\\" not in line:
        return line  # nothing is escaped differently
    measurement, tags, fields, ts = parse_line(line)
    parts = [_v1_name("measurement", measurement, _V1_MEAS, _V1_UNSAFE_MEAS)]
    for k in sorted(tags):
        key = _v1_name("tag key", k, _V1_KEY, _V1_UNSAFE_KEY)
        parts.append(f",{key}={_v1_name(f'tag {k!r}', tags[k], _V1_KEY, _V1_UNSAFE_KEY)}")
    body = ",".join(
        f"{_v1_name('field key', k, _V1_KEY, _V1_UNSAFE_KEY)}={_v1_field(v)}"
        for k, v in fields.items()
    )
    tail = f" {ts}" if ts is not None else ""
    return f"{''.join(parts)} {body}{tail}"


# -- the sink -----------------------------------------------------------------------------------


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

    def writer(self, timeout_s: float) -> Writer:
        if self.config.version == 1:
            return V1Writer(self.config, timeout_s)
        return V2Writer(self.config, timeout_s)

    async def run(self) -> None:
        async with self.writer(self.config.timeout_s) as writer:
            while True:
                batch = await self._next_batch()
                await self._send(writer, batch)

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
                async with asyncio.timeout(remaining):
                    await self.committed.wait()
            except TimeoutError:
                pass

    async def _send(self, writer: Writer, batch: Batch, *, retry: bool = True) -> bool:
        """Write one batch, retrying on 429/5xx/connection errors (unless `retry` is False: then
        False after the first such failure); a batch refused otherwise is quarantined."""
        cfg = self.config
        body, unwritable = writer.prepare(batch.body)
        backoff = cfg.retry_min_s
        while body:
            try:
                await writer.write(body)
                break
            except HttpRefused as e:
                if e.retryable:
                    delay = e.retry_after or backoff
                    self._failed(f"HTTP {e.status}: {e.message}", delay)
                    if not retry:
                        return False
                else:
                    # The server will never take this batch as it is: keep it aside, move on.
                    await self._quarantine(batch, e.status, e.message, batch.body, batch.count)
                    return True
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                self._failed(f"{type(e).__name__}: {e}", backoff)
                if not retry:
                    return False
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, cfg.retry_max_s)
        if unwritable:
            why = "; ".join(sorted({reason for _, reason in unwritable}))[:2000]
            lines = "\n".join(line for line, _ in unwritable)
            await self._quarantine(batch, 0, why, lines, len(unwritable))
        else:
            await asyncio.to_thread(self.journal.advance, self.name, batch.last_id)
            self.position = batch.last_id
        self.counters.forwarded += batch.count - len(unwritable)
        if body:
            if not self.connected:
                log.info("InfluxDB writes succeeding", extra={"url": cfg.url})
            self.connected = True
        return True

    async def _quarantine(
        self, batch: Batch, status: int, message: str, body: str, count: int
    ) -> None:
        """Keep rows InfluxDB will never take, with the reason, and move the cursor past them."""
        await asyncio.to_thread(
            self.journal.quarantine,
            self.name,
            batch.first_id,
            batch.last_id,
            status,
            message,
            body,
        )
        self.counters.quarantined += count
        self.position = batch.last_id
        log.error(
            "InfluxDB cannot take rows; quarantined",
            extra={"status": status, "rows": count, "server_message": message},
        )

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
        async with self.writer(max(1.0, timeout_s)) as writer:
            while time.monotonic() < deadline:
                batch = await asyncio.to_thread(
                    self.journal.read_batch, self.position, cfg.batch_size
                )
                if batch is None:
                    return True
                try:
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        sent = await self._send(writer, batch, retry=self.connected)
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


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(e: ApiException) -> float | None:
    headers: Any = e.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    return _float(value)
