"""`threshold`: high or low limit with on-delay, off-delay and deadband (ISA-18.2 alarm design).

Raised when the value has been beyond the limit continuously for `on_delay` (0 = at once);
returns to normal when it has been back inside `limit ∓ deadband` continuously for `off_delay`.
Limits are inclusive unless `inclusive: false` (then "> 8" rather than "≥ 8").
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import (
    Evaluator,
    Limit,
    PointSink,
    RuleBase,
    check_one_limit,
    fmt_num,
    limit_from,
    num,
)
from alert_rules.timers import ExcursionTimer
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import DEFAULT_MAX_GAP_S


class ThresholdRule(RuleBase):
    kind: Literal["threshold"] = "threshold"
    field: str
    high: float | None = None
    low: float | None = None
    inclusive: bool = True
    deadband: float = Field(default=0.0, ge=0)
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0
    max_gap: Duration = Field(default=DEFAULT_MAX_GAP_S, gt=0)
    """A reading holds its value at most this long; beyond it the signal is unknown."""
    unit: str = ""
    message: str | None = None
    """The alert's text instead of the generated one; placeholders {value}, {limit}, {peak},
    {field}, {unit}, {op}, {since} with format specs, e.g. "journal at {value:.0%} of its size
    budget" (the gateway_health pack)."""

    _one_limit = model_validator(mode="after")(check_one_limit)

    @field_validator("message")
    @classmethod
    def _valid_message(cls, v: str | None) -> str | None:
        if v is not None:
            check_message(v)
        return v

    def build(self, point: PointSink) -> Evaluator:
        return ExcursionEvaluator(
            self.field,
            point,
            limit_from(self),
            to_ns(self.on_delay),
            to_ns(self.off_delay),
            to_ns(self.max_gap),
            self.unit,
            "",
            self.message or "",
        )


MESSAGE_FIELDS = ("value", "limit", "peak", "field", "unit", "op", "since")


def check_message(template: str) -> None:
    """Refuse a message template that names anything but MESSAGE_FIELDS or does not format."""
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in MESSAGE_FIELDS:
            raise ValueError(
                f"message: unknown placeholder {{{name}}} (known: {', '.join(MESSAGE_FIELDS)})"
            )
    try:
        template.format(
            value=1.0, limit=1.0, peak=1.0, field="f", unit="", op="≥", since="2026-01-01T00:00:00Z"
        )
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(f"message: {e}") from None


class ExcursionEvaluator(Evaluator):
    """A limit feeding an ExcursionTimer: threshold, duration (instant/single), battery."""

    __slots__ = ("label", "limit", "message", "timer", "unit")

    def __init__(
        self,
        field: str,
        point: PointSink,
        limit: Limit,
        on_delay: int,
        off_delay: int,
        max_gap: int,
        unit: str,
        label: str,
        message: str = "",
    ) -> None:
        super().__init__(field, point)
        self.limit = limit
        self.timer = ExcursionTimer(on_delay, off_delay, max_gap, limit.high)
        self.unit = unit
        self.label = label
        self.message = message

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = value if value.__class__ is float else num(value)
        if v is not None:
            self.timer.feed(ctx, ts, self.limit.status(v), v, self)

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        lim = self.limit
        if self.message:
            custom = Text(
                self.message,
                {
                    "value": value,
                    "limit": lim.limit,
                    "peak": peak if peak is not None else value,
                    "field": self.field,
                    "unit": self.unit,
                    "op": lim.op,
                    "since": Time(started),
                },
            )
            try:
                str.format(self.message, **{**custom.args, "since": ""})
            except (ValueError, TypeError, IndexError, KeyError):  # e.g. {value:.0%} of None
                pass
            else:
                self.point.activate(ctx, started, at, value, peak, custom)
                return
        args: dict[str, Any] = {
            "field": self.field,
            "op": lim.op,
            "limit": fmt_num(lim.limit),
            "unit": self.unit,
            "since": Time(started),
            "value": fmt_num(value),
        }
        if self.timer.on_delay:
            args["delay"] = Dur(self.timer.on_delay / 1e9)
            msgid = N_("{field} {op} {limit}{unit} for {delay} since {since} (value {value}{unit})")
        else:
            msgid = N_("{field} {op} {limit}{unit} since {since} (value {value}{unit})")
        text = Text(msgid, args)
        if self.label:
            text = Text(N_("{label}: {what}"), {"label": Text(self.label), "what": text})
        self.point.activate(ctx, started, at, value, peak, text)

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.point.clear(ctx, ended, at, value, peak)

    def dump(self) -> dict[str, Any]:
        return self.timer.dump()

    def load(self, state: dict[str, Any]) -> None:
        self.timer.load(state)
