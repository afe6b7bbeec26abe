"""Request and response models of the API (pydantic).

Times are ISO 8601 with offset (UTC) in the API and ns integers in the store: a response
field ``x`` or ``x_at`` is filled from the store record's ``x``, else its ``x_ns`` converted
(:func:`record_fields`), so the ``*_out`` helpers only state what differs from that rule.
The closed vocabularies (severity, role, alarm and work-order state) come from
:mod:`workflow.vocab`.  Fields that only staff may read (device network
addresses and Modbus maps, work-order internals) are ``None`` for customer users
(OWASP API3:2023, property-level authorization).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.validation import ApiDate, ApiTime, check_text
from core.ids import ID_PATTERN
from workflow import vocab

IdStr = Field(pattern=ID_PATTERN, max_length=64)
# Literal[tuple] is Literal[*tuple]: each type lists exactly the names of its vocabulary
Severity = Literal[vocab.SEVERITIES]
Role = Literal[vocab.ROLES]
AlarmState = Literal[vocab.ALARM_STATES]
WoState = Literal[vocab.WO_STATES]
InspectionState = Literal[vocab.INSPECTION_STATES]
MailState = Literal[vocab.MAIL_STATES]
SurveyKind = Literal[vocab.SURVEY_KINDS]
DeviceKind = Literal[vocab.DEVICE_KINDS]
Transport = Literal[vocab.TRANSPORTS]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(ns: int | None) -> datetime | None:
    """ns since the epoch → aware UTC datetime, truncated to the microsecond (exact: no float on the way,
    so it equals the database's own formatting of the alarm list)."""
    return None if ns is None else _EPOCH + timedelta(microseconds=ns // 1000)


def to_ns(t: datetime) -> int:
    """Aware datetime → ns since the epoch (naive values are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1e6) * 1000


def record_fields(model: type[BaseModel], rec: Any) -> dict[str, Any]:
    """The fields of response ``model`` found in store record ``rec``: ``name`` from ``rec[name]``,
    else from ``rec[name_ns]`` or, for ``name_at``, ``rec[name_ns]`` as a UTC datetime."""
    out: dict[str, Any] = {}
    for name in model.model_fields:
        if name in rec:
            out[name] = rec[name]
            continue
        stem = name[:-3] if name.endswith("_at") else name
        if f"{stem}_ns" in rec:
            out[name] = ts(rec[f"{stem}_ns"])
    return out


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return check_text(data)       # no lone surrogates in any text of a request body (api.validation)


# ----------------------------------------------------------------------------- access
class TokenRequest(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    role: Role


class UserOut(BaseModel):
    id: str
    name: str
    role: Role
    customer_id: str | None
    engineer_group: str
    email: str
    active: bool


class UserCreate(In):
    id: str = IdStr
    role: Role
    password: str | None = Field(default=None, min_length=10, max_length=256)
    name: str = Field(default="", max_length=200)
    customer_id: str | None = Field(default=None, max_length=64)
    engineer_group: str = Field(default="default", max_length=64)
    email: str = Field(default="", max_length=200)


class UserPatch(In):
    name: str | None = Field(default=None, max_length=200)
    engineer_group: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=200)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=256)


class ApiKeyCreate(In):
    user_id: str = IdStr
    name: str = Field(default="", max_length=200)
    ttl_days: float | None = Field(default=None, gt=0, le=3650)


class ApiKeyOut(BaseModel):
    key: str | None = Field(description="the secret, shown once")
    key_id: str
    user_id: str
    name: str
    expires_at: datetime | None


# ----------------------------------------------------------------------------- registry
class CustomerOut(BaseModel):
    id: str
    name: str
    manager: str
    email: str


class CustomerCreate(In):
    id: str = IdStr
    name: str = Field(min_length=1, max_length=200)
    manager: str = Field(default="", max_length=64)
    email: str = Field(default="", max_length=200)


class CustomerPatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    manager: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=200)


class SiteOut(BaseModel):
    id: str
    customer_id: str
    name: str
    timezone: str
    tariff: str
    voltage_level_kv: float | None
    nominal_voltage_v: float | None
    pv_capacity_kwp: float | None
    contract_demand_kw: float | None
    engineer_group: str


class SitePatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    tariff: str | None = Field(default=None, max_length=100)
    voltage_level_kv: float | None = Field(default=None, gt=0, le=1000)
    nominal_voltage_v: float | None = Field(default=None, gt=0, le=100000)
    pv_capacity_kwp: float | None = Field(default=None, ge=0, le=1e6)
    contract_demand_kw: float | None = Field(default=None, gt=0, le=1e7)
    engineer_group: str | None = Field(default=None, max_length=64)


class SiteCreate(SitePatch):
    id: str = IdStr
    customer_id: str = IdStr
    name: str = Field(min_length=1, max_length=200)


class DeviceOut(BaseModel):
    id: str
    site_id: str
    customer_id: str
    kind: str
    transport: str
    name: str
    rated_power_kw: float | None
    poll_interval_s: float
    profile: str | None = Field(default=None, description="staff only")
    host: str | None = Field(default=None, description="staff only")
    port: int | None = Field(default=None, description="staff only")
    unit_id: int | None = Field(default=None, description="staff only")
    gateway: str | None = Field(default=None, description="staff only")
    supplier: str = ""
    model: str = ""
    installed: date | None = None
    warranty_until: date | None = None


class DevicePatch(In):
    name: str | None = Field(default=None, max_length=200)
    profile: str | None = Field(default=None, max_length=100)
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=0, le=65535)
    unit_id: int | None = Field(default=None, ge=0, le=247)
    gateway: str | None = Field(default=None, max_length=64)
    poll_interval_s: float | None = Field(default=None, ge=0.1, le=3600)
    rated_power_kw: float | None = Field(default=None, gt=0, le=1e6)
    supplier: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    model: str | None = Field(default=None, max_length=100)
    installed: ApiDate | None = None
    warranty_until: ApiDate | None = None


class DeviceCreate(DevicePatch):
    id: str = IdStr
    site_id: str = IdStr
    kind: DeviceKind
    transport: Transport


# ----------------------------------------------------------------------------- alarms
class AlarmOut(BaseModel):
    id: int
    key: str
    type: str
    site_id: str
    customer_id: str
    device_id: str | None
    severity: Severity
    state: AlarmState
    first_raised_at: datetime
    raised_at: datetime
    cleared_at: datetime | None
    closed_at: datetime | None
    acked: bool
    acked_at: datetime | None
    acked_by: str | None = Field(description="staff only")
    ack_note: str = Field(description="staff only")
    shelved_until: datetime | None
    shelve_reason: str = Field(description="staff only")
    suppressed_by: str | None
    activations: int
    message_zh: str
    message_en: str
    evidence: dict[str, Any]


def alarm_out(a: dict, staff: bool = True) -> dict:
    """A store alarm row as the fields of :class:`AlarmOut` (validated once, by the response model).

    Shelving fields show only while the alarm is shelved; for customer users (``staff=False``)
    the operators' notes and names are blanked.
    """
    out = record_fields(AlarmOut, a)
    if a["state"] != "shelved":
        out.update(shelved_until=None, shelve_reason="")
    if not staff:
        out.update(acked_by=None, ack_note="", shelve_reason="")
    return out


class AckIn(In):
    note: str = Field(default="", max_length=2000)


class ShelveIn(In):
    minutes: int = Field(ge=1, le=480, description="shelve duration, at most one 8-h shift (ISA-18.2 16.3)")
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class AuditOut(BaseModel):
    time: datetime
    user_id: str | None
    action: str
    note: str
    detail: dict[str, Any]


class KpiGroup(BaseModel):
    """Figures of :func:`analytics.alarms.alarm_kpis` for one site or engineer group."""

    group: str
    annunciated: int = Field(description="activations raised in the window, not suppressed by design")
    suppressed: int
    per_hour: float = Field(description="annunciated alarms per hour (ISA-18.2: ~6 acceptable, ~12 manageable)")
    per_10min: float = Field(description="average annunciated alarms per 10 min (~1 acceptable, ~2 manageable)")
    per_day: float
    max_per_10min: int
    flood_periods_pct: float = Field(description="% of 10-min periods with > 10 alarms")
    time_in_flood_pct: float = Field(description="flood starts > 10 / 10 min, ends < 5 / 10 min")
    priority_pct: dict[str, float]
    top10_share_pct: float
    chattering_keys: dict[str, int] = Field(description="keys with >= 3 activations in 60 s -> max per window")
    stale: list[str] = Field(description="keys active >= 24 h at the end of the window")
    verdict: Literal["acceptable", "manageable", "overloaded"]


class KpiOut(BaseModel):
    start: datetime
    end: datetime
    group_by: Literal["site", "engineer_group"]
    groups: list[KpiGroup]


# ----------------------------------------------------------------------------- work orders
class WorkOrderOut(BaseModel):
    id: int
    site_id: str
    customer_id: str
    device_id: str | None
    alarm_id: int | None
    title: str
    severity: Severity
    state: WoState
    assignee: str | None
    created_at: datetime
    response_due: datetime
    arrival_due: datetime
    repair_due: datetime
    due_at: datetime | None = Field(description="due time of the current stage")
    stage: str | None
    overdue: bool
    dispatched_at: datetime | None
    on_site_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    resolution_note: str
    response_ok: bool | None
    arrival_ok: bool | None
    repair_ok: bool | None
    in_time: bool | None
    description: str | None = Field(default=None, description="staff only")
    owner: str | None = Field(default=None, description="staff only")
    created_by: str | None = Field(default=None, description="staff only")
    escalation_level: int | None = Field(default=None, description="staff only")
    inspection_id: int | None = Field(default=None, description="the patrol whose failed item opened this order")
    inspection_item: str | None = Field(default=None, description="the failed checklist item")


_WO_STAFF_ONLY = {"description": None, "owner": None, "created_by": None, "escalation_level": None}


def work_order_out(w: dict, staff: bool) -> WorkOrderOut:
    out = record_fields(WorkOrderOut, w)
    return WorkOrderOut(**out) if staff else WorkOrderOut(**(out | _WO_STAFF_ONLY))


class WorkOrderCreate(In):
    site_id: str = IdStr
    title: str = Field(min_length=1, max_length=200, pattern=r"\S")
    severity: Severity
    device_id: str | None = Field(default=None, max_length=64)
    alarm_id: int | None = Field(default=None, ge=1, le=2**62)
    description: str = Field(default="", max_length=4000)
    assignee: str | None = Field(default=None, max_length=64)


class AssignIn(In):
    engineer: str = IdStr


class TransitionIn(In):
    to: WoState
    note: str = Field(default="", max_length=4000)


class WoLogOut(BaseModel):
    time: datetime
    user_id: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str


class EscalationOut(BaseModel):
    id: int
    work_order_id: int
    time: datetime
    stage: str
    level: int
    notified: str
    mail_state: MailState = Field(
        description="e-mail delivery: pending (retried every sweep; mail_error says why), sent, "
                    "no_address (the user has no e-mail address; re-checked every sweep), skipped (before schema 3)")
    mail_to: str
    mail_attempts: int
    mail_error: str
    mail_sent_at: datetime | None


class ReviewCounts(BaseModel):
    open: int
    overdue: int
    closed: int
    closed_in_time: int


class ReviewOut(BaseModel):
    week_start: datetime
    week_end: datetime
    total: ReviewCounts
    by_engineer: dict[str, ReviewCounts]
    by_customer: dict[str, ReviewCounts]
    orders: list[WorkOrderOut]


# ----------------------------------------------------------------------------- inspections
class InspectionPlanCreate(In):
    site_id: str = IdStr
    name: str = Field(min_length=1, max_length=200)
    interval_days: float = Field(ge=1 / 24, le=366)
    grace_hours: float = Field(default=24, ge=0, le=24 * 366)
    checklist: list[str] = Field(min_length=1, max_length=100)
    first_due: ApiTime


class InspectionPlanOut(BaseModel):
    id: int
    site_id: str
    name: str
    interval_days: float
    grace_hours: float
    checklist: list[str]
    first_due: datetime


def plan_out(p: dict) -> InspectionPlanOut:
    return InspectionPlanOut(**record_fields(InspectionPlanOut, p), interval_days=p["interval_s"] / 86400,
                             grace_hours=p["grace_s"] / 3600)


class ItemResult(In):
    ok: bool
    note: str = Field(default="", max_length=1000)


class InspectionResultIn(In):
    results: dict[str, ItemResult] = Field(max_length=100)
    note: str = Field(default="", max_length=4000)


class InspectionOut(BaseModel):
    id: int
    plan_id: int
    plan_name: str
    site_id: str
    due: datetime
    state: InspectionState
    done_at: datetime | None
    engineer: str | None
    checklist: list[str]
    results: dict[str, ItemResult]
    note: str
    follow_up_orders: list[int] = Field(default_factory=list,
                                        description="work orders opened for the failed items, one per item")


def inspection_out(i: dict) -> InspectionOut:
    return InspectionOut(**record_fields(InspectionOut, i))


# ----------------------------------------------------------------------------- surveys
class SurveyIn(In):
    kind: SurveyKind
    ref: str = Field(min_length=1, max_length=20, pattern=r"^(\d{1,18}|\d{4}-\d{2})$",
                     description="work order id, or report month YYYY-MM")
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=4000)


class SurveyOut(BaseModel):
    id: int
    customer_id: str
    kind: str
    ref: str
    rating: int
    comment: str
    user_id: str
    created_at: datetime


def survey_out(s: dict) -> SurveyOut:
    return SurveyOut(**record_fields(SurveyOut, s))


class SurveySummary(BaseModel):
    count: int
    mean_rating: float | None
    distribution: dict[str, int]


class SurveyResultsOut(SurveySummary):
    by_kind: dict[str, SurveySummary]


# ----------------------------------------------------------------------------- telemetry
class LatestOut(BaseModel):
    device_id: str
    kind: str
    time: datetime | None
    values: dict[str, float | None]


class SeriesOut(BaseModel):
    device_id: str
    kind: str
    start: datetime
    end: datetime
    interval_s: int
    agg: Literal["mean", "min", "max"]
    times: list[datetime]
    values: dict[str, list[float | None]]


class TouPeriodOut(BaseModel):
    period: str
    kwh: float
    yuan: float | None = None


class EnergyTouOut(BaseModel):
    site_id: str
    device_id: str                  # the meter, or the incomer meters joined by "+"
    meters: list[str] = []          # the meters whose energy is summed
    start: datetime
    end: datetime
    tariff: str
    total_kwh: float
    periods: list[TouPeriodOut]


DbId = Annotated[int, Path(ge=1, le=2**62, description="record id")]
