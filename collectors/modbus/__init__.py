"""Modbus TCP collector: register maps in YAML → polled, decoded `process` readings."""

from collectors.modbus.collector import (
    DeviceStateChange,
    DeviceStatus,
    ModbusCollector,
    ModbusStats,
)
from collectors.modbus.config import ModbusCollectorConfig

__all__ = [
    "DeviceStateChange",
    "DeviceStatus",
    "ModbusCollector",
    "ModbusCollectorConfig",
    "ModbusStats",
]
