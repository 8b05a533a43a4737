"""The Notifier: takes alert events from the rules stage without ever blocking it, and delivers
them through each channel's own worker, retried with backoff.

- `submit(event)` is synchronous and cheap: route, then put into each channel's bounded queue.
  A full queue counts the notification as dropped and logs an error naming the alert; the alert
  itself is in the alert store either way, so the record is complete.
- One worker per channel, in order: a dead mail server delays mail only, never the webhook, the
  MQTT state or ingest. A worker that crashes (a bug) is logged and restarted.
- MQTT state deliveries are coalesced per alert topic: while the broker is down only the latest
  state of each alert waits, so an outage cannot fill the queue with obsolete states.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count
from typing import Literal

from alert_rules.model import AlertEvent
from gateway.core.metrics import Counters, Stats
from gateway.notifiers.base import Delivery, PermanentError, Sender, TransientError
from gateway.notifiers.config import (
    EmailChannel,
    MqttChannel,
    NotifiersConfig,
    WebhookChannel,
    _Delivery,
)
from gateway.notifiers.mqtt import MqttLink, MqttSender
from gateway.notifiers.router import Router
from gateway.notifiers.smtp import EmailSender
from gateway.notifiers.webhook import WebhookSender

log = logging.getLogger("vigil.notifiers")


class NotifierSetupError(Exception):
    """The notifiers cannot start (a secret missing from the environment, no broker)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(slots=True)
class ChannelStats(Stats):
    sent: int = 0
    failed: int = 0
    """Given up on: a permanent error, or still failing after `give_up_after_s`."""
    retried: int = 0
    dropped: int = 0
    """Refused because the channel's queue was full (notifications_dropped)."""
    superseded: int = 0
    """MQTT state replaced by a newer state of the same alert before it went out."""


class DeliveryQueue:
    """Bounded FIFO. Items with a key replace a waiting item with the same key (which moves to
    the back, behind anything queued before the newer state)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[object, Delivery] = OrderedDict()
        self._ready = asyncio.Event()
        self._seq = count()

    def __len__(self) -> int:
        return len(self._items)

    def has(self, key: str) -> bool:
        return key in self._items

    def put(self, d: Delivery) -> Literal["queued", "replaced", "full"]:
        if d.key is not None and d.key in self._items:
            del self._items[d.key]
            self._items[d.key] = d
            return "replaced"
        if len(self._items) >= self.maxsize:
            return "full"
        self._items[d.key if d.key is not None else next(self._seq)] = d
        self._ready.set()
        return "queued"

    def get_nowait(self) -> Delivery | None:
        if not self._items:
            return None
        return self._items.popitem(last=False)[1]

    async def get(self) -> Delivery:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popitem(last=False)[1]


class Channel:
    """One named channel: its queue, its sender and its worker loop."""

    def __init__(self, name: str, config: _Delivery, sender: Sender) -> None:
        self.name = name
        self.config = config
        self.sender = sender
        self.queue = DeliveryQueue(config.max_queue)
        self.stats = ChannelStats()
        self.in_flight: Delivery | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def pending(self) -> int:
        return len(self.queue) + (self.in_flight is not None)

    def offer(self, d: Delivery) -> None:
        outcome = self.queue.put(d)
        if outcome == "full":
            self.stats.dropped += 1
            a = d.event.alert
            log.error(
                "notification dropped: channel queue full",
                extra={
                    "channel": self.name,
                    "alert_id": a.id,
                    "rule": a.rule,
                    "source": a.source,
                    "event": str(d.event.kind),
                    "queued": len(self.queue),
                    "dropped": self.stats.dropped,
                },
            )
            return
        if outcome == "replaced":
            self.stats.superseded += 1
        self.idle.clear()

    async def work(self) -> None:
        while True:
            if not self.queue:
                self.idle.set()
            d = await self.queue.get()
            self.in_flight = d
            try:
                await self.deliver(d)
            finally:
                self.in_flight = None

    async def deliver(self, d: Delivery) -> None:
        cfg = self.config
        delay = cfg.retry_min_s
        while True:
            d.attempts += 1
            try:
                await self.sender.send(d)
            except TransientError as e:
                error: TransientError = e
            except PermanentError as e:
                self._fail(d, str(e))
                return
            except Exception as e:  # a bug in a sender must not stop the channel
                log.exception("notifier failed unexpectedly", extra={"channel": self.name})
                self._fail(d, f"{type(e).__name__}: {e}")
                return
            else:
                self.stats.sent += 1
                if d.attempts > 1:
                    log.info(
                        "notification delivered after retries",
                        extra={"channel": self.name, "attempts": d.attempts},
                    )
                return
            if d.key is not None and self.queue.has(d.key):
                self.stats.superseded += 1  # a newer state of this alert is waiting
                return
            wait = min(max(delay, error.retry_after or 0.0), cfg.retry_max_s)
            wait *= random.uniform(0.9, 1.1)
            limit = cfg.give_up_after_s
            if limit is not None and time.monotonic() - d.queued_at + wait > limit:
                self._fail(d, f"still failing after {d.attempts} attempts: {error}")
                return
            self.stats.retried += 1
            log.warning(
                "notification failed; retrying",
                extra={
                    "channel": self.name,
                    "alert_id": d.event.alert.id,
                    "attempt": d.attempts,
                    "retry_in_s": round(wait, 2),
                    "error": str(error),
                },
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, cfg.retry_max_s)

    def _fail(self, d: Delivery, why: str) -> None:
        self.stats.failed += 1
        a = d.event.alert
        log.error(
            "notification failed",
            extra={
                "channel": self.name,
                "alert_id": a.id,
                "rule": a.rule,
                "event": str(d.event.kind),
                "attempts": d.attempts,
                "error": why,
            },
        )


class Notifier:
    """Routes alert events to channels; see the module docstring.

    Construct with the validated config, the link to the gateway's broker (for mqtt channels)
    and its name; secrets are read from `env` (default: the process environment) now, so a
    missing one stops the start with a clear message instead of failing the first alarm.
    """

    def __init__(
        self,
        config: NotifiersConfig,
        mqtt: MqttLink | None = None,
        *,
        gateway: str = "vigil",
        env: Mapping[str, str] | None = None,
        counters: Counters | None = None,
        language: str = "en",
        timezone: str | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.language = language
        self.timezone = timezone
        problems = config.env_problems(env)
        if mqtt is None and any(isinstance(c, MqttChannel) for c in config.channels.values()):
            problems.append("notifiers.channels: an mqtt channel needs the gateway's mqtt broker")
        if problems:
            raise NotifierSetupError(problems)
        self.config = config
        self.gateway = gateway
        self.router = Router(config)
        self.channels: dict[str, Channel] = {}
        for name, cfg in config.channels.items():
            sender: Sender
            if isinstance(cfg, MqttChannel):
                assert mqtt is not None
                sender = MqttSender(name, cfg, mqtt, gateway)
            elif isinstance(cfg, WebhookChannel):
                sender = WebhookSender(name, cfg, env[cfg.secret_env], gateway)
            elif isinstance(cfg, EmailChannel):
                password = env[cfg.password_env] if cfg.password_env else None
                sender = EmailSender(name, cfg, password, gateway)
            else:  # pragma: no cover - the discriminated union has no other kinds
                raise TypeError(cfg)
            self.channels[name] = Channel(name, cfg, sender)
            if counters is not None:
                counters.register(f"notifier:{name}", self.channels[name].stats)
        self.submitted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- the ingest side ----------------------------------------------------------------------
    def submit(self, event: AlertEvent) -> None:
        """Queue the event for every channel its routes name. Never blocks, never raises."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread and not loop.is_closed():
            loop.call_soon_threadsafe(self.submit, event)
            return
        try:
            plan = self.router.plan(event)
        except Exception:
            log.exception("routing an alert event failed", extra={"event": str(event.kind)})
            return
        if not plan:
            return
        self.submitted += 1
        now = time.monotonic()
        for name, recipients in plan.items():
            ch = self.channels[name]
            d = Delivery(event, recipients, uuid.uuid4().hex, now, ch.sender.key(event))
            d.lang, d.tz = self.language, self.timezone
            if self._closed:
                ch.stats.dropped += 1
                log.error(
                    "notification after shutdown dropped",
                    extra={"channel": name, "alert_id": event.alert.id},
                )
                continue
            ch.offer(d)

    # -- the workers --------------------------------------------------------------------------
    async def run(self) -> None:
        """One worker per channel until close() (or cancellation); run it as a supervised task."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._tasks = [
            asyncio.create_task(self._keep(ch), name=f"notifier:{ch.name}")
            for ch in self.channels.values()
        ]
        try:
            if self._tasks:
                await asyncio.wait(self._tasks)
            else:
                await asyncio.Event().wait()
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _keep(self, ch: Channel) -> None:
        while True:
            try:
                await ch.work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier worker crashed; restarting", extra={"channel": ch.name})
                await asyncio.sleep(1.0)

    async def close(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 (a drain budget)
        """Give queued notifications up to `timeout` to go out, then stop the workers and close
        connections. Returns whether everything was delivered; what was not is logged."""
        self._closed = True
        waits = [ch.idle.wait() for ch in self.channels.values() if ch.pending]
        drained = True
        if waits and self._tasks:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except TimeoutError:
                drained = False
        else:
            for w in waits:
                w.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for ch in self.channels.values():
            try:
                await asyncio.wait_for(ch.sender.close(), 2.0)
            except Exception:
                log.exception("closing notifier failed", extra={"channel": ch.name})
            if ch.pending:
                drained = False
                log.error(
                    "notifications not delivered at shutdown (the alerts are in the alert store)",
                    extra={"channel": ch.name, "pending": ch.pending},
                )
        return drained

    # -- numbers ------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: sent, failed, retried, dropped, superseded, queued."""
        return {n: {**ch.stats.snapshot(), "queued": ch.pending} for n, ch in self.channels.items()}

    @property
    def notifications_dropped(self) -> int:
        return sum(ch.stats.dropped for ch in self.channels.values())

    @property
    def notifications_failed(self) -> int:
        return sum(ch.stats.failed for ch in self.channels.values())
