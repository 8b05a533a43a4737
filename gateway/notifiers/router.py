"""Which channels (and which people on them) hear about an alert event."""

from __future__ import annotations

from alert_rules.model import Alert, AlertEvent, EventKind
from gateway.notifiers.config import (
    NOTIFIER_FAILING_RULE,
    STATE_KINDS,
    NotifiersConfig,
    RouteConfig,
)


def failing_channel(alert: Alert) -> str | None:
    """The channel a `notifier_failing` alert is about (its source is `notifier:<channel>`)."""
    if alert.rule == NOTIFIER_FAILING_RULE and alert.source.startswith("notifier:"):
        return alert.source.removeprefix("notifier:")
    return None


class Router:
    """Pure routing logic over a validated NotifiersConfig.

    - State channels (mqtt, modbus_output) get every event of every alert a route of theirs
      matches, whatever the route's `events`, tier or annunciation: the retained state and the
      siren must follow the alert.
    - People channels get an event when the route matches the alert, lists the event kind, and
      the event is annunciated (or is a listed operator/system action).
    - Tiers: an `escalated` event goes to routes of the tier the alert reached; when none matches,
      to the highest lower tier that does (a reminder is better than silence). Every other event
      goes to routes with `tier` <= the alert's tier (tier 0, plus whoever it was escalated to).
    - A channel's own `notifier_failing` alarm never goes through that channel.
    """

    def __init__(self, config: NotifiersConfig) -> None:
        self.config = config
        self.state_channels = {n for n, c in config.channels.items() if c.kind in STATE_KINDS}

    def carries(self, channel: str, alert: Alert) -> bool:
        """Whether a route of this channel matches the alert (state channels' view)."""
        return channel != failing_channel(alert) and any(
            channel in r.channels and r.matches(alert) for r in self.config.routes.values()
        )

    def plan(self, event: AlertEvent) -> dict[str, tuple[str, ...]]:
        """{channel name: recipients} for this event, each channel once."""
        alert = event.alert
        matching = [(n, r) for n, r in self.config.routes.items() if r.matches(alert)]
        out: dict[str, list[str]] = {}
        for _, route in matching:
            for ch in route.channels:
                if ch in self.state_channels:
                    out.setdefault(ch, [])
        for name, route in self._people_routes(event, matching):
            for ch in route.channels:
                if ch in self.state_channels:
                    continue
                people = out.setdefault(ch, [])
                for p in self.config.recipients_of(name, ch):
                    if p not in people:
                        people.append(p)
        out.pop(failing_channel(alert) or "", None)
        return {ch: tuple(people) for ch, people in out.items()}

    @staticmethod
    def _people_routes(
        event: AlertEvent, matching: list[tuple[str, RouteConfig]]
    ) -> list[tuple[str, RouteConfig]]:
        wanting = [(n, r) for n, r in matching if r.wants(event)]
        tier = event.alert.tier
        if event.kind is EventKind.ESCALATED:
            tiers = [r.tier for _, r in wanting if r.tier <= tier]
            if not tiers:
                return []
            target = tier if tier in tiers else max(tiers)
            return [(n, r) for n, r in wanting if r.tier == target]
        return [(n, r) for n, r in wanting if r.tier <= tier]
