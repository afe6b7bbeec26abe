"""The records behind a customer's commitments scorecard, and the breach alarms raised from it.

:func:`month_records` gathers one customer's :class:`workflow.commitments.MonthRecords` for a
month from the workflow store (alarms with first-raised and ack times, work orders with
stage times, inspections of the customer's sites, survey ratings) and from the report
archive (the previous month's ``sent.json`` delivery time; the month's data completeness as
measured from InfluxDB by the archived, complete monthly report).  A figure it cannot find
stays ``None``, so the rule answers ``no_data``: nothing is invented.

:func:`raise_breaches` turns every ``missed`` verdict into one ``commitment_breach`` alarm
(severity major) per (customer, commitment, month), through the store's ``record()``.

The archive is duck-typed (``folder(customer, month)`` and ``figures(customer, month)`` of
:class:`reports.archive.ReportArchive`) so this package still imports only :mod:`core`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.model import AlarmEvent
from core.units import NS
from workflow.commitments import MISSED, Contract, MonthRecords, Verdict, scorecard
from workflow.db import NotFound, month_bounds_ns

log = logging.getLogger("energyhost.commitments")
BREACH_TYPE = "commitment_breach"
BREACH_SEVERITY = "major"
MAX_ROWS = 100_000            # one customer's records of one month; far above any real month


def previous_month(month: str) -> str:
    y, m = (int(x) for x in month.split("-"))
    return f"{y - 1:04d}-12" if m == 1 else f"{y:04d}-{m - 1:02d}"


def local_month(now_ns: int, tz: str) -> str:
    """``YYYY-MM`` of the local calendar month holding ``now_ns``."""
    d = datetime.fromtimestamp(now_ns / NS, tz=UTC).astimezone(ZoneInfo(tz))
    return f"{d.year:04d}-{d.month:02d}"


def customer_timezone(store: Any, customer_id: str) -> str:
    """The time zone of the customer's first site (the report's and the scorecard's month)."""
    store.customer(customer_id)                       # NotFound for an unknown customer
    sites = store.sites(customer_id=customer_id)
    return sites[0]["timezone"] if sites else "Asia/Shanghai"


def _sent_ns(archive: Any, customer_id: str, month: str) -> int | None:
    try:
        raw = json.loads((archive.folder(customer_id, month) / "sent.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    v = raw.get("sent_ns") if isinstance(raw, dict) else None
    return int(v) if isinstance(v, int) else None


def _completeness(archive: Any, customer_id: str, month: str) -> float | None:
    """Data completeness [%] of a complete archived report of the month; None when there is none."""
    try:
        fig = archive.figures(customer_id, month)
    except (OSError, ValueError):
        return None
    v = fig.get("completeness_pct")
    if fig.get("partial") or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def month_records(store: Any, customer_id: str, month: str, *, archive: Any = None,
                  now_ns: int | None = None, completeness_pct: float | None = None) -> MonthRecords:
    """Everything the commitment rules read, for ``customer_id`` and local month ``month``.

    ``completeness_pct`` is the month's measured data completeness when the caller has it
    (the monthly report being built); otherwise it is read from the archived report.
    """
    tz = customer_timezone(store, customer_id)
    start, end = month_bounds_ns(month, tz)
    now = store.clock() if now_ns is None else now_ns
    alarms = [{"id": a["id"], "severity": a["severity"], "first_raised_ns": a["first_raised_ns"],
               "acked_ns": a["acked_ns"]}
              for a in store.customer_alarms(customer_id, start, end)
              if a["type"] != BREACH_TYPE and not a["suppressed_by"]]     # suppressed by design: never shown
    orders = [{"id": w["id"], "severity": w["severity"], "created_ns": w["created_ns"],
               "on_site_ns": w["on_site_ns"], "resolved_ns": w["resolved_ns"]}
              for w in store.work_orders(customer_id=customer_id, created_from_ns=start, created_to_ns=end,
                                         limit=MAX_ROWS)]
    site_ids = [s["id"] for s in store.sites(customer_id=customer_id)]
    inspections = [{"id": i["id"], "due_ns": i["due_ns"], "state": i["state"], "done_ns": i["done_ns"]}
                   for i in (store.inspections(site_ids, limit=MAX_ROWS) if site_ids else [])
                   if start <= i["due_ns"] < end]
    ratings = tuple(int(s["rating"]) for s in store.surveys([customer_id], start, end))
    sent, completeness = None, completeness_pct
    if archive is not None:
        sent = _sent_ns(archive, customer_id, previous_month(month))
        if completeness is None:
            completeness = _completeness(archive, customer_id, month)
    return MonthRecords(month=month, start_ns=start, end_ns=end, now_ns=now, alarms=alarms, work_orders=orders,
                        inspections=inspections, timezone=tz, previous_report_delivered_ns=sent,
                        completeness_pct=completeness, survey_ratings=ratings,
                        report_archive_known=archive is not None)


def month_scorecard(store: Any, contract: Contract, month: str, *, archive: Any = None,
                    now_ns: int | None = None, completeness_pct: float | None = None) -> list[Verdict]:
    """The contract's scorecard for ``month`` from the store and the archive."""
    recs = month_records(store, contract.customer, month, archive=archive, now_ns=now_ns,
                         completeness_pct=completeness_pct)
    return scorecard(contract, recs)


def _num(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 3)


# the unit of each rule's target and measured figures, zh / en
UNITS: dict[str, tuple[str, str]] = {
    "critical_ack_minutes": ("分钟", "min"), "on_site_hours": ("小时", "h"), "repair_hours": ("小时", "h"),
    "inspections_done": ("%", "%"), "report_by_day": ("天（逾期）", "days late"), "data_completeness_pct": ("%", "%"),
    "survey_score": ("分", "points"),
}
STATUS_WORDS: dict[str, tuple[str, str]] = {
    "kept": ("已兑现", "kept"), "missed": ("未兑现", "missed"), "pending": ("进行中", "pending"),
    "no_cases": ("当月无此类事项", "no cases in the month"), "no_data": ("无数据", "no data"),
}
_REF_ZH = (("previous month's report", "上月报告"), ("ingest completeness", "数据完整率"),
           ("work order ", "工单 "), ("alarm ", "告警 "), ("inspection ", "巡视 "), (" survey answers", " 份问卷"))


def ref_zh(ref: str) -> str:
    """The Chinese name of a case reference (``alarm 12`` → ``告警 12``)."""
    for en, zh in _REF_ZH:
        ref = ref.replace(en, zh)
    return ref


def verdict_dict(v: Verdict) -> dict:
    """JSON form of a verdict (NaN as null); ``measured`` of ``report_by_day`` is days late."""
    c = v.commitment
    zh_unit, en_unit = UNITS[c.rule]
    return {"id": c.id, "zh": c.zh, "en": c.en, "rule": c.rule, "target": c.target, "status": v.status,
            "status_zh": STATUS_WORDS[v.status][0], "status_en": STATUS_WORDS[v.status][1], "value": _num(v.value), "unit_zh": zh_unit, "unit_en": en_unit,
            "cases": [{"ref": x.ref, "ref_zh": ref_zh(x.ref), "measured": _num(x.measured), "ok": x.ok}
                      for x in v.cases]}


def breach_key(customer_id: str, commitment_id: str, month: str) -> str:
    return f"{customer_id}/commitments/{commitment_id}/{month}/{BREACH_TYPE}"


def in_force(contract: Contract, month: str) -> bool:
    """The contract covers ``month`` (from the month it was signed to the month it ends, when given)."""
    return not ((contract.signed and month < contract.signed[:7]) or
                (contract.valid_until and month > contract.valid_until[:7]))


def _already_raised(store: Any, key: str) -> bool:
    return store.db.one("SELECT id FROM alarms WHERE key = ?", (key,)) is not None


def breach_event(store: Any, contract: Contract, month: str, v: Verdict, now_ns: int) -> AlarmEvent:
    c, cid = v.commitment, contract.customer
    site = store.sites(customer_id=cid)[0]["id"]
    customer = store.customer(cid)
    misses = [x.ref for x in v.misses]
    evidence = {"customer": cid, "contract": contract.contract, "month": month, "commitment": c.id,
                "rule": c.rule, "target": c.target, "value": _num(v.value), "manager": customer.get("manager", ""),
                "cases": [{"ref": x.ref, "measured": _num(x.measured)} for x in v.misses]}
    return AlarmEvent(key=breach_key(cid, c.id, month), type=BREACH_TYPE, site_id=site, device_id=None,
                      severity=BREACH_SEVERITY, raised_ns=now_ns, cleared_ns=None,
                      message_zh=f"{month} 服务承诺未兑现:{c.zh}({'、'.join(misses)})",
                      message_en=f"{month} service commitment missed: {c.en} ({', '.join(misses)})",
                      evidence=evidence)


def raise_breaches(store: Any, contracts: Mapping[str, Contract], *, archive: Any = None,
                   now_ns: int | None = None) -> list[AlarmEvent]:
    """Alarm every missed commitment of this and last month once; return the events raised now.

    Both months are evaluated because some verdicts of a month settle after it (the report
    due on the 5th, a work order still open at the month's end); a month the contract does not
    cover (before it was signed, after it ended) raises nothing.  A customer of a contract
    that the store does not know, or that has no site, is logged and skipped.
    """
    now = store.clock() if now_ns is None else now_ns
    raised: list[AlarmEvent] = []
    for cid, contract in sorted(contracts.items()):
        try:
            tz = customer_timezone(store, cid)
        except NotFound:                       # the contract names a customer not in the registry
            log.warning("contract %s: customer %r is not in the registry; not evaluated", contract.contract, cid)
            continue
        if not store.sites(customer_id=cid):
            continue
        this = local_month(now, tz)
        for month in (previous_month(this), this):
            if not in_force(contract, month):
                continue
            for v in month_scorecard(store, contract, month, archive=archive, now_ns=now):
                if v.status != MISSED or _already_raised(store, breach_key(cid, v.commitment.id, month)):
                    continue
                ev = breach_event(store, contract, month, v, now)
                store.record([ev])
                raised.append(ev)
    return raised
