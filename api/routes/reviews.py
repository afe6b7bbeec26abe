"""The yearly service review pack: ``GET /reviews/{customer_id}/{year}?lang=zh|en`` → PDF.

Twelve months of savings from the archived monthly reports (labelled as they were), the service
commitments kept per month, alarms and work orders with time-limit compliance, and the year's
survey answers (:mod:`reports.review`).  Tenancy as for reports: outside the scope → 404.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response

from api.deps import ClockDep, ScopeDep, StoreDep
from api.routes.reports import get_archive
from api.validation import ApiId
from reports.review import render_review_pdf, yearly_review
from workflow.commitment_records import customer_timezone, local_month
from workflow.commitments import CommitmentError

log = logging.getLogger("energyhost.api")
router = APIRouter(prefix="/reviews", tags=["reviews"])


@router.get("/{customer_id}/{year}", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the yearly review pack"}})
def review_pdf(request: Request, customer_id: Annotated[ApiId, Path(description="customer id")],
               year: Annotated[int, Path(ge=2000, le=2100, description="calendar year")], scope: ScopeDep,
               store: StoreDep, clock: ClockDep, lang: Literal["zh", "en"] = "zh") -> Response:
    """The yearly service review of a customer as an A4 PDF (for the review meeting)."""
    if not scope.sees_customer(customer_id):
        raise HTTPException(404, f"customer {customer_id!r} does not exist")
    now = clock()
    if year > int(local_month(now, customer_timezone(store, customer_id))[:4]):
        raise HTTPException(422, f"year {year} has not begun")
    try:
        review = yearly_review(store, get_archive(request), customer_id, year, now_ns=now, lang=lang,
                               contracts_folder=request.app.state.settings.contracts_dir)
    except CommitmentError as exc:
        log.error("contract file: %s", exc)
        raise HTTPException(503, "the service contract files cannot be read; the server log names the file") from None
    return Response(render_review_pdf(review, lang), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="review-{customer_id}-{year}-{lang}.pdf"'})
