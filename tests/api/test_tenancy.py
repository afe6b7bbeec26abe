"""The tenancy matrix: every operation addressing another customer's object answers 404; staff see all."""

from __future__ import annotations

import pytest
from support.api_env import tenancy_requests

# ----------------------------------------------------------------------------- tenancy matrix


@pytest.mark.parametrize("user,own", [("acme-user", "acme"), ("huadong-user", "huadong"),
                                      ("li.wei", "acme"), ("zhang.min", "huadong")])
def test_tenancy_matrix_every_foreign_object_is_404(env, user, own):
    other = "huadong" if own == "acme" else "acme"
    requests = tenancy_requests(env.app, env.ids[other])
    assert len(requests) >= 30                                   # the matrix really covers the API
    before = (env.store.alarm(env.ids[other]["alarm_id"])["state"], env.store.work_order(env.ids[other]["wo_id"]))
    bad = []
    for method, url, query, body in requests:
        r = env.client.request(method, url, params=query, json=body, headers=env.as_(user))
        if r.status_code != 404:
            bad.append((method, url, query, r.status_code, r.text[:120]))
    assert bad == []
    # nothing changed on the other customer's objects
    after = (env.store.alarm(env.ids[other]["alarm_id"])["state"], env.store.work_order(env.ids[other]["wo_id"]))
    assert before == after
    # and list endpoints never leak foreign rows
    h = env.as_(user)
    for url in ("/api/v1/sites", "/api/v1/devices", "/api/v1/alarms", "/api/v1/workorders", "/api/v1/inspections",
                "/api/v1/inspections/plans", "/api/v1/customers"):
        rows = env.client.get(url, headers=h).json()
        assert rows, url
        ids = {r.get("customer_id", r.get("id")) for r in rows if "customer_id" in r or url.endswith("customers")}
        sites = {r["site_id"] for r in rows if "site_id" in r}
        assert other not in ids and not sites & {env.ids[other]["site_id"]}, url


def test_staff_see_everything(env):
    sites = {s["id"] for s in env.client.get("/api/v1/sites", headers=env.as_("engineer1")).json()}
    assert {"acme-plant1", "acme-office", "huadong-coldstore"} <= sites
    assert env.client.get(f"/api/v1/workorders/{env.ids['huadong']['wo_id']}",
                          headers=env.as_("engineer1")).status_code == 200
