"""Service commitments (服务十项承诺): the monthly scorecard and the commitment letter.

``GET /commitments/{customer_id}?month=YYYY-MM``      the scorecard of the month (default: this month)
``GET /commitments/{customer_id}/letter?lang=zh|en``  the signed commitments as an A4 PDF

Tenancy through :data:`api.deps.ScopeDep`: a customer user sees only its own customer, a
customer manager the customers they manage, other staff all; a customer outside the scope
answers 404 like a customer without a contract file.  Contracts are read from
``ApiSettings.contracts_dir`` (``EH_CONTRACTS_DIR``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import ClockDep, ScopeDep, StoreDep
from api.routes.reports import get_archive
from api.validation import ApiId, Month
from reports.commitments import customer_contract, render_letter_pdf, report_scorecard
from workflow.commitment_records import customer_timezone, local_month
from workflow.commitments import CommitmentError, Contract

log = logging.getLogger("energyhost.api")
router = APIRouter(prefix="/commitments", tags=["commitments"])
CustomerPath = Annotated[ApiId, Path(description="customer id")]


class CaseOut(BaseModel):
    ref: str
    ref_zh: str
    measured: float | None
    ok: bool | None


class VerdictOut(BaseModel):
    id: str
    zh: str
    en: str
    rule: str
    target: float
    target_zh: str
    target_en: str
    unit_zh: str
    unit_en: str
    status: Literal["kept", "missed", "pending", "no_cases", "no_data"]
    status_zh: str
    status_en: str
    value: float | None
    cases: list[CaseOut]


class ScorecardOut(BaseModel):
    customer_id: str
    contract: str
    signed: str
    valid_until: str
    month: str
    missed: int
    commitments: list[VerdictOut]


def _contract(request: Request, scope, customer_id: str) -> Contract:
    if not scope.sees_customer(customer_id):
        raise HTTPException(404, f"no service contract for customer {customer_id!r}")
    try:
        contract = customer_contract(request.app.state.settings.contracts_dir, customer_id)
    except CommitmentError as exc:
        log.error("contract file: %s", exc)
        raise HTTPException(503, "the service contract files cannot be read; the server log names the file") from None
    if contract is None:
        raise HTTPException(404, f"no service contract for customer {customer_id!r}")
    return contract


@router.get("/{customer_id}", response_model=ScorecardOut)
def commitments_scorecard(request: Request, customer_id: CustomerPath, scope: ScopeDep, store: StoreDep,
                          clock: ClockDep, month: Annotated[Month | None, Query()] = None) -> ScorecardOut:
    """Each commitment's verdict for the month (kept / missed / pending / no_cases / no_data) with its cases."""
    contract = _contract(request, scope, customer_id)
    now = clock()
    month = month or local_month(now, customer_timezone(store, customer_id))
    rows = report_scorecard(store, customer_id, month, archive=get_archive(request), now_ns=now,
                            folder=request.app.state.settings.contracts_dir)
    return ScorecardOut(customer_id=customer_id, contract=contract.contract, signed=contract.signed,
                        valid_until=contract.valid_until, month=month,
                        missed=sum(r["status"] == "missed" for r in rows),
                        commitments=[VerdictOut(**r) for r in rows])


@router.get("/{customer_id}/letter", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the commitment letter"}})
def commitment_letter(request: Request, customer_id: CustomerPath, scope: ScopeDep, store: StoreDep,
                      lang: Literal["zh", "en"] = "zh") -> Response:
    """The contract's commitments, targets and signature lines as an A4 PDF (承诺书)."""
    contract = _contract(request, scope, customer_id)
    name = store.customer(customer_id)["name"]
    pdf = render_letter_pdf(contract, name, lang)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="commitments-{customer_id}-{lang}.pdf"'})
