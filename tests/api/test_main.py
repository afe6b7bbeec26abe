"""The app (api/main.py) as a whole: real uvicorn on loopback, settings from the environment,
a PostgreSQL store, and the background sweep.
"""

from __future__ import annotations

import math
import os
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from support.api_env import CHEAP, ROOT, build_env, tenancy_requests
from support.waiting import Clock

from api.main import create_app
from api.settings import ApiSettings
from core.config import load_fleet
from core.units import NS
from energyhost.devstack import free_port, listener_pid_matches
from workflow import Store


# ----------------------------------------------------------------------------- real HTTP
def test_real_uvicorn_serves_the_app(env):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(env.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started and listener_pid_matches(os.getpid(), port)      # our in-process server answers
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as h:
            assert h.get("/healthz").json()["ok"] is True
            assert h.get("/docs").status_code == 200 and "swagger" in h.get("/docs").text.lower()
            assert "/api/v1/alarms" in h.get("/openapi.json").json()["paths"]
            r = h.get("/api/v1/alarms", headers=env.as_("acme-user"))
            assert r.status_code == 200 and {a["customer_id"] for a in r.json()} == {"acme"}
            r = h.get(f"/api/v1/telemetry/{env.ids['acme']['device_id']}/series", headers=env.as_("acme-user"),
                      params={"interval_s": 900})
            assert r.status_code == 200 and len(r.json()["times"]) >= 95
            assert not math.isnan(r.json()["values"]["active_power"][0])
    finally:
        server.should_exit = True
        th.join(timeout=10)
    assert not th.is_alive()


def test_api_on_postgresql(tmp_path, influxd, postgres):
    """The same app over a PostgreSQL store: tenancy, alarm ack and the work-order flow with escalation."""
    pg_env = build_env(tmp_path, influxd, store_url=postgres.url(postgres.create_database()))
    try:
        c, h = pg_env.client, pg_env.as_("engineer1")
        assert pg_env.store.db.dialect == "postgresql"
        foreign = pg_env.ids["huadong"]
        for method, url, query, body in tenancy_requests(pg_env.app, foreign):
            r = c.request(method, url, params=query, json=body, headers=pg_env.as_("acme-user"))
            assert r.status_code == 404, (method, url, query, r.status_code)
        aid = pg_env.ids["acme"]["alarm_id"]
        assert c.post(f"/api/v1/alarms/{aid}/ack", headers=h, json={"note": "pg"}).json()["state"] == "active-acked"
        wo = c.post("/api/v1/workorders", headers=h, json={"site_id": "acme-office", "title": "pg order",
                                                           "severity": "critical"}).json()
        pg_env.clock.advance(15 * 60 + 1)
        made = c.post("/api/v1/workorders/escalate", headers=h).json()
        assert (wo["id"], 1, "li.wei") in {(m["work_order_id"], m["level"], m["notified"]) for m in made}
        kpi = c.get("/api/v1/alarms/kpi", headers=h).json()
        assert sum(g["annunciated"] for g in kpi["groups"]) == 2
    finally:
        pg_env.client.close()
        pg_env.influx.close()
        pg_env.store.close()


def test_settings_from_env_name_the_bad_variable():
    from core.config import ConfigError

    s = ApiSettings.from_env({"EH_STORE_URL": "sqlite:///x.db", "EH_TOKEN_TTL_S": "3600", "EH_DOCS": "0",
                              "EH_RATE_LIMIT": "0"})
    assert (s.store_url, s.token_ttl_s, s.docs, s.rate_limit) == ("sqlite:///x.db", 3600.0, False, 0.0)
    with pytest.raises(ConfigError, match="EH_TOKEN_TTL_S"):
        ApiSettings.from_env({"EH_TOKEN_TTL_S": "forever"})
    with pytest.raises(ConfigError, match="EH_DOCS"):
        ApiSettings.from_env({"EH_DOCS": "yes"})
    with pytest.raises(ConfigError, match="EH_RATE_LIMIT"):
        ApiSettings.from_env({"EH_RATE_LIMIT": "-1"})
    app = create_app(s, store=Store("sqlite:///:memory:", password_cost=CHEAP), background=False)
    with TestClient(app) as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404


def test_background_sweep_escalates_and_flags_missed_patrols(tmp_path):
    t0 = 1_767_225_600 * NS
    clock = Clock(t0)
    store = Store(f"sqlite:///{tmp_path / 'sweep.db'}", clock=clock, password_cost=CHEAP)
    store.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    wo = store.create_work_order(site_id="acme-office", title="x", severity="critical", created_by="system")
    store.create_inspection_plan("acme-office", "patrol", 86400, ["doors"], t0 + 3600 * NS, "system", grace_s=3600)
    clock.advance(3 * 3600)                                  # response overdue, patrol missed
    app = create_app(ApiSettings(escalate_every_s=0.05, rate_limit=0), store=store, clock=clock)
    with TestClient(app):                                    # lifespan starts the sweep
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (store.escalations(work_order_id=wo["id"])
                                                   and store.inspections(state="missed")):
            time.sleep(0.05)
    assert [e["notified"] for e in store.escalations(work_order_id=wo["id"])] == ["li.wei"]
    assert len(store.inspections(state="missed")) == 1
    store.close()
