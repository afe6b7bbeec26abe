"""Monthly report schedule: which reports are due, and a runner that generates, archives and mails them.

A customer's report for month M is due from ``day`` (default 1st) at ``hour`` (default
06:00) of month M+1, local time of the customer's first site, until it is archived.
:func:`run_due_reports` is idempotent: call it as often as you like (the demo calls it
every few minutes); a report is generated once and mailed once.

Environment: ``EH_REPORT_DIR`` (archive), ``EH_REPORT_BASELINES`` (TOML of contracted
baselines: unit cost and baseline period, see :func:`reports.assemble.load_contracts`), ``EH_PUBLIC_URL`` (base of the
survey link in the report and the e-mail), ``EH_SMTP_*`` (see :mod:`reports.mail`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.config import Customer, Fleet
from core.units import NS
from reports.archive import ReportArchive
from reports.assemble import BaselineContract, build_monthly_report, load_contracts
from reports.i18n import LANGS
from reports.mail import MailError, SmtpSettings, build_message, send
from reports.model import MonthlyReport
from reports.render import render_html, render_pdf

log = logging.getLogger("energyhost.reports")


def _local(now_ns: int, tz: str) -> datetime:
    return datetime.fromtimestamp(now_ns / NS, tz=UTC).astimezone(ZoneInfo(tz))


def previous_month(now_ns: int, tz: str = "Asia/Shanghai") -> str:
    """``YYYY-MM`` of the calendar month before the local month of ``now_ns``."""
    local = _local(now_ns, tz)
    y, m = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return f"{y:04d}-{m:02d}"


def due_reports(now_ns: int, fleet: Fleet, archive: ReportArchive, *, day: int = 1,
                hour: int = 6) -> list[tuple[str, str]]:
    """``(customer_id, month)`` of every report due at ``now_ns`` and not yet archived.

    Parameters
    ----------
    now_ns : int
        Now [ns since epoch, UTC].
    day, hour : int
        Local day of month (1..28) and hour (0..23) from which last month's report is due.
    """
    if not 1 <= day <= 28 or not 0 <= hour <= 23:
        raise ValueError(f"day must be 1..28 and hour 0..23, got day={day!r} hour={hour!r}")
    out = []
    for c in fleet.customers:
        if not c.sites:
            continue
        tz = c.sites[0].timezone
        local = _local(now_ns, tz)
        if (local.day, local.hour) < (day, hour):
            continue
        month = previous_month(now_ns, tz)
        # a report made while the month was in progress does not count as the month's report
        if not archive.has(c.id, month) or archive.figures(c.id, month).get("partial"):
            out.append((c.id, month))
    return out


def survey_url(base_url: str, month: str) -> str:
    """Link to the satisfaction survey of a monthly report on the customer page."""
    return f"{base_url.rstrip('/')}/web/customer?survey={month}"


def generate(influx: Any, fleet: Fleet, customer_id: str, month: str, archive: ReportArchive, *,
             store: Any = None, langs: tuple[str, ...] = LANGS, baseline_yuan_per_kwh: float | None = None,
             base_url: str = "", now_ns: int | None = None, contract: BaselineContract | None = None) -> MonthlyReport:
    """Build the report, render HTML and PDF in every language of ``langs``, archive them."""
    report = build_monthly_report(influx, fleet, customer_id, month, store=store, archive=archive,
                                  baseline_yuan_per_kwh=baseline_yuan_per_kwh, contract=contract,
                                  survey_url=survey_url(base_url, month) if base_url else "", now_ns=now_ns)
    tz = next(c for c in fleet.customers if c.id == customer_id).sites[0].timezone
    html = {lang: render_html(report, lang, tz=tz) for lang in langs}
    pdf = {lang: render_pdf(page) for lang, page in html.items()}
    archive.save(report.to_dict(), html, pdf)
    return report


def mail_report(archive: ReportArchive, customer: Customer, month: str, smtp: SmtpSettings, *,
                lang: str = "zh", to: list[str] | None = None, now_ns: int | None = None) -> list[str]:
    """E-mail the archived report (PDF attached, in ``lang``) to ``to`` or the customer's address."""
    recipients = to or ([customer.email] if customer.email else [])
    if not recipients:
        raise MailError(f"customer {customer.id!r} has no e-mail address (fleet file key 'email')")
    fig = archive.figures(customer.id, month)
    pdf = archive.path(customer.id, month, "pdf", lang).read_bytes()
    partial = bool(fig.get("partial"))
    if lang == "zh":
        subject = f"{customer.name} {month} 月度节能报告" + ("（本月尚未结束）" if partial else "")
        text = (f"尊敬的客户：\n\n附件为贵单位 {month} 的月度节能报告。\n"
                + ("本月尚未结束，报告只含已过的天数，基本电费按天数折算。\n" if partial else "")
                + f"用电量 {fig['energy_kwh']:,.0f} kWh，电费合计 {fig['bill_yuan']:,.2f} 元。\n")
        if fig.get("survey_url"):
            text += f"\n欢迎评价本月服务：{fig['survey_url']}\n"
    else:
        subject = f"{customer.name} {month} monthly energy saving report" + (" (month in progress)" if partial else "")
        text = (f"Dear customer,\n\nattached is your monthly energy saving report for {month}.\n"
                + ("The month is not over: the report covers the days so far, the basic charge pro-rated.\n"
                   if partial else "")
                + f"Energy imported {fig['energy_kwh']:,.0f} kWh, bill {fig['bill_yuan']:,.2f} yuan.\n")
        if fig.get("survey_url"):
            text += f"\nPlease rate our service: {fig['survey_url']}\n"
    msg = build_message(sender=smtp.sender, to=recipients, subject=subject, text=text, pdf=pdf,
                        pdf_name=f"energyhost-{customer.id}-{month}-{lang}.pdf")
    send(msg, smtp)
    archive.mark_sent(customer.id, month, recipients, now_ns or time.time_ns())
    return recipients


@dataclass
class RunResult:
    generated: list[tuple[str, str]] = field(default_factory=list)
    mailed: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_due_reports(now_ns: int, fleet: Fleet, influx: Any, archive: ReportArchive, *, store: Any = None,
                    smtp: SmtpSettings | None = None, baselines: dict[str, float] | None = None,
                    base_url: str = "", day: int = 1, hour: int = 6,
                    contracts: dict[str, BaselineContract] | None = None) -> RunResult:
    """Generate and archive every due report, then mail each unsent one (if ``smtp`` is given).

    One customer's failure (no data, SMTP down) is recorded in ``errors`` and does not stop
    the others; the next run retries what is still missing.
    """
    result = RunResult()
    baselines = baselines or {}
    contracts = contracts or {}
    for cid, month in due_reports(now_ns, fleet, archive, day=day, hour=hour):
        try:
            generate(influx, fleet, cid, month, archive, store=store, baseline_yuan_per_kwh=baselines.get(cid),
                     base_url=base_url, now_ns=now_ns, contract=contracts.get(cid))
            result.generated.append((cid, month))
        except Exception as exc:   # report-and-continue: one customer must not stop the others
            log.exception("report %s %s failed", cid, month)
            result.errors.append(f"{cid} {month}: generate: {type(exc).__name__}: {exc}")
    if smtp is not None:
        customers = {c.id: c for c in fleet.customers}
        for entry in archive.list(list(customers)):
            if entry.sent or entry.month != previous_month(now_ns, customers[entry.customer_id].sites[0].timezone):
                continue
            try:
                mail_report(archive, customers[entry.customer_id], entry.month, smtp, now_ns=now_ns)
                result.mailed.append((entry.customer_id, entry.month))
            except MailError as exc:
                result.errors.append(f"{entry.customer_id} {entry.month}: mail: {exc}")
    return result


def run_from_env(now_ns: int, fleet: Fleet, influx: Any, *, store: Any = None,
                 env: dict[str, str] | None = None) -> RunResult:
    """:func:`run_due_reports` with archive, baselines, public URL and SMTP from the environment.

    Mail is skipped (not an error) when ``EH_SMTP_HOST`` is unset.
    """
    e = os.environ if env is None else env
    archive = ReportArchive.from_env(e)
    contracts = load_contracts(e["EH_REPORT_BASELINES"]) if e.get("EH_REPORT_BASELINES") else {}
    smtp = SmtpSettings.from_env(e) if e.get("EH_SMTP_HOST") else None
    return run_due_reports(now_ns, fleet, influx, archive, store=store, smtp=smtp, contracts=contracts,
                           base_url=e.get("EH_PUBLIC_URL", ""))
