"""Surveys and the report month bounds."""

from __future__ import annotations

import pytest
from support.workflow import NS, T0

from workflow import Conflict, Invalid, NotFound, month_bounds_ns


def test_surveys(store):
    wo = store.create_work_order(site_id="acme-office", title="meter offline", severity="minor", created_by="eng1",
                                 assignee="eng1")
    with pytest.raises(Conflict, match="not closed"):
        store.add_survey("acme", "work_order", str(wo["id"]), 5, "", "acme.user")
    with pytest.raises(NotFound):
        store.add_survey("huadong", "work_order", str(wo["id"]), 5, "", "huadong.user")
    for st in ("dispatched", "on_site", "resolved"):
        store.transition_work_order(wo["id"], st, "eng1", "reset gateway" if st == "resolved" else "")
    store.transition_work_order(wo["id"], "closed", "eng1")
    store.add_survey("acme", "work_order", str(wo["id"]), 4, "fast", "acme.user")
    store.add_survey("acme", "monthly_report", "2026-01", 2, "unclear", "acme.user")
    with pytest.raises(Invalid, match="1..5"):
        store.add_survey("acme", "monthly_report", "2026-02", 6, "", "acme.user")
    with pytest.raises(Conflict, match="already answered"):
        store.add_survey("acme", "monthly_report", "2026-01", 3, "", "acme.user")
    res = store.survey_results(["acme"])
    assert res["count"] == 2 and res["mean_rating"] == 3.0 and res["distribution"]["4"] == 1
    assert res["by_kind"]["work_order"]["mean_rating"] == 4.0
    assert store.survey_results(["huadong"])["count"] == 0


def test_month_bounds():
    start, end = month_bounds_ns("2026-01", "Asia/Shanghai")
    assert start == T0 - 8 * 3600 * NS and end - start == 31 * 86400 * NS
    with pytest.raises(Invalid, match="YYYY-MM"):
        month_bounds_ns("2026-13")
