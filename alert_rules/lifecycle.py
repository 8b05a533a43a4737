"""ISA-18.2 alert lifecycle: the state machine, operator actions and time-driven transitions.

    normal --activate--> unacknowledged --ack--> acknowledged --clear--> normal
                           |                        +-(latching)--> acknowledged until closed
                           +--clear--> rtn_unacknowledged --ack--> normal (latching: acknowledged)
    shelved / suppressed / out_of_service hide an alert; the condition is still tracked, and on
    leaving them it comes back unacknowledged if still active, otherwise it ends (normal).

One open alert per (rule, source, cycle): a new activation while one is open re-activates it.
Alarms that judge a production cycle (f0, hold, the cycle verdict) carry the cycle's id, so each
failed load has an alert of its own; every other alarm has cycle None.
Every change is written to the store (alerts + alert_log) and returned as an AlertEvent.
`listeners` see each event as it is logged, inside the store's open transaction: the notifiers'
outbox (gateway/notifiers/outbox.py) writes its rows there, so they commit with the transition.
Operator actions return old and new records for the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alert_rules.clock import Clock
from alert_rules.config import CompiledRule
from alert_rules.context import EvalContext
from alert_rules.model import (
    ActionResult,
    Alert,
    AlertActionError,
    AlertEvent,
    AlertKey,
    AlertNotFound,
    AlertState,
    EventKind,
)
from alert_rules.store import AlertStore
from alert_rules.units import fmt_duration, to_ns
from gateway.core.i18n import Text

S = AlertState
_HIDDEN = (S.SHELVED, S.SUPPRESSED, S.OUT_OF_SERVICE)
_ANNUNCIATED = (S.UNACKNOWLEDGED, S.ACKNOWLEDGED, S.RTN_UNACKNOWLEDGED)
SYSTEM = "system"

EventListener = Callable[[AlertEvent, int], None]
"""Called with each event and its transition id (the alert_log row) before the commit."""


class AlertManager:
    def __init__(
        self,
        store: AlertStore,
        clock: Clock,
        rules: Callable[[str], CompiledRule | None],
        retrospective_after_ns: int,
        max_shelve_ns: int,
        escalate_after_ns: int,
        max_tier: int,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rules = rules
        self.retro_ns = retrospective_after_ns
        self.max_shelve_ns = max_shelve_ns
        self.escalate_after_ns = escalate_after_ns
        self.max_tier = max_tier
        self.open: dict[AlertKey, Alert] = {}
        self.by_id: dict[int, Alert] = {}
        for a in store.open_alerts():
            self.open[a.key] = a
            self.by_id[a.id] = a
        self.last_activation = store.last_activations()
        self.oos = store.out_of_service()
        self.suppressed = {
            (a.rule, a.source) for a in self.open.values() if a.state is S.SUPPRESSED
        }
        self.events: list[AlertEvent] = []
        self.listeners: list[EventListener] = []
        """Told of every event (engine and operator actions alike) inside the transaction."""
        self.excursion_starts: dict[AlertKey, int] = {}
        """Start of each active alert's current excursion (a re-activation starts a new one)."""

    # -- helpers -----------------------------------------------------------------------------
    def take_events(self) -> list[AlertEvent]:
        ev, self.events = self.events, []
        return ev

    def _emit(
        self,
        kind: EventKind,
        alert: Alert,
        old: AlertState | None,
        at_ns: int,
        wall_ns: int,
        by: str | None = None,
        reason: str | None = None,
        annunciate: bool | None = None,
        queue: bool = True,
        excursion_start_ns: int | None = None,
        value: float | None = None,
    ) -> AlertEvent:
        if annunciate is None:
            annunciate = alert.state in _ANNUNCIATED
        if kind is not EventKind.RAISED:  # a raised alert was just inserted as it is
            self.store.update_alert(alert)
        transition = self.store.log(alert, kind, old, at_ns, wall_ns, by, reason, annunciate)
        event = AlertEvent(
            kind,
            alert.copy(),
            old,
            alert.state,
            at_ns,
            wall_ns,
            by,
            reason,
            annunciate,
            excursion_start_ns,
            value,
        )
        for listener in self.listeners:
            listener(event, transition)
        if queue:  # operator actions hand their event back in the ActionResult instead
            self.events.append(event)
        return event

    def _finish(self, alert: Alert) -> None:
        self.open.pop(alert.key, None)
        self.by_id.pop(alert.id, None)

    def _hidden_state(self, rule: str, source: str) -> AlertState | None:
        """Out of service or suppressed: the state of the point (rule x source), any cycle."""
        if (rule, source) in self.oos or ("*", source) in self.oos:
            return S.OUT_OF_SERVICE
        if (rule, source) in self.suppressed:
            return S.SUPPRESSED
        return None

    def _get(self, alert_id: int) -> Alert:
        alert = self.by_id.get(alert_id) or self.store.get_alert(alert_id)
        if alert is None:
            raise AlertNotFound(alert_id)
        return alert

    # -- from evaluators (ctx: the engine's evaluation context) -------------------------------
    def activate(
        self,
        ctx: EvalContext,
        rule: CompiledRule,
        source: str,
        started: int,
        at: int,
        value: float | None,
        peak: float | None,
        message: Text,
        series: str,
        tags: dict[str, str],
        cycle_id: int | None = None,
    ) -> None:
        key = (rule.id, source, cycle_id)
        if at <= self.last_activation.get(key, -1):
            return  # already recorded: a replay of the journal after a restart
        self.last_activation[key] = at
        wall = ctx.wall_ns
        retro = at < ctx.received_ns - self.retro_ns
        alert = self.open.get(key)
        if alert is None:
            alert = Alert(
                id=0,
                rule=rule.id,
                source=source,
                severity=rule.priority,
                kind=rule.kind,
                state=self._hidden_state(rule.id, source) or S.UNACKNOWLEDGED,
                active=True,
                started_at=started,
                raised_at=at,
                activated_at=at,
                detected_at=wall,
                message=str(message),
                text=message.to_json(),
                value=value,
                peak=peak,
                retrospective=retro,
                latching=rule.latching,
                series=series,
                field=rule.field or "",
                tags=dict(tags),
                cycle_id=cycle_id,
            )
            self.store.insert_alert(alert)
            self.open[key] = alert
            self.by_id[alert.id] = alert
            self.excursion_starts[key] = started
            self._emit(
                EventKind.RAISED, alert, None, at, wall, excursion_start_ns=started, value=value
            )
            return
        alert.value, alert.peak = value, peak
        alert.message, alert.text = str(message), message.to_json()
        if alert.active:  # state restored from an older snapshot: nothing new happened
            self.store.update_alert(alert)
            return
        old = alert.state
        alert.active = True
        alert.activations += 1
        alert.activated_at = at
        alert.detected_at = wall
        alert.ended_at = alert.cleared_at = None
        alert.retrospective = alert.retrospective or retro
        if old not in _HIDDEN:
            alert.state = S.UNACKNOWLEDGED
            alert.tier = 0
            alert.escalated_at = None
        self.excursion_starts[key] = started
        self._emit(
            EventKind.REACTIVATED, alert, old, at, wall, excursion_start_ns=started, value=value
        )

    def clear(
        self,
        ctx: EvalContext,
        rule: CompiledRule,
        source: str,
        ended: int,
        at: int,
        value: float | None,
        peak: float | None,
        cycle_id: int | None = None,
    ) -> None:
        key = (rule.id, source, cycle_id)
        alert = self.open.get(key)
        if alert is None or not alert.active:
            return
        # after a restart only the first excursion's start is on record
        start = self.excursion_starts.pop(key, None)
        if start is None:
            start = alert.started_at if alert.activations == 1 else alert.activated_at
        old = alert.state
        alert.active = False
        alert.ended_at, alert.cleared_at = ended, at
        if peak is not None:
            alert.peak = peak
        if old is S.UNACKNOWLEDGED:
            alert.state = S.RTN_UNACKNOWLEDGED
        elif old is S.ACKNOWLEDGED and not alert.latching:
            alert.state = S.NORMAL
            self._finish(alert)
        self._emit(
            EventKind.CLEARED,
            alert,
            old,
            at,
            ctx.wall_ns,
            annunciate=old in _ANNUNCIATED,
            excursion_start_ns=start,
            value=value,
        )

    def set_suppressed(
        self, ctx: EvalContext, rule: CompiledRule, source: str, on: bool, at: int
    ) -> None:
        """Suppressed-by-design (e.g. during CIP): hides the point's alert while `on`."""
        point = (rule.id, source)
        if on:
            self.suppressed.add(point)
        else:
            self.suppressed.discard(point)
        for alert in [a for a in self.open.values() if (a.rule, a.source) == point]:
            old = alert.state
            if on and old in _ANNUNCIATED:
                alert.state = S.SUPPRESSED
                self._emit(EventKind.SUPPRESSED, alert, old, at, ctx.wall_ns, annunciate=False)
            elif not on and old is S.SUPPRESSED:
                self._unhide(alert, ctx.wall_ns)
                self._emit(EventKind.UNSUPPRESSED, alert, old, at, ctx.wall_ns)

    def _unhide(self, alert: Alert, wall_ns: int) -> None:
        """Leave shelved / suppressed / out of service; `wall_ns`: now, the new detected_at."""
        hidden = self._hidden_state(alert.rule, alert.source)
        if hidden is not None:
            alert.state = hidden
        elif alert.active:
            alert.state = S.UNACKNOWLEDGED
            alert.tier = 0
            alert.escalated_at = None
            alert.detected_at = wall_ns
        else:
            alert.state = S.NORMAL
            self._finish(alert)

    # -- operator actions (the API calls these) ----------------------------------------------
    def _act(
        self,
        alert: Alert,
        kind: EventKind,
        fn: Callable[[Alert], None],
        by: str,
        reason: str | None,
    ) -> ActionResult:
        before = alert.copy()
        now = self.clock.now_ns()
        fn(alert)
        if alert.state is S.NORMAL:
            self._finish(alert)
        event = self._emit(kind, alert, before.state, now, now, by, reason, queue=False)
        self.store.commit()
        return ActionResult(before, alert.copy(), event)

    def ack(self, alert_id: int, by: str, comment: str | None = None) -> ActionResult:
        alert = self._get(alert_id)
        old = alert.state
        if old is S.UNACKNOWLEDGED:
            new = S.ACKNOWLEDGED
        elif old is S.RTN_UNACKNOWLEDGED:
            new = S.ACKNOWLEDGED if alert.latching else S.NORMAL
        else:
            raise AlertActionError(
                f"alert {alert_id} is {old}: only unacknowledged alerts can be acknowledged"
            )
        now = self.clock.now_ns()

        def do(a: Alert) -> None:
            a.state, a.acked_by, a.acked_at = new, by, now

        return self._act(alert, EventKind.ACKED, do, by, comment)

    def shelve(
        self, alert_id: int, by: str, reason: str, duration_s: float | None = None
    ) -> ActionResult:
        """Hide an alert for at most the rule's maximum shelve time; it unshelves itself."""
        alert = self._get(alert_id)
        rule = self.rules(alert.rule)
        if rule is not None and not rule.shelvable:
            raise AlertActionError(f"rule {alert.rule} may not be shelved")
        if not reason or not reason.strip():
            raise AlertActionError("shelving needs a reason")
        if alert.state not in _ANNUNCIATED:
            raise AlertActionError(f"alert {alert_id} is {alert.state}: cannot shelve it")
        limit = rule.max_shelve_ns if rule is not None else self.max_shelve_ns
        dur = to_ns(duration_s) if duration_s is not None else limit
        if dur <= 0:
            raise AlertActionError("shelve duration must be positive")
        if dur > limit:
            raise AlertActionError(
                f"shelve duration {fmt_duration(dur / 1e9)} exceeds the "
                f"maximum {fmt_duration(limit / 1e9)}"
            )
        now = self.clock.now_ns()

        def do(a: Alert) -> None:
            a.state = S.SHELVED
            a.shelved_by, a.shelved_at, a.shelved_until, a.shelve_reason = (
                by,
                now,
                now + dur,
                reason,
            )

        return self._act(alert, EventKind.SHELVED, do, by, reason)

    def unshelve(self, alert_id: int, by: str, reason: str | None = None) -> ActionResult:
        alert = self._get(alert_id)
        if alert.state is not S.SHELVED:
            raise AlertActionError(f"alert {alert_id} is {alert.state}, not shelved")

        def do(a: Alert) -> None:
            a.shelved_until = None
            self._unhide(a, self.clock.now_ns())

        return self._act(alert, EventKind.UNSHELVED, do, by, reason)

    def close(self, alert_id: int, by: str, reason: str) -> ActionResult:
        """QA closure (and reset of a latched alarm); only once the condition has cleared."""
        alert = self._get(alert_id)
        if alert.closed_at is not None:
            raise AlertActionError(f"alert {alert_id} was already closed by {alert.closed_by}")
        if alert.active:
            raise AlertActionError(
                f"alert {alert_id} is still active: it can be closed once "
                "its condition has returned to normal"
            )
        if not reason or not reason.strip():
            raise AlertActionError("closing needs a reason")
        now = self.clock.now_ns()

        def do(a: Alert) -> None:
            a.state = S.NORMAL
            a.closed_by, a.closed_at, a.close_reason = by, now, reason

        return self._act(alert, EventKind.CLOSED, do, by, reason)

    def set_out_of_service(
        self, source: str, by: str, reason: str, out: bool = True, rule: str = "*"
    ) -> list[ActionResult]:
        """Take one rule ('*' = all) on a source out of service (maintenance) or back."""
        if not reason or not reason.strip():
            raise AlertActionError("out-of-service changes need a reason")
        now = self.clock.now_ns()
        self.store.set_out_of_service(rule, source, out, by, reason, now)
        if out:
            self.oos.add((rule, source))
        else:
            self.oos.discard((rule, source))
        results = []
        for (r, src, _cycle), alert in list(self.open.items()):
            if src != source or (rule != "*" and r != rule):
                continue
            before = alert.copy()
            if out and alert.state is not S.OUT_OF_SERVICE:
                alert.state = S.OUT_OF_SERVICE
                ev = self._emit(
                    EventKind.OUT_OF_SERVICE,
                    alert,
                    before.state,
                    now,
                    now,
                    by,
                    reason,
                    annunciate=False,
                    queue=False,
                )
            elif not out and alert.state is S.OUT_OF_SERVICE:
                self._unhide(alert, self.clock.now_ns())
                ev = self._emit(
                    EventKind.IN_SERVICE, alert, before.state, now, now, by, reason, queue=False
                )
            else:
                continue
            results.append(ActionResult(before, alert.copy(), ev))
        self.store.commit()
        return results

    # -- wall-clock transitions --------------------------------------------------------------
    def tick(self, now: int) -> None:
        """Shelve expiry, escalation of unacknowledged alerts, re-alarm of long-acked ones."""
        for alert in list(self.open.values()):
            state = alert.state
            rule = self.rules(alert.rule)
            if state is S.SHELVED:
                if alert.shelved_until is not None and now >= alert.shelved_until:
                    old = alert.state
                    alert.shelved_until = None
                    self._unhide(alert, now)
                    self._emit(
                        EventKind.UNSHELVED,
                        alert,
                        old,
                        now,
                        now,
                        SYSTEM,
                        "maximum shelve time reached",
                    )
            elif state is S.UNACKNOWLEDGED or state is S.RTN_UNACKNOWLEDGED:
                after = rule.escalate_after_ns if rule is not None else self.escalate_after_ns
                since = alert.escalated_at or alert.detected_at
                if alert.tier < self.max_tier and now - since >= after:
                    alert.tier += 1
                    alert.escalated_at = now
                    self._emit(
                        EventKind.ESCALATED,
                        alert,
                        state,
                        now,
                        now,
                        SYSTEM,
                        f"not acknowledged within {fmt_duration(after / 1e9)}",
                    )
            elif state is S.ACKNOWLEDGED and alert.active and rule is not None:
                re = rule.realarm_after_ns
                if re and alert.acked_at is not None and now - alert.acked_at >= re:
                    alert.state = S.UNACKNOWLEDGED
                    alert.tier = 0
                    alert.escalated_at = None
                    alert.detected_at = now
                    self._emit(
                        EventKind.REALARMED,
                        alert,
                        state,
                        now,
                        now,
                        SYSTEM,
                        f"still active {fmt_duration(re / 1e9)} after acknowledgement",
                    )

    def counts(self) -> dict[str, Any]:
        out: dict[str, int] = {}
        for a in self.open.values():
            out[str(a.state)] = out.get(str(a.state), 0) + 1
        return out
