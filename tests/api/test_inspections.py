"""Inspections through HTTP (api/routes/inspections.py): plan, results and missed patrols."""

from __future__ import annotations

from support.api_env import iso_ns

from core.units import NS


# ----------------------------------------------------------------------------- inspections
def test_inspection_plan_results_and_missed(env):
    c, h = env.client, env.as_("engineer1")
    r = c.post("/api/v1/inspections/plans", headers=h,
               json={"site_id": "acme-office", "name": "weekly patrol", "interval_days": 7, "grace_hours": 12,
                     "checklist": ["transformer temperature", "cabinet doors", "fire extinguisher"],
                     "first_due": iso_ns(env.clock() + 3600 * NS)})
    assert r.status_code == 201
    plan = r.json()
    saved = env.clock.t
    try:
        env.clock.advance(14 * 3600)                                  # due + grace passed
        env.store.refresh_inspections()
        rows = c.get("/api/v1/inspections", headers=env.as_("acme-user"), params={"site_id": "acme-office"}).json()
        mine = [i for i in rows if i["plan_id"] == plan["id"]]
        assert [i["state"] for i in mine] == ["scheduled", "missed"]
        nxt = mine[0]
        r = c.post(f"/api/v1/inspections/{nxt['id']}/result", headers=h,
                   json={"results": {"transformer temperature": {"ok": True}, "cabinet doors": {"ok": True}}})
        assert r.status_code == 422 and "fire extinguisher" in r.json()["detail"]
        r = c.post(f"/api/v1/inspections/{nxt['id']}/result", headers=h,
                   json={"results": {"transformer temperature": {"ok": True, "note": "78 C"},
                                     "cabinet doors": {"ok": False, "note": "lock broken"},
                                     "fire extinguisher": {"ok": True}}, "note": "lock ordered"})
        assert r.status_code == 200 and r.json()["state"] == "done" and r.json()["engineer"] == "engineer1"
        [wo_id] = r.json()["follow_up_orders"]                          # the failed item's follow-up order
        wo = c.get(f"/api/v1/workorders/{wo_id}", headers=h).json()
        assert (wo["site_id"], wo["inspection_id"], wo["inspection_item"]) == ("acme-office", nxt["id"],
                                                                               "cabinet doors")
        assert "lock broken" in wo["description"]
        assert c.post(f"/api/v1/inspections/{nxt['id']}/result", headers=env.as_("acme-user"),
                      json={"results": {}}).status_code == 403
    finally:
        env.clock.t = saved
