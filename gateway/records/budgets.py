"""Lots' stability budgets as `lot_budget` readings, so the rules engine alerts on them.

Like the journal's fill alarms, a lot's budget becomes alerts through rules: the tracker writes
internal `lot_budget` readings (gateway.core.schema.LOT_BUDGET; one series per lot and budget
item) and the rules library binds the lot's profile's budget rules to them (shares consumed,
exhausted, MKT limit, the decision's review; alert_rules/budget.py). Alerts are routed to
notifiers like any other.

Each time it runs (every `traceability.budget_interval_s`) the tracker works out again the lots
whose readings, legs or decision changed. For a band or the freeze/thaw count it writes one
reading per alert share reached, once, at the exact event time it was reached: consumption only
grows, and a truck that uploads its trip on arrival still gets the alert at the hour its budget
ran out. The engine evaluates a series in event-time order, so a share found to have been
reached before one already written (a later upload of older readings) goes out just after it.
The chain's MKT, which may go down again, is written as it stands at the chain's last reading;
the decision's review flag when it changes. The consumption itself is in the API and reports.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from alert_rules import RuleLibrary
from alert_rules.budget import BudgetUse, StabilityBudget, consume
from gateway.core.reading import Reading
from gateway.core.schema import LOT_BUDGET
from gateway.records.lots import FIELD, Lot, LotRegistry

Fields = dict[str, float | int | bool | str]


@dataclass(slots=True)
class _Series:
    last_ts: int = -1
    levels: set[float] = field(default_factory=set)
    """Shares already written (bands, freeze/thaw)."""
    last: Fields = field(default_factory=dict)
    """The last value written (MKT, review)."""


class BudgetTracker:
    def __init__(self, lots: LotRegistry, library: RuleLibrary | None) -> None:
        self.lots = lots
        self.library = library
        self._series: dict[str, _Series] = {}
        lots.mark_recent_dirty()  # shares reached before a restart are written again (the
        # engine skips what it has seen: same series, same or older event time)

    def readings(self, now_ns: int | None = None) -> list[Reading]:
        """The lot_budget readings of every lot that changed (blocking: use a worker thread)."""
        now = time.time_ns() if now_ns is None else now_ns
        out: list[Reading] = []
        for lot_id in sorted(self.lots.take_dirty()):
            lot = self.lots.get_lot(lot_id)
            if lot is not None:
                out += self.lot_readings(lot, now)
        return out

    def lot_readings(self, lot: Lot, now_ns: int) -> list[Reading]:
        out: list[Reading] = []
        decision = self.lots.decision(lot.id)
        if decision is not None:
            review: Fields = {"review": 1.0 if decision.needs_review else 0.0}
            out += self._changed(lot, "decision", now_ns, review, now_ns)
        library = self.library
        budget = library.budget(lot.profile) if library is not None else None
        if library is None or budget is None:
            return out
        gap = library.limits(lot.profile, FIELD).max_gap_ns
        use = consume(budget, self.lots.lot_series(lot.id), gap)
        return out + self._budget_readings(lot, budget, use, now_ns)

    def _budget_readings(
        self, lot: Lot, budget: StabilityBudget, use: BudgetUse, now_ns: int
    ) -> list[Reading]:
        out: list[Reading] = []
        for b in use.bands:
            allowed = b.allowed_ns / 1e9
            for level, ts in sorted(b.crossings.items(), key=lambda c: c[1]):
                fields: Fields = {
                    "share": level,
                    "consumed_s": level * allowed,
                    "allowed_s": allowed,
                    "remaining_s": (1 - level) * allowed,
                }
                out += self._reached(lot, b.name, level, ts, fields, now_ns)
        ft = use.freeze_thaw
        if ft is not None:
            for level in budget.levels:
                k = max(1, math.ceil(level * ft.allowed))  # the k-th freeze reaches the share
                if level == 1.0 and ft.allowed > 0:
                    k = ft.allowed + 1  # exhausted: one more than allowed
                if k <= len(ft.events):
                    fields = {"share": level, "count": k, "allowed_count": ft.allowed}
                    out += self._reached(
                        lot, "freeze_thaw", level, ft.events[k - 1], fields, now_ns
                    )
        m = use.mkt
        if m is not None and m.mkt_c is not None and use.last_ns is not None:
            current: Fields = {"mkt_c": round(m.mkt_c, 4), "limit_c": m.limit}
            out += self._changed(lot, "mkt", min(use.last_ns, now_ns), current, now_ns)
        return out

    def _reading(self, lot: Lot, item: str, ts: int, fields: Fields, now_ns: int) -> Reading:
        series = f"{lot.id}/{item}"
        tags = {"lot": lot.id, "profile": lot.profile, "budget": item, "device": series}
        return Reading(LOT_BUDGET.name, tags, fields, ts, now_ns)

    def _reached(
        self, lot: Lot, item: str, level: float, ts: int, fields: Fields, now_ns: int
    ) -> list[Reading]:
        """A share reached: written once, at its time (or just after the series' last)."""
        s = self._series.setdefault(f"{lot.id}/{item}", _Series())
        if level in s.levels:
            return []
        s.levels.add(level)
        s.last_ts = max(ts, s.last_ts + 1)
        return [self._reading(lot, item, s.last_ts, fields, now_ns)]

    def _changed(self, lot: Lot, item: str, ts: int, fields: Fields, now_ns: int) -> list[Reading]:
        """A value that can go both ways: written when it changes."""
        s = self._series.setdefault(f"{lot.id}/{item}", _Series())
        if fields == s.last:
            return []
        s.last = fields
        s.last_ts = max(ts, s.last_ts + 1)
        return [self._reading(lot, item, s.last_ts, fields, now_ns)]
