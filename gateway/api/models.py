"""Request and response models of the HTTP API (pydantic v2). The alert shape is DESIGN §3's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, overload

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from alert_rules.cycles import Cycle
from alert_rules.model import Alert
from gateway.core.eventtime import ns_to_datetime
from gateway.core.i18n import render_json

GATEWAY_CLOCK_KINDS = frozenset({"stale", "device_offline"})
"""Rule kinds judged on the gateway's receive clock, not the device's event time."""

INT64_MAX = 2**63 - 1


def _clean(v: str) -> str:
    """Strings go to SQLite and PDFs: no NUL, no lone surrogates (JSON allows both)."""
    if "\x00" in v:
        raise ValueError("must not contain NUL characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return v


_Clean = AfterValidator(_clean)
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64), _Clean]
"""User names, assets, sites, shipment ids."""
Name = Annotated[str, StringConstraints(max_length=200), _Clean]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), _Clean]
Comment = Annotated[str, StringConstraints(max_length=500), _Clean]
Note = Annotated[str, StringConstraints(max_length=1000), _Clean]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=256), _Clean]
Meaning = Annotated[str, StringConstraints(min_length=3, max_length=200), _Clean]


@overload
def ns_to_dt(ns: int) -> datetime: ...
@overload
def ns_to_dt(ns: None) -> None: ...
def ns_to_dt(ns: int | None) -> datetime | None:
    """UTC datetime of nanoseconds (microsecond precision, as JSON clients read it).

    Never raises: a time no datetime can show (before year 1, after 9999) is clamped to the
    nearest one, so one odd value in a store can never make a response fail.
    """
    if ns is None:
        return None
    return ns_to_datetime(ns)


def dt_to_ns(dt: datetime) -> int:
    """UTC nanoseconds, naive times taken as UTC, clamped to what SQLite's INTEGER holds."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return max(-INT64_MAX, min(INT64_MAX, ns))


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- alerts -----------------------------------------------------------------------------------
class AlertOut(Out):
    """An alert (DESIGN §3). Process times (raised/cleared/started/ended) are event time."""

    id: int
    rule: str
    source: str
    severity: str
    state: str = Field(description="ISA-18.2 state")
    raised_at: datetime
    cleared_at: datetime | None
    value: float | None
    message: str
    retrospective: bool
    acked_by: str | None
    acked_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    kind: str
    active: bool
    started_at: datetime
    ended_at: datetime | None
    peak: float | None
    activations: int
    shelved_by: str | None
    shelved_at: datetime | None
    shelved_until: datetime | None
    shelve_reason: str | None
    close_reason: str | None
    tags: dict[str, str]
    text: str = Field(description="`message` in the reader's language, times in gateway.timezone")
    activated_at: datetime = Field(description="the latest activation (event time)")
    field: str
    clock: Literal["device", "gateway"] = Field(
        description="whose clock started/raised/ended are on: the device's (event time), or "
        "the gateway's receive clock (stale-data alerts)"
    )
    cycle_id: int | None = Field(
        None, description="the production cycle this alarm judges (f0, hold, cycle verdict)"
    )

    @classmethod
    def of(cls, a: Alert, lang: str = "en", tz: str | None = None) -> AlertOut:
        return cls(
            text=render_json(a.text, lang, tz, a.message),
            activated_at=ns_to_dt(a.activated_at),
            field=a.field,
            clock="gateway" if a.kind in GATEWAY_CLOCK_KINDS else "device",
            id=a.id,
            rule=a.rule,
            source=a.source,
            severity=str(a.severity),
            state=str(a.state),
            raised_at=ns_to_dt(a.raised_at),
            cleared_at=ns_to_dt(a.cleared_at),
            value=a.value,
            message=a.message,
            retrospective=a.retrospective,
            acked_by=a.acked_by,
            acked_at=ns_to_dt(a.acked_at),
            closed_by=a.closed_by,
            closed_at=ns_to_dt(a.closed_at),
            kind=a.kind,
            active=a.active,
            started_at=ns_to_dt(a.started_at),
            ended_at=ns_to_dt(a.ended_at),
            peak=a.peak,
            activations=a.activations,
            shelved_by=a.shelved_by,
            shelved_at=ns_to_dt(a.shelved_at),
            shelved_until=ns_to_dt(a.shelved_until),
            shelve_reason=a.shelve_reason,
            close_reason=a.close_reason,
            tags=dict(a.tags),
            cycle_id=a.cycle_id,
        )


class AlertHistoryOut(Out):
    kind: str
    old_state: str | None
    new_state: str
    at: datetime
    wall: datetime
    by: str | None
    reason: str | None


class NotificationOut(Out):
    """What happened to one notification of the alert (the durable outbox's record)."""

    event: str = Field(description="the alert event it told of (raised, cleared, acked, ...)")
    transition: int = Field(description="the alert history row it belongs to")
    channel: str
    recipients: list[str]
    key: str = Field(description="idempotency key, as the receiver saw it")
    outcome: Literal["sent", "retry", "failed", "gave_up", "dropped", "superseded"]
    attempts: int
    detail: str | None = Field(description="the receiver's answer or the error")
    at: datetime


class AlertDetailOut(AlertOut):
    history: list[AlertHistoryOut]
    notifications: list[NotificationOut] = Field(
        default_factory=list, description="delivery results of its notifications, oldest first"
    )


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Comment | None = None


class ShelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason
    duration_s: float | None = Field(
        None,
        gt=0,
        le=30 * 86_400,
        allow_inf_nan=False,
        description="default and maximum: the rule's max_shelve",
    )


class UnshelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Comment | None = None


class SignatureIn(BaseModel):
    """An electronic signature (21 CFR 11.50, 11.200): the password again and its meaning."""

    model_config = ConfigDict(extra="forbid")
    password: Secret
    meaning: Meaning = Field(description="what the signature means, e.g. 'reviewed and approved'")


class CloseIn(SignatureIn):
    reason: Reason


class ActionOut(BaseModel):
    alert: AlertOut
    old_state: str
    new_state: str
    audit_seq: int


# -- cycles -----------------------------------------------------------------------------------
class CyclePhaseOut(BaseModel):
    phase: str
    start: datetime
    end: datetime | None
    min: dict[str, float]
    max: dict[str, float]


class CycleOut(BaseModel):
    """A cycle / batch summary (docs/production_rules.md). Times are event time (the device's
    clock). While a cycle runs only its start is known: phases, min/max, F0 and the verdict
    are stored when it ends; `verdict` stays null when no rule judged the cycle."""

    id: int
    rule: str = Field(description="the `cycle` rule that delimits it")
    source: str
    device: str
    line: str | None
    equipment: str | None
    batch: str | None
    status: Literal["running", "complete"]
    start: datetime
    end: datetime | None
    duration_s: float | None
    verdict: Literal["pass", "fail"] | None
    reasons: list[str] = Field(description="why it failed, one line per reason")
    f0_min: float | None = Field(description="F0 of the first `f0` rule (minutes)")
    phases: list[CyclePhaseOut]
    min: dict[str, float] = Field(description="per field over the cycle")
    max: dict[str, float] = Field(description="per field over the cycle")
    alert_ids: list[int] = Field(
        description="alerts of the device raised during the cycle, or active when it began"
    )
    data_gaps: int
    reasons_text: list[str] = Field(
        default_factory=list, description="`reasons` in the reader's language"
    )

    @classmethod
    def of(cls, c: Cycle, lang: str = "en", tz: str | None = None) -> CycleOut:
        texts = [render_json(d, lang, tz) for d in c.reason_texts]
        return cls(
            reasons_text=[t for t in texts if t] or list(c.reasons),
            id=c.id,
            rule=c.rule,
            source=c.source,
            device=c.device,
            line=c.line,
            equipment=c.equipment,
            batch=c.batch,
            status=c.status,
            start=ns_to_dt(c.start_ns),
            end=ns_to_dt(c.end_ns),
            duration_s=c.duration_s,
            verdict=c.verdict,
            reasons=list(c.reasons),
            f0_min=c.f0_min,
            phases=[
                CyclePhaseOut(
                    phase=p["phase"],
                    start=ns_to_dt(p["start_ns"]),
                    end=ns_to_dt(p.get("end_ns")),
                    min=p.get("min", {}),
                    max=p.get("max", {}),
                )
                for p in c.phases
            ],
            min=dict(c.min),
            max=dict(c.max),
            alert_ids=list(c.alert_ids),
            data_gaps=c.data_gaps,
        )


class CycleDetailOut(CycleOut):
    results: dict[str, dict[str, Any]] = Field(
        description="per participant rule (`f0`, `hold`): passed, reasons, f0_min, hold_s, "
        "gaps, ...; times in it (`*_ns`) are UTC nanoseconds"
    )
    journal_chain: str = Field(
        "", description="the journal chain position and head this summary was read at"
    )

    @classmethod
    def of(
        cls, c: Cycle, lang: str = "en", tz: str | None = None, journal_chain: str = ""
    ) -> CycleDetailOut:
        return cls(
            **CycleOut.of(c, lang, tz).model_dump(), results=c.results, journal_chain=journal_chain
        )


# -- auth and users ---------------------------------------------------------------------------
class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Ident
    password: Secret


class UserOut(BaseModel):
    username: str
    name: str
    role: str
    enabled: bool
    permissions: list[str] = []
    language: str | None = Field(None, description="the user's own choice: zh-CN, en or null")


class MeOut(UserOut):
    display_language: str = Field(description="the language texts are shown in now")
    timezone: str = Field(description="gateway.timezone: the zone times are shown in")
    gateway: str


class LanguageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: Literal["zh-CN", "en"] | None = Field(description="null: the default")


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserOut


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Ident
    name: Name
    role: Literal["viewer", "operator", "qa", "admin"]
    password: Secret


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: Secret
    new_password: Secret


# -- devices and readings ---------------------------------------------------------------------
FieldValue = float | int | bool | str


class ReadingOut(BaseModel):
    measurement: str
    device: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts: datetime
    received: datetime
    ts_from_receive: bool


class FieldOut(BaseModel):
    measurement: str
    field: str
    value: FieldValue
    unit: str
    label: str


class DeviceOut(BaseModel):
    device: str
    """The device tag; for a connection (an MQTT broker), the collector's name."""
    kind: Literal["device", "connection"] = "device"
    source: str
    """The alert source (site/asset/device or line/equipment/device)."""
    state: Literal["ok", "alarm", "offline", "stale"]
    """alarm: an annunciated alert is open; offline: its collector cannot reach it; stale:
    nothing received for a while; ok."""
    online: bool | None = None
    """As its collector sees it (None: not known yet, or no collector reports it)."""
    online_since: datetime | None = None
    last_error: str = ""
    collector: str | None = None
    address: str | None = None
    """Where the collector reaches it: modbus://host:port/unit, mqtt://host:port."""
    measurements: list[str]
    tags: dict[str, str]
    last_ts: datetime | None
    last_received: datetime | None
    fields: dict[str, FieldValue]
    open_alerts: int
    shipment: str | None
    values: list[FieldOut] = Field(
        default_factory=list, description="newest value of each field, with unit and label"
    )


class SeriesOut(BaseModel):
    """Readings of one device for a chart: times (event time) and one list per field."""

    device: str
    measurement: str
    ts: list[datetime]
    fields: dict[str, list[float | None]]
    units: dict[str, str]
    labels: dict[str, str]
    complete: bool = Field(description="false: older readings are no longer held for charts")
    limits: dict[str, list[BandOut]] = Field(
        default_factory=dict, description="per field, the limits of the rules bound to it"
    )


class BandOut(BaseModel):
    op: str
    limit: float
    label: str


class GapOut(BaseModel):
    start: datetime
    """The last reading before the missing slots (or the window's start)."""
    end: datetime
    """The first reading after them (or the window's end)."""
    duration_s: float
    missed_slots: int


class CadenceOut(BaseModel):
    """The China GSP cadences the device is judged by: those of its `record_gap` rule."""

    rule: str | None
    """The rule that sets them (profile.rule_id); None: none bound, GSP defaults."""
    context: Literal["storage", "transport"] | None
    """Fixed by the binding; None: transport while readings carry a shipment tag."""
    storage_s: float
    transport_s: float
    out_of_range_s: float
    low: float | None
    high: float | None
    field: str


class CompletenessOut(BaseModel):
    """Record completeness of one device over [since, until) (event time, UTC)."""

    source: str
    device: str
    measurement: str
    since: datetime
    """The window's start; later than requested_since when the journal no longer holds
    readings that old (journal.retention_hours)."""
    until: datetime
    requested_since: datetime
    cadence: CadenceOut
    slots: int
    """Recording slots in the window, each as long as the cadence in force at its start."""
    filled: int
    """Slots holding at least one reading."""
    share: float
    """filled / slots (1.0 for an empty window)."""
    readings: int
    gaps: list[GapOut]


# -- shipments --------------------------------------------------------------------------------
class ShipmentIn(BaseModel):
    """A shipment is the transport leg of its lots (docs/traceability.md)."""

    model_config = ConfigDict(extra="forbid")
    asset: Ident
    profile: Ident | None = Field(
        default=None, description="required without lots; default: the lots' profile"
    )
    lots: list[Ident] = Field(default_factory=list, max_length=1000)
    id: Ident | None = None
    site: Ident | None = None
    devices: list[Ident] = Field(default_factory=list, max_length=100)
    product: Name = ""
    origin: Name = ""
    destination: Name = ""
    geofence: bool = Field(
        default=False, description="record stages and stop on entering the destination's fence"
    )
    interval_s: float | None = Field(default=None, gt=0, le=86_400)
    started_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with a zone; more than 5 min ago needs `reason`"
    )
    reason: Comment | None = Field(default=None, description="why the start is in the past")
    note: Note = ""


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Comment | None = None
    stopped_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with a zone; more than 5 min ago needs `reason`"
    )


class ApproveIn(SignatureIn):
    comment: Comment | None = None


class RejectIn(SignatureIn):
    reason: Reason


class SignatureOut(BaseModel):
    name: str
    username: str
    meaning: str
    signed_at: datetime
    content_sha256: str | None


class ShipmentOut(BaseModel):
    id: str
    asset: str
    site: str | None
    profile: str
    product: str
    origin: str
    destination: str
    note: str
    status: Literal["active", "stopped", "approved", "rejected"]
    lots: list[str]
    started_at: datetime
    started_by: str
    start_reason: str | None
    stopped_at: datetime | None
    stopped_by: str | None
    stop_reason: str | None
    readings: int
    signature: SignatureOut | None
    rejection: SignatureOut | None = None
    rejection_reason: str | None = None


class ShipmentActionOut(BaseModel):
    shipment: ShipmentOut
    audit_seq: int


# -- audit ------------------------------------------------------------------------------------
class AuditSignatureOut(BaseModel):
    name: str
    username: str
    meaning: str
    signed_at: datetime


class AuditRowOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    old_value: Any = None
    new_value: Any = None
    reason: str | None
    signature: AuditSignatureOut | None
    client: str | None
    prev_hash: str
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    rows: int
    first_broken: int | None
    problem: str | None
    head_seq: int
    head_hash: str


class HealthOut(BaseModel):
    status: str
    gateway: str
    version: str


class ReadyOut(BaseModel):
    ready: bool
    reasons: list[str]


class ReloadOut(BaseModel):
    """The result of POST /api/v1/config/reload."""

    ok: bool
    changed: list[str] = Field(description="sections applied: rules, notifiers, collectors, mqtt")
    rules: list[str] = Field(description="rule ids changed, added or removed")
    started: list[str] = Field(description="collectors started (new or changed)")
    stopped: list[str] = Field(description="collectors stopped (changed or removed)")
    problems: list[str] = Field(description="why it was refused (the running config is kept)")
