"""Topic templates: route an incoming topic to its subscription and pull its tag segments."""

from __future__ import annotations

from typing import NamedTuple

from collectors.mqtt.config import Subscription
from gateway.core.lineprotocol import tags_problem


class Route(NamedTuple):
    sub: Subscription
    tags: dict[str, str]
    problem: str
    """Why this topic's readings cannot be written (a tag segment line protocol cannot carry,
    e.g. a control character); "" when they can. Checked once per topic, cached with the match."""


class TopicRouter:
    def __init__(self, subscriptions: list[Subscription]) -> None:
        self._routes: list[tuple[list[str | None], list[str], Subscription]] = []
        for sub in subscriptions:
            pattern: list[str | None] = []
            for seg in sub.topic.split("/"):
                pattern.append(None if seg.startswith("{") else seg)
            self._routes.append((pattern, sub.topic.split("/"), sub))
        self._cache: dict[str, Route | None] = {}

    def match(self, topic: str) -> Route | None:
        """The first subscription whose template matches, with the tags it names; or None."""
        hit = self._cache.get(topic, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        result = self._match(topic)
        if len(self._cache) < 100_000:
            self._cache[topic] = result
        return result

    def _match(self, topic: str) -> Route | None:
        levels = topic.split("/")
        for pattern, raw, sub in self._routes:
            if pattern and pattern[-1] == "#":
                if len(levels) < len(pattern) - 1:
                    continue
                pattern_, raw_ = pattern[:-1], raw[:-1]
                levels_ = levels[: len(pattern_)]
            else:
                if len(levels) != len(pattern):
                    continue
                pattern_, raw_, levels_ = pattern, raw, levels
            tags: dict[str, str] = {}
            for want, name, got in zip(pattern_, raw_, levels_, strict=True):
                if want is None:
                    if got == "":
                        break
                    tags[name[1:-1]] = got
                elif want != got:
                    break
            else:
                why = tags_problem(tags)
                return Route(sub, tags, f"topic segment {why}" if why else "")
        return None
