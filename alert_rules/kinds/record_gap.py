"""`record_gap`: a device's record missed the cadence China's GSP requires.

The GSP annex on automatic temperature monitoring asks for a record at least every 30 min in
storage, every 5 min in transport and every 2 min while the temperature is out of range
(gateway/core/standards.py). After each reading the rule knows the cadence now in force: the
out-of-range one when the reading is outside [low, high], else the transport one while the reading
carries a `shipment` tag (or `context: transport`), else the storage one. When the next reading
comes later than that, the record has a gap: an alert spanning it, from the last reading before it
to the first after it, raised and returned to normal at once (it is history, to acknowledge).

Judged on event time, so a truck that uploads its buffer after a dead zone has no gap if its
logger kept recording; a device that stops altogether is the `stale` rule's business. The same
cadences give `completeness()`, the share of recording slots that hold a reading
(alert_rules/completeness.py), which the gateway writes as measurement `completeness` and serves
on the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.completeness import Completeness, completeness
from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase, num
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading
from gateway.core.standards import (
    GSP_RECORD_OUT_OF_RANGE_S,
    GSP_RECORD_STORAGE_S,
    GSP_RECORD_TRANSPORT_S,
)

Context = Literal["storage", "transport"]
Sample = tuple[int, float | None, Mapping[str, str]]
"""A reading as `completeness()` takes it: event time ns, value of `field` or None, its tags."""


class RecordGapRule(RuleBase):
    kind: Literal["record_gap"] = "record_gap"
    field: str = "temp_c"
    context: Context | None = None
    """storage or transport for every reading; unset: transport while a reading carries a
    `shipment` tag (the gateway tags readings of an asset with an active shipment)."""
    storage_cadence: Duration = Field(default=GSP_RECORD_STORAGE_S, gt=0)
    transport_cadence: Duration = Field(default=GSP_RECORD_TRANSPORT_S, gt=0)
    out_of_range_cadence: Duration = Field(default=GSP_RECORD_OUT_OF_RANGE_S, gt=0)
    low: float | None = None
    """With `high`, the range whose outside calls for the out-of-range cadence; none: no range."""
    high: float | None = None

    @model_validator(mode="after")
    def _band(self) -> RecordGapRule:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def context_of(self, tags: Mapping[str, str]) -> Context:
        if self.context is not None:
            return self.context
        return "transport" if tags.get("shipment") else "storage"

    def out_of_range(self, value: float) -> bool:
        return (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        )

    @cached_property
    def cadences_ns(self) -> tuple[int, int, int]:
        """(storage, transport, out of range), converted once: this runs for every reading."""
        return (
            to_ns(self.storage_cadence),
            to_ns(self.transport_cadence),
            to_ns(self.out_of_range_cadence),
        )

    def base_cadence_ns(self, context: Context) -> int:
        return self.cadences_ns[1 if context == "transport" else 0]

    def cadence_ns(self, value: float | None, tags: Mapping[str, str]) -> int:
        """The longest the record may wait for its next reading after this one."""
        if value is not None and value == value and self.out_of_range(value):
            return self.cadences_ns[2]
        return self.base_cadence_ns(self.context_of(tags))

    def completeness(
        self,
        readings: Sequence[Sample],
        since_ns: int,
        until_ns: int,
    ) -> Completeness:
        """Completeness over [since, until) of one device's readings (event time, value of
        `field` or None, tags), sorted by time; readings before `since` set the cadence in force
        at its start, as they do for the alert."""
        pairs = [(ts, v if v is not None else float("nan")) for ts, v, _ in readings]
        after = [self.cadence_ns(v, tags) for _, v, tags in readings]
        first = next((tags for ts, _, tags in readings if ts >= since_ns), None)
        start = self.base_cadence_ns(self.context_of(first) if first is not None else "storage")
        return completeness(pairs, since_ns, until_ns, start, cadence_after=after)

    def build(self, point: PointSink) -> Evaluator:
        return RecordGapEvaluator(self, point)


class RecordGapEvaluator(Evaluator):
    __slots__ = ("last", "required", "rule")

    def __init__(self, rule: RecordGapRule, point: PointSink) -> None:
        super().__init__(rule.field, point)
        self.rule = rule
        self.last: int | None = None
        self.required = 0

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        v = num(value)
        last = self.last
        if last is not None and ts - last > self.required > 0:
            gap_s = (ts - last) / 1e9
            text = Text(
                N_(
                    "record gap: no {field} record for {gap}, from {start} to {end} "
                    "(China GSP: at least every {cadence} here)"
                ),
                {
                    "field": self.field,
                    "gap": Dur(gap_s),
                    "start": Time(last),
                    "end": Time(ts),
                    "cadence": Dur(self.required / 1e9),
                },
            )
            self.point.activate(ctx, last, ts, gap_s, gap_s, text)
            self.point.clear(ctx, ts, ts, gap_s, gap_s)
        if last is None or ts >= last:
            self.last = ts
            self.required = self.rule.cadence_ns(v, reading.tags)

    def dump(self) -> dict[str, Any]:
        return {"last": self.last, "required": self.required}

    def load(self, state: dict[str, Any]) -> None:
        self.last = state["last"]
        self.required = state["required"]
