"""The Notifier: stores every notification in the durable outbox inside the alert transition's
own transaction, and delivers it through each channel's worker, retried with backoff.

- `enqueue(event, transition)` is an AlertManager listener (`attach`): it routes the event and
  writes one outbox row per delivery, synchronously and without I/O beyond that insert, before
  the store commits the transition. A channel holding `max_queue` notifications already
  refuses the new one: counted as dropped, logged as an error naming the alert, and recorded in
  the alert's history.
- One worker per channel, in order: a dead mail server delays mail only, never the SMS, the
  MQTT state or ingest. A row is deleted once delivered, refused for good, or given up after
  `give_up_after_s` (counted from when it was stored, across restarts); every outcome goes to
  the alert's history (`notification_log`) and, sent / failed / gave up, to the audit trail.
- After a restart the rows left in the outbox go out first, with the same idempotency keys.
  MQTT first re-publishes the state of the open alerts and clears what ended meanwhile.
- A channel whose attempts keep failing (`alarm_after_failures` in a row) writes
  `notifier_failing` = 1 in a `vigil_gateway` reading (device `notifier:<channel>`); the
  gateway_health rules raise an alert from it, routed like any alert but never through the
  failing channel itself. The next success writes 0 and the alert clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alert_rules.lifecycle import AlertManager
from alert_rules.model import AlertEvent, AlertState, EventKind
from alert_rules.store import AlertStore
from gateway.core.metrics import Counters, Stats
from gateway.core.reading import Reading
from gateway.core.schema import GATEWAY
from gateway.core.supervisor import raise_if_cancelled
from gateway.notifiers.aliyun_sms import AliyunSmsSender
from gateway.notifiers.base import Delivery, PermanentError, Sender, TransientError
from gateway.notifiers.config import (
    AliyunSmsChannel,
    DingTalkChannel,
    EmailChannel,
    ModbusOutputChannel,
    MqttChannel,
    NotifiersConfig,
    TencentSmsChannel,
    WebhookChannel,
    WeComChannel,
    _Delivery,
)
from gateway.notifiers.dingtalk import DingTalkSender
from gateway.notifiers.modbus_output import ModbusOutput
from gateway.notifiers.mqtt import MqttLink, MqttSender
from gateway.notifiers.outbox import (
    DROPPED,
    FAILED,
    GAVE_UP,
    SENT,
    SUPERSEDED,
    Outbox,
    OutboxRow,
    delivery_key,
    event_to_json,
)
from gateway.notifiers.router import Router
from gateway.notifiers.smtp import EmailSender
from gateway.notifiers.tencent_sms import TencentSmsSender
from gateway.notifiers.webhook import WebhookSender
from gateway.notifiers.wecom import WeComSender
from gateway.records.audit import AuditTrail

log = logging.getLogger("vigil.notifiers")

HealthSink = Callable[[list[Reading]], Awaitable[None]]
"""Where a channel's `notifier_failing` readings go (the journal writer, internal=True)."""
AUDITED = frozenset({SENT, FAILED, GAVE_UP, DROPPED})


class NotifierSetupError(Exception):
    """The notifiers cannot start (a secret missing from the environment, no broker)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(slots=True)
class ChannelStats(Stats):
    sent: int = 0
    failed: int = 0
    """Refused for good (a permanent error)."""
    gave_up: int = 0
    """Still failing after `give_up_after_s`."""
    retried: int = 0
    dropped: int = 0
    """Refused because the channel's outbox was full (notifications_dropped)."""
    superseded: int = 0
    """MQTT state replaced by a newer state of the same alert before it went out."""
    failing: int = 0
    """1 while the channel's attempts keep failing (its notifier_failing alarm)."""


def health_reading(gateway: str, channel: str, failing: bool, failures: int) -> Reading:
    return Reading(
        GATEWAY.name,
        {"gateway": gateway, "device": f"notifier:{channel}"},
        {"notifier_failing": 1.0 if failing else 0.0, "notifier_failures": float(failures)},
        time.time_ns(),
    )


class Channel:
    """Health bookkeeping every channel shares: counts, and the failing alarm."""

    def __init__(self, name: str, config: _Delivery, notifier: Notifier) -> None:
        self.name = name
        self.config = config
        self.notifier = notifier
        self.stats = ChannelStats()
        self.failures = 0
        """Failed attempts in a row."""
        self.failing: bool | None = None

    async def result(self, ok: bool, detail: str = "") -> None:
        if ok:
            self.failures = 0
            if self.failing is not False:
                await self._health(False)
            return
        self.failures += 1
        if self.failures >= self.config.alarm_after_failures and self.failing is not True:
            log.error(
                "notification channel keeps failing",
                extra={"channel": self.name, "failures": self.failures, "error": detail},
            )
            await self._health(True)

    async def _health(self, failing: bool) -> None:
        self.failing = failing
        self.stats.failing = int(failing)
        sink = self.notifier.health
        if sink is None:
            return
        try:
            await sink([health_reading(self.notifier.gateway, self.name, failing, self.failures)])
        except Exception:  # the alarm path must not stop the channel
            log.exception("channel health reading failed", extra={"channel": self.name})


class OutboxChannel(Channel):
    """One named channel delivering from the outbox: its sender and its worker loop."""

    def __init__(
        self, name: str, config: _Delivery, sender: Sender, outbox: Outbox, notifier: Notifier
    ) -> None:
        super().__init__(name, config, notifier)
        self.sender = sender
        self.outbox = outbox
        self.waiting = outbox.count(name)
        """Rows of this channel in the outbox (delivered ones are deleted)."""
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        if not self.waiting:
            self.idle.set()
        self._retry: dict[int, tuple[float, float]] = {}
        """Row id → (monotonic time of its next attempt, the backoff after that one)."""
        self._deliveries: dict[int, Delivery] = {}
        """Rows attempted and not finished: their rendered body and progress."""

    # -- storing (sync, inside the alert transition's transaction) ----------------------------
    def offer(
        self,
        event: AlertEvent,
        transition: int,
        recipients: tuple[str, ...],
        now_ns: int,
        doc: str | None = None,
    ) -> None:
        """Store the event's deliveries (`doc`: the event already serialised)."""
        coalesce = self.sender.key(event)
        for unit in self.sender.units(recipients):
            key = delivery_key(self.notifier.gateway, event.alert.id, transition, self.name, unit)
            full = self.waiting >= self.config.max_queue
            if full and (coalesce is None or not self.outbox.waits(self.name, coalesce)):
                self._drop(event, transition, unit, key, now_ns)
                continue
            replaced = self.outbox.add(
                key, self.name, coalesce, event, transition, unit, now_ns, doc
            )
            for old in replaced:
                self.stats.superseded += 1
                self.outbox.log(
                    old, SUPERSEDED, f"replaced by the state after {event.kind}", now_ns
                )
            self.waiting += 1 - len(replaced)
        self.idle.clear()
        self.wake.set()

    def _drop(
        self, event: AlertEvent, transition: int, unit: tuple[str, ...], key: str, now_ns: int
    ) -> None:
        self.stats.dropped += 1
        a = event.alert
        why = f"channel outbox full ({self.config.max_queue} waiting)"
        log.error(
            "notification dropped: channel outbox full",
            extra={
                "channel": self.name,
                "alert_id": a.id,
                "rule": a.rule,
                "source": a.source,
                "event": str(event.kind),
                "queued": self.waiting,
                "dropped": self.stats.dropped,
            },
        )
        row = OutboxRow(0, key, self.name, a.id, transition, event, unit, now_ns, 0, None)
        self.outbox.log(row, DROPPED, why, now_ns)
        self.notifier.audit_later(row, DROPPED, why)

    # -- delivering ---------------------------------------------------------------------------
    async def work(self) -> None:
        """Attempt the oldest waiting row that is due; a row waiting out its backoff does not
        hold up the rows behind it (one SMS number under flow control, the others go out),
        except those of the same alert for the same recipients, which keep their order."""
        await self.prepare()
        while True:
            waiting = self.outbox.heads(self.name)
            ids = [i for i, _ in waiting]
            self.waiting = len(ids)
            if not ids:
                self._retry.clear()
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            now = time.monotonic()
            for gone in set(self._retry) - set(ids):  # delivered or superseded meanwhile
                del self._retry[gone]
            first_of: dict[str, int] = {}
            for i, who in waiting:
                first_of.setdefault(who, i)
            due = next(
                (
                    i
                    for i, who in waiting
                    if first_of[who] == i and self._retry.get(i, (0.0, 0.0))[0] <= now
                ),
                None,
            )
            if due is None:
                soonest = min((at for at, _ in self._retry.values()), default=now + 1.0)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, soonest - now)):
                        await self.wake.wait()
                continue
            row = self.outbox.get(due)
            if row is not None:
                await self.attempt(row)
                raise_if_cancelled()  # a channel's library may have swallowed our stop

    async def prepare(self) -> None:
        """MQTT: bring the broker's retained state in line with the alert store first."""
        if not isinstance(self.sender, MqttSender):
            return
        delay = self.config.retry_min_s
        while True:
            before = self.outbox.ids(self.name)
            try:
                n = self.notifier
                published, cleared = await self.sender.sync(
                    n.open_states(self.name), n.language, n.timezone
                )
            except TransientError as e:
                self.stats.retried += 1
                await self.result(False, str(e))
                log.warning("retained alert state not synced; retrying", extra={"error": str(e)})
                await asyncio.sleep(delay * random.uniform(0.9, 1.1))
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            await self.result(True)
            now = time.time_ns()
            for row_id in before:  # what waited is covered by the state just published
                row = self.outbox.get(row_id)
                if row is not None:
                    self.stats.superseded += 1
                    self.outbox.finish(row, SUPERSEDED, "re-published from the alert store", now)
            self.waiting = self.outbox.count(self.name)
            log.info(
                "retained alert state synced with the alert store",
                extra={"channel": self.name, "published": published, "cleared": cleared},
            )
            return

    async def attempt(self, row: OutboxRow) -> None:
        """Send once; on a transient error keep the row and schedule its next attempt."""
        cfg = self.config
        d = self._deliveries.get(row.id)
        if d is None:
            d = self._deliveries[row.id] = Delivery(
                row.event, row.recipients, row.key, row.created_ns, row.attempts
            )
            d.lang, d.tz = self.notifier.language, self.notifier.timezone
        d.attempts += 1
        row.attempts = d.attempts
        try:
            answer = await self.sender.send(d)
        except TransientError as e:
            error: TransientError = e
        except PermanentError as e:
            await self._end(row, FAILED, str(e))
            await self.result(False, str(e))
            return
        except Exception as e:  # a bug in a sender must not stop the channel
            log.exception("notifier failed unexpectedly", extra={"channel": self.name})
            await self._end(row, FAILED, f"{type(e).__name__}: {e}")
            await self.result(False, str(e))
            return
        else:
            await self._end(row, SENT, answer)
            await self.result(True)
            return
        await self.result(False, str(error))
        if self.outbox.get(row.id) is None:
            self._forget(row.id)
            return  # superseded by a newer state while in flight
        delay = self._retry.get(row.id, (0.0, cfg.retry_min_s))[1]
        wait = min(max(delay, error.retry_after or 0.0), cfg.retry_max_s)
        wait *= random.uniform(0.9, 1.1)
        limit = cfg.give_up_after_s
        now = time.time_ns()
        if limit is not None and (now - row.created_ns) / 1e9 + wait > limit:
            await self._end(row, GAVE_UP, f"still failing after {d.attempts} attempts: {error}")
            return
        self.stats.retried += 1
        self.outbox.attempt_failed(row, str(error), now)
        self._retry[row.id] = (time.monotonic() + wait, min(delay * 2, cfg.retry_max_s))
        log.warning(
            "notification failed; retrying",
            extra={
                "channel": self.name,
                "alert_id": row.alert_id,
                "attempt": d.attempts,
                "retry_in_s": round(wait, 2),
                "error": str(error),
            },
        )

    def _forget(self, row_id: int) -> None:
        self._retry.pop(row_id, None)
        self._deliveries.pop(row_id, None)

    async def _end(self, row: OutboxRow, outcome: str, detail: str) -> None:
        self._forget(row.id)
        self.outbox.finish(row, outcome, detail, time.time_ns())
        self.waiting = max(0, self.waiting - 1)
        if outcome == SENT:
            self.stats.sent += 1
            if row.attempts > 1:
                log.info(
                    "notification delivered after retries",
                    extra={"channel": self.name, "attempts": row.attempts},
                )
        else:
            if outcome == GAVE_UP:
                self.stats.gave_up += 1
            else:
                self.stats.failed += 1
            log.error(
                "notification failed",
                extra={
                    "channel": self.name,
                    "alert_id": row.alert_id,
                    "event": str(row.event.kind),
                    "attempts": row.attempts,
                    "outcome": outcome,
                    "error": detail,
                },
            )
        self.notifier.audit_later(row, outcome, detail)


class OutputChannel(Channel):
    """A modbus_output channel: the siren follows the alert store (no outbox)."""

    def __init__(self, name: str, config: ModbusOutputChannel, notifier: Notifier) -> None:
        super().__init__(name, config, notifier)
        self.output = ModbusOutput(name, config, self._on_write)

    async def _on_write(self, ok: bool, detail: str) -> None:
        if ok:
            self.stats.sent += 1
        else:
            self.stats.retried += 1
        await self.result(ok, detail)


class Notifier:
    """Routes alert events to channels through the outbox; see the module docstring.

    Construct with the validated config, the alert store (the outbox lives in its file), the
    link to the gateway's broker (for mqtt channels) and the gateway's name; secrets are read
    from `env` (default: the process environment) now, so a missing one stops the start with a
    clear message instead of failing the first alarm. `attach(engine.alerts)` makes every alert
    transition store its notifications.
    """

    def __init__(
        self,
        config: NotifiersConfig,
        store: AlertStore,
        mqtt: MqttLink | None = None,
        *,
        gateway: str = "vigil",
        env: Mapping[str, str] | None = None,
        counters: Counters | None = None,
        audit: AuditTrail | None = None,
        health: HealthSink | None = None,
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
        self.store = store
        self.gateway = gateway
        self.audit = audit
        self.health = health
        self.router = Router(config)
        self.outbox = Outbox(store)
        self.channels: dict[str, OutboxChannel] = {}
        self.outputs: dict[str, OutputChannel] = {}
        for name, cfg in config.channels.items():
            sender: Sender
            if isinstance(cfg, ModbusOutputChannel):
                self.outputs[name] = OutputChannel(name, cfg, self)
                continue
            if isinstance(cfg, MqttChannel):
                assert mqtt is not None
                sender = MqttSender(name, cfg, mqtt, gateway)
            elif isinstance(cfg, WebhookChannel):
                sender = WebhookSender(name, cfg, env[cfg.secret_env], gateway)
            elif isinstance(cfg, EmailChannel):
                password = env[cfg.password_env] if cfg.password_env else None
                sender = EmailSender(name, cfg, password, gateway)
            elif isinstance(cfg, AliyunSmsChannel):
                key_id, secret = env[cfg.access_key_id_env], env[cfg.access_key_secret_env]
                sender = AliyunSmsSender(name, cfg, key_id, secret, gateway)
            elif isinstance(cfg, TencentSmsChannel):
                sid, skey = env[cfg.secret_id_env], env[cfg.secret_key_env]
                sender = TencentSmsSender(name, cfg, sid, skey, gateway)
            elif isinstance(cfg, DingTalkChannel):
                token, secret = env[cfg.access_token_env], env[cfg.secret_env]
                sender = DingTalkSender(name, cfg, token, secret, gateway)
            elif isinstance(cfg, WeComChannel):
                sender = WeComSender(name, cfg, env[cfg.key_env], gateway)
            else:  # pragma: no cover - the discriminated union has no other kinds
                raise TypeError(cfg)
            self.channels[name] = OutboxChannel(name, cfg, sender, self.outbox, self)
        for name, out in self.outputs.items():
            out.output.seed(a for a in store.open_alerts() if self.router.carries(name, a))
        self._audits: list[tuple[OutboxRow, str, str]] = []
        self._audit_wake = asyncio.Event()
        if counters is not None:
            for name, ch in self.all_channels.items():
                counters.register(f"notifier:{name}", ch.stats)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def all_channels(self) -> dict[str, Channel]:
        return {**self.channels, **self.outputs}

    def attach(self, alerts: AlertManager) -> None:
        """Store the notifications of every transition alongside it (AlertManager listener)."""
        alerts.listeners.append(self.enqueue)

    def detach(self, alerts: AlertManager) -> None:
        """Stop storing notifications (a reload replaces this notifier by another)."""
        if self.enqueue in alerts.listeners:
            alerts.listeners.remove(self.enqueue)

    # -- the rules side (sync, inside the store's transaction) --------------------------------
    def enqueue(self, event: AlertEvent, transition: int) -> None:
        """Store the event's deliveries for every channel its routes name. Never blocks on
        the network; a failure here is logged, never raised into the rules engine."""
        try:
            plan = self.router.plan(event)
        except Exception:
            log.exception("routing an alert event failed", extra={"event": str(event.kind)})
            return
        now = time.time_ns()
        doc: str | None = None
        for name, recipients in plan.items():
            try:
                if name in self.outputs:
                    self.outputs[name].output.observe(event)
                    continue
                if doc is None:
                    doc = event_to_json(event)
                self.channels[name].offer(event, transition, recipients, now, doc)
            except Exception:
                log.exception(
                    "storing a notification failed",
                    extra={"channel": name, "alert_id": event.alert.id},
                )

    def open_states(self, channel: str) -> dict[str, AlertEvent]:
        """{topic: latest event} of the open alerts an mqtt channel carries, from the store."""
        ch = self.channels[channel]
        assert isinstance(ch.sender, MqttSender)
        out: dict[str, AlertEvent] = {}
        for a in self.store.open_alerts():
            if not self.router.carries(channel, a):
                continue
            last: dict[str, Any] = (self.store.history(a.id) or [{}])[-1]
            event = AlertEvent(
                EventKind(last.get("kind", EventKind.RAISED)),
                a,
                AlertState(last["old_state"]) if last.get("old_state") else None,
                a.state,
                int(last.get("at_ns", a.raised_at)),
                int(last.get("wall_ns", a.detected_at)),
                last.get("by"),
                last.get("reason"),
                bool(last.get("annunciated", True)),
            )
            out[ch.sender.key(event)] = event
        return out

    def history(self, alert_id: int) -> list[dict[str, Any]]:
        """Delivery results of an alert's notifications (the API shows them in its history)."""
        return self.outbox.history(alert_id)

    # -- the audit trail ----------------------------------------------------------------------
    def audit_later(self, row: OutboxRow, outcome: str, detail: str) -> None:
        if self.audit is not None and outcome in AUDITED:
            self._audits.append((row, outcome, detail))
            self._audit_wake.set()

    async def _audit_loop(self) -> None:
        while True:
            await self._audit_wake.wait()
            self._audit_wake.clear()
            await self._write_audits()

    async def _write_audits(self) -> None:
        audit = self.audit
        while self._audits and audit is not None:
            row, outcome, detail = self._audits.pop(0)
            new = {
                "channel": row.channel,
                "recipients": list(row.recipients),
                "key": row.key,
                "event": str(row.event.kind),
                "transition": row.transition,
                "attempts": row.attempts,
                "answer": detail,
            }
            try:
                await asyncio.to_thread(
                    audit.record,
                    "system",
                    f"notification.{outcome}",
                    "alert",
                    row.alert_id,
                    None,
                    new,
                    None,
                )
            except Exception:
                log.exception("auditing a notification failed", extra={"alert_id": row.alert_id})

    # -- the workers --------------------------------------------------------------------------
    async def run(self) -> None:
        """One worker per channel until close() (or cancellation); run it as a supervised task."""
        self._give_up_orphans()
        self._tasks = [
            asyncio.create_task(self._keep(ch.name, ch.work), name=f"notifier:{ch.name}")
            for ch in self.channels.values()
        ]
        self._tasks += [
            asyncio.create_task(self._keep(o.name, o.output.run), name=f"notifier:{o.name}")
            for o in self.outputs.values()
        ]
        self._tasks.append(asyncio.create_task(self._audit_loop(), name="notifier:audit"))
        try:
            await asyncio.wait(self._tasks)
        finally:
            await self._stop_workers()

    def _give_up_orphans(self) -> None:
        """Rows of channels the config no longer has: nobody is left to deliver them. Done when
        the workers start, so on a reload the notifier being replaced has drained first."""
        now = time.time_ns()
        for row in self.outbox.orphans(set(self.channels)):
            why = f"channel {row.channel!r} is no longer configured"
            log.error("notification given up", extra={"alert_id": row.alert_id, "error": why})
            self.outbox.finish(row, GAVE_UP, why, now)
            self.audit_later(row, GAVE_UP, why)
        self.outbox.commit()

    async def _stop_workers(self, timeout: float = 3.0) -> None:  # noqa: ASYNC109
        """Cancel the workers and wait for them, but not for ever."""
        for t in self._tasks:
            t.cancel()
        if not self._tasks:
            return
        _, stuck = await asyncio.wait(self._tasks, timeout=timeout)
        for t in stuck:  # (a client library swallowing the cancellation): leave it, say where
            where = io.StringIO()
            t.print_stack(file=where)
            log.error(
                "notifier worker did not stop", extra={"task": t.get_name(), "at": where.getvalue()}
            )

    async def _keep(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier worker crashed; restarting", extra={"channel": name})
                await asyncio.sleep(1.0)

    async def close(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 (a drain budget)
        """Give waiting notifications up to `timeout` to go out, then stop the workers and close
        connections. Returns whether everything was delivered; what was not stays in the outbox
        and goes out at the next start. Closing again does nothing."""
        if self._closed:
            return not any(ch.waiting for ch in self.channels.values())
        self._closed = True
        waits = [ch.idle.wait() for ch in self.channels.values() if ch.waiting]
        drained = True
        if waits and self._tasks:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*waits)
            except TimeoutError:
                drained = False
        else:
            for w in waits:
                w.close()
        await self._stop_workers()
        self.outbox.commit()  # what was delivered since the engine's last commit
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self._write_audits()
        for name, ch in self.all_channels.items():
            if isinstance(ch, OutboxChannel):
                closer = ch.sender.close
            else:
                assert isinstance(ch, OutputChannel)
                closer = ch.output.close
            try:
                async with asyncio.timeout(2.0):
                    await closer()
            except Exception:
                log.exception("closing notifier failed", extra={"channel": name})
            if isinstance(ch, OutboxChannel) and ch.waiting:
                drained = False
                log.warning(
                    "notifications left in the outbox at shutdown; they go out at next start",
                    extra={"channel": name, "pending": ch.waiting},
                )
        return drained

    # -- numbers ------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: sent, failed, gave_up, retried, dropped, superseded, failing, queued."""
        out: dict[str, dict[str, int]] = {}
        for n, ch in self.all_channels.items():
            queued = ch.waiting if isinstance(ch, OutboxChannel) else 0
            out[n] = {**ch.stats.snapshot(), "queued": queued}
        return out

    @property
    def notifications_dropped(self) -> int:
        return sum(ch.stats.dropped for ch in self.all_channels.values())

    @property
    def notifications_failed(self) -> int:
        return sum(ch.stats.failed + ch.stats.gave_up for ch in self.all_channels.values())
