"""The yearly supplier review report (供方评审报告): HTML and PDF, in Chinese and English.

One page per year: per device category, the suppliers ranked by total score, each aspect's
score with the figures it rests on, and the suppliers ranked last in their category this year
and the year before (the service model's removal rule).  Laid out by the monthly reports'
WeasyPrint pipeline (:func:`reports.render.render_pdf`).
"""

from __future__ import annotations

import math
from collections import defaultdict

from reports.render import environment, render_pdf
from workflow.suppliers import ASPECTS, load_rules
from workflow.supply import RULES_PATH, Review

TEXT: dict[str, dict[str, str]] = {
    "zh": {"title": "供方评审报告", "year": "评审年度", "category": "设备类别", "rank": "排名", "supplier": "供方",
           "devices": "设备数", "total": "总分", "quality": "质量", "operation": "运行", "after_sales": "售后",
           "delivery": "交货", "weights": "权重", "flagged": "连续两年排名末位（建议淘汰）", "none_flagged":
           "无供方连续两年排名末位。", "no_data": "无数据", "evidence": "评分依据",
           "method": "各项 0–100 分；无数据的项不计入，其余权重按比例放大。",
           "meter": "电能表", "transformer": "变压器（温控器）", "pv_inverter": "光伏逆变器", "ev_charger": "充电桩"},
    "en": {"title": "Supplier review", "year": "Year", "category": "Category", "rank": "Rank", "supplier": "Supplier",
           "devices": "Devices", "total": "Total", "quality": "Quality", "operation": "Operation",
           "after_sales": "After-sales", "delivery": "Delivery", "weights": "Weights",
           "flagged": "Ranked last two years running (removal proposed)",
           "none_flagged": "No supplier was ranked last two years running.", "no_data": "no data",
           "evidence": "Evidence",
           "method": "Each aspect scores 0-100; an aspect without data is left out and the other weights scaled up.",
           "meter": "Meters", "transformer": "Transformers (temperature controllers)", "pv_inverter": "PV inverters",
           "ev_charger": "EV chargers"},
}


def _score(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "–"


def review_html(rv: Review, lang: str = "zh") -> str:
    """The review as one self-contained HTML page."""
    if lang not in TEXT:
        raise ValueError(f"lang must be one of {sorted(TEXT)}, got {lang!r}")
    t = TEXT[lang]
    rules = load_rules(RULES_PATH)
    by_cat: dict[str, list] = defaultdict(list)
    for r in rv.ratings:
        ev = r.evidence_zh if lang == "zh" and r.evidence_zh else r.evidence
        by_cat[r.category].append({
            "r": r, "total": _score(r.total), "flag": rv.is_flagged(r),
            "aspects": [(t[a], _score(r.scores[a]), ev[a]) for a in ASPECTS]})
    weights = ", ".join(f"{t[a]} {100 * rules.weights[a]:.0f}%" for a in ASPECTS)
    return environment().get_template("report/supplier_review.html").render(
        T=t, lang=lang, year=rv.year, categories=sorted(by_cat.items()), weights=weights,
        flagged=[(s, t.get(c, c)) for s, c in rv.flagged])


def review_pdf(rv: Review, lang: str = "zh") -> bytes:
    """The review as an A4 PDF."""
    return render_pdf(review_html(rv, lang))
