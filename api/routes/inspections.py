"""Inspections (巡檢): patrol plans per site with a checklist, results, missed patrols flagged."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import ScopeDep, StoreDep, check_filters
from api.models import (
    DbId,
    InspectionOut,
    InspectionPlanCreate,
    InspectionPlanOut,
    InspectionResultIn,
    inspection_out,
    plan_out,
    to_ns,
)

router = APIRouter(prefix="/inspections", tags=["inspections"])


@router.get("/plans", response_model=list[InspectionPlanOut])
def list_plans(scope: ScopeDep, store: StoreDep,
               site_id: Annotated[str | None, Query(max_length=64)] = None) -> list[InspectionPlanOut]:
    """Patrol plans of the caller's sites."""
    check_filters(scope, store, site_id)
    return [plan_out(p) for p in store.inspection_plans(scope.site_ids, site_id=site_id)]


@router.post("/plans", response_model=InspectionPlanOut, status_code=201)
def create_plan(body: InspectionPlanCreate, scope: ScopeDep, store: StoreDep) -> InspectionPlanOut:
    """Schedule patrols of a site every ``interval_days`` with a checklist (staff)."""
    scope.check_site(body.site_id)
    scope.require_staff()
    p = store.create_inspection_plan(body.site_id, body.name, int(body.interval_days * 86400), body.checklist,
                                     to_ns(body.first_due), scope.user_id, int(body.grace_hours * 3600))
    return plan_out(p)


@router.get("", response_model=list[InspectionOut])
def list_inspections(scope: ScopeDep, store: StoreDep,
                     site_id: Annotated[str | None, Query(max_length=64)] = None,
                     state: Literal["scheduled", "done", "missed"] | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[InspectionOut]:
    """Patrols (scheduled, done, missed) of the caller's sites, latest due first."""
    check_filters(scope, store, site_id)
    return [inspection_out(i) for i in store.inspections(scope.site_ids, site_id=site_id, state=state,
                                                         limit=limit, offset=offset)]


@router.get("/{inspection_id}", response_model=InspectionOut)
def get_inspection(inspection_id: DbId, scope: ScopeDep, store: StoreDep) -> InspectionOut:
    """One patrol with its checklist and results."""
    return inspection_out(store.inspection(inspection_id, scope.site_ids))


@router.post("/{inspection_id}/result", response_model=InspectionOut)
def record_result(inspection_id: DbId, body: InspectionResultIn, scope: ScopeDep, store: StoreDep
                  ) -> InspectionOut:
    """Record a patrol's results, one entry per checklist item (staff)."""
    store.inspection(inspection_id, scope.site_ids)
    scope.require_staff()
    results = {k: v.model_dump() for k, v in body.results.items()}
    return inspection_out(store.record_inspection(inspection_id, scope.user_id, results, body.note, scope.site_ids))
