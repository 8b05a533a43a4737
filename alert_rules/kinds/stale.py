"""`stale`: no reading received from a device within its expected interval (China GSP: every
monitoring point refreshed at least once a minute).

Judged on the wall clock (receive time) by RulesEngine.tick(), not on event time: the question is
"are we hearing from it now?". Raised when nothing arrived for `expected_interval + grace`;
cleared by the next reading. With `field`, only readings carrying that field count.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import Reading


class StaleRule(RuleBase):
    kind: Literal["stale"] = "stale"
    expected_interval: Duration = Field(default=60.0, gt=0)
    grace: Duration = 30.0
    field: str | None = None

    def build(self, point: PointSink) -> Evaluator:
        return StaleEvaluator(self.field, point, to_ns(self.expected_interval + self.grace))


class StaleEvaluator(Evaluator):
    __slots__ = ("active", "last", "limit")
    on_arrival: ClassVar[bool] = True

    def __init__(self, field: str | None, point: PointSink, limit: int) -> None:
        super().__init__(field, point)
        self.limit = limit
        self.last: int | None = None
        self.active = False

    def arrived(self, ctx: EvalContext, reading: Reading) -> None:
        if self.field is not None and self.field not in reading.fields:
            return
        rx = reading.received_ns
        last = self.last
        if last is None or rx > last:
            self.last = rx
        if self.active:
            self.active = False
            gap = (rx - last) / 1e9 if last is not None else None
            self.point.clear(ctx, rx, rx, gap, gap)

    def check(self, ctx: EvalContext) -> None:
        now_ns = ctx.wall_ns
        last = self.last
        if self.active or last is None or now_ns - last <= self.limit:
            return
        self.active = True
        gap = (now_ns - last) / 1e9
        args = {"limit": Dur(self.limit / 1e9), "last": Time(last)}
        if self.field:
            text = Text(
                N_("stale: no {field} reading for more than {limit} (last received {last})"),
                {**args, "field": self.field},
            )
        else:
            text = Text(N_("stale: no reading for more than {limit} (last received {last})"), args)
        self.point.activate(ctx, last, last + self.limit, gap, gap, text)

    def dump(self) -> dict[str, Any]:
        return {"last": self.last, "active": self.active}

    def load(self, state: dict[str, Any]) -> None:
        self.last = state["last"]
        self.active = state["active"]
