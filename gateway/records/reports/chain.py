"""The chain of a lot: every leg it went through, with statistics, and the whole chain's totals.

What `GET /api/v1/lots/{lot}/chain`, the chain report (chain_csv.py, chain_pdf.py) and QA's
release decision are based on. Per leg and logger: readings, first and last, min, max, the
time-weighted mean and MKT, time beyond each of the profile's limits, excursions and GSP record
completeness (a record every 5 min on transport legs, 30 min in storage and cross-docks, 2 min
while out of range: alert_rules/completeness.py; on a leg still open, up to one slot ago).
Every reading holds for its hold time (alert_rules/weighting.py: the logging interval, capped by
the profile's gap limit, never "until the stop"), the same rule as in shipment reports and
budgets. A leg's summary is its worst logger (highest MKT, longest time beyond each limit,
lowest completeness); the chain's totals add the legs up (the MKT and mean over the chain take
each leg's worst logger), plus the gaps between legs: time no leg accounts for.

The verdict: `fail` when the stability budget is exhausted (or MKT or freeze/thaw exceeded),
`review` when the record cannot show the lot was within it (no budget in the profile, gaps
between legs, incomplete records), `pass` otherwise. QA decides; the verdict only advises.

`build_chain` is pure; `chain_for` reads the registry (blocking: use a worker thread).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from alert_rules import ProfileLimits, RuleLibrary
from alert_rules.budget import BudgetUse, LegSeries, StabilityBudget, consume
from alert_rules.completeness import Completeness, completeness
from alert_rules.exposure import (
    Excursion,
    Segment,
    excursions,
    held_segments,
    mkt_of,
    time_in,
    weighted_mean,
)
from gateway.core.i18n import N_, Text, Time
from gateway.core.standards import (
    GSP_RECORD_OUT_OF_RANGE_S,
    GSP_RECORD_STORAGE_S,
    GSP_RECORD_TRANSPORT_S,
)
from gateway.records.geofence import Geofence, SiteConfig
from gateway.records.lots import FIELD, Decision, Leg, Lot, LotRegistry, StageRow
from gateway.records.reports.stats import (
    AlertAction,
    ReportAlert,
    band_label,
    profile_limits,
)

S = 1_000_000_000
TRANSPORT_KINDS = frozenset({"transport"})
"""Legs recorded at the GSP transport cadence (5 min); the others, a cross-dock's warehouse area
too, at the storage one (30 min), as the `record_gap` rule judges them (a `shipment` tag)."""
VERDICTS = {"pass": N_("PASS"), "review": N_("REVIEW"), "fail": N_("FAIL")}
"""The verdict as the reports show it (the code stays `pass`, `review`, `fail`)."""
SUMMARY_LABEL = N_("all loggers (worst)")
"""A leg's summary row: its worst logger, item by item."""


@dataclass(slots=True)
class DeviceStats:
    device: str
    n: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    mkt: float | None = None
    held_s: float = 0.0
    band_s: dict[str, float] = field(default_factory=dict)
    excursions: list[Excursion] = field(default_factory=list)
    completeness: Completeness | None = None
    segments: list[Segment] = field(default_factory=list, repr=False)


@dataclass(slots=True)
class LegReport:
    leg: Leg
    until_ns: int
    """Its stop, or the report's time for a leg still open."""
    devices: list[DeviceStats]
    summary: DeviceStats
    stages: list[StageRow]
    route: list[tuple[int, float, float]]
    """(event time, lat, lon) of its loggers' positions."""
    alerts: list[ReportAlert]
    readings_sha256: str
    """SHA-256 of its readings' journal lines: the evidence a decision is based on."""


@dataclass(slots=True)
class ChainTotals:
    n: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    mkt: float | None = None
    held_s: float = 0.0
    band_s: dict[str, float] = field(default_factory=dict)
    excursions: int = 0
    excursion_s: float = 0.0
    slots: int = 0
    filled: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """Time between legs that no leg accounts for."""

    @property
    def completeness(self) -> float:
        return self.filled / self.slots if self.slots else 1.0


@dataclass(slots=True)
class ChainReport:
    lot: Lot
    retention_until: date
    limits: ProfileLimits
    legs: list[LegReport]
    totals: ChainTotals
    budget: StabilityBudget | None
    use: BudgetUse | None
    verdict: str
    reasons: list[Text]
    """Why the verdict: translatable (str() gives the canonical English, times in UTC)."""
    decision: Decision | None
    lot_alerts: list[ReportAlert]
    """Alerts of the lot itself: its budget, its decision's review."""
    sites: dict[str, SiteConfig]
    generated_at_ns: int
    evidence_sha256: str = ""
    """The SHA-256 of the record shown (chain.evidence_digest)."""
    decision_evidence_sha256: str | None = None
    """The record as of the decision, worked out again now: differs from the decision's
    `evidence_sha256` when evidence changed after it."""

    def geofences(self) -> dict[str, Geofence]:
        """The fences of the sites its legs were at or went between."""
        names: list[str] = []
        for lr in self.legs:
            g = lr.leg
            names += [n for n in (g.site, g.origin, g.destination) if n]
        out = {}
        for n in names:
            cfg = self.sites.get(n)
            if cfg is not None and cfg.geofence is not None:
                out[n] = cfg.geofence
        return out


# -- building ---------------------------------------------------------------------------------
def _device_stats(
    device: str, pts: Sequence[tuple[int, float]], leg: Leg, until: int, limits: ProfileLimits
) -> DeviceStats:
    st = DeviceStats(device, n=len(pts))
    st.band_s = {band_label(b): 0.0 for b in limits.bands}
    start = leg.started_at_ns or until

    def beyond(v: float) -> bool:
        return any(b.beyond(v) for b in limits.bands)

    cadence = round(
        (GSP_RECORD_TRANSPORT_S if leg.kind in TRANSPORT_KINDS else GSP_RECORD_STORAGE_S) * S
    )
    # a leg still open: the slot now running is not over, its record is not due yet
    judged_until = until if leg.stopped_at_ns is not None else max(start, until - cadence)
    st.completeness = completeness(
        list(pts),
        start,
        judged_until,
        cadence,
        beyond if limits.bands else None,
        round(GSP_RECORD_OUT_OF_RANGE_S * S),
    )
    if not pts:
        return st
    interval = round(leg.interval_s * S) if leg.interval_s else None
    segs = held_segments(pts, limits.max_gap_ns, interval)
    st.segments = segs
    st.first_ns, st.last_ns = pts[0][0], pts[-1][0]
    values = [v for _, v in pts]
    st.min, st.max = min(values), max(values)
    st.held_s = sum(s.ns for s in segs) / S
    st.mean = weighted_mean(segs)
    st.mkt = mkt_of(segs, limits.delta_h)
    for b in limits.bands:
        st.band_s[band_label(b)] = time_in(segs, b.beyond) / S
    st.excursions = excursions(segs, beyond)
    return st


def _summary(devices: Sequence[DeviceStats], limits: ProfileLimits) -> DeviceStats:
    """The worst logger's figures, item by item."""
    out = DeviceStats(SUMMARY_LABEL, n=sum(d.n for d in devices))
    out.band_s = {band_label(b): 0.0 for b in limits.bands}
    present = [d for d in devices if d.n]
    if present:
        out.first_ns = min(d.first_ns for d in present if d.first_ns is not None)
        out.last_ns = max(d.last_ns for d in present if d.last_ns is not None)
        out.min = min(d.min for d in present if d.min is not None)
        out.max = max(d.max for d in present if d.max is not None)
        worst = max(present, key=lambda d: d.mkt if d.mkt is not None else -1e9)
        out.mkt, out.mean, out.segments = worst.mkt, worst.mean, worst.segments
        out.held_s = max(d.held_s for d in present)
        for label in out.band_s:
            out.band_s[label] = max(d.band_s.get(label, 0.0) for d in present)
        out.excursions = sorted((e for d in present for e in d.excursions), key=lambda e: e.start)
    comps = [d.completeness for d in devices if d.completeness is not None]
    if comps:
        out.completeness = min(comps, key=lambda c: c.share)
    return out


def build_chain(
    lot: Lot,
    retention_until: date,
    legs: Sequence[Leg],
    points: dict[str, dict[str, list[tuple[int, float]]]],
    routes: dict[str, list[tuple[int, float, float]]],
    stages: dict[str, list[StageRow]],
    lines_sha256: dict[str, str],
    limits: ProfileLimits,
    budget: StabilityBudget | None,
    use: BudgetUse | None,
    alerts: dict[str, list[ReportAlert]],
    lot_alerts: list[ReportAlert],
    decision: Decision | None,
    sites: dict[str, SiteConfig],
    now_ns: int,
) -> ChainReport:
    """The chain of a lot from its started legs' readings (`points`: leg → device → sorted
    (event time, °C))."""
    reports: list[LegReport] = []
    for g in sorted(
        (g for g in legs if g.started_at_ns is not None), key=lambda g: g.started_at_ns or 0
    ):
        until = (
            g.stopped_at_ns if g.stopped_at_ns is not None else max(now_ns, g.started_at_ns or 0)
        )
        devs = [
            _device_stats(dev, pts, g, until, limits)
            for dev, pts in sorted(points.get(g.id, {}).items())
        ]
        reports.append(
            LegReport(
                g,
                until,
                devs,
                _summary(devs, limits),
                stages.get(g.id, []),
                routes.get(g.id, []),
                alerts.get(g.id, []),
                lines_sha256.get(g.id, hashlib.sha256().hexdigest()),
            )
        )
    totals = _totals(reports, limits)
    verdict, reasons = _verdict(reports, totals, budget, use)
    return ChainReport(
        lot,
        retention_until,
        limits,
        reports,
        totals,
        budget,
        use,
        verdict,
        reasons,
        decision,
        lot_alerts,
        sites,
        now_ns,
    )


def _totals(legs: Sequence[LegReport], limits: ProfileLimits) -> ChainTotals:
    t = ChainTotals(band_s={band_label(b): 0.0 for b in limits.bands})
    chain: list[Segment] = []
    for lr in legs:
        s = lr.summary
        t.n += s.n
        if s.n:
            t.first_ns = s.first_ns if t.first_ns is None else min(t.first_ns, s.first_ns or 0)
            t.last_ns = s.last_ns if t.last_ns is None else max(t.last_ns, s.last_ns or 0)
            t.min = s.min if t.min is None else min(t.min, s.min or 0.0)
            t.max = s.max if t.max is None else max(t.max, s.max or 0.0)
        t.held_s += s.held_s
        for label, secs in s.band_s.items():
            t.band_s[label] = t.band_s.get(label, 0.0) + secs
        t.excursions += len(s.excursions)
        t.excursion_s += sum(e.end - e.start for e in s.excursions) / S
        if s.completeness is not None:
            t.slots += s.completeness.slots
            t.filled += s.completeness.filled
        chain += s.segments
    t.mkt = mkt_of(chain, limits.delta_h)
    t.mean = weighted_mean(chain)
    for prev, nxt in itertools.pairwise(legs):
        end = prev.until_ns
        start = nxt.leg.started_at_ns or end
        if start > end:
            t.gaps.append((end, start))
    return t


def _verdict(
    legs: Sequence[LegReport],
    totals: ChainTotals,
    budget: StabilityBudget | None,
    use: BudgetUse | None,
) -> tuple[str, list[Text]]:
    fail: list[Text] = []
    review: list[Text] = []
    if budget is None or use is None:
        review.append(
            Text(N_("the product profile has no stability budget: QA judges the excursions"))
        )
    else:
        for b in use.bands:
            if b.exhausted:
                fail.append(
                    Text(
                        N_(
                            "stability budget {name} ({band} °C) exhausted: {consumed} of {allowed}"
                        ),
                        {
                            "name": b.name,
                            "band": b.label,
                            "consumed": fmt_hours(b.consumed_ns / S),
                            "allowed": fmt_hours(b.allowed_ns / S),
                        },
                    )
                )
        ft = use.freeze_thaw
        if ft is not None and ft.exhausted:
            fail.append(
                Text(
                    N_("frozen {count} time(s) below {below} °C, {allowed} allowed"),
                    {"count": ft.count, "below": f"{ft.below:g}", "allowed": ft.allowed},
                )
            )
        if use.mkt is not None and use.mkt.exceeded:
            fail.append(
                Text(
                    N_("MKT {mkt} °C above the limit {limit} °C"),
                    {"mkt": f"{use.mkt.mkt_c:.2f}", "limit": f"{use.mkt.limit:g}"},
                )
            )
    if not legs:
        review.append(Text(N_("no leg has started: nothing is recorded")))
    for gap_start, gap_end in totals.gaps:
        review.append(
            Text(
                N_(
                    "no leg accounts for {duration} ({start} to {end}): where the lot was is "
                    "not recorded"
                ),
                {
                    "duration": fmt_hours((gap_end - gap_start) / S),
                    "start": Time(gap_start),
                    "end": Time(gap_end),
                },
            )
        )
    for lr in legs:
        c = lr.summary.completeness
        if c is not None and c.slots and c.share < 1.0:
            review.append(
                Text(
                    N_(
                        "leg {leg}: record {share} complete ({empty} of {slots} GSP recording "
                        "slots empty)"
                    ),
                    {
                        "leg": lr.leg.id,
                        "share": f"{c.share:.1%}",
                        "empty": c.slots - c.filled,
                        "slots": c.slots,
                    },
                )
            )
    if fail:
        return "fail", fail + review
    if review:
        return "review", review
    return "pass", [Text(N_("within the stability budget over every leg, record complete"))]


def fmt_hours(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass(slots=True)
class _Inputs:
    legs: list[Leg]
    points: dict[str, dict[str, list[tuple[int, float]]]]
    routes: dict[str, list[tuple[int, float, float]]]
    stages: dict[str, list[StageRow]]
    digests: dict[str, str]


def _inputs(lots: LotRegistry, lot_id: str, as_of_ns: int | None) -> _Inputs:
    """What the chain is made of; `as_of_ns`: as it stood then (legs started later left out,
    legs stopped later open, readings from then on not counted)."""

    def before(ts: int) -> bool:
        return as_of_ns is None or ts < as_of_ns

    legs = []
    for g in lots.legs_of(lot_id):
        if as_of_ns is not None and g.started_at_ns is not None:
            if g.started_at_ns >= as_of_ns:
                continue
            if g.stopped_at_ns is None or g.stopped_at_ns > as_of_ns:
                g = replace(g, stopped_at_ns=None, stopped_by=None, stop_reason=None)
        legs.append(g)
    started = [g for g in legs if g.started_at_ns is not None]
    points = {}
    for g in started:
        per = {dev: [p for p in pts if before(p[0])] for dev, pts in lots.leg_points(g).items()}
        points[g.id] = {dev: pts for dev, pts in per.items() if pts}
    routes = {g.id: [p for p in lots.positions(g) if before(p[0])] for g in started}
    stages = {g.id: [st for st in lots.stages(g.id) if before(st.at_ns)] for g in legs}
    digests = {}
    for g in started:
        h = hashlib.sha256()
        for _m, _d, ts, line in lots.leg_lines(g):
            if before(ts):
                h.update(line.encode())
                h.update(b"\n")
        digests[g.id] = h.hexdigest()
    return _Inputs(legs, points, routes, stages, digests)


def evidence_digest(lot: Lot, inputs: _Inputs) -> str:
    """SHA-256 of what a decision is based on: the lot, its legs (where, when, which loggers)
    with the SHA-256 of each leg's readings, and the stages its geofences recorded. Canonical
    JSON, times in UTC nanoseconds; the figures and the verdict follow from it."""
    doc = {
        "lot": [lot.id, lot.product, lot.profile, lot.expiry, list(lot.codes)],
        "legs": [
            [
                g.id,
                g.kind,
                g.site,
                g.asset,
                list(g.devices),
                list(g.lots),
                g.started_at_ns,
                g.stopped_at_ns,
                inputs.digests.get(g.id),
                [[st.at_ns, st.stage] for st in inputs.stages.get(g.id, [])],
            ]
            for g in inputs.legs
            if g.started_at_ns is not None
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def chain_for(
    lots: LotRegistry,
    lot_id: str,
    library: RuleLibrary | None,
    alerts: dict[str, list[ReportAlert]] | None = None,
    lot_alerts: list[ReportAlert] | None = None,
    now_ns: int | None = None,
    as_of_ns: int | None = None,
) -> ChainReport:
    """The chain of a lot from the registry (blocking: use a worker thread); `as_of_ns`: as it
    stood then. With a decision, also the evidence as of the decision, worked out again now:
    a reading that arrived since with an earlier event time changes it."""
    now = time.time_ns() if now_ns is None else now_ns
    if as_of_ns is not None:
        now = as_of_ns
    lot = lots.require_lot(lot_id)
    inputs = _inputs(lots, lot_id, as_of_ns)
    started = [g for g in inputs.legs if g.started_at_ns is not None]
    limits = profile_limits(library, lot.profile, FIELD)
    budget = library.budget(lot.profile) if library is not None else None
    use = None
    if budget is not None:
        series = [
            LegSeries(
                g.id,
                g.started_at_ns or 0,
                inputs.points[g.id],
                round(g.interval_s * S) if g.interval_s else None,
            )
            for g in started
        ]
        use = consume(budget, series, limits.max_gap_ns)
    decision = lots.decision(lot_id)
    report = build_chain(
        lot,
        lots.retention_until(lot),
        inputs.legs,
        inputs.points,
        inputs.routes,
        inputs.stages,
        inputs.digests,
        limits,
        budget,
        use,
        alerts or {},
        lot_alerts or [],
        decision,
        dict(lots.config.sites),
        now,
    )
    report.evidence_sha256 = evidence_digest(lot, inputs)
    if decision is not None:
        if as_of_ns == decision.decided_at_ns:
            report.decision_evidence_sha256 = report.evidence_sha256
        else:
            then = _inputs(lots, lot_id, decision.decided_at_ns)
            report.decision_evidence_sha256 = evidence_digest(lot, then)
    return report


def gather_chain_alerts(
    store: Any, lot_id: str, legs: Sequence[Leg], limit: int = 10_000
) -> tuple[dict[str, list[ReportAlert]], list[ReportAlert]]:
    """Alerts raised on each leg's loggers during the leg, and the lot's own (its budget, its
    decision's review). Call on the alert store's thread."""
    started = [g for g in legs if g.started_at_ns is not None]
    per_leg: dict[str, list[ReportAlert]] = {g.id: [] for g in started}
    own: list[ReportAlert] = []
    if store is None or not started:
        return per_leg, own
    since = min(g.started_at_ns or 0 for g in started)
    for a in reversed(store.list_alerts(since_ns=since, limit=limit)):
        tags = a.tags or {}
        mine_lot = tags.get("lot") == lot_id and "budget" in tags
        legs_hit = [g for g in started if g.covers(tags) and g.contains(a.raised_at)]
        if not mine_lot and not legs_hit:
            continue
        actions = tuple(
            AlertAction(
                h["kind"], h["old_state"], h["new_state"], h["wall_ns"], h["by"], h["reason"]
            )
            for h in store.history(a.id)
        )
        ra = ReportAlert(a.to_dict(), actions)
        if mine_lot:
            own.append(ra)
        for g in legs_hit:
            per_leg[g.id].append(ra)
    return per_leg, own
