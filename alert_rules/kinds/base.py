"""What every rule kind shares: the common config keys and the evaluator interface.

A rule kind is a pydantic model (its YAML keys) with `build(point)`, which returns an evaluator
bound to one alarm point (rule x source). The engine feeds the evaluator the rule's field from each
reading of the series, in event-time order; the evaluator calls `point.activate` / `point.clear`.

Every call takes the engine's `EvalContext` (alert_rules/context.py) as its first argument: the
wall time, the reading's receive time and the tags the alert is to carry. An evaluator hands it on
unchanged to the point (through its timer, if it has one) and keeps no reference to it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from alert_rules.context import EvalContext
from alert_rules.model import Priority
from alert_rules.timers import ENTER, NORMAL, STAY, UNKNOWN
from alert_rules.units import Duration
from gateway.core.eventtime import fmt_ns
from gateway.core.i18n import Text
from gateway.core.reading import FieldValue, Reading


class PointSink(Protocol):
    """One alarm point (rule x source) as seen by an evaluator."""

    def activate(
        self,
        ctx: EvalContext,
        started: int,
        at: int,
        value: float | None,
        peak: float | None,
        message: Text,
        cycle: int | None = None,
    ) -> None:
        """`cycle`: the production cycle the alarm judges (each failed load its own alert)."""

    def clear(
        self,
        ctx: EvalContext,
        ended: int,
        at: int,
        value: float | None,
        peak: float | None,
        cycle: int | None = None,
    ) -> None: ...


class Evaluator:
    """Per-series state of one rule. Subclasses keep __slots__ and allocate nothing per reading."""

    __slots__ = ("field", "point")
    on_arrival: ClassVar[bool] = False
    """True for processing-time rules (stale data): the engine calls arrived()/check() instead."""
    on_status: ClassVar[bool] = False
    """True for rules on the collectors' view of a device (device_offline): the engine calls
    source_status() at each tick."""

    def __init__(self, field: str | None, point: PointSink) -> None:
        self.field = field
        self.point = point

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        """One reading's value of `field`, in event-time order (ts never decreases)."""

    def arrived(self, ctx: EvalContext, reading: Reading) -> None:
        """A reading of the series arrived (any event time); processing-time rules only."""

    def check(self, ctx: EvalContext) -> None:
        """Wall-clock check from RulesEngine.tick() at `ctx.wall_ns`; processing-time rules only."""

    def source_status(
        self, ctx: EvalContext, online: bool | None, since_ns: int, error: str
    ) -> bool:
        """The device's collector says it is online / offline (None: not known yet) since
        `since_ns`; from RulesEngine.tick(). Status rules only. Returns whether its state
        changed (to be saved)."""
        return False

    def dump(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        pass


class RuleBase(BaseModel):
    """Keys every rule accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
    """Unique within its profile; the alert's `rule` tag is `<profile>.<id>`."""
    description: str = ""
    priority: Priority = Priority.MEDIUM
    latching: bool = False
    """A latching alarm stays acknowledged after it returns to normal until QA closes it."""
    shelvable: bool = True
    max_shelve: Duration | None = None
    """Longest an operator may shelve it; the engine default (rules.max_shelve) otherwise."""
    escalate_after: Duration | None = None
    """Escalate to the next notification tier when unacknowledged this long."""
    realarm_after: Duration | None = None
    """Re-annunciate (back to unacknowledged) when acknowledged but still active this long."""
    suppress_when: dict[str, list[str]] = Field(default_factory=dict)
    """Suppressed by design while a reading's tag has one of these values, e.g. phase: [cip]."""
    enabled: bool = True

    def build(self, point: PointSink) -> Evaluator:
        raise NotImplementedError

    @property
    def field_name(self) -> str | None:
        return getattr(self, "field", None)

    @property
    def max_gap_s(self) -> float | None:
        """How long the rule holds a reading's value (its `max_gap`); None if it holds none."""
        return getattr(self, "max_gap", None)


def fmt_ts(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # outside what datetime shows: never raise
        return fmt_ns(ns)


def num(value: FieldValue) -> float | None:
    """A numeric reading value, None for strings; NaN stays NaN (the timers treat it as unknown)."""
    if value.__class__ is float:
        return value
    if isinstance(value, int | float):
        return float(value)
    return None


def fmt_num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return str(v)
    return f"{v:g}"


class Limit:
    """High or low limit with inclusive/exclusive comparison and a deadband for the return."""

    __slots__ = ("clear_limit", "high", "inclusive", "limit")

    def __init__(self, high: bool, limit: float, inclusive: bool, deadband: float) -> None:
        self.high = high
        self.limit = limit
        self.inclusive = inclusive
        self.clear_limit = limit - deadband if high else limit + deadband

    def status(self, v: float) -> int:
        if v != v:
            return UNKNOWN
        lim, clr = self.limit, self.clear_limit
        if self.high:
            if v > lim or (self.inclusive and v == lim):
                return ENTER
            if v < clr or (not self.inclusive and v == clr):
                return NORMAL
            return STAY
        if v < lim or (self.inclusive and v == lim):
            return ENTER
        if v > clr or (not self.inclusive and v == clr):
            return NORMAL
        return STAY

    @property
    def op(self) -> str:
        if self.high:
            return "≥" if self.inclusive else ">"
        return "≤" if self.inclusive else "<"


def limit_from(spec: Any) -> Limit:
    """Limit from a spec with high/low/inclusive(/deadband)."""
    high = spec.high is not None
    return Limit(
        high, spec.high if high else spec.low, spec.inclusive, getattr(spec, "deadband", 0.0)
    )


def check_one_limit(spec: Any) -> Any:
    if (spec.high is None) == (spec.low is None):
        raise ValueError("give exactly one of 'high' or 'low'")
    return spec
