"""Rule kinds, one module each (config model + evaluator + docstring that docs/rules.md expands).

To add a kind: write a RuleBase subclass with `kind: Literal["name"]` and `build(point)`, then add
it to RULE_KINDS below; YAML packs can use it at once.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alert_rules.kinds.base import Evaluator, PointSink, RuleBase
from alert_rules.kinds.battery import BatteryLowRule
from alert_rules.kinds.cycle import CycleRule
from alert_rules.kinds.device_offline import DeviceOfflineRule
from alert_rules.kinds.door import DoorOpenRule
from alert_rules.kinds.duration import DurationRule
from alert_rules.kinds.f0 import F0Rule
from alert_rules.kinds.fill_weight import FillWeightRule
from alert_rules.kinds.hold import HoldRule
from alert_rules.kinds.mkt import MktRule
from alert_rules.kinds.particles import ParticlesRule
from alert_rules.kinds.phase_threshold import PhaseThresholdRule
from alert_rules.kinds.power import PowerFailureRule
from alert_rules.kinds.pressure_cascade import PressureCascadeRule
from alert_rules.kinds.rate import RateOfChangeRule
from alert_rules.kinds.record_gap import RecordGapRule
from alert_rules.kinds.saturated_steam import SaturatedSteamRule
from alert_rules.kinds.sensor_fault import SensorFaultRule
from alert_rules.kinds.stale import StaleRule
from alert_rules.kinds.threshold import ThresholdRule

RuleSpec = Annotated[
    ThresholdRule
    | DurationRule
    | MktRule
    | RateOfChangeRule
    | StaleRule
    | SensorFaultRule
    | BatteryLowRule
    | PowerFailureRule
    | DoorOpenRule
    | DeviceOfflineRule
    | RecordGapRule
    # production (docs/production_rules.md)
    | PhaseThresholdRule
    | CycleRule
    | F0Rule
    | HoldRule
    | SaturatedSteamRule
    | PressureCascadeRule
    | ParticlesRule
    | FillWeightRule,
    Field(discriminator="kind"),
]

RULE_KINDS: dict[str, type[RuleBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        ThresholdRule,
        DurationRule,
        MktRule,
        RateOfChangeRule,
        StaleRule,
        SensorFaultRule,
        BatteryLowRule,
        PowerFailureRule,
        DoorOpenRule,
        DeviceOfflineRule,
        RecordGapRule,
        PhaseThresholdRule,
        CycleRule,
        F0Rule,
        HoldRule,
        SaturatedSteamRule,
        PressureCascadeRule,
        ParticlesRule,
        FillWeightRule,
    )
}

__all__ = ["RULE_KINDS", "Evaluator", "PointSink", "RuleBase", "RuleSpec"]
