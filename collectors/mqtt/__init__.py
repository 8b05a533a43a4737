"""MQTT collector: topic templates and payload mappings → readings, acknowledged after commit."""

from collectors.mqtt.broker import MqttBrokerConfig, TlsConfig, client_for
from collectors.mqtt.collector import MqttCollector
from collectors.mqtt.config import MqttCollectorConfig

__all__ = ["MqttBrokerConfig", "MqttCollector", "MqttCollectorConfig", "TlsConfig", "client_for"]
