"""Configuration of the MQTT collector: which topics, and how their payloads become Readings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collectors.mqtt.broker import MqttBrokerConfig
from gateway.core.eventtime import DEFAULT_MIN_EVENT_TIME, MinEventTime
from gateway.core.lineprotocol import name_problem
from gateway.core.ports import DevicePattern
from gateway.core.schema import COLDCHAIN, RESERVED_MEASUREMENTS

_SEGMENT = re.compile(r"^\{([a-z_][a-z0-9_]*)\}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimestampMapping(Strict):
    key: str = "ts"
    format: Literal["auto", "iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"] = "auto"
    """auto: an ISO 8601 string, or an integer of epoch milliseconds (the logger protocol)."""


class PayloadMapping(Strict):
    """How a JSON payload of another layout maps onto the logger protocol."""

    timestamp: TimestampMapping = TimestampMapping()
    batch_key: str = "readings"
    fields: dict[str, str] = Field(
        default_factory=lambda: {
            f: f
            for f in (
                "temp_c",
                "rh_pct",
                "battery_pct",
                "door_open",
                "power_ok",
                "lat",
                "lon",
                "speed_kmh",
            )
        }
    )
    """Field name written → key in the payload."""
    bool_fields: list[str] = Field(default_factory=lambda: ["door_open", "power_ok"])
    """Fields that hold true/false; every other field must be a finite number."""
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "lat": (-90.0, 90.0),
            "lon": (-180.0, 180.0),
            "speed_kmh": (0.0, 1000.0),
        }
    )
    """Field name written → [min, max]: a value outside is dead-lettered (a GPS without a fix
    reports latitude 999)."""

    @field_validator("ranges")
    @classmethod
    def _valid_ranges(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (lo, hi) in v.items():
            if not lo <= hi:
                raise ValueError(f"{name}: min {lo:g} is above max {hi:g}")
        return v


class Subscription(Strict):
    topic: str = "vigil/{site}/{asset}/{device}/telemetry"
    """A topic template: a segment `{name}` matches one level and becomes tag `name`."""
    format: Literal["json", "line_protocol"] = "json"
    qos: Literal[0, 1, 2] = 1
    measurement: str = COLDCHAIN.name
    """Measurement for JSON payloads (line protocol names its own)."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Static tags added to every reading of this subscription."""
    mapping: PayloadMapping = PayloadMapping()
    precision: Literal["s", "ms", "us", "ns"] = "ns"
    """Timestamp precision of line-protocol payloads."""
    expected_interval_s: float | None = Field(None, gt=0, le=7 * 86_400)
    """How often each device of this subscription publishes; None: learned per device."""

    @field_validator("topic")
    @classmethod
    def _valid_template(cls, v: str) -> str:
        if not v or (v.startswith("/") and len(v) == 1):
            raise ValueError("empty topic template")
        for seg in v.split("/"):
            if "{" in seg or "}" in seg:
                if not _SEGMENT.match(seg):
                    raise ValueError(f"segment {seg!r}: a tag segment is '{{name}}' alone")
            elif seg in ("+",) or ("#" in seg and seg != "#"):
                raise ValueError(f"segment {seg!r}: use '{{name}}' for a single-level wildcard")
        if "#" in v.split("/")[:-1]:
            raise ValueError("'#' is only allowed as the last segment")
        return v

    @field_validator("measurement")
    @classmethod
    def _valid_measurement(cls, v: str) -> str:
        why = name_problem("measurement", v)
        if why:
            raise ValueError(why)
        if v in RESERVED_MEASUREMENTS:
            raise ValueError(f"measurement {v!r} is reserved for the gateway's own data")
        return v

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            why = name_problem(f"tag key {key!r}", key) or name_problem(f"tag {key!r}", value)
            if why:
                raise ValueError(why)
        return v

    @property
    def mqtt_filter(self) -> str:
        return "/".join("+" if _SEGMENT.match(s) else s for s in self.topic.split("/"))

    def device_pattern(self, where: str) -> DevicePattern:
        """What its readings can look like: static tags, `{segment}` tags of any value."""
        tags: dict[str, str | None] = dict(self.tags)
        for seg in self.topic.split("/"):
            m = _SEGMENT.match(seg)
            if m:
                tags[m.group(1)] = None
        lp = self.format == "line_protocol"
        return DevicePattern(
            where, self.topic, None if lp else self.measurement, tags, open_tags=lp
        )


class LivenessConfig(Strict):
    """When a device counts as offline (collectors/mqtt/liveness.py)."""

    missed_intervals: float = Field(3.0, ge=1, le=1000)
    """Offline after this many expected intervals without a message."""
    initial_interval_s: float = Field(300.0, gt=0, le=7 * 86_400)
    """The expected interval of a device until one is learned (without a configured one)."""
    learn_samples: int = Field(5, ge=1, le=15)
    """Gaps between messages needed before the learned interval (their median) is used."""
    min_interval_s: float = Field(10.0, gt=0)
    """A learned interval is at least this."""
    max_devices: int = Field(100_000, gt=0)
    """Devices tracked; more are counted (`untracked`) but not followed."""


class MqttCollectorConfig(Strict):
    kind: Literal["mqtt"]
    name: str = "mqtt"
    broker: MqttBrokerConfig | None = None
    """Default: the gateway's `mqtt:` section (and its VIGIL_MQTT_* overrides)."""
    subscriptions: list[Subscription] = Field(
        default_factory=lambda: [Subscription()], min_length=1
    )
    max_payload_bytes: int = Field(256 * 1024, gt=0)
    max_batch_messages: int = Field(1000, gt=0)
    """Messages handed to the journal together (one transaction, one round of acks)."""
    max_future_skew_s: float = Field(300.0, ge=0)
    """A reading timestamped further ahead of the gateway clock than this is rejected."""
    liveness: LivenessConfig = LivenessConfig()
    """Per-device online/offline from message arrival (`device_offline` alarms)."""
    min_event_time: MinEventTime = DEFAULT_MIN_EVENT_TIME
    """A reading timestamped before this is dead-lettered (a reset device clock reports 1970 or
    2000). ISO 8601 with a zone; not before 1970-01-01T00:00:00Z."""

    def device_patterns(self, where: str) -> list[DevicePattern]:
        return [
            s.device_pattern(f"{where}.subscriptions[{i}]")
            for i, s in enumerate(self.subscriptions)
        ]
