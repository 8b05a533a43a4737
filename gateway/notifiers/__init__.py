"""Notifiers: alert events → MQTT retained state, signed webhooks, e-mail, SMS (Alibaba Cloud,
Tencent Cloud), DingTalk and WeCom groups, an on-site siren (see docs/notifiers.md).

Gateway wiring:

    notifier = Notifier(config.notifiers, engine.store, mqtt_link, gateway=config.gateway.name,
                        audit=records.audit, health=internal_submit)
    notifier.attach(engine.alerts)       # every transition stores its notifications (outbox)
    supervisor.spawn("notifiers", notifier.run)
    ...
    await notifier.close(timeout=3)      # at shutdown, after the rules stage
"""

from gateway.notifiers.config import (
    AliyunSmsChannel,
    DingTalkChannel,
    EmailChannel,
    ModbusOutputChannel,
    MqttChannel,
    NotifiersConfig,
    RouteConfig,
    TencentSmsChannel,
    WebhookChannel,
    WeComChannel,
)
from gateway.notifiers.dispatcher import Notifier, NotifierSetupError
from gateway.notifiers.mqtt import MqttLink

__all__ = [
    "AliyunSmsChannel",
    "DingTalkChannel",
    "EmailChannel",
    "ModbusOutputChannel",
    "MqttChannel",
    "MqttLink",
    "Notifier",
    "NotifierSetupError",
    "NotifiersConfig",
    "RouteConfig",
    "TencentSmsChannel",
    "WeComChannel",
    "WebhookChannel",
]
