"""Satisfaction surveys: rating 1–5 and a comment after a closed work order or a monthly report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from api.deps import ScopeDep, StoreDep
from api.models import SurveyIn, SurveyOut, SurveyResultsOut, survey_out, to_ns
from api.routes.reports import get_archive
from api.validation import ApiTime, check_month

router = APIRouter(prefix="/surveys", tags=["surveys"])


@router.post("", response_model=SurveyOut, status_code=201)
def answer_survey(request: Request, body: SurveyIn, scope: ScopeDep, store: StoreDep) -> SurveyOut:
    """A customer user answers a survey for one of its closed work orders or monthly reports.

    The ref must name a work order of the customer that is closed (else 404 / 409), or a month
    for which the customer's report is in the archive (else 404): no rating of a month without
    a report counts in the results.
    """
    if scope.role != "customer":
        raise HTTPException(403, "surveys are answered by customer users")
    customer_id = scope.user["customer_id"]
    if body.kind == "monthly_report":
        try:
            check_month(body.ref)
        except ValueError as exc:
            raise HTTPException(422, f"ref: {exc}") from None
        if not get_archive(request).has(customer_id, body.ref):
            raise HTTPException(404, f"no monthly report for {body.ref}")
    s = store.add_survey(customer_id, body.kind, body.ref, body.rating, body.comment, scope.user_id)
    return survey_out(s)


@router.get("", response_model=list[SurveyOut])
def list_surveys(scope: ScopeDep, store: StoreDep,
                 customer_id: Annotated[str | None, Query(max_length=64)] = None,
                 start: ApiTime | None = None, end: ApiTime | None = None) -> list[SurveyOut]:
    """Survey answers of the caller's customers."""
    ids = _ids(scope, customer_id)
    return [survey_out(s) for s in store.surveys(ids, to_ns(start) if start else None, to_ns(end) if end else None)]


@router.get("/results", response_model=SurveyResultsOut)
def survey_results(scope: ScopeDep, store: StoreDep,
                   customer_id: Annotated[str | None, Query(max_length=64)] = None,
                   start: ApiTime | None = None, end: ApiTime | None = None) -> SurveyResultsOut:
    """Count, mean rating and distribution, overall and per kind (a KPI of the service)."""
    r = store.survey_results(_ids(scope, customer_id), to_ns(start) if start else None, to_ns(end) if end else None)
    return SurveyResultsOut(count=r["count"], mean_rating=r["mean_rating"], distribution=r["distribution"],
                            by_kind=r["by_kind"])


def _ids(scope, customer_id: str | None):
    if customer_id is None:
        return scope.customer_ids
    scope.check_customer(customer_id)
    return [customer_id]
