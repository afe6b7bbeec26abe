"""API access (api/auth.py, api/routes/registry.py users): login errors, expiry, throttle, rate limit,
API keys, function-level authorisation and customer views, through HTTP against the real influxd.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from support.api_env import CHEAP, TOKEN_TTL_S

from api.main import create_app
from api.settings import ApiSettings
from core.model import AlarmEvent
from core.units import NS
from workflow import Store


# ----------------------------------------------------------------------------- access
def test_login_errors_expiry_and_throttle(env):
    c = env.client
    assert c.get("/api/v1/auth/me").status_code == 401
    assert c.get("/api/v1/auth/me", headers=env.as_("engineer1")).json()["role"] == "engineer"
    assert c.post("/api/v1/auth/token", json={"username": "engineer2", "password": "wrong-password"}).status_code == 401
    # forged tokens: a JWT with alg=none, a random opaque string, a wrong scheme
    none_jwt = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiIsInJvbGUiOiJhZG1pbiJ9."
    for h in ({"Authorization": f"Bearer {none_jwt}"}, {"Authorization": "Bearer eht_" + "A" * 43},
              {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"X-API-Key": "ehk_000000000000_" + "x" * 43}):
        assert c.get("/api/v1/auth/me", headers=h).status_code == 401
    for _ in range(5):
        c.post("/api/v1/auth/token", json={"username": "throttled", "password": "nope"})
    assert c.post("/api/v1/auth/token", json={"username": "throttled", "password": "nope"}).status_code == 429
    r = c.post("/api/v1/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
    token = r.json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/v1/auth/me", headers=h).status_code == 200
    env.clock.advance(TOKEN_TTL_S + 1)                        # the token lifetime passes
    try:
        assert c.get("/api/v1/auth/me", headers=h).status_code == 401
    finally:
        env.clock.advance(-(TOKEN_TTL_S + 1))
    assert c.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert c.get("/api/v1/auth/me", headers=h).status_code == 401


def test_rate_limit_per_user(tmp_path):
    from api.auth import RateLimiter

    now = [0.0]
    rl = RateLimiter(rate=2, burst=4, clock=lambda: now[0])
    assert [rl.allow("u") for _ in range(5)] == [True] * 4 + [False]
    assert rl.allow("v")                                      # per principal
    now[0] = 0.5                                              # one token back after 0.5 s at 2/s
    assert rl.allow("u") and not rl.allow("u")
    store = Store(f"sqlite:///{tmp_path / 'rl.db'}", password_cost=CHEAP)
    store.create_user("eng", "engineer")
    token, _ = store.issue_token("eng", 60)
    app = create_app(ApiSettings(rate_limit=5, escalate_every_s=0), store=store, background=False)
    with TestClient(app) as c:
        codes = [c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
                 for _ in range(30)]
    assert codes[:10] == [200] * 10 and 429 in codes
    store.close()


def test_api_keys_for_service_accounts(env):
    c = env.client
    r = c.post("/api/v1/api-keys", headers=env.as_("admin"), json={"user_id": "engineer2", "name": "analytics"})
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["key_id"]
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()["id"] == "engineer2"
    assert c.post("/api/v1/api-keys", headers=env.as_("engineer1"),
                  json={"user_id": "engineer1"}).status_code == 403
    assert c.delete(f"/api/v1/api-keys/{key_id}", headers=env.as_("admin")).status_code == 204
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_function_level_authorization(env):
    c, own = env.client, env.ids["acme"]
    h = env.as_("acme-user")
    assert c.get(f"/api/v1/alarms/{own['alarm_id']}", headers=h).status_code == 200
    assert c.post(f"/api/v1/alarms/{own['alarm_id']}/ack", headers=h, json={"note": "x"}).status_code == 403
    assert c.post(f"/api/v1/alarms/{own['alarm_id']}/shelve", headers=h,
                  json={"minutes": 10, "reason": "x"}).status_code == 403
    assert c.post("/api/v1/workorders", headers=h, json={"site_id": own["site_id"], "title": "x",
                                                         "severity": "minor"}).status_code == 403
    assert c.post(f"/api/v1/workorders/{own['wo_id']}/transition", headers=h,
                  json={"to": "dispatched"}).status_code == 403
    assert c.get("/api/v1/users", headers=h).status_code == 403
    assert c.get("/api/v1/users", headers=env.as_("engineer1")).status_code == 403
    assert c.get("/api/v1/users", headers=env.as_("admin")).status_code == 200
    assert c.get("/api/v1/workorders/review", headers=h).status_code == 403


def test_customer_views_hide_staff_fields(env):
    c, own = env.client, env.ids["acme"]
    dev = c.get(f"/api/v1/devices/{own['device_id']}", headers=env.as_("acme-user")).json()
    assert dev["host"] is None and dev["profile"] is None
    dev_staff = c.get(f"/api/v1/devices/{own['device_id']}", headers=env.as_("engineer1")).json()
    assert dev_staff["host"] == "127.0.0.1" and dev_staff["profile"]
    wo = c.get(f"/api/v1/workorders/{own['wo_id']}", headers=env.as_("acme-user")).json()
    assert wo["owner"] is None and wo["escalation_level"] is None and wo["title"] == "check fan"
    assert c.get(f"/api/v1/workorders/{own['wo_id']}/log", headers=env.as_("acme-user")).status_code == 403
    env.store.upsert_alarm_events([AlarmEvent("acme-plant1/acme-plant1-hvac/notes", "notes", "acme-plant1",
                                              "acme-plant1-hvac", "minor", env.clock() - NS, None, "", "", {})])
    aid = env.store.alarms(site_id="acme-plant1", device_id="acme-plant1-hvac", open_only=True, limit=1)[0]["id"]
    env.store.ack_alarm(aid, "engineer1", "internal: meter CT wired backwards")
    seen = c.get(f"/api/v1/alarms/{aid}", headers=env.as_("acme-user")).json()
    assert seen["acked"] is True and seen["ack_note"] == "" and seen["acked_by"] is None
    listed = [a for a in c.get("/api/v1/alarms", headers=env.as_("acme-user")).json() if a["id"] == aid]
    assert listed and listed[0]["ack_note"] == ""
    assert c.get(f"/api/v1/alarms/{aid}", headers=env.as_("engineer1")).json()["ack_note"].startswith("internal")
