"""Monthly saving reports: list, figures, download (PDF / HTML), generate and e-mail.

Tenancy through :data:`api.deps.ScopeDep`: a customer user sees only its own customer's
reports; another customer's report answers 404 exactly like a missing one.  Generating and
mailing are staff functions (403 for customer users, checked after the 404 test).

The app may hold ``app.state.fleet`` (a :class:`core.config.Fleet`) and
``app.state.report_archive`` (a :class:`reports.archive.ReportArchive`); when absent they
are read from ``EH_FLEET`` and ``EH_REPORT_DIR`` on first use.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, InfluxDep, ScopeDep, StoreDep
from api.validation import ApiId, Month
from core.config import ConfigError, Fleet, load_fleet
from core.influx import InfluxError
from core.units import NS
from reports.archive import ReportArchive, ReportEntry
from reports.i18n import LANGS
from reports.mail import MailError, SmtpSettings

router = APIRouter(prefix="/reports", tags=["reports"])

CustomerPath = Annotated[ApiId, Path(description="customer id")]       # api.validation: no '..'
MonthPath = Annotated[Month, Path(description="report month YYYY-MM")]
Lang = Literal["zh", "en"]
MAX_CONCURRENT_GENERATIONS = 2
_generating = threading.BoundedSemaphore(MAX_CONCURRENT_GENERATIONS)
# The HTML report is a self-contained page: no script, images only as data URIs.
HTML_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")     # no framing (clickjacking); X-Frame-Options for older browsers


class ReportOut(BaseModel):
    customer_id: str
    month: str
    langs: list[str]
    generated_at: datetime
    sent: bool
    pdf: dict[str, str] = Field(description="download path per language")
    html: dict[str, str]


class ReportGenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: ApiId
    month: Month = Field(description="YYYY-MM, local calendar month of the sites")
    langs: list[Lang] = Field(default_factory=lambda: list(LANGS), min_length=1, max_length=2)


class ReportSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lang: Lang = "zh"


class ReportSentOut(BaseModel):
    customer_id: str
    month: str
    to: list[str]


def _entry_out(request: Request, e: ReportEntry) -> ReportOut:
    base = f"{request.scope.get('root_path', '')}/api/v1/reports/{e.customer_id}/{e.month}"
    return ReportOut(customer_id=e.customer_id, month=e.month, langs=list(e.langs),
                     generated_at=datetime.fromtimestamp(e.generated_ns / NS, tz=UTC), sent=e.sent,
                     pdf={lang: f"{base}/pdf?lang={lang}" for lang in e.langs},
                     html={lang: f"{base}/html?lang={lang}" for lang in e.langs})


def get_archive(request: Request) -> ReportArchive:
    return get_archive_of(request.app)


def get_archive_of(app) -> ReportArchive:
    arch = getattr(app.state, "report_archive", None)
    if arch is None:
        arch = ReportArchive.from_env()
        app.state.report_archive = arch
    return arch


def get_fleet(request: Request) -> Fleet:
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is None:
        path = request.app.state.settings.fleet_file
        if not path:
            raise HTTPException(503, "fleet file not configured (EH_FLEET): cannot generate reports")
        try:
            fleet = load_fleet(path)
        except ConfigError as exc:
            raise HTTPException(503, f"fleet file: {exc}") from None
        request.app.state.fleet = fleet
    return fleet


def _visible(scope, customer_id: str) -> None:
    """404 for a customer outside the caller's scope (same answer as a missing report)."""
    if not scope.sees_customer(customer_id):
        raise HTTPException(404, f"no report for customer {customer_id!r}")


def _entry(arch: ReportArchive, customer_id: str, month: str) -> ReportEntry:
    e = arch.entry(customer_id, month)
    if e is None:
        raise HTTPException(404, f"no report for customer {customer_id!r} and month {month}")
    return e


@router.get("", response_model=list[ReportOut])
def list_reports(request: Request, scope: ScopeDep,
                 customer_id: Annotated[ApiId | None, Query()] = None,
                 month: Annotated[Month | None, Query()] = None) -> list[ReportOut]:
    """Archived monthly reports of the caller's customers, newest month first."""
    if customer_id is not None:
        _visible(scope, customer_id)
        ids: list[str] | None = [customer_id]
    else:
        ids = None if scope.customer_ids is None else sorted(scope.customer_ids)
    entries = get_archive(request).list(ids)
    return [_entry_out(request, e) for e in entries if month is None or e.month == month]


@router.get("/{customer_id}/{month}", response_model=dict)
def report_figures(request: Request, customer_id: CustomerPath, month: MonthPath, scope: ScopeDep) -> dict:
    """All figures of one report (the JSON the PDF was rendered from)."""
    _visible(scope, customer_id)
    arch = get_archive(request)
    _entry(arch, customer_id, month)
    return arch.figures(customer_id, month)


def _report_file(request: Request, scope, customer_id: str, month: str, kind: str, lang: str):
    """Path of an archived report file the caller may see; 404 when the report or that language is missing."""
    _visible(scope, customer_id)
    arch = get_archive(request)
    e = _entry(arch, customer_id, month)
    if lang not in e.langs:
        raise HTTPException(404, f"report {customer_id} {month} has no {lang!r} version (has {list(e.langs)})")
    return arch.path(customer_id, month, kind, lang)


@router.get("/{customer_id}/{month}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the PDF report"}})
def report_pdf(request: Request, customer_id: CustomerPath, month: MonthPath, scope: ScopeDep,
               lang: Lang = "zh") -> Response:
    """Download the PDF report in ``lang``."""
    data = _report_file(request, scope, customer_id, month, "pdf", lang).read_bytes()
    name = f"energyhost-{customer_id}-{month}-{lang}.pdf"
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{customer_id}/{month}/html", response_class=Response,
            responses={200: {"content": {"text/html": {}}, "description": "the HTML report"}})
def report_html(request: Request, customer_id: CustomerPath, month: MonthPath, scope: ScopeDep,
                lang: Lang = "zh") -> Response:
    """The HTML report in ``lang`` (self-contained page, served with a no-script CSP)."""
    page = _report_file(request, scope, customer_id, month, "html", lang).read_text(encoding="utf-8")
    return Response(page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": HTML_CSP,
                                                                           "X-Frame-Options": "DENY"})


@router.post("/generate", response_model=ReportOut, status_code=201,
             responses={429: {"description": "too many reports being generated at once; retry later"}})
def generate_report(request: Request, body: ReportGenerateIn, scope: ScopeDep, store: StoreDep,
                    influx: InfluxDep, clock: ClockDep) -> ReportOut:
    """Generate (or regenerate) a customer's monthly report now (staff); archived and downloadable.

    At most :data:`MAX_CONCURRENT_GENERATIONS` run at once (a month's report costs seconds of
    InfluxDB and CPU time); more answer 429 with ``Retry-After`` (reliability.md #25).
    """
    _visible(scope, body.customer_id)
    scope.require_staff()
    if not _generating.acquire(blocking=False):
        raise HTTPException(429, "too many reports are being generated at once; retry in a minute",
                            headers={"Retry-After": "30"})
    try:
        return _generate(request, body, store, influx, clock)
    finally:
        _generating.release()


def _generate(request: Request, body: ReportGenerateIn, store, influx, clock) -> ReportOut:
    fleet = get_fleet(request)
    if not any(c.id == body.customer_id for c in fleet.customers):
        raise HTTPException(404, f"customer {body.customer_id!r} is not in the fleet file")
    arch = get_archive(request)
    now = clock()
    current = datetime.fromtimestamp(now / NS, tz=UTC).strftime("%Y-%m")
    if body.month > current:
        raise HTTPException(422, f"month {body.month} is in the future")
    # analytics + matplotlib: loaded on first use, not at app start
    from reports.schedule import generate

    try:
        generate(influx, fleet, body.customer_id, body.month, arch, store=store, langs=tuple(body.langs),
                 base_url=request.app.state.settings.public_url, now_ns=now)
    except InfluxError as exc:
        raise HTTPException(502, f"telemetry database error: {exc}") from None
    except ValueError as exc:          # bad tariff, site without tariff
        raise HTTPException(422, str(exc)) from None
    return _entry_out(request, _entry(arch, body.customer_id, body.month))


@router.post("/{customer_id}/{month}/send", response_model=ReportSentOut)
def send_report(request: Request, customer_id: CustomerPath, month: MonthPath, body: ReportSendIn,
                scope: ScopeDep, clock: ClockDep) -> ReportSentOut:
    """E-mail an archived report to the customer's address (staff; SMTP from ``EH_SMTP_*``)."""
    _visible(scope, customer_id)
    arch = get_archive(request)
    e = _entry(arch, customer_id, month)
    scope.require_staff()
    if body.lang not in e.langs:
        raise HTTPException(404, f"report {customer_id} {month} has no {body.lang!r} version")
    customer = next((c for c in get_fleet(request).customers if c.id == customer_id), None)
    if customer is None:
        raise HTTPException(404, f"customer {customer_id!r} is not in the fleet file")
    from reports.schedule import mail_report

    try:
        smtp = SmtpSettings.from_env()
        to = mail_report(arch, customer, month, smtp, lang=body.lang, now_ns=clock())
    except MailError as exc:
        raise HTTPException(502, str(exc)) from None
    return ReportSentOut(customer_id=customer_id, month=month, to=to)
