"""Alarms and work orders of a customer's month, read from the workflow store (workflow)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from reports.model import WorkflowSummary


def workflow_summary(store: Any, customer_id: str, site_ids: list[str], start_ns: int,
                     end_ns: int) -> WorkflowSummary:
    """Count alarm activations and work orders of ``[start_ns, end_ns)``.

    Alarms: every activation raised in the month counts (a flapping alarm that came back
    three times counts three times, as ISA-18.2 KPIs do); cleared = activations that
    returned to normal before ``end_ns``.  Work orders: created in the month; an order is
    *in time* when it was resolved or closed and met the response, arrival and repair
    limits (workflow per-stage flags); *overdue* when any stage is late.
    Time-limit compliance = in time / resolved-or-closed orders [%].  Satisfaction: count and
    mean rating of the survey answers the customer gave in the month (a service KPI).

    ``store`` is a :class:`workflow.Store` (or None: the summary says "not available").
    """
    if store is None:
        return WorkflowSummary(available=False)
    acts = store.alarm_activations(site_ids, start_ns, end_ns)
    wo = store.customer_work_orders(customer_id, start_ns, end_ns)
    orders = wo["orders"]
    done = [o for o in orders if o["in_time"] is not None]
    in_time = sum(1 for o in done if o["in_time"])
    overdue = sum(1 for o in orders
                  if any(o[f"{st}_ok"] is False for st in ("response", "arrival", "repair")))
    sev = Counter(a["severity"] for a in acts)
    surveys = store.survey_results([customer_id], start_ns, end_ns)
    return WorkflowSummary(
        alarms_raised=len(acts),
        alarms_cleared=sum(1 for a in acts if a["cleared_ns"] is not None and a["cleared_ns"] < end_ns),
        alarms_by_severity={k: sev[k] for k in ("critical", "major", "minor", "warning") if sev[k]},
        orders_opened=len(orders),
        orders_closed=sum(1 for o in orders if o["state"] == "closed"),
        orders_in_time=in_time,
        orders_overdue=overdue,
        time_limit_compliance_pct=(100.0 * in_time / len(done)) if done else None,
        surveys=int(surveys["count"]),
        survey_mean_rating=surveys["mean_rating"],
        available=True,
    )
