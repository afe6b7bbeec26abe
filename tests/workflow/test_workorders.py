"""Work orders: transitions and closing rules, escalation with a controllable clock, time limits."""

from __future__ import annotations

import pytest
from support.workflow import NS, T0, ev

from workflow import Conflict, Invalid, TimeLimits, month_bounds_ns


def test_work_order_transitions_and_closing_rules(store, clock):
    store.upsert_alarm_events([ev(severity="major")])
    alarm = store.alarms()[0]
    wo = store.create_work_order(site_id="acme-plant1", title="hot winding", severity="major",
                                 created_by="eng1", alarm_id=alarm["id"])
    with pytest.raises(Conflict, match="already has an open work order"):
        store.create_work_order(site_id="acme-plant1", title="x", severity="major", created_by="eng1",
                                alarm_id=alarm["id"])
    with pytest.raises(Conflict, match="assign an engineer"):
        store.transition_work_order(wo["id"], "dispatched", "eng1")
    with pytest.raises(Invalid, match="not an active engineer"):
        store.assign_work_order(wo["id"], "acme.user", "eng1")
    store.assign_work_order(wo["id"], "eng1", "li.wei")
    with pytest.raises(Conflict, match="cannot go from 'new' to 'on_site'"):
        store.transition_work_order(wo["id"], "on_site", "eng1")
    clock.advance(600)
    store.transition_work_order(wo["id"], "dispatched", "eng1")
    clock.advance(3600)
    store.transition_work_order(wo["id"], "on_site", "eng1")
    clock.advance(3600)
    store.transition_work_order(wo["id"], "resolved", "eng1")
    with pytest.raises(Conflict, match="resolution note"):
        store.transition_work_order(wo["id"], "closed", "eng1")
    with pytest.raises(Conflict, match="still active"):
        store.transition_work_order(wo["id"], "closed", "eng1", "replaced fan")
    store.upsert_alarm_events([ev(severity="major", cleared=clock())])
    w = store.transition_work_order(wo["id"], "closed", "eng1", "replaced fan")
    assert w["state"] == "closed" and w["resolution_note"] == "replaced fan" and w["in_time"] is True
    assert w["dispatched_by"] == "eng1" and w["dispatched_ns"] == T0 + 600 * NS
    log = store.work_order_log(wo["id"])
    assert [(x["action"], x["to_state"]) for x in log] == [
        ("create", "new"), ("assign", None), ("transition", "dispatched"), ("transition", "on_site"),
        ("transition", "resolved"), ("transition", "closed")]


def test_escalation_with_controllable_clock(store, clock):
    wo = store.create_work_order(site_id="huadong-coldstore", title="compressor trip", severity="critical",
                                 created_by="eng1")
    assert store.escalate_overdue() == []
    clock.advance(15 * 60 + 1)                                  # response limit 15 min passed
    made = store.escalate_overdue()
    assert [(m["level"], m["notified"], m["stage"]) for m in made] == [(1, "zhang.min", "response")]
    assert store.escalate_overdue() == []                       # once per stage and level
    assert store.work_order(wo["id"])["overdue"] is True
    clock.advance(15 * 60)                                      # overdue by one more limit: admins
    made = store.escalate_overdue()
    assert [(m["level"], m["notified"]) for m in made] == [(2, "admin1")]
    assert store.work_order(wo["id"])["escalation_level"] == 2
    store.assign_work_order(wo["id"], "eng1", "zhang.min")
    store.transition_work_order(wo["id"], "dispatched", "eng1")
    w = store.work_order(wo["id"])
    assert w["response_ok"] is False and w["stage"] == "arrival" and w["overdue"] is False
    review = store.weekly_review(T0)
    assert review["total"]["open"] == 1 and review["by_customer"]["huadong"]["open"] == 1
    comp = store.customer_work_orders("huadong", *month_bounds_ns("2026-01"))["compliance"]
    assert comp["response"] == {"in_time": 0, "late": 1, "pending": 0, "ratio": 0.0}


def test_time_limits_from_toml(tmp_path):
    p = tmp_path / "limits.toml"
    p.write_text("admin_factor = 0.5\n[critical]\nresponse_min = 5\narrival_min = 60\nrepair_min = 240\n")
    tl = TimeLimits.from_toml(p)
    assert tl.limits["critical"].response_s == 300 and tl.admin_factor == 0.5
    p.write_text("[urgent]\nresponse_min = 5\n")
    with pytest.raises(Invalid, match="urgent"):
        TimeLimits.from_toml(p)
