"""Transformer insulation ageing of a site this month (customer page, staff)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.deps import ClockDep, InfluxDep, ScopeDep, StoreDep
from api.routes.reports import get_fleet
from api.validation import check_month
from reports.ageing import site_ageing
from workflow import month_bounds_ns

router = APIRouter(tags=["telemetry"])


class TransformerAgeingOut(BaseModel):
    transformer: str
    basis: str
    insulation: str
    covered_days: float
    days_consumed: float
    mean_rate: float | None
    peak_hot_spot_c: float | None
    design_life_days: float
    share_of_life_pct: float


class SiteAgeingOut(BaseModel):
    site_id: str
    month: str
    transformers: list[TransformerAgeingOut]


@router.get("/sites/{site_id}/transformer-ageing", response_model=SiteAgeingOut)
def site_transformer_ageing(request: Request, site_id: str, scope: ScopeDep, store: StoreDep, influx: InfluxDep,
                            clock: ClockDep,
                            month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None) -> SiteAgeingOut:
    """Days of insulation life each transformer of the site consumed in ``month`` (default: this month, so far)."""
    scope.check_site(site_id)
    store.site(site_id)
    site = get_fleet(request).sites.get(site_id)
    if site is None:
        raise HTTPException(404, f"site {site_id!r} is not in the fleet file")
    now = clock()
    if month is None:
        month = datetime.fromtimestamp(now / 1e9, ZoneInfo(site.timezone)).strftime("%Y-%m")
    try:
        check_month(month)
    except ValueError as exc:
        raise HTTPException(422, f"month: {exc}") from None
    start, end = month_bounds_ns(month, site.timezone)
    if start >= now:
        raise HTTPException(422, f"month {month} has not started")
    rows = site_ageing(influx, site, start, min(end, now - now % (60 * 10**9)))
    return SiteAgeingOut(site_id=site_id, month=month, transformers=[TransformerAgeingOut(**asdict(r)) for r in rows])
