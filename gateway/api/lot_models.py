"""Request and response models of the lots, legs and chain routes (pydantic v2).

Times in responses are RFC 3339 UTC; times in requests are ISO 8601 with a zone (a time more than
5 minutes in the past needs a `reason`, kept in the audit trail).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alert_rules.budget import BudgetUse
from alert_rules.completeness import Completeness
from gateway.api.models import Comment, Ident, Name, Note, SignatureIn, ns_to_dt
from gateway.records.lots import Decision, Leg, Lot, StageRow
from gateway.records.reports.chain import ChainReport, DeviceStats, LegReport

ROUTE_POINTS = 500
"""Positions per leg in the chain's JSON at most (evenly thinned)."""


class LotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Ident = Field(description="the batch number (批号)")
    product: Name = Field(min_length=1)
    profile: Ident = Field(description="the product profile: its rules and stability budget")
    expiry: date
    codes: list[Name] = Field(
        default_factory=list,
        max_length=10_000,
        description="traceability codes (追溯码) of its packages, e.g. 20-digit drug codes",
    )
    note: Note = ""


class LotOut(BaseModel):
    id: str
    product: str
    profile: str
    expiry: date
    codes: list[str]
    note: str
    created_at: datetime
    created_by: str
    retention_until: date

    @classmethod
    def of(cls, lot: Lot, retention_until: date) -> LotOut:
        return cls(
            id=lot.id,
            product=lot.product,
            profile=lot.profile,
            expiry=date.fromisoformat(lot.expiry),
            codes=list(lot.codes),
            note=lot.note,
            created_at=ns_to_dt(lot.created_at_ns),
            created_by=lot.created_by,
            retention_until=retention_until,
        )


class LotListOut(LotOut):
    decision: Literal["release", "quarantine", "reject"] | None = Field(
        description="QA's current decision (None: not decided)"
    )
    decided_at: datetime | None
    needs_review: bool = Field(
        description="readings arrived after the decision inside its evidence"
    )

    @classmethod
    def listed(cls, lot: Lot, retention_until: date, d: Decision | None) -> LotListOut:
        return cls(
            **LotOut.of(lot, retention_until).model_dump(),
            decision=None if d is None else d.decision,
            decided_at=None if d is None else ns_to_dt(d.decided_at_ns),
            needs_review=d is not None and d.needs_review,
        )


class LotActionOut(BaseModel):
    lot: LotOut
    audit_seq: int


class LegIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lots: list[Ident] = Field(default_factory=list, max_length=1000)
    kind: Literal["storage", "transport", "cross_dock", "destination"]
    asset: Ident
    site: Ident | None = None
    devices: list[Ident] = Field(default_factory=list, max_length=100)
    profile: Ident | None = Field(
        default=None, description="transport: the shipment's profile (default: its lots')"
    )
    id: Ident | None = None
    origin: Ident | None = None
    destination: Ident | None = None
    geofence: bool = Field(
        default=False,
        description="transport: stages from the truck's positions; ends on entering the "
        "destination's geofence",
    )
    planned: bool = Field(
        default=False, description="geofence legs: start when the truck leaves the origin"
    )
    interval_s: float | None = Field(default=None, gt=0, le=86_400)
    started_at: AwareDatetime | None = None
    reason: Comment | None = None
    note: Note = ""


class TimeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(default=None, description="default: now")
    reason: Comment | None = None


class StageOut(BaseModel):
    at: datetime
    stage: str
    lat: float
    lon: float

    @classmethod
    def of(cls, st: StageRow) -> StageOut:
        return cls(at=ns_to_dt(st.at_ns), stage=st.stage, lat=st.lat, lon=st.lon)


class LegOut(BaseModel):
    id: str
    kind: str
    status: Literal["planned", "active", "closed", "cancelled"]
    site: str | None
    asset: str
    devices: list[str]
    lots: list[str]
    profile: str
    origin: str
    destination: str
    geofence: bool
    interval_s: float | None
    note: str
    started_at: datetime | None
    started_by: str | None
    start_reason: str | None
    stopped_at: datetime | None
    stopped_by: str | None
    stop_reason: str | None

    @classmethod
    def of(cls, g: Leg) -> LegOut:
        return cls(
            id=g.id,
            kind=g.kind,
            status=g.status,
            site=g.site,
            asset=g.asset,
            devices=list(g.devices),
            lots=list(g.lots),
            profile=g.profile,
            origin=g.origin,
            destination=g.destination,
            geofence=g.geofence,
            interval_s=g.interval_s,
            note=g.note,
            started_at=ns_to_dt(g.started_at_ns),
            started_by=g.started_by,
            start_reason=g.start_reason,
            stopped_at=ns_to_dt(g.stopped_at_ns),
            stopped_by=g.stopped_by,
            stop_reason=g.stop_reason,
        )


class LegDetailOut(LegOut):
    stages: list[StageOut]


class LegActionOut(BaseModel):
    leg: LegOut
    closed: list[LegOut] = Field(description="legs of its lots closed at its start")
    shipment: str | None = Field(description="the shipment of a transport leg (same id)")
    audit_seq: int


class DecisionIn(SignatureIn):
    decision: Literal["release", "quarantine", "reject"]
    comment: Comment | None = None


class DecisionOut(BaseModel):
    decision: str
    decided_at: datetime
    decided_by: str
    signer_name: str
    meaning: str
    comment: str | None
    evidence_sha256: str
    needs_review: bool
    review_at: datetime | None
    review_reason: str | None
    evidence_unchanged: bool | None = Field(
        default=None,
        description="the evidence as of the decision, worked out again now, is "
        "the one signed (None when not worked out)",
    )

    @classmethod
    def of(cls, d: Decision, unchanged: bool | None = None) -> DecisionOut:
        return cls(
            decision=d.decision,
            decided_at=ns_to_dt(d.decided_at_ns),
            decided_by=d.decided_by,
            signer_name=d.signer_name,
            meaning=d.meaning,
            comment=d.comment,
            evidence_sha256=d.evidence_sha256,
            needs_review=d.needs_review,
            review_at=ns_to_dt(d.review_at_ns),
            review_reason=d.review_reason,
            evidence_unchanged=unchanged,
        )


def decision_out(r: ChainReport) -> DecisionOut | None:
    """The lot's decision, and whether the evidence as of it, worked out again now, is the one
    signed."""
    if r.decision is None:
        return None
    unchanged = None
    if r.decision_evidence_sha256 is not None:
        unchanged = r.decision.evidence_sha256 == r.decision_evidence_sha256
    return DecisionOut.of(r.decision, unchanged)


class DecisionActionOut(BaseModel):
    lot: str
    decision: DecisionOut
    audit_seq: int


class BandBudgetOut(BaseModel):
    name: str
    band: str
    allowed_s: float
    consumed_s: float
    remaining_s: float
    share: float
    exhausted: bool
    reached: dict[str, datetime] = Field(description="share → when it was reached")
    per_leg_s: dict[str, float]


class FreezeBudgetOut(BaseModel):
    below_c: float
    allowed: int
    count: int
    remaining: int
    share: float
    exhausted: bool
    freezes: list[datetime]


class MktBudgetOut(BaseModel):
    limit_c: float
    window_s: float | None
    mkt_c: float | None
    window_start: datetime | None
    window_end: datetime | None
    exceeded: bool


class BudgetOut(BaseModel):
    bands: list[BandBudgetOut]
    freeze_thaw: FreezeBudgetOut | None
    mkt: MktBudgetOut | None
    exhausted: list[str]

    @classmethod
    def of(cls, use: BudgetUse) -> BudgetOut:
        ft, m = use.freeze_thaw, use.mkt
        return cls(
            bands=[
                BandBudgetOut(
                    name=b.name,
                    band=f"{b.label} °C",
                    allowed_s=b.allowed_ns / 1e9,
                    consumed_s=b.consumed_ns / 1e9,
                    remaining_s=b.remaining_ns / 1e9,
                    share=b.share,
                    exhausted=b.exhausted,
                    reached={f"{lv:g}": ns_to_dt(ts) for lv, ts in sorted(b.crossings.items())},
                    per_leg_s={k: v / 1e9 for k, v in b.per_leg.items()},
                )
                for b in use.bands
            ],
            freeze_thaw=None
            if ft is None
            else FreezeBudgetOut(
                below_c=ft.below,
                allowed=ft.allowed,
                count=ft.count,
                remaining=max(0, ft.allowed - ft.count),
                share=ft.share,
                exhausted=ft.exhausted,
                freezes=[ns_to_dt(t) for t in ft.events],
            ),
            mkt=None
            if m is None
            else MktBudgetOut(
                limit_c=m.limit,
                window_s=None if m.window_ns is None else m.window_ns / 1e9,
                mkt_c=m.mkt_c,
                window_start=ns_to_dt(m.window[0]) if m.window else None,
                window_end=ns_to_dt(m.window[1]) if m.window else None,
                exceeded=m.exceeded,
            ),
            exhausted=use.exhausted,
        )


class GapOut(BaseModel):
    start: datetime
    end: datetime
    seconds: float


class CompletenessOut(BaseModel):
    share: float
    slots: int
    filled: int
    gaps: list[GapOut]

    @classmethod
    def of(cls, c: Completeness) -> CompletenessOut:
        return cls(
            share=c.share,
            slots=c.slots,
            filled=c.filled,
            gaps=[
                GapOut(
                    start=ns_to_dt(g.start_ns),
                    end=ns_to_dt(g.end_ns),
                    seconds=(g.end_ns - g.start_ns) / 1e9,
                )
                for g in c.gaps
            ],
        )


class ExcursionOut(BaseModel):
    start: datetime
    end: datetime
    seconds: float
    lowest_c: float
    highest_c: float


class DeviceStatsOut(BaseModel):
    device: str
    readings: int
    first: datetime | None
    last: datetime | None
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    covered_s: float
    out_of_range_s: dict[str, float] = Field(description="band → seconds beyond it")
    excursions: list[ExcursionOut]
    completeness: CompletenessOut | None

    @classmethod
    def of(cls, d: DeviceStats) -> DeviceStatsOut:
        return cls(
            device=d.device,
            readings=d.n,
            first=ns_to_dt(d.first_ns),
            last=ns_to_dt(d.last_ns),
            min_c=d.min,
            max_c=d.max,
            mean_c=d.mean,
            mkt_c=d.mkt,
            covered_s=d.held_s,
            out_of_range_s=dict(d.band_s),
            excursions=[
                ExcursionOut(
                    start=ns_to_dt(e.start),
                    end=ns_to_dt(e.end),
                    seconds=(e.end - e.start) / 1e9,
                    lowest_c=e.lowest,
                    highest_c=e.highest,
                )
                for e in d.excursions
            ],
            completeness=None if d.completeness is None else CompletenessOut.of(d.completeness),
        )


class PositionOut(BaseModel):
    at: datetime
    lat: float
    lon: float


class ChainLegOut(BaseModel):
    leg: LegOut
    summary: DeviceStatsOut = Field(description="the worst logger, item by item")
    devices: list[DeviceStatsOut]
    stages: list[StageOut]
    route: list[PositionOut] = Field(description=f"at most {ROUTE_POINTS} positions")
    alert_ids: list[int]
    readings_sha256: str

    @classmethod
    def of(cls, lr: LegReport) -> ChainLegOut:
        route = lr.route
        if len(route) > ROUTE_POINTS:
            step = len(route) / ROUTE_POINTS
            route = [route[int(i * step)] for i in range(ROUTE_POINTS - 1)] + [route[-1]]
        return cls(
            leg=LegOut.of(lr.leg),
            summary=DeviceStatsOut.of(lr.summary),
            devices=[DeviceStatsOut.of(d) for d in lr.devices],
            stages=[StageOut.of(st) for st in lr.stages],
            route=[PositionOut(at=ns_to_dt(t), lat=lat, lon=lon) for t, lat, lon in route],
            alert_ids=[int(ra.alert["id"]) for ra in lr.alerts],
            readings_sha256=lr.readings_sha256,
        )


class TotalsOut(BaseModel):
    readings: int
    first: datetime | None
    last: datetime | None
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    covered_s: float
    out_of_range_s: dict[str, float]
    excursions: int
    excursion_s: float
    completeness: float
    gaps_between_legs: list[GapOut]


class GeofenceOut(BaseModel):
    site: str
    name: str
    outline: list[tuple[float, float]] = Field(description="[lat, lon] corners")


class ChainOut(BaseModel):
    lot: LotOut
    verdict: Literal["pass", "review", "fail"]
    reasons: list[str]
    legs: list[ChainLegOut]
    totals: TotalsOut
    budget: BudgetOut | None
    decision: DecisionOut | None
    lot_alert_ids: list[int]
    geofences: list[GeofenceOut]
    evidence_sha256: str
    generated_at: datetime

    @classmethod
    def of(cls, r: ChainReport, lang: str = "en", tz: str | None = None) -> ChainOut:
        """Reasons in `lang`, their times in `tz` (None: the canonical English, UTC)."""
        t = r.totals
        return cls(
            lot=LotOut.of(r.lot, r.retention_until),
            verdict=r.verdict,
            reasons=[x.render(lang, tz) for x in r.reasons],
            legs=[ChainLegOut.of(lr) for lr in r.legs],
            totals=TotalsOut(
                readings=t.n,
                first=ns_to_dt(t.first_ns),
                last=ns_to_dt(t.last_ns),
                min_c=t.min,
                max_c=t.max,
                mean_c=t.mean,
                mkt_c=t.mkt,
                covered_s=t.held_s,
                out_of_range_s=dict(t.band_s),
                excursions=t.excursions,
                excursion_s=t.excursion_s,
                completeness=t.completeness,
                gaps_between_legs=[
                    GapOut(start=ns_to_dt(a), end=ns_to_dt(b), seconds=(b - a) / 1e9)
                    for a, b in t.gaps
                ],
            ),
            budget=None if r.use is None else BudgetOut.of(r.use),
            decision=decision_out(r),
            lot_alert_ids=[int(ra.alert["id"]) for ra in r.lot_alerts],
            geofences=[
                GeofenceOut(
                    site=name,
                    name=r.sites[name].name if name in r.sites else "",
                    outline=g.outline(36),
                )
                for name, g in sorted(r.geofences().items())
            ],
            evidence_sha256=r.evidence_sha256,
            generated_at=ns_to_dt(r.generated_at_ns),
        )


class LotDetailOut(BaseModel):
    lot: LotOut
    legs: list[LegOut]
    verdict: Literal["pass", "review", "fail"]
    budget: BudgetOut | None = Field(description="consumed and remaining over all its legs")
    decision: DecisionOut | None
