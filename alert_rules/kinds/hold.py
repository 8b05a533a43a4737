"""`hold`: a cycle must hold a temperature continuously for a time (dry heat, depyrogenation).

Dry-heat sterilisation: ≥ 160 °C for ≥ 2 h; depyrogenation: > 220 °C (Ph. Eur. 5.1.1 / 2.6.14,
USP <1228.1>; the time is the validated cycle's). Judged per cycle (see `cycle`): the cycle passes
when its longest continuous run at or above `temp` lasts at least `duration`, and no data gap
longer than `max_gap` hides part of it.

The run is measured on the sample-and-hold signal of timers.py: a reading's value holds until the
next reading, for at most `max_gap`; after that the temperature is unknown and the run ends. With
`phases`, only readings in those phases count. When the `hold_phase` ends (the PLC leaves its
hold phase) and the temperature has dropped without a long enough run, the alert is raised at
once ("short hold"); otherwise it is raised when the cycle ends with a failed verdict. Either way
an alert is raised at most once per cycle and returns to normal at once: it is a record of a
failed load for the operator to acknowledge (and, latching, for QA to close).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from alert_rules.context import EvalContext
from alert_rules.kinds.base import PointSink, RuleBase, fmt_num, num
from alert_rules.kinds.cycle import CycleInfo, CycleParticipant, phase_set, reason_fields
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.i18n import N_, Dur, Text, Time
from gateway.core.reading import FieldValue, Reading


class HoldMeter:
    """Longest continuous run of a condition on a sample-and-hold signal.

    feed(ts, on) for each sample in time order: a sample's status holds until the next sample but
    for at most `max_gap`; a longer interval ends a run at `last + max_gap`.
    """

    __slots__ = ("best_end", "best_start", "last_ts", "max_gap", "run_end", "run_start")

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.reset()

    def reset(self) -> None:
        self.last_ts: int | None = None
        self.run_start: int | None = None
        self.run_end = 0
        self.best_start: int | None = None
        self.best_end: int | None = None

    @property
    def best_len(self) -> int:
        if self.best_start is None:
            return 0
        return self.best_end - self.best_start  # type: ignore[operator]

    def feed(self, ts: int, on: bool) -> None:
        last = self.last_ts
        if last is not None and self.run_start is not None:
            if ts - last > self.max_gap:
                self.run_end = last + self.max_gap
                self._close()
            else:
                self.run_end = ts
        if on:
            if self.run_start is None:
                self.run_start = self.run_end = ts
        elif self.run_start is not None:
            self._close()
        self.last_ts = ts

    def _close(self) -> None:
        start = self.run_start
        assert start is not None
        if self.run_end - start > self.best_len or self.best_start is None:
            self.best_start, self.best_end = start, self.run_end
        self.run_start = None

    def dump(self) -> dict[str, Any]:
        return {
            "last_ts": self.last_ts,
            "run_start": self.run_start,
            "run_end": self.run_end,
            "best_start": self.best_start,
            "best_end": self.best_end,
        }

    def load(self, d: dict[str, Any]) -> None:
        for k, v in d.items():
            setattr(self, k, v)


class HoldRule(RuleBase):
    kind: Literal["hold"] = "hold"
    priority: Priority = Priority.CRITICAL
    field: str
    temp: float
    """The hold temperature (°C)."""
    inclusive: bool = True
    """True: at or above `temp` (≥ 160 °C); false: above it (> 220 °C)."""
    duration: Duration = Field(gt=0)
    phases: list[str] | None = None
    """Phase-tag values in which readings count; None: the whole cycle."""
    phase_tag: str = "phase"
    hold_phase: str | None = "hold"
    """Leaving this phase without a long enough run raises the alert at once."""
    max_gap: Duration = Field(default=30.0, gt=0)
    gap_fails: bool = True
    """A data gap longer than `max_gap` inside the counted phases fails the cycle."""
    sensor_min: float = -50.0
    sensor_max: float = 500.0
    """Readings outside this range (or NaN) are sensor faults: unknown, and the cycle fails."""
    unit: str = " °C"

    @model_validator(mode="after")
    def _check(self) -> HoldRule:
        if self.sensor_min >= self.sensor_max:
            raise ValueError("'sensor_min' must be below 'sensor_max'")
        return self

    def build(self, point: PointSink) -> HoldEvaluator:
        return HoldEvaluator(self, point)


class HoldEvaluator(CycleParticipant):
    __slots__ = (
        "alerted",
        "faults",
        "gap_ns",
        "gaps",
        "last_in",
        "last_phase",
        "last_ts",
        "left_hold",
        "max_gap",
        "meter",
        "phases",
        "spec",
    )

    def __init__(self, spec: HoldRule, point: PointSink) -> None:
        super().__init__(spec.field, point)
        self.spec = spec
        self.phases = phase_set(spec.phases)
        self.max_gap = to_ns(spec.max_gap)
        self.meter = HoldMeter(self.max_gap)
        self._reset()

    def _reset(self) -> None:
        self.cycle_start = None
        self.cycle_id = None
        self.meter.reset()
        self.last_ts: int | None = None
        self.last_in = False
        self.last_phase: str | None = None
        self.left_hold = False
        self.alerted = False
        self.gaps = 0
        self.gap_ns = 0
        self.faults = 0

    def start_cycle(self, ts: int, cycle_id: int | None = None) -> None:
        self._reset()
        self.cycle_start = ts
        self.cycle_id = cycle_id

    # -- accounting --------------------------------------------------------------------------
    def _beyond(self, v: float) -> bool:
        t = self.spec.temp
        return v > t or (self.spec.inclusive and v == t)

    def _valid(self, value: FieldValue, counted: bool) -> float | None:
        """The value, or None when it is not a plausible reading (counted as a sensor fault)."""
        v = num(value)
        if v is None:
            return None
        s = self.spec
        if not s.sensor_min <= v <= s.sensor_max:  # also NaN
            if counted:
                self.faults += 1
            return None
        return v

    def _advance(self, ts: int, v: float | None) -> None:
        """Account the interval from the previous sample to `ts` (v: the value at ts)."""
        last = self.last_ts
        if last is not None and self.last_in and ts - last > self.max_gap:
            self.gaps += 1
            self.gap_ns += ts - last - self.max_gap

    def _sample(self, ts: int, v: float | None, counted: bool) -> None:
        """Remember the sample at ts (subclasses keep more of it)."""

    def feed(self, ctx: EvalContext, ts: int, value: FieldValue, reading: Reading) -> None:
        if self.cycle_start is None:
            return
        phase = reading.tags.get(self.spec.phase_tag)
        counted = self.phases is None or phase in self.phases
        v = self._valid(value, counted)
        self._advance(ts, v)
        self.meter.feed(ts, counted and v is not None and self._beyond(v))
        self.last_ts, self.last_in = ts, counted
        self._sample(ts, v, counted)
        hold_phase = self.spec.hold_phase
        if hold_phase is not None and not self.alerted:
            if phase == hold_phase:
                self.left_hold = False
            elif self.last_phase == hold_phase:
                self.left_hold = True
            meter = self.meter
            if self.left_hold and meter.run_start is None and meter.best_len < self.duration_ns:
                self._alert(
                    ctx,
                    ts,
                    reading.tags.get("batch"),
                    Text(
                        N_("short hold: {held} < {duration} when phase {phase} ended"),
                        {
                            "held": self._held(),
                            "duration": Dur(self.spec.duration),
                            "phase": hold_phase,
                        },
                    ),
                )
        self.last_phase = phase

    @property
    def duration_ns(self) -> int:
        return to_ns(self.spec.duration)

    def _held(self) -> Text:
        s = self.spec
        args = {
            "field": s.field,
            "op": "≥" if s.inclusive else ">",
            "temp": fmt_num(s.temp),
            "unit": s.unit,
        }
        held = self.meter.best_len
        if held == 0:
            return Text(N_("{field} never {op} {temp}{unit}"), args)
        return Text(N_("{field} {op} {temp}{unit} held {held}"), {**args, "held": Dur(held / 1e9)})

    def _value(self) -> float:
        """The alert's value: minutes held."""
        return self.meter.best_len / 60e9

    def _alert(self, ctx: EvalContext, ts: int, batch: str | None, text: Text) -> None:
        self.alerted = True
        start = self.cycle_start if self.cycle_start is not None else ts
        if batch:
            what = Text(N_("cycle {batch}"), {"batch": batch})
        else:
            what = Text(N_("cycle started {start}"), {"start": Time(start)})
        v = self._value()
        self.point.activate(
            ctx,
            start,
            ts,
            v,
            v,
            Text(N_("{label}: {what}"), {"label": what, "what": text}),
            cycle=self.cycle_id,
        )
        self.point.clear(ctx, ts, ts, v, v, cycle=self.cycle_id)

    # -- verdict -----------------------------------------------------------------------------
    def _reasons(self) -> list[Text]:
        s = self.spec
        out = []
        if self.meter.best_len < self.duration_ns:
            out.append(
                Text("{held} < {duration}", {"held": self._held(), "duration": Dur(s.duration)})
            )
        out += self._more_reasons()
        if self.gaps and s.gap_fails:
            out.append(
                Text(
                    N_("{gaps} data gap(s) longer than {max_gap} ({gap} without data)"),
                    {"gaps": self.gaps, "max_gap": Dur(s.max_gap), "gap": Dur(self.gap_ns / 1e9)},
                )
            )
        if self.faults:
            out.append(
                Text(
                    N_("{faults} reading(s) of {field} outside the sensor range [{lo}, {hi}]"),
                    {
                        "faults": self.faults,
                        "field": s.field,
                        "lo": fmt_num(s.sensor_min),
                        "hi": fmt_num(s.sensor_max),
                    },
                )
            )
        return out

    def _more_reasons(self) -> list[Text]:
        return []

    def _result(self) -> dict[str, Any]:
        m = self.meter
        return {
            "hold_s": m.best_len / 1e9,
            "hold_start_ns": m.best_start,
            "hold_end_ns": m.best_end,
            "gaps": self.gaps,
            "gap_s": self.gap_ns / 1e9,
            "sensor_faults": self.faults,
        }

    def end_cycle(
        self, ctx: EvalContext, ts: int, reading: Reading, cycle: CycleInfo
    ) -> dict[str, Any]:
        if self.cycle_start is None or self.cycle_start != cycle.start_ns:
            self._reset()
            why = Text(N_("rule not active for the whole cycle (bound or changed mid-cycle)"))
            return {"passed": False, **reason_fields([why])}
        value = reading.fields.get(self.spec.field)
        self._advance(ts, None if value is None else self._valid(value, False))
        self.meter.feed(ts, False)
        reasons = self._reasons()
        result = {"passed": not reasons, **reason_fields(reasons), **self._result()}
        if reasons and not self.alerted:
            self._alert(ctx, ts, cycle.batch, Text(N_("failed: {reasons}"), {"reasons": reasons}))
        result["alerted"] = self.alerted
        self._reset()
        return result

    def dump(self) -> dict[str, Any]:
        return {
            "cycle_start": self.cycle_start,
            "cycle_id": self.cycle_id,
            "meter": self.meter.dump(),
            "last_ts": self.last_ts,
            "last_in": self.last_in,
            "last_phase": self.last_phase,
            "left_hold": self.left_hold,
            "alerted": self.alerted,
            "gaps": self.gaps,
            "gap_ns": self.gap_ns,
            "faults": self.faults,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.meter.load(state["meter"])
        for k, v in state.items():
            if k != "meter":
                setattr(self, k, v)
