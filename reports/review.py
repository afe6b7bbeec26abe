"""The yearly service review pack (年度服务总结) of one customer: a PDF for the review meeting.

Twelve months, each from what the system already holds:

* savings from the archived monthly reports (``report.json``), with the report's own label:
  verified (IPMVP / Guideline 14), not verified (reference only) or no baseline; every 元 figure
  is printed with its calculation, and the year's total adds only verified months;
* the service commitments kept / missed per month (:func:`workflow.commitment_records.month_scorecard`);
* alarms and work orders with time-limit compliance (:func:`reports.workflow.workflow_summary`);
* survey answers of the year (count, mean, distribution).

A month without an archived report says so; a month not yet begun is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from reports.commitments import customer_contract
from reports.render import environment, render_pdf
from reports.workflow import workflow_summary
from workflow.commitment_records import month_scorecard
from workflow.db import month_bounds_ns

VERDICT_WORDS = {"verified": ("经核证", "verified"), "not_verifiable": ("未核证（仅供参考）", "not verified (reference only)"),
                 "no_baseline": ("合同未约定基准", "no baseline in the contract")}


def _saving_row(fig: dict, lang: str) -> dict:
    """One month's saving with its calculation, as the monthly report labelled it."""
    s = fig.get("savings") or {}
    verdict = s.get("verdict", "no_baseline")
    zh, en = VERDICT_WORDS.get(verdict, (verdict, verdict))
    row = {"verdict": verdict, "label": zh if lang == "zh" else en, "energy_kwh": fig.get("energy_kwh"),
           "bill_yuan": fig.get("bill_yuan"), "saved_yuan": s.get("saved_yuan"), "calc": "", "partial": fig.get("partial")}
    if s.get("method") == "regression" and s.get("regression"):
        parts = [f"{r['site_id']}: {r['savings_kwh']:,.0f} kWh × {r['price_yuan_per_kwh']:.4f} = {r['savings_yuan']:,.2f}"
                 for r in s["regression"] if r.get("savings_yuan") is not None]
        row["calc"] = "; ".join(parts)
    elif s.get("saved_yuan") is not None and s.get("baseline_yuan_per_kwh") is not None:
        row["calc"] = (f"({s['baseline_yuan_per_kwh']:.4f} − {s['actual_yuan_per_kwh']:.4f}) × "
                       f"{s['actual_kwh']:,.0f} kWh = {s['saved_yuan']:,.2f}")
    return row


def _month(store: Any, archive: Any, contract: Any, customer_id: str, site_ids: list[str], month: str, tz: str,
           now_ns: int, lang: str) -> dict:
    start, end = month_bounds_ns(month, tz)
    out: dict[str, Any] = {"month": month, "saving": None, "commitments": None}
    if archive is not None and archive.has(customer_id, month):
        out["saving"] = _saving_row(archive.figures(customer_id, month), lang)
    if contract is not None:
        n = Counter(v.status for v in month_scorecard(store, contract, month, archive=archive, now_ns=now_ns))
        out["commitments"] = {"kept": n["kept"], "missed": n["missed"], "open": n["pending"],
                              "other": n["no_cases"] + n["no_data"], "total": sum(n.values())}
    out["workflow"] = asdict(workflow_summary(store, customer_id, site_ids, start, min(end, now_ns)))
    return out


def yearly_review(store: Any, archive: Any, customer_id: str, year: int, *, now_ns: int, lang: str = "zh",
                  contracts_folder: Any = None) -> dict:
    """Every figure of the yearly review of ``customer_id`` for calendar ``year`` (local months)."""
    customer = store.customer(customer_id)
    sites = store.sites(customer_id=customer_id)
    tz = sites[0]["timezone"] if sites else "Asia/Shanghai"
    contract = customer_contract(contracts_folder, customer_id) if contracts_folder else None
    months = []
    for m in range(1, 13):
        month = f"{year:04d}-{m:02d}"
        if month_bounds_ns(month, tz)[0] > now_ns:
            break
        months.append(_month(store, archive, contract, customer_id, [s["id"] for s in sites], month, tz, now_ns, lang))
    y0, _ = month_bounds_ns(f"{year:04d}-01", tz)
    _, y1 = month_bounds_ns(f"{year:04d}-12", tz)
    surveys = store.survey_results([customer_id], y0, y1)
    verified = [x["saving"]["saved_yuan"] for x in months
                if x["saving"] and x["saving"]["verdict"] == "verified" and not x["saving"]["partial"]
                and x["saving"]["saved_yuan"] is not None]
    return {"customer_id": customer_id, "name": customer["name"], "year": year, "tz": tz, "generated_ns": now_ns,
            "contract": contract.contract if contract else "", "months": months,
            "verified_total_yuan": sum(verified) if verified else None, "verified_months": len(verified),
            "surveys": {k: surveys[k] for k in ("count", "mean_rating", "distribution")}}


LABELS = {
    "zh": {"title": "年度服务总结", "customer": "客户", "year": "年度", "generated": "生成时间", "contract": "合同",
           "savings": "节能效果（取自每月节能报告）", "month": "月份", "verdict": "结论", "energy": "用电量 kWh",
           "saved": "节能 元", "calc": "计算", "no_report": "无报告", "partial": "（月中报告）",
           "total": "全年经核证节能合计", "total_note": "只计经核证的月份", "months": "个月",
           "commitments": "服务承诺兑现", "kept": "兑现", "missed": "未兑现", "open": "进行中", "other": "无事项/无数据",
           "no_contract": "无服务合同", "service": "告警与工单", "alarms": "告警", "orders": "工单",
           "in_time": "按时完成", "overdue": "超时", "compliance": "时限达标率", "surveys": "满意度调查",
           "answers": "答卷", "mean": "平均分", "dist": "分布", "yuan": "元"},
    "en": {"title": "Yearly service review", "customer": "Customer", "year": "Year", "generated": "Generated",
           "contract": "Contract", "savings": "Savings (from the monthly saving reports)", "month": "Month",
           "verdict": "Verdict", "energy": "Energy kWh", "saved": "Saved yuan", "calc": "Calculation",
           "no_report": "no report", "partial": " (month in progress)", "total": "Verified savings of the year",
           "total_note": "verified months only", "months": "months", "commitments": "Service commitments",
           "kept": "kept", "missed": "missed", "open": "pending", "other": "no cases / no data",
           "no_contract": "no service contract", "service": "Alarms and work orders", "alarms": "Alarms",
           "orders": "Work orders", "in_time": "In time", "overdue": "Overdue", "compliance": "Time-limit compliance",
           "surveys": "Satisfaction surveys", "answers": "answers", "mean": "mean", "dist": "distribution",
           "yuan": "yuan"},
}


def render_review_pdf(review: dict, lang: str) -> bytes:
    """The yearly review as an A4 PDF through the monthly report's WeasyPrint pipeline."""
    html = environment().get_template("commitments/review.html").render(v=review, L=LABELS[lang], lang=lang)
    return render_pdf(html)
