"""Which channels (and which people on them) hear about an alert event."""

from __future__ import annotations

from alert_rules.model import AlertEvent, EventKind
from gateway.notifiers.config import MqttChannel, NotifiersConfig, RouteConfig


class Router:
    """Pure routing logic over a validated NotifiersConfig.

    - State channels (mqtt) get every event of every alert a route of theirs matches, whatever
      the route's `events`, tier or annunciation: the retained state must follow the alert.
    - People channels (email, webhook) get an event when the route matches the alert, lists the
      event kind, and the event is annunciated (or is a listed operator/system action).
    - Tiers: an `escalated` event goes to routes of the tier the alert reached; when none matches,
      to the highest lower tier that does (a reminder is better than silence). Every other event
      goes to routes with `tier` <= the alert's tier (tier 0, plus whoever it was escalated to).
    """

    def __init__(self, config: NotifiersConfig) -> None:
        self.config = config
        self.state_channels = {n for n, c in config.channels.items() if isinstance(c, MqttChannel)}

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
