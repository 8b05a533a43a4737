"""What the dispatcher hands a channel, and how a channel says a delivery failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from alert_rules.model import AlertEvent


@dataclass(slots=True)
class Delivery:
    """One event for one channel. `id` stays the same across retries (receivers dedupe on it)."""

    event: AlertEvent
    recipients: tuple[str, ...]
    id: str
    queued_at: float
    """time.monotonic() when submitted: `give_up_after_s` counts from here."""
    key: str | None = None
    """Coalescing key: a newer delivery with the same key replaces a waiting one (MQTT state)."""
    attempts: int = 0
    cache: dict[str, object] = field(default_factory=dict)
    lang: str = "en"
    """Language of the texts (the Notifier's, from gateway.language)."""
    tz: str | None = None
    """Zone of displayed times (gateway.timezone); None: UTC."""
    """Rendered body/message, kept across retries so a retry sends the same bytes."""


class TransientError(Exception):
    """Worth retrying: connection refused, timeout, HTTP 5xx/429, SMTP 4xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help (HTTP 4xx, SMTP 5xx): logged and counted as failed."""


class Sender(Protocol):
    kind: str

    def key(self, event: AlertEvent) -> str | None:
        """Coalescing key for this event, or None to keep every delivery."""

    async def send(self, delivery: Delivery) -> None:
        """Deliver once; raise TransientError or PermanentError on failure."""

    async def close(self) -> None: ...
