"""Collector kinds, registered in one place (like Telegraf's inputs).

A kind is a folder: README.md (the user's manual), sample.yaml, its config model and its code. To
add one, write the folder, then add its config model to `CollectorConfig` and its class to
`KINDS` below; `vigil check-config` accepts the kind and the gateway starts it like the others,
through `build`: a `gateway.core.ports.Collector` that reports its devices' status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import Field

from collectors.modbus import ModbusCollector, ModbusCollectorConfig
from collectors.mqtt import MqttCollector, MqttCollectorConfig
from gateway.core.metrics import Counters
from gateway.core.ports import Collector, DevicePattern, Ingest

CollectorConfig = Annotated[
    MqttCollectorConfig | ModbusCollectorConfig, Field(discriminator="kind")
]
"""One entry of the config's `collectors:` list."""

KINDS: dict[str, Callable[..., Collector]] = {
    "mqtt": MqttCollector,
    "modbus": ModbusCollector,
}
"""kind → class, called as (config, ingest, counters)."""


def build(
    config: MqttCollectorConfig | ModbusCollectorConfig, ingest: Ingest, counters: Counters
) -> Collector:
    """The running collector for one entry of `collectors:`."""
    return KINDS[config.kind](config, ingest, counters)


def device_patterns(
    configs: list[MqttCollectorConfig | ModbusCollectorConfig],
) -> list[DevicePattern]:
    """What each collector's devices can send, for `vigil check-config`'s unbound-device warning."""
    return [p for i, c in enumerate(configs) for p in c.device_patterns(f"collectors[{i}]")]


__all__ = ["KINDS", "CollectorConfig", "build", "device_patterns"]
