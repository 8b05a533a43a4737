"""Notifiers: alert events → MQTT retained state, signed webhooks, e-mail (see docs/notifiers.md).

Gateway wiring:

    notifier = Notifier(config.notifiers, config.mqtt, gateway=config.gateway.name)
    supervisor.spawn("notifiers", notifier.run)
    alerting.event_sinks.append(notifier.submit)       # every AlertEvent, never blocks
    ...
    await notifier.close(timeout=3)                     # at shutdown, after the rules stage

Only the config models are imported eagerly: `gateway.config` embeds `NotifiersConfig`, and the
senders import `gateway.config` (through the MQTT collector), so they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.notifiers.config import (
    EmailChannel,
    MqttChannel,
    NotifiersConfig,
    RouteConfig,
    WebhookChannel,
)

if TYPE_CHECKING:
    from gateway.notifiers.dispatcher import Notifier, NotifierSetupError

__all__ = [
    "EmailChannel",
    "MqttChannel",
    "Notifier",
    "NotifierSetupError",
    "NotifiersConfig",
    "RouteConfig",
    "WebhookChannel",
]


def __getattr__(name: str) -> Any:
    if name in ("Notifier", "NotifierSetupError"):
        from gateway.notifiers import dispatcher

        return getattr(dispatcher, name)
    raise AttributeError(name)
