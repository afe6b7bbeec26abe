"""Work orders through HTTP (api/routes/workorders.py): escalation with a controllable clock, tenancy of
the escalate answer, closing needs the alarm cleared.
"""

from __future__ import annotations

from support.api_env import CUSTOMERS

from core.model import AlarmEvent


# ----------------------------------------------------------------------------- work orders
def test_work_order_escalation_with_controllable_clock(env):
    c, h = env.client, env.as_("engineer1")
    r = c.post("/api/v1/workorders", headers=h, json={"site_id": "huadong-coldstore", "title": "compressor trip",
                                                      "severity": "critical"})
    assert r.status_code == 201
    wo = r.json()
    assert wo["owner"] == "zhang.min" and wo["stage"] == "response"
    saved = env.clock.t
    try:
        env.clock.advance(15 * 60 + 1)
        made = c.post("/api/v1/workorders/escalate", headers=h).json()
        mine = [(m["level"], m["notified"]) for m in made if m["work_order_id"] == wo["id"]]
        assert mine == [(1, "zhang.min")]
        esc = c.get("/api/v1/workorders/escalations", headers=env.as_("zhang.min")).json()
        assert any(e["work_order_id"] == wo["id"] for e in esc)
        assert c.get(f"/api/v1/workorders/{wo['id']}", headers=h).json()["overdue"] is True
        overdue = c.get("/api/v1/workorders", headers=h, params={"overdue": True}).json()
        assert wo["id"] in {w["id"] for w in overdue}
        env.clock.advance(15 * 60)
        made = c.post("/api/v1/workorders/escalate", headers=h).json()
        assert [(m["level"], m["notified"]) for m in made if m["work_order_id"] == wo["id"]] == [(2, "admin")]
        assert c.get(f"/api/v1/workorders/{wo['id']}", headers=h).json()["escalation_level"] == 2
        # the workflow to closed, every step stamped with who
        assert c.post(f"/api/v1/workorders/{wo['id']}/transition", headers=h,
                      json={"to": "dispatched"}).status_code == 409          # no assignee yet
        c.post(f"/api/v1/workorders/{wo['id']}/assign", headers=env.as_("zhang.min"), json={"engineer": "engineer2"})
        for st in ("dispatched", "on_site", "resolved"):
            r = c.post(f"/api/v1/workorders/{wo['id']}/transition", headers=env.as_("engineer2"), json={"to": st})
            assert r.status_code == 200 and r.json()["state"] == st
        r = c.post(f"/api/v1/workorders/{wo['id']}/transition", headers=h, json={"to": "closed"})
        assert r.status_code == 409 and "resolution note" in r.json()["detail"]
        r = c.post(f"/api/v1/workorders/{wo['id']}/transition", headers=h,
                   json={"to": "closed", "note": "reset overload relay"})
        assert r.json()["state"] == "closed" and r.json()["response_ok"] is False and r.json()["in_time"] is False
        log = c.get(f"/api/v1/workorders/{wo['id']}/log", headers=h).json()
        assert [(x["to_state"], x["user_id"]) for x in log if x["action"] == "transition"] == [
            ("dispatched", "engineer2"), ("on_site", "engineer2"), ("resolved", "engineer2"), ("closed", "engineer1")]
        review = c.get("/api/v1/workorders/review", headers=h).json()
        assert review["by_customer"]["huadong"]["closed"] >= 1
        assert review["by_engineer"]["engineer2"]["closed_in_time"] == 0
        # the customer answers the survey of the closed order
        hu = env.as_("huadong-user")
        r = c.post("/api/v1/surveys", headers=hu, json={"kind": "work_order", "ref": str(wo["id"]), "rating": 3,
                                                        "comment": "slow response"})
        assert r.status_code == 201
        assert c.post("/api/v1/surveys", headers=env.as_("acme-user"),
                      json={"kind": "work_order", "ref": str(wo["id"]), "rating": 5}).status_code == 404
        res = c.get("/api/v1/surveys/results", headers=hu).json()
        assert res["count"] == 1 and res["mean_rating"] == 3.0
        assert c.get("/api/v1/surveys/results", headers=env.as_("acme-user")).json()["count"] == 0
    finally:
        env.clock.t = saved


def test_escalate_answer_is_limited_to_the_callers_customers(env):
    """A customer manager running the sweep sees the escalations of their own customers only."""
    c, h = env.client, env.as_("engineer1")
    orders = {}
    for cid in ("acme", "huadong"):
        r = c.post("/api/v1/workorders", headers=h, json={"site_id": CUSTOMERS[cid]["site"], "severity": "critical",
                                                          "title": f"{cid} breaker trip"})
        orders[cid] = r.json()["id"]
    acme_sites = {s["id"] for s in c.get("/api/v1/sites", headers=env.as_("li.wei")).json()}
    saved = env.clock.t
    try:
        env.clock.advance(15 * 60 + 1)                       # both response limits pass
        made = c.post("/api/v1/workorders/escalate", headers=env.as_("li.wei")).json()
        assert orders["acme"] in {m["work_order_id"] for m in made}
        assert orders["huadong"] not in {m["work_order_id"] for m in made}
        assert all(env.store.work_order(m["work_order_id"])["site_id"] in acme_sites for m in made)
        assert "zhang.min" not in {m["notified"] for m in made}
        # the other customer's escalation was made all the same, and staff see everything
        assert [e["notified"] for e in env.store.escalations(work_order_id=orders["huadong"])] == ["zhang.min"]
        env.clock.advance(15 * 60)                           # overdue by one more limit: level 2 for both
        made = c.post("/api/v1/workorders/escalate", headers=env.as_("admin")).json()
        assert {orders["acme"], orders["huadong"]} <= {m["work_order_id"] for m in made}
    finally:
        env.clock.t = saved


def test_closing_needs_the_alarm_cleared(env):
    c, h = env.client, env.as_("engineer1")
    ids = env.ids["acme"]
    wo = ids["wo_id"]
    for st in ("dispatched", "on_site", "resolved"):
        assert c.post(f"/api/v1/workorders/{wo}/transition", headers=h, json={"to": st, "note": "fan replaced"}
                      ).status_code == 200
    r = c.post(f"/api/v1/workorders/{wo}/transition", headers=h, json={"to": "closed"})
    assert r.status_code == 409 and "still active" in r.json()["detail"]
    a = env.store.alarm(ids["alarm_id"])
    env.store.upsert_alarm_events([AlarmEvent(a["key"], a["type"], a["site_id"], a["device_id"], a["severity"],
                                              a["raised_ns"], env.clock(), "", "", {})])
    r = c.post(f"/api/v1/workorders/{wo}/transition", headers=h, json={"to": "closed"})
    assert r.status_code == 200 and r.json()["resolution_note"] == "fan replaced"
