"""Registry editing through HTTP (api/routes/registry.py)."""

from __future__ import annotations


# ----------------------------------------------------------------------------- registry editing
def test_registry_edit(env):
    c, adm = env.client, env.as_("admin")
    r = c.post("/api/v1/devices", headers=env.as_("engineer1"),
               json={"id": "acme-office-ev9", "site_id": "acme-office", "kind": "ev_charger", "transport": "mqtt"})
    assert r.status_code == 201
    assert c.post("/api/v1/devices", headers=env.as_("engineer1"),
                  json={"id": "acme-office-ev9", "site_id": "acme-office", "kind": "ev_charger",
                        "transport": "mqtt"}).status_code == 409
    r = c.patch("/api/v1/sites/acme-office", headers=env.as_("engineer1"), json={"engineer_group": "east"})
    assert r.json()["engineer_group"] == "east"
    assert c.patch("/api/v1/sites/acme-office", headers=env.as_("engineer1"),
                   json={"timezone": "Mars/Olympus"}).status_code == 422
    assert c.patch("/api/v1/sites/acme-office", headers=env.as_("acme-user"), json={"name": "x"}).status_code == 403
    r = c.post("/api/v1/users", headers=adm, json={"id": "new.cust", "role": "customer", "customer_id": "acme",
                                                   "password": "long-enough-pw"})
    assert r.status_code == 201
    assert c.post("/api/v1/users", headers=adm, json={"id": "bad.cust", "role": "customer"}).status_code == 422
    c.patch("/api/v1/sites/acme-office", headers=env.as_("engineer1"), json={"engineer_group": "default"})
