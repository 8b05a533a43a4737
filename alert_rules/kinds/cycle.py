"""`cycle`: delimits production cycles / batches per device and records a summary of each.

A cycle is a run of a series' readings that belong together: an autoclave load from heat-up to
unloading, a lyophilisation batch, a filling run. It is delimited by tags the PLC exposes:

* `phases` — the phase-tag values that are part of a cycle (None: any phase). A reading in
  another phase (idle, setup) ends the running cycle.
* `batch: true` — the batch tag must be present, and a change of batch starts a new cycle.
* `start_phases` — entering one of these from any other phase starts a new cycle, for PLCs that
  go from `complete` straight back to `heat_up` without an idle phase or a new batch id.

The engine (alert_rules/cycles.py) stores the summary in the `cycles` table and emits a `cycle`
reading when a cycle ends. Rules that judge whole cycles (`f0`, `hold`) are *cycle participants*:
they are told when a cycle starts and ends and hand back their verdict. A series bound to a
participant without a `cycle` rule gets a default one (`vigil.cycle`: cycles by batch tag).
With `require_phases`, a cycle that ends without passing through them (an aborted cycle) fails
and raises this rule's alert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from alert_rules.context import EvalContext
from alert_rules.kinds.base import Evaluator, PointSink, RuleBase
from alert_rules.model import Priority
from gateway.core.i18n import N_, Text, Time
from gateway.core.reading import Reading

DEFAULT_CYCLE_PROFILE = "vigil"
"""Profile name of the default cycle rule the engine adds (rule id `vigil.cycle`)."""


class CycleRule(RuleBase):
    kind: Literal["cycle"] = "cycle"
    priority: Priority = Priority.HIGH
    phase_tag: str = "phase"
    batch_tag: str = "batch"
    phases: list[str] | None = None
    """Phase values that belong to a cycle; None = any (then the batch tag delimits cycles)."""
    batch: bool = True
    """A cycle needs a batch tag and ends when it changes."""
    start_phases: list[str] = Field(default_factory=list)
    require_phases: list[str] = Field(default_factory=list)
    """A cycle that never entered these phases fails (aborted) and raises an alert."""
    fields: list[str] | None = None
    """Fields whose min/max the summary keeps (per cycle and per phase); None = every numeric."""

    def build(self, point: PointSink) -> Evaluator:
        return CycleEvaluator(self, point)


@dataclass(slots=True)
class CycleInfo:
    """What participants learn about the cycle that ended."""

    start_ns: int
    end_ns: int
    batch: str | None
    phases: list[str]


class CycleEvaluator(Evaluator):
    """Per-series cycle state; the engine calls boundary/begin/observe/end, never feed()."""

    __slots__ = (
        "active_alerts",
        "batch",
        "cycle_id",
        "last_phase",
        "max",
        "min",
        "partial",
        "phases",
        "spec",
        "start",
        "tags",
    )

    def __init__(self, spec: CycleRule, point: PointSink) -> None:
        super().__init__(None, point)
        self.spec = spec
        self._reset()
        self.last_phase: str | None = None
        """Phase of the series' previous reading (in a cycle or not)."""

    def _reset(self) -> None:
        self.cycle_id: int | None = None
        self.start: int | None = None
        self.batch: str | None = None
        self.tags: dict[str, str] = {}
        self.phases: list[dict[str, Any]] = []
        self.min: dict[str, float] = {}
        self.max: dict[str, float] = {}
        self.active_alerts: list[int] = []
        self.partial = False

    @property
    def running(self) -> bool:
        return self.start is not None

    def belongs(self, tags: dict[str, str]) -> bool:
        spec = self.spec
        if spec.batch and not tags.get(spec.batch_tag):
            return False
        return spec.phases is None or tags.get(spec.phase_tag) in spec.phases

    def boundary(self, r: Reading) -> tuple[bool, bool]:
        """(the running cycle ends at r, a new cycle starts at r)."""
        spec = self.spec
        tags = r.tags
        inside = self.belongs(tags)
        phase = tags.get(spec.phase_tag)
        restart = (
            bool(spec.start_phases)
            and phase in spec.start_phases
            and self.last_phase not in spec.start_phases
        )
        end = self.running and (
            not inside or restart or (spec.batch and tags.get(spec.batch_tag) != self.batch)
        )
        start = inside and (end or not self.running)
        return end, start

    def begin(self, r: Reading, cycle_id: int, active_alerts: list[int]) -> None:
        spec = self.spec
        self._reset()
        self.cycle_id = cycle_id
        self.start = r.ts_ns
        self.batch = r.tags.get(spec.batch_tag)
        self.active_alerts = active_alerts
        phase = r.tags.get(spec.phase_tag)
        # Seen from the middle (gateway started mid-cycle, or a PLC without a start phase)?
        self.partial = bool(spec.start_phases) and phase not in spec.start_phases

    def observe(self, r: Reading) -> None:
        """Account a reading of the running cycle: phases, min/max."""
        spec = self.spec
        ts = r.ts_ns
        phase = r.tags.get(spec.phase_tag) or ""
        self.last_phase = r.tags.get(spec.phase_tag)
        if not self.running:
            return
        self.tags = r.tags
        phases = self.phases
        if not phases or phases[-1]["phase"] != phase:
            if phases:
                phases[-1]["end_ns"] = ts
            phases.append({"phase": phase, "start_ns": ts, "end_ns": None, "min": {}, "max": {}})
        cur = phases[-1]
        pmin, pmax, cmin, cmax = cur["min"], cur["max"], self.min, self.max
        wanted = spec.fields
        for k, v in r.fields.items():
            if v.__class__ is bool or not isinstance(v, int | float):
                continue
            if wanted is not None and k not in wanted:
                continue
            if not math.isfinite(v):
                continue
            if k not in cmin or v < cmin[k]:
                cmin[k] = v
            if k not in cmax or v > cmax[k]:
                cmax[k] = v
            if k not in pmin or v < pmin[k]:
                pmin[k] = v
            if k not in pmax or v > pmax[k]:
                pmax[k] = v

    def info(self, end_ns: int) -> CycleInfo:
        return CycleInfo(
            self.start or end_ns, end_ns, self.batch, [p["phase"] for p in self.phases]
        )

    def end(self, ctx: EvalContext, end_ns: int) -> dict[str, Any]:
        """Close the running cycle: its summary (without participants' results), and reset.

        `require_phases` is judged here; a failure raises this rule's alert."""
        if self.phases:
            self.phases[-1]["end_ns"] = end_ns
        seen = {p["phase"] for p in self.phases}
        missing = [p for p in self.spec.require_phases if p not in seen]
        reasons: list[Text] = []
        if missing:
            reasons.append(
                Text(
                    N_("phase(s) {phases} never reached (aborted cycle)"),
                    {"phases": ", ".join(missing)},
                )
            )
        if self.partial:
            reasons.append(Text(N_("cycle start not seen (monitoring began mid-cycle)")))
        out = {
            "cycle_id": self.cycle_id,
            "start_ns": self.start,
            "end_ns": end_ns,
            "batch": self.batch,
            "tags": dict(self.tags),
            "phases": self.phases,
            "min": self.min,
            "max": self.max,
            "active_alerts": self.active_alerts,
            "reasons": reasons,
            "judged": bool(self.spec.require_phases) or self.partial,
        }
        if reasons:
            start = self.start if self.start is not None else end_ns
            args = {"batch": self.batch, "start": Time(start), "reasons": reasons}
            if self.batch:
                text = Text(N_("cycle {batch} started {start} failed: {reasons}"), args)
            else:
                text = Text(N_("cycle started {start} failed: {reasons}"), args)
            self.point.activate(ctx, start, end_ns, None, None, text, cycle=self.cycle_id)
            self.point.clear(ctx, end_ns, end_ns, None, None, cycle=self.cycle_id)
        self._reset()
        return out

    def dump(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id,
            "start": self.start,
            "batch": self.batch,
            "tags": self.tags,
            "phases": self.phases,
            "min": self.min,
            "max": self.max,
            "active_alerts": self.active_alerts,
            "partial": self.partial,
            "last_phase": self.last_phase,
        }

    def load(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class CycleParticipant(Evaluator):
    """A rule that judges whole cycles. The engine calls `start_cycle` when a cycle starts (before
    feeding the reading that starts it) and `end_cycle` when it ends (with the reading that ends
    it, which is not fed to the cycle); `feed` only counts readings while a cycle runs
    (`cycle_start` is set)."""

    __slots__ = ("cycle_id", "cycle_start")

    def __init__(self, field: str | None, point: PointSink) -> None:
        super().__init__(field, point)
        self.cycle_start: int | None = None
        self.cycle_id: int | None = None
        """The running cycle's id: the participant's alarm is that cycle's alone."""

    def start_cycle(self, ts: int, cycle_id: int | None = None) -> None:
        self.cycle_start = ts
        self.cycle_id = cycle_id

    def end_cycle(
        self, ctx: EvalContext, ts: int, reading: Reading, cycle: CycleInfo
    ) -> dict[str, Any]:
        """Finish the cycle's accounting at `ts`; return the result for the summary:
        at least {"passed": bool | None, "reasons": [str]} (None: nothing to judge)."""
        raise NotImplementedError


def reason_fields(reasons: list[Text]) -> dict[str, Any]:
    """A verdict's reasons as a cycle result stores them: English text and the Text documents
    (rendered in the reader's language by the API and reports)."""
    return {"reasons": [str(r) for r in reasons], "reason_texts": [r.to_json() for r in reasons]}


def phase_set(phases: list[str] | None) -> frozenset[str] | None:
    return None if phases is None else frozenset(phases)
