"""Work orders: create (by hand or from an alarm), assign, transitions, escalation, weekly review."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import ClockDep, ScopeDep, StoreDep, check_filters
from api.models import (
    AssignIn,
    DbId,
    EscalationOut,
    MailState,
    ReviewCounts,
    ReviewOut,
    TransitionIn,
    WoLogOut,
    WorkOrderCreate,
    WorkOrderOut,
    WoState,
    record_fields,
    to_ns,
    ts,
    work_order_out,
)
from api.notify import sweep_escalations
from api.validation import ApiDate
from workflow import NotFound

router = APIRouter(prefix="/workorders", tags=["work orders"])


@router.get("", response_model=list[WorkOrderOut])
def list_work_orders(scope: ScopeDep, store: StoreDep,
                     site_id: Annotated[str | None, Query(max_length=64)] = None,
                     state: WoState | None = None,
                     assignee: Annotated[str | None, Query(max_length=64)] = None,
                     overdue: bool | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[WorkOrderOut]:
    """Work orders of the caller's sites, newest first (customers read their own)."""
    check_filters(scope, store, site_id)
    rows = store.work_orders(scope.site_ids, site_id=site_id, state=state, assignee=assignee, overdue=overdue,
                             limit=limit, offset=offset)
    return [work_order_out(w, scope.is_staff) for w in rows]


@router.post("", response_model=WorkOrderOut, status_code=201)
def create_work_order(body: WorkOrderCreate, scope: ScopeDep, store: StoreDep) -> WorkOrderOut:
    """Open a work order by hand or from an alarm (staff); due times follow the severity's time limits."""
    scope.check_site(body.site_id)
    if body.alarm_id is not None:
        store.alarm(body.alarm_id, scope.site_ids)
    scope.require_staff()
    if body.device_id is not None:
        _device_on_site(store, body.device_id, body.site_id)
    w = store.create_work_order(site_id=body.site_id, title=body.title, severity=body.severity,
                                created_by=scope.user_id, device_id=body.device_id, alarm_id=body.alarm_id,
                                description=body.description, assignee=body.assignee)
    return work_order_out(w, True)


def _device_on_site(store, device_id: str, site_id: str) -> None:
    """404 for a device that does not exist and for one on another site alike (no id oracle)."""
    try:
        dev = store.device(device_id)
    except NotFound:
        dev = None
    if dev is None or dev["site_id"] != site_id:
        raise HTTPException(404, f"device {device_id!r} does not exist on site {site_id!r}")


@router.get("/review", response_model=ReviewOut)
def weekly_review(scope: ScopeDep, store: StoreDep, clock: ClockDep,
                  week_start: Annotated[ApiDate | None, Query(description="Monday of the week (UTC); default: "
                                                                        "the current week")] = None) -> ReviewOut:
    """Weekly review: open, overdue and closed-in-time orders, by engineer and by customer (staff)."""
    scope.require_staff()
    if week_start is None:
        today = ts(clock()).date()
        week_start = today - timedelta(days=today.weekday())
    start_ns = to_ns(datetime(week_start.year, week_start.month, week_start.day))
    r = store.weekly_review(start_ns, scope.site_ids)
    return ReviewOut(week_start=ts(r["start_ns"]), week_end=ts(r["end_ns"]), total=ReviewCounts(**r["total"]),
                     by_engineer={k: ReviewCounts(**v) for k, v in r["by_engineer"].items()},
                     by_customer={k: ReviewCounts(**v) for k, v in r["by_customer"].items()},
                     orders=[work_order_out(w, True) for w in r["orders"]])


@router.post("/escalate", response_model=list[EscalationOut])
def escalate(scope: ScopeDep, store: StoreDep) -> list[EscalationOut]:
    """Escalate overdue orders now (it also runs in the background) and answer at once: the new
    escalations of the caller's sites, their e-mails queued (``pending``) for the background sweep,
    which sends them, retries failures and gives up after a number of attempts (``dead``). Staff; a
    customer manager sees those of the customers they manage."""
    scope.require_staff()
    return [_esc_out(e) for e in sweep_escalations(store, deliver=False) if scope.sees_site(e["site_id"])]


@router.get("/escalations", response_model=list[EscalationOut])
def my_escalations(scope: ScopeDep, store: StoreDep, notified: Annotated[str | None, Query(max_length=64)] = None,
                   mail_state: MailState | None = None) -> list[EscalationOut]:
    """Escalations addressed to the caller (admins may ask for anyone's or everyone's), optionally of
    one mail state: ``mail_state=dead`` lists the e-mails given up on (the dead letters)."""
    scope.require_staff()
    who = notified if scope.role == "admin" else scope.user_id
    return [_esc_out(e) for e in store.escalations(notified=who, mail_state=mail_state)]


def _esc_out(e: dict) -> EscalationOut:
    return EscalationOut(**record_fields(EscalationOut, e))


@router.get("/{wo_id}", response_model=WorkOrderOut)
def get_work_order(wo_id: DbId, scope: ScopeDep, store: StoreDep) -> WorkOrderOut:
    """One work order with due time, overdue flag and time-limit compliance."""
    return work_order_out(store.work_order(wo_id, scope.site_ids), scope.is_staff)


@router.get("/{wo_id}/log", response_model=list[WoLogOut])
def work_order_log(wo_id: DbId, scope: ScopeDep, store: StoreDep) -> list[WoLogOut]:
    """Every transition of a work order with time and who did it (staff)."""
    store.work_order(wo_id, scope.site_ids)
    scope.require_staff()
    return [WoLogOut(time=ts(r["time_ns"]), user_id=r["user_id"], action=r["action"], from_state=r["from_state"],
                     to_state=r["to_state"], note=r["note"]) for r in store.work_order_log(wo_id)]


@router.post("/{wo_id}/assign", response_model=WorkOrderOut)
def assign(wo_id: DbId, body: AssignIn, scope: ScopeDep, store: StoreDep) -> WorkOrderOut:
    """Assign an engineer (staff)."""
    store.work_order(wo_id, scope.site_ids)
    scope.require_staff()
    return work_order_out(store.assign_work_order(wo_id, body.engineer, scope.user_id, scope.site_ids), True)


@router.post("/{wo_id}/transition", response_model=WorkOrderOut)
def transition(wo_id: DbId, body: TransitionIn, scope: ScopeDep, store: StoreDep) -> WorkOrderOut:
    """Move to the next state: dispatched, on_site, resolved, closed (staff).

    Closing needs a resolution note and the alarm (if any) cleared.
    """
    store.work_order(wo_id, scope.site_ids)
    scope.require_staff()
    return work_order_out(store.transition_work_order(wo_id, body.to, scope.user_id, body.note, scope.site_ids),
                          True)
