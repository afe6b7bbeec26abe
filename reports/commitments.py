"""Service commitments in print: the commitment letter (承诺书) and the monthly report's scorecard.

Both are rendered with the monthly report's pipeline (:func:`reports.render.environment`,
Jinja2 templates, WeasyPrint A4 PDF).  The scorecard rows come from
:func:`workflow.commitment_records.month_scorecard`, the same function the API and the
breach alarms use, so the report, the page and the alarm never disagree.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from reports.render import environment, render_pdf
from workflow.commitment_records import UNITS, month_scorecard, verdict_dict
from workflow.commitments import CommitmentError, Contract, load_contracts
from workflow.db import NotFound

log = logging.getLogger("energyhost.reports")
DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"

LETTER_LABELS: dict[str, dict[str, str]] = {
    "zh": {"title": "服务承诺书", "contract": "合同编号", "customer": "客户", "signed": "签订日期",
           "valid": "有效期至", "intro": "为保障贵单位配电系统安全、经济运行，我方在本合同有效期内向贵单位作出以下服务承诺，"
           "接受贵单位全程监督。每项承诺每月按系统记录逐项考核，考核结果在客户页面和月度报告中公示。",
           "no": "序号", "item": "承诺内容", "target": "考核指标", "provider": "服务方（盖章）",
           "client": "客户方（盖章）", "sign": "授权代表签字", "date": "日期"},
    "en": {"title": "Service commitment letter", "contract": "Contract", "customer": "Customer",
           "signed": "Signed", "valid": "Valid until",
           "intro": "To keep your distribution system safe and economical, we make the following service "
           "commitments for the term of this contract, under your supervision throughout. Each commitment is "
           "checked every month against the system's records; the result is shown on your customer page and "
           "in the monthly report.",
           "no": "No.", "item": "Commitment", "target": "Measured by", "provider": "Service provider (seal)",
           "client": "Customer (seal)", "sign": "Authorised signature", "date": "Date"},
}
_RULE_TARGET = {
    "critical_ack_minutes": ("紧急告警确认 ≤ {t} 分钟", "critical alarm acknowledged ≤ {t} min"),
    "on_site_hours": ("到达现场 ≤ {t} 小时", "on site ≤ {t} h after the order"),
    "repair_hours": ("修复 ≤ {t} 小时", "repaired ≤ {t} h after the order"),
    "inspections_done": ("计划巡视完成率 ≥ {t}%", "planned patrols done ≥ {t} %"),
    "report_by_day": ("次月 {t} 日前送达", "delivered by day {t} of the next month"),
    "data_completeness_pct": ("数据完整率 ≥ {t}%", "data completeness ≥ {t} %"),
    "survey_score": ("满意度均分 ≥ {t}", "mean rating ≥ {t} of 5"),
}


def _fmt(t: float) -> str:
    return f"{t:g}"


def target_text(rule: str, target: float, lang: str) -> str:
    """The measurable target of a rule in words (``修复 ≤ 24 小时``)."""
    zh, en = _RULE_TARGET[rule]
    return (zh if lang == "zh" else en).format(t=_fmt(target))


def contracts_dir(env: dict[str, str] | None = None) -> Path:
    e = os.environ if env is None else env
    return Path(e.get("EH_CONTRACTS_DIR") or DEFAULT_CONTRACTS_DIR)


def customer_contract(folder: str | os.PathLike, customer_id: str) -> Contract | None:
    """The contract of ``customer_id`` in ``folder``, or None; ``CommitmentError`` for a bad file."""
    return load_contracts(folder).get(customer_id)


def render_letter_html(contract: Contract, customer_name: str, lang: str) -> str:
    rows = [{"no": i + 1, "text": c.zh if lang == "zh" else c.en, "target": target_text(c.rule, c.target, lang)}
            for i, c in enumerate(contract.commitments)]
    template = environment().get_template("commitments/letter.html")
    return template.render(c=contract, name=customer_name, rows=rows, L=LETTER_LABELS[lang], lang=lang)


def render_letter_pdf(contract: Contract, customer_name: str, lang: str) -> bytes:
    """The commitment letter of a contract as an A4 PDF."""
    return render_pdf(render_letter_html(contract, customer_name, lang))


def report_scorecard(store: Any, customer_id: str, month: str, *, archive: Any = None, now_ns: int | None = None,
                     completeness_pct: float | None = None, folder: str | os.PathLike | None = None) -> list[dict]:
    """Scorecard rows of the monthly report: [] when the customer has no contract or no store."""
    if store is None:
        return []
    try:
        contract = customer_contract(folder or contracts_dir(), customer_id)
    except CommitmentError as exc:               # the report still goes out; the log names the file
        log.error("commitments not in the report: %s", exc)
        return []
    if contract is None:
        return []
    try:
        verdicts = month_scorecard(store, contract, month, archive=archive, now_ns=now_ns,
                                   completeness_pct=completeness_pct)
    except NotFound:                             # a contract for a customer the registry does not hold
        log.error("commitments of %r not in the report: the customer is not in the workflow registry", customer_id)
        return []
    rows = [verdict_dict(v) for v in verdicts]
    for r in rows:
        r["target_zh"] = target_text(r["rule"], r["target"], "zh")
        r["target_en"] = target_text(r["rule"], r["target"], "en")
    return rows


def commitments_section(store: Any, customer_id: str, month: str, **kw: Any) -> dict:
    """The monthly report's scorecard section: ``{"contract", "rows"}``, or {} without a contract."""
    folder = kw.pop("folder", None) or contracts_dir()
    rows = report_scorecard(store, customer_id, month, folder=folder, **kw)
    if not rows:
        return {}
    return {"contract": customer_contract(folder, customer_id).contract, "rows": rows}


__all__ = ["UNITS", "commitments_section", "contracts_dir", "customer_contract", "render_letter_pdf", "report_scorecard", "sweep_breaches",
           "target_text"]


def sweep_breaches(store: Any, folder: str | os.PathLike, archive: Any) -> int:
    """One pass of the breach alarms (:func:`workflow.commitment_records.raise_breaches`); returns alarms raised.

    Run by the API's background sweep (``energyhost serve``) every ``EH_ESCALATE_EVERY_S``.
    A malformed contract file is logged (naming the file) and the pass skipped.
    """
    from workflow.commitment_records import raise_breaches

    try:
        contracts = load_contracts(folder)
    except CommitmentError as exc:
        log.error("commitment breaches not checked: %s", exc)
        return 0
    raised = raise_breaches(store, contracts, archive=archive)
    for ev in raised:
        log.warning("commitment breach: %s", ev.message_en)
    return len(raised)
