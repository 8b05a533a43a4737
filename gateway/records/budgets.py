"""Lots' stability budgets as `lot_budget` readings, so the rules engine alerts on them.

Like the journal's fill alarms, a lot's budget becomes alerts through rules: the tracker writes
internal `lot_budget` readings (gateway.core.schema.LOT_BUDGET; one series per lot and budget
item) and the rules library binds the lot's profile's budget rules to them (shares consumed,
exhausted, MKT limit, the decision's review; alert_rules/budget.py). Alerts are routed to
notifiers like any other.

Each time it runs (every `traceability.budget_interval_s`) the tracker works out again the lots
whose readings, legs or decision changed, and writes for each item: a reading at the exact
event time each alert share was reached (so the alert says when it happened, even from a late
upload), and one with the current consumption when it changed. The engine evaluates a series in
event-time order, so a reading never goes out older than the last one of its series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from alert_rules import RuleLibrary
from alert_rules.budget import BudgetUse, StabilityBudget, consume
from gateway.core.reading import Reading
from gateway.core.schema import LOT_BUDGET
from gateway.records.lots import FIELD, Lot, LotRegistry

Fields = dict[str, float | int | bool | str]


class BudgetTracker:
    def __init__(self, lots: LotRegistry, library: RuleLibrary | None) -> None:
        self.lots = lots
        self.library = library
        self._last: dict[str, tuple[int, Fields]] = {}
        """series (`device` tag) → (event time, fields) of the last reading written."""

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
            out += self._emit(lot, "decision", [], (now_ns, review), now_ns)
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
        at = min(use.last_ns or now_ns, now_ns)
        for b in use.bands:
            crossings: list[tuple[int, Fields]] = [
                (ts, {"share": level, "consumed_s": level * b.allowed_ns / 1e9})
                for level, ts in sorted(b.crossings.items(), key=lambda c: c[1])
            ]
            current: Fields = {
                "share": round(b.share, 6),
                "consumed_s": b.consumed_ns / 1e9,
                "allowed_s": b.allowed_ns / 1e9,
                "remaining_s": b.remaining_ns / 1e9,
            }
            out += self._emit(lot, b.name, crossings, (at, current), now_ns)
        ft = use.freeze_thaw
        if ft is not None:
            marks: list[tuple[int, Fields]] = []
            for level in budget.levels:
                k = max(1, math.ceil(level * ft.allowed))  # the k-th freeze reaches the share
                if k <= len(ft.events):
                    marks.append((ft.events[k - 1], {"share": level, "count": k}))
            current = {"share": round(ft.share, 6), "count": ft.count, "allowed_count": ft.allowed}
            marks.sort(key=lambda mark: mark[0])
            out += self._emit(lot, "freeze_thaw", marks, (at, current), now_ns)
        m = use.mkt
        if m is not None and m.mkt_c is not None:
            current = {"mkt_c": round(m.mkt_c, 4), "limit_c": m.limit}
            out += self._emit(lot, "mkt", [], (at, current), now_ns)
        return out

    def _emit(
        self,
        lot: Lot,
        item: str,
        marks: Iterable[tuple[int, Fields]],
        current: tuple[int, Fields],
        now_ns: int,
    ) -> list[Reading]:
        series = f"{lot.id}/{item}"
        tags = {"lot": lot.id, "profile": lot.profile, "budget": item, "device": series}
        last_ts, last_fields = self._last.get(series, (-1, {}))
        out = []
        for ts, fields in marks:
            if ts > last_ts:
                out.append(Reading(LOT_BUDGET.name, tags, fields, ts, now_ns))
                last_ts, last_fields = ts, fields
        ts, fields = current
        if fields != last_fields or (not out and last_ts < 0):
            ts = max(ts, last_ts + 1)
            out.append(Reading(LOT_BUDGET.name, tags, fields, ts, now_ns))
            last_ts, last_fields = ts, fields
        self._last[series] = (last_ts, last_fields)
        return out
