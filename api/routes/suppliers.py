"""Suppliers (staff only): delivery records and the yearly rating (供方评审)."""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import InfluxDep, ScopeDep, StoreDep
from api.validation import ApiDate
from core.ids import ID_PATTERN
from workflow.supply import review
from workflow.vocab import DEVICE_KINDS

router = APIRouter(prefix="/suppliers", tags=["suppliers"])


class DeliveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    supplier: str = Field(pattern=ID_PATTERN, max_length=64)
    category: Literal[DEVICE_KINDS]
    promised: ApiDate
    delivered: ApiDate | None = None
    note: str = Field(default="", max_length=2000)


class DeliveryOut(BaseModel):
    id: int
    supplier: str
    category: str
    promised: date
    delivered: date | None
    on_time: bool | None = Field(description="delivered on or before the promised date; null while not delivered")
    note: str
    created_by: str


class RatingOut(BaseModel):
    supplier: str
    category: str
    devices: int
    rank: int
    of: int
    total: float | None
    scores: dict[str, float | None] = Field(description="aspect -> 0..100; null where there was no data")
    evidence: dict[str, str]
    last_two_years: bool = Field(description="ranked last in its category this year and the year before")


class RatingYearOut(BaseModel):
    year: int
    ratings: list[RatingOut]


def _delivery_out(r: dict) -> DeliveryOut:
    on_time = None if r["delivered"] is None else r["delivered"] <= r["promised"]
    return DeliveryOut(id=r["id"], supplier=r["supplier"], category=r["category"], promised=r["promised"],
                       delivered=r["delivered"], on_time=on_time, note=r["note"], created_by=r["created_by"])


def _num(x: float) -> float | None:
    return round(x, 2) if math.isfinite(x) else None


@router.post("/deliveries", response_model=DeliveryOut, status_code=201)
def add_delivery(body: DeliveryIn, scope: ScopeDep, store: StoreDep) -> DeliveryOut:
    """Record a delivery of a supplier: promised and (when it came) delivered date."""
    scope.require_staff()
    return _delivery_out(store.add_delivery(body.supplier, body.category, body.promised, body.delivered,
                                            body.note, scope.user_id))


@router.get("/deliveries", response_model=list[DeliveryOut])
def list_deliveries(scope: ScopeDep, store: StoreDep,
                    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
                    supplier: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
                    ) -> list[DeliveryOut]:
    """Delivery records, by promised date; optionally of one year or supplier."""
    scope.require_staff()
    return [_delivery_out(r) for r in store.deliveries(year, supplier)]


@router.get("/rating", response_model=RatingYearOut)
def rating(scope: ScopeDep, store: StoreDep, influx: InfluxDep,
           year: Annotated[int, Query(ge=2000, le=2100)]) -> RatingYearOut:
    """The yearly supplier rating: per category, ranked, each score with the figures behind it."""
    scope.require_staff()
    rv = review(store, influx, year)
    return RatingYearOut(year=year, ratings=[
        RatingOut(supplier=r.supplier, category=r.category, devices=r.devices, rank=r.rank, of=r.of,
                  total=_num(r.total), scores={a: _num(v) for a, v in r.scores.items()}, evidence=dict(r.evidence),
                  last_two_years=rv.is_flagged(r)) for r in rv.ratings])


@router.get("/review.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the review as an A4 PDF"}})
def review_pdf(scope: ScopeDep, store: StoreDep, influx: InfluxDep,
               year: Annotated[int, Query(ge=2000, le=2100)],
               lang: Annotated[Literal["zh", "en"], Query()] = "zh") -> Response:
    """The yearly supplier review report (供方评审报告) as a PDF."""
    scope.require_staff()
    from reports.supplier_review import review_pdf as pdf  # WeasyPrint loads on first use

    return Response(pdf(review(store, influx, year), lang), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="supplier-review-{year}-{lang}.pdf"'})
