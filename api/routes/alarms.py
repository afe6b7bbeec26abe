"""Alarms: list and filter, acknowledge, shelve, audit trail, KPIs, and event intake."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import Field

from analytics.alarms import alarm_kpis as kpis_of
from api.alarm_cache import ALARM_FIELDS, AlarmListCache
from api.deps import ClockDep, ScopeDep, SettingsDep, StoreDep, check_filters
from api.models import (
    AckIn,
    AlarmOut,
    AlarmState,
    AuditOut,
    DbId,
    In,
    KpiGroup,
    KpiOut,
    Severity,
    ShelveIn,
    alarm_out,
    to_ns,
    ts,
)
from api.validation import ApiTime
from core.model import AlarmEvent
from core.units import NS

router = APIRouter(prefix="/alarms", tags=["alarms"])


@router.get("", response_model=list[AlarmOut])
async def list_alarms(request: Request, scope: ScopeDep, store: StoreDep,
                      site_id: Annotated[str | None, Query(max_length=64)] = None,
                      device_id: Annotated[str | None, Query(max_length=64)] = None,
                      severity: Severity | None = None,
                      state: AlarmState | None = None,
                      since: Annotated[ApiTime | None, Query(description="alarms open at or after this time")] = None,
                      until: Annotated[ApiTime | None, Query(description="alarms raised before this time")] = None,
                      open_only: bool = False,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    """Alarms of the caller's sites, newest first, filtered by site, device, severity, state and time.

    The hottest read of the console: it runs on the event loop (one indexed query whose rows the
    database writes as JSON, ``workflow.alarm_json``) and answers those bytes, from the alarm-list cache while no alarm has been written since and no
    shelve has run out (``api.alarm_cache``; keyed on the caller's visible sites and staff flag,
    looked up only after the tenancy checks).
    """
    check_filters(scope, store, site_id, device_id)
    query = {"site_id": site_id, "device_id": device_id, "severity": severity, "state": state,
             "since_ns": to_ns(since) if since else None, "until_ns": to_ns(until) if until else None,
             "open_only": open_only, "limit": limit, "offset": offset}
    cache: AlarmListCache = request.app.state.alarm_list_cache
    if not cache.enabled:
        return Response(store.alarms_json(scope.site_ids, fields=ALARM_FIELDS, staff=scope.is_staff, **query),
                        media_type="application/json")
    key = (scope.is_staff, scope.site_ids, tuple(query.values()))
    version = store.alarms_version()             # before the rows: a write in between only makes a miss
    now = store.clock()
    body = cache.get(key, version, now)
    if body is None:
        body = store.alarms_json(scope.site_ids, fields=ALARM_FIELDS, staff=scope.is_staff, **query)
        cache.put(key, version, now, store.next_shelve_expiry_ns(now), body)
    return Response(body, media_type="application/json")


@router.get("/kpi", response_model=KpiOut)
def alarm_kpis(scope: ScopeDep, store: StoreDep, clock: ClockDep, settings: SettingsDep,
               start: ApiTime | None = None, end: ApiTime | None = None,
               group_by: Literal["site", "engineer_group"] = "site") -> KpiOut:
    """Alarm KPIs (ISA-18.2 / EEMUA 191) per site or per engineer group; default window: the last 24 h."""
    end_ns = to_ns(end) if end else clock()
    start_ns = to_ns(start) if start else end_ns - 86400 * NS
    if not 0 < end_ns - start_ns <= settings.max_range_days * 86400 * NS:
        raise HTTPException(422, f"KPI window must be positive and at most {settings.max_range_days} days")
    sites = {s["id"]: s for s in store.sites(scope.site_ids)}

    def group_of(site_id: str) -> str:
        return site_id if group_by == "site" else sites[site_id]["engineer_group"]

    events: dict[str, list[AlarmEvent]] = {group_of(s): [] for s in sites}
    for a in store.alarm_activations(scope.site_ids, start_ns, end_ns):
        events[group_of(a["site_id"])].append(AlarmEvent(
            key=a["key"], type=a["type"], site_id=a["site_id"], device_id=None, severity=a["severity"],
            raised_ns=a["raised_ns"], cleared_ns=a["cleared_ns"], message_zh="", message_en="", evidence={},
            suppressed_by=a["suppressed_by"]))
    standing: dict[str, set[str]] = {g: set() for g in events}
    for a in store.alarms(scope.site_ids, open_only=True, until_ns=end_ns, limit=100_000):
        if a["active"] and a["raised_ns"] <= end_ns - 86400 * NS:
            standing[group_of(a["site_id"])].add(a["key"])
    groups = []
    for g in sorted(events):
        k = kpis_of(events[g], start_ns, end_ns)
        k["stale"] = sorted(set(k["stale"]) | standing[g])
        k["per_10min"] = round(k["per_hour"] / 6, 4)
        groups.append(KpiGroup(group=g, **k))
    return KpiOut(start=ts(start_ns), end=ts(end_ns), group_by=group_by, groups=groups)


class AlarmEventIn(In):
    key: str = Field(min_length=1, max_length=300)
    type: str = Field(min_length=1, max_length=100)
    site_id: str = Field(max_length=64)
    device_id: str | None = Field(default=None, max_length=64)
    severity: Severity
    raised_at: ApiTime
    cleared_at: ApiTime | None = None
    message_zh: str = Field(default="", max_length=2000)
    message_en: str = Field(default="", max_length=2000)
    evidence: dict[str, Any] = Field(default_factory=dict)
    suppressed_by: str | None = Field(default=None, max_length=300)


@router.post("/events", response_model=dict[str, int])
def post_events(body: Annotated[list[AlarmEventIn], Field(max_length=10000)], scope: ScopeDep,
                store: StoreDep) -> dict[str, int]:
    """Alarm raises and clears from analytics (service accounts: admin or engineer); idempotent."""
    scope.require_role("admin", "engineer")
    events = [AlarmEvent(key=e.key, type=e.type, site_id=e.site_id, device_id=e.device_id, severity=e.severity,
                         raised_ns=to_ns(e.raised_at), cleared_ns=to_ns(e.cleared_at) if e.cleared_at else None,
                         message_zh=e.message_zh, message_en=e.message_en, evidence=e.evidence,
                         suppressed_by=e.suppressed_by) for e in body]
    return store.upsert_alarm_events(events)


@router.get("/{alarm_id}", response_model=AlarmOut)
def get_alarm(alarm_id: DbId, scope: ScopeDep, store: StoreDep) -> dict:
    """One alarm."""
    return alarm_out(store.alarm(alarm_id, scope.site_ids), scope.is_staff)


@router.get("/{alarm_id}/audit", response_model=list[AuditOut])
def alarm_audit(alarm_id: DbId, scope: ScopeDep, store: StoreDep) -> list[AuditOut]:
    """Audit trail of an alarm: raises, clears, acknowledgements, shelving (staff)."""
    store.alarm(alarm_id, scope.site_ids)
    scope.require_staff()
    return [AuditOut(time=ts(r["time_ns"]), user_id=r["user_id"], action=r["action"], note=r["note"],
                     detail=r["detail"]) for r in store.alarm_audit(alarm_id)]


@router.post("/{alarm_id}/ack", response_model=AlarmOut)
def ack_alarm(alarm_id: DbId, body: AckIn, scope: ScopeDep, store: StoreDep) -> dict:
    """Acknowledge an alarm with a note (staff)."""
    store.alarm(alarm_id, scope.site_ids)
    scope.require_staff()
    return alarm_out(store.ack_alarm(alarm_id, scope.user_id, body.note, scope.site_ids))


@router.post("/{alarm_id}/shelve", response_model=AlarmOut)
def shelve_alarm(alarm_id: DbId, body: ShelveIn, scope: ScopeDep, store: StoreDep, clock: ClockDep) -> dict:
    """Shelve an alarm for at most 8 h with a reason (staff); it returns by itself at expiry."""
    store.alarm(alarm_id, scope.site_ids)
    scope.require_staff()
    return alarm_out(store.shelve_alarm(alarm_id, scope.user_id, clock() + body.minutes * 60 * NS, body.reason,
                                        scope.site_ids))


@router.post("/{alarm_id}/unshelve", response_model=AlarmOut)
def unshelve_alarm(alarm_id: DbId, scope: ScopeDep, store: StoreDep) -> dict:
    """End shelving early (staff)."""
    store.alarm(alarm_id, scope.site_ids)
    scope.require_staff()
    return alarm_out(store.unshelve_alarm(alarm_id, scope.user_id, scope.site_ids))
