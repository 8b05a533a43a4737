"""`device_offline`: the collector cannot reach a device (a PLC that stopped answering: its
`offline_after` polls failed; a logger that went silent: no message within its expected
interval), for longer than `on_delay`.

Judged on the wall clock from the collectors' own view of their devices (`SourceStatus`: online,
since when, the last error), which the engine is handed at each tick, so a device that never
sent a reading since the gateway started is covered too. Raised `on_delay` after the device went
offline, with the collector's last error; cleared when the collector reaches it again. The
alert's times are the wall clock's: when it went offline (started) and came back (ended).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time


class DeviceOfflineRule(RuleBase):
    kind: Literal["device_offline"] = "device_offline"
    priority: Priority = Priority.HIGH
    on_delay: Duration = Field(default=60.0, ge=0)
    """How long a device stays offline before the alarm (a short network blip is not one)."""

    def build(self, point: PointSink) -> Evaluator:
        return DeviceOfflineEvaluator(point, to_ns(self.on_delay))


class DeviceOfflineEvaluator(Evaluator):
    __slots__ = ("active", "on_delay")
    on_status: ClassVar[bool] = True

    def __init__(self, point: PointSink, on_delay: int) -> None:
        super().__init__(None, point)
        self.on_delay = on_delay
        self.active = False

    def source_status(
        self, ctx: EvalContext, online: bool | None, since_ns: int, error: str
    ) -> bool:
        now = ctx.wall_ns
        if online is False and not self.active and now - since_ns >= self.on_delay:
            self.active = True
            gone = (now - since_ns) / 1e9
            args = {"since": Time(since_ns), "delay": Dur(self.on_delay / 1e9), "error": error}
            if error:
                text = Text(N_("device offline since {since} (more than {delay}): {error}"), args)
            else:
                text = Text(N_("device offline since {since} (more than {delay})"), args)
            self.point.activate(ctx, since_ns, since_ns + self.on_delay, gone, gone, text)
            return True
        if online is True and self.active:
            self.active = False
            self.point.clear(ctx, since_ns, since_ns, None, None)
            return True
        return False

    def dump(self) -> dict[str, Any]:
        return {"active": self.active}

    def load(self, state: dict[str, Any]) -> None:
        self.active = state["active"]
