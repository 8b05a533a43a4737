"""Evaluator for on/off fields (door_open, power_ok): a single-event timer on a boolean."""

from __future__ import annotations

from typing import Any

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink
from alert_rules.timers import ENTER, NORMAL, UNKNOWN, ExcursionTimer
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading

_TEXT = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}


def as_bool(value: FieldValue) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return None if value != value else bool(value)
    return _TEXT.get(str(value).strip().lower())


class BoolEvaluator(Evaluator):
    __slots__ = ("alarm_when", "text", "timer")

    def __init__(
        self,
        field: str,
        point: PointSink,
        alarm_when: bool,
        on_delay: int,
        off_delay: int,
        max_gap: int,
        text: str,
    ) -> None:
        super().__init__(field, point)
        self.alarm_when = alarm_when
        self.timer = ExcursionTimer(on_delay, off_delay, max_gap, None)
        self.text = text

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        b = as_bool(value)
        st = UNKNOWN if b is None else ENTER if b is self.alarm_when else NORMAL
        self.timer.feed(ctx, ts, st, b, self)

    def on_activate(
        self, ctx: EvalContext, started: int, at: int, value: Any, peak: float | None
    ) -> None:
        what = Text(self.text)
        if self.timer.on_delay:
            text = Text(
                N_("{what} for more than {delay} since {since}"),
                {"what": what, "delay": Dur(self.timer.on_delay / 1e9), "since": Time(started)},
            )
        else:
            text = Text(N_("{what} since {since}"), {"what": what, "since": Time(started)})
        self.point.activate(ctx, started, at, 1.0, None, text)

    def on_clear(
        self, ctx: EvalContext, ended: int, at: int, value: Any, peak: float | None
    ) -> None:
        self.point.clear(ctx, ended, at, 0.0, None)

    def dump(self) -> dict[str, Any]:
        return self.timer.dump()

    def load(self, state: dict[str, Any]) -> None:
        self.timer.load(state)
