"""Notifiers: alert events → MQTT retained state, signed webhooks, e-mail (see docs/notifiers.md).

Gateway wiring:

    notifier = Notifier(config.notifiers, mqtt_link, gateway=config.gateway.name)
    supervisor.spawn("notifiers", notifier.run)
    alerting.event_sinks.append(notifier.submit)       # every AlertEvent, never blocks
    ...
    await notifier.close(timeout=3)                     # at shutdown, after the rules stage
"""

from gateway.notifiers.config import (
    EmailChannel,
    MqttChannel,
    NotifiersConfig,
    RouteConfig,
    WebhookChannel,
)
from gateway.notifiers.dispatcher import Notifier, NotifierSetupError
from gateway.notifiers.mqtt import MqttLink

__all__ = [
    "EmailChannel",
    "MqttChannel",
    "MqttLink",
    "Notifier",
    "NotifierSetupError",
    "NotifiersConfig",
    "RouteConfig",
    "WebhookChannel",
]
