"""Render a :class:`~reports.model.MonthlyReport` to HTML (Jinja2) and PDF (WeasyPrint).

The PDF is the HTML page laid out by WeasyPrint (CSS paged media: A4, page numbers), so
the browser view, the download and the e-mail attachment show the same figures.
Chinese text needs a CJK font known to fontconfig (Debian ``fonts-noto-cjk``).
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reports.i18n import labels, period_label
from reports.model import MonthlyReport
from reports.summary import headline, reasons

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _num(value: float | int | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _localtime(ns: int | None, tz: str) -> str:
    if not ns:
        return "–"
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _datauri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def environment(*search_path: str | Path) -> Environment:
    """The Jinja2 environment of the report templates (autoescaped, strict, the report's filters).

    ``search_path`` adds template folders searched before the report's own (the web pages').
    """
    env = Environment(loader=FileSystemLoader([str(d) for d in (*search_path, TEMPLATES)]), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, localtime=_localtime, datauri=_datauri, period=period_label)
    return env


def render_html(report: MonthlyReport, lang: str = "zh", *, tz: str = "Asia/Shanghai",
                charts: bool = True) -> str:
    """The report as one self-contained HTML page (charts embedded as PNG data URIs)."""
    # matplotlib is loaded when a report is rendered, not at app start
    from reports.charts import baseline_chart, site_charts

    lab = labels(lang)
    site_pngs = {s.site_id: (site_charts(s, lang) if charts else {}) for s in report.sites}
    # every site gets the three keys so the template needs no existence tests
    for pngs in site_pngs.values():
        for key in ("daily", "demand", "pv"):
            pngs.setdefault(key, b"")
    names = {s.site_id: s.site_name for s in report.sites}
    reg_pngs = {x.site_id: (baseline_chart(x, names.get(x.site_id, x.site_id), lang)
                            if charts and any(v is not None for v in x.daily_measured_kwh) else b"")
                for x in report.savings.regression}
    template = environment().get_template("report/monthly.html")
    return template.render(r=report, L=lab, lang=lang, tz=tz, charts=site_pngs, regression_charts=reg_pngs,
                           headline=headline(report, lang), reasons=reasons(report.savings, lang))


def render_pdf(html: str) -> bytes:
    """Lay out report HTML as an A4 PDF with WeasyPrint; returns the PDF bytes."""
    from weasyprint import HTML  # imported here: it loads pango at import time

    pdf = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    if not pdf or not pdf.startswith(b"%PDF"):
        raise RuntimeError("WeasyPrint produced no PDF")
    return pdf
