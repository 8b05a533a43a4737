"""What the dispatcher hands a channel, and how a channel says a delivery failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from alert_rules.model import AlertEvent


@dataclass(slots=True)
class Delivery:
    """One notification for one channel (and, for SMS, one number), read from the outbox.

    `id` is its idempotency key, derived from (alert id, transition, channel, recipients): the
    same on every attempt and after a restart, so a receiver can drop repeats."""

    event: AlertEvent
    recipients: tuple[str, ...]
    id: str
    created_ns: int
    """Wall time the notification was stored: `give_up_after_s` counts from here."""
    attempts: int = 0
    cache: dict[str, object] = field(default_factory=dict)
    """Rendered body/message and progress, kept across retries so a retry sends the same bytes."""
    lang: str = "en"
    """Language of the texts (the Notifier's, from gateway.language)."""
    tz: str | None = None
    """Zone of displayed times (gateway.timezone); None: UTC."""


class TransientError(Exception):
    """Worth retrying: connection refused, timeout, HTTP 5xx/429, SMTP 4xx, a vendor's
    "too fast" or "busy" answer."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help (HTTP 4xx, SMTP 5xx, a vendor's refusal): logged and counted as
    failed, with the vendor's answer in the alert's history."""


class Sender(Protocol):
    kind: str

    def units(self, recipients: tuple[str, ...]) -> list[tuple[str, ...]]:
        """How one event for this channel splits into deliveries (an SMS per number; one
        message for everyone otherwise)."""
        ...

    def key(self, event: AlertEvent) -> str | None:
        """Coalescing key for this event (a newer state replaces a waiting one), or None."""
        ...

    async def send(self, delivery: Delivery) -> str:
        """Deliver once and return the receiver's answer (for the history); raise
        TransientError or PermanentError on failure."""
        ...

    async def close(self) -> None: ...


def one_unit(recipients: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The usual split: one message for all recipients."""
    return [recipients]
