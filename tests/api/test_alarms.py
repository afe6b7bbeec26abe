"""Alarms through HTTP (api/routes/alarms.py): list, filter, ack, shelve and KPIs."""

from __future__ import annotations

import pytest
from support.api_env import iso_ns

from core.units import NS


# ----------------------------------------------------------------------------- alarms
def test_alarm_list_filter_ack_shelve_and_kpis(env):
    c, h = env.client, env.as_("engineer1")
    site = "acme-office"
    key = "acme-office/acme-office-meter/chatter"
    t = env.clock()
    events = []
    for i in range(4):                                            # chattering: 4 activations in 40 s
        events.append({"key": key, "type": "chatter", "site_id": site, "device_id": "acme-office-meter",
                       "severity": "minor", "raised_at": iso_ns(t - (300 - 10 * i) * NS),
                       "cleared_at": iso_ns(t - (295 - 10 * i) * NS)})
    for i in range(12):                                           # a flood: 12 distinct alarms in 10 min
        events.append({"key": f"acme-office/acme-office-meter/f{i}", "type": f"f{i}", "site_id": site,
                       "device_id": "acme-office-meter", "severity": "warning",
                       "raised_at": iso_ns(t - (590 - 40 * i) * NS)})
    r = c.post("/api/v1/alarms/events", headers=h, json=events)
    assert r.status_code == 200 and r.json()["raised"] == 13 and r.json()["reactivated"] == 3
    assert c.post("/api/v1/alarms/events", headers=h, json=events).json()["unchanged"] == 16
    assert c.post("/api/v1/alarms/events", headers=env.as_("acme-user"), json=events).status_code == 403
    rows = c.get("/api/v1/alarms", headers=h, params={"site_id": site, "state": "rtn-unacked"}).json()
    assert [a["key"] for a in rows] == [key] and rows[0]["activations"] == 4
    rows = c.get("/api/v1/alarms", headers=h, params={"site_id": site, "severity": "warning", "limit": 5}).json()
    assert len(rows) == 5 and all(a["state"] == "active-unacked" for a in rows)
    a = rows[0]
    r = c.post(f"/api/v1/alarms/{a['id']}/shelve", headers=h, json={"minutes": 481, "reason": "too long"})
    assert r.status_code == 422
    r = c.post(f"/api/v1/alarms/{a['id']}/shelve", headers=h, json={"minutes": 60, "reason": "sensor work"})
    assert r.json()["state"] == "shelved"
    env.clock.advance(3601)
    try:
        assert c.get(f"/api/v1/alarms/{a['id']}", headers=h).json()["state"] == "active-unacked"
    finally:
        env.clock.advance(-3601)                                  # back in time: shelved again
    assert c.post(f"/api/v1/alarms/{a['id']}/unshelve", headers=h).json()["state"] == "active-unacked"
    r = c.post(f"/api/v1/alarms/{a['id']}/ack", headers=h, json={"note": "known sensor fault"})
    assert r.json()["state"] == "active-acked" and r.json()["acked_by"] == "engineer1"
    assert c.post(f"/api/v1/alarms/{a['id']}/ack", headers=h, json={}).status_code == 409
    audit = c.get(f"/api/v1/alarms/{a['id']}/audit", headers=h).json()
    assert [x["action"] for x in audit] == ["raise", "shelve", "unshelve", "ack"] and audit[1]["note"] == "sensor work"
    kpi = c.get("/api/v1/alarms/kpi", headers=h).json()
    g = next(x for x in kpi["groups"] if x["group"] == site)
    assert list(g["chattering_keys"]) == [key] and g["chattering_keys"][key] == 4
    assert g["annunciated"] == 16 and g["max_per_10min"] >= 11 and g["time_in_flood_pct"] > 0
    assert g["per_10min"] == pytest.approx(16 / 144, abs=1e-4)          # 16 alarms in 144 ten-minute periods
    assert g["priority_pct"]["warning"] == 75.0 and g["verdict"] in ("manageable", "overloaded")
    groups = {x["group"] for x in c.get("/api/v1/alarms/kpi", headers=h,
                                        params={"group_by": "engineer_group"}).json()["groups"]}
    assert groups == {"default"}
    own = c.get("/api/v1/alarms/kpi", headers=env.as_("huadong-user")).json()
    assert [x["group"] for x in own["groups"]] == ["huadong-coldstore"]
