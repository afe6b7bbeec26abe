"""API through HTTP: access, tenancy matrix, injection, alarms, work orders with escalation,
inspections, surveys, and telemetry against the real influxd of ``tests/conftest.py``.

Most tests use the ASGI app in-process (fast); ``test_real_uvicorn`` runs it on a loopback port.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from waiting import Clock

from analytics.tariffs import energy_cost, load_tariff
from api.auth import seed_demo_users
from api.main import create_app
from api.settings import ApiSettings
from core.config import load_fleet
from core.influx import InfluxClient, points_to_lines
from core.model import AlarmEvent, Point
from core.units import NS
from energyhost.devstack import free_port, listener_pid_matches
from reports.archive import ReportArchive
from workflow import Store

ROOT = Path(__file__).resolve().parents[1]
CHEAP = {"n": 2**10, "r": 8, "p": 1}
CUSTOMERS = {"acme": {"site": "acme-plant1", "meter": "acme-plant1-t1-meter", "temp": "acme-plant1-t1-temp",
                      "manager": "li.wei"},
             "huadong": {"site": "huadong-coldstore", "meter": "huadong-coldstore-meter",
                         "temp": "huadong-coldstore-temp", "manager": "zhang.min"}}
_db_counter = itertools.count(1)
TOKEN_TTL_S = 3 * 86400       # long enough for the clock jumps of the workflow tests


@dataclass
class Env:
    app: object
    client: TestClient
    store: Store
    clock: Clock
    influx: InfluxClient
    db: str
    t0: int
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, dict[str, object]] = field(default_factory=dict)
    points_written: int = 0
    influxd: object = None

    def as_(self, user: str) -> dict[str, str]:
        return self.headers[user]


def power_w(t_ns: np.ndarray, base: float) -> np.ndarray:
    """Load profile [W]: a daily sine around ``base``."""
    return base + 0.4 * base * np.sin(2 * np.pi * (t_ns / NS) / 86400)


def write_telemetry(influx: InfluxClient, t0: int) -> int:
    """One day of 60-s meter snapshots before ``t0`` for the meter of each customer; return point count."""
    t = np.arange(t0 - 86400 * NS, t0, 60 * NS, dtype=np.int64)
    points = []
    for cid, c in CUSTOMERS.items():
        base = 500e3 if cid == "acme" else 200e3
        p = power_w(t, base)
        e = 1e8 + np.cumsum(p * 60 / 3600)            # Wh counter
        for i in range(len(t)):
            points.append(Point("meter", {"customer": cid, "site": c["site"], "device": c["meter"]},
                                {"active_power": float(p[i]), "voltage_l1": 230.0 + (i % 7) * 0.5,
                                 "energy_import": float(e[i])}, int(t[i])))
    influx.write_lines(points_to_lines(points))
    return len(points)


def build_env(tmp_path: Path, influxd, *, background: bool = False, store_url: str | None = None) -> Env:
    """A seeded store, a fresh InfluxDB database with one day of data, the app and logged-in users."""
    t0 = (time.time_ns() // (3600 * NS)) * 3600 * NS
    clock = Clock(t0)
    store = Store(store_url or f"sqlite:///{tmp_path / 'workflow.db'}", clock=clock, password_cost=CHEAP)
    fleet = load_fleet(ROOT / "sites.example.toml")
    store.seed_fleet(fleet)
    passwords = seed_demo_users(store, fleet, env={})
    store.create_user("engineer2", "engineer", password="engineer2-password", engineer_group="west")
    passwords["engineer2"] = "engineer2-password"
    db = f"api{os.getpid()}_{next(_db_counter)}"
    influxd.create_database(db)
    influx = InfluxClient(influxd.url, db)
    n = write_telemetry(influx, t0)
    app = create_app(ApiSettings(escalate_every_s=0, token_ttl_s=TOKEN_TTL_S, rate_limit=0), store=store, influx=influx, clock=clock,
                     background=background, fleet=fleet)
    app.state.report_archive = ReportArchive(tmp_path / "reports")      # never the repository's var/
    client = TestClient(app)
    env = Env(app=app, client=client, store=store, clock=clock, influx=influx, db=db, t0=t0, points_written=n,
              influxd=influxd)
    for user, pw in passwords.items():
        r = client.post("/api/v1/auth/token", json={"username": user, "password": pw})
        assert r.status_code == 200, r.text
        env.headers[user] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    # one alarm, work order and patrol per customer: the objects of the tenancy matrix
    for cid, c in CUSTOMERS.items():
        key = f"{c['site']}/{c['temp']}/winding_overtemp"
        store.upsert_alarm_events([AlarmEvent(key, "winding_overtemp", c["site"], c["temp"], "major", t0 - 600 * NS,
                                              None, "繞組溫度高", "winding hot", {"t": 131.0})])
        alarm = store.alarms(site_id=c["site"], open_only=True)[0]
        wo = store.create_work_order(site_id=c["site"], title="check fan", severity="major", created_by="engineer1",
                                     alarm_id=alarm["id"], assignee="engineer1")
        plan = store.create_inspection_plan(c["site"], "monthly patrol", 30 * 86400, ["doors", "temperatures"],
                                            t0 + 86400 * NS, "engineer1")
        insp = store.inspections(site_id=c["site"])[0]
        env.ids[cid] = {"site_id": c["site"], "device_id": c["meter"], "alarm_id": alarm["id"], "wo_id": wo["id"],
                        "inspection_id": insp["id"], "plan_id": plan["id"], "customer_id": cid,
                        "month": time.strftime("%Y-%m", time.gmtime(t0 // NS))}
    return env


@pytest.fixture(scope="module")
def env(tmp_path_factory, influxd) -> Env:
    e = build_env(tmp_path_factory.mktemp("api"), influxd)
    yield e
    e.client.close()
    e.influx.close()
    e.store.close()


def count_points(env: Env) -> int:
    cols = env.influx.query_arrays('SELECT count("active_power") AS n FROM "meter"')
    return int(cols["n"][0]) if len(cols.get("n", ())) else 0


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


# ----------------------------------------------------------------------------- tenancy matrix
PARAMS = ("site_id", "device_id", "alarm_id", "wo_id", "inspection_id", "customer_id", "month")
MY_TAGS = {"access", "registry", "telemetry", "alarms", "work orders", "inspections", "surveys"}


def sample_body(method: str, path: str, foreign: dict) -> object:
    """A valid body for each body-bearing route (so the request reaches the tenancy check)."""
    bodies = {
        ("PATCH", "/api/v1/customers/{customer_id}"): {"name": "renamed"},
        ("PATCH", "/api/v1/sites/{site_id}"): {"name": "renamed"},
        ("PATCH", "/api/v1/devices/{device_id}"): {"name": "renamed"},
        ("POST", "/api/v1/devices"): {"id": "new-dev", "site_id": foreign["site_id"], "kind": "meter",
                                      "transport": "mqtt"},
        ("POST", "/api/v1/alarms/{alarm_id}/ack"): {"note": "seen"},
        ("POST", "/api/v1/alarms/{alarm_id}/shelve"): {"minutes": 30, "reason": "maintenance"},
        ("POST", "/api/v1/workorders"): {"site_id": foreign["site_id"], "title": "x", "severity": "minor"},
        ("POST", "/api/v1/workorders/{wo_id}/assign"): {"engineer": "engineer1"},
        ("POST", "/api/v1/workorders/{wo_id}/transition"): {"to": "dispatched", "note": ""},
        ("POST", "/api/v1/inspections/plans"): {"site_id": foreign["site_id"], "name": "p", "interval_days": 7,
                                                "checklist": ["a"], "first_due": "2030-01-01T00:00:00Z"},
        ("POST", "/api/v1/inspections/{inspection_id}/result"): {"results": {"doors": {"ok": True},
                                                                             "temperatures": {"ok": True}}},
        ("POST", "/api/v1/reports/generate"): {"customer_id": foreign["customer_id"], "month": foreign["month"]},
        ("POST", "/api/v1/reports/{customer_id}/{month}/send"): {"lang": "zh"},
    }
    return bodies.get((method, path))


def tenancy_requests(app, foreign: dict) -> list[tuple[str, str, dict, object]]:
    """(method, url, query, body) addressing ``foreign`` objects through every operation that can.

    Enumerated from the OpenAPI document, so a new route is covered automatically (a new
    body-bearing route of ours without a sample body fails the test).  Body routes of other
    packages (reports, web) are left to their own tests.
    """
    out = []
    for path, ops in app.openapi()["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        names = re.findall(r"{(\w+)}", path)
        if any(n not in PARAMS for n in names):
            continue
        for method, op in ops.items():
            method = method.upper()
            mine = bool(set(op.get("tags", [])) & MY_TAGS)
            body = sample_body(method, path, foreign)
            if "requestBody" in op and body is None:
                if mine and (names or method in ("POST", "PATCH")) and "site_id" in str(op["requestBody"]):
                    pytest.fail(f"no sample body for {method} {path}: add one to sample_body()")
                if names and mine:
                    pytest.fail(f"no sample body for {method} {path}: add one to sample_body()")
                continue
            url = path.format(**{n: foreign[n] for n in names})
            if names:
                out.append((method, url, {}, body))
            queries = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"} & set(PARAMS) - {"month"}
            for q in sorted(queries):
                out.append((method, url, {q: foreign[q]}, body))
            if not names and not queries and isinstance(body, dict) and {"site_id", "customer_id"} & set(body):
                out.append((method, url, {}, body))
    return out


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


# ----------------------------------------------------------------------------- injection
INJECTIONS = [
    "x' OR site =~ /.*/ OR site='y",
    "A'; DROP DATABASE {db}; SELECT 1 --",
    '"; DROP MEASUREMENT "meter"; --',
    "/.*/",
    "\\'",
    "acme-plant1-t1-meter\nDROP DATABASE {db}",
    "acme-plant1-t1-meter' OR '1'='1",
    "x" * 10_000,
]


@pytest.fixture
def logged_env(tmp_path, make_influxd) -> Env:
    """An env on a private influxd with its query log on, to see every statement it executed."""
    e = build_env(tmp_path, make_influxd(log_queries=True))
    yield e
    e.client.close()
    e.influx.close()
    e.store.close()


def test_influxql_injection_in_every_parameter_is_refused(logged_env):
    env = logged_env
    c, h = env.client, env.as_("engineer1")
    dev, site = env.ids["acme"]["device_id"], env.ids["acme"]["site_id"]
    n0 = count_points(env)
    assert n0 == env.points_written
    results = []
    for raw in INJECTIONS:
        s = raw.format(db=env.db)
        ps = quote(s, safe="")                                        # as a path segment
        attempts = [
            ("GET", f"/api/v1/telemetry/{ps}/latest", {}),
            ("GET", f"/api/v1/telemetry/{ps}/series", {}),
            ("GET", f"/api/v1/telemetry/sites/{ps}/energy", {}),
            ("GET", f"/api/v1/telemetry/{dev}/latest", {"channels": s}),
            ("GET", f"/api/v1/telemetry/{dev}/series", {"channels": s}),
            ("GET", f"/api/v1/telemetry/{dev}/series", {"agg": s}),
            ("GET", f"/api/v1/telemetry/{dev}/series", {"interval_s": s}),
            ("GET", f"/api/v1/telemetry/{dev}/series", {"start": s}),
            ("GET", f"/api/v1/telemetry/{dev}/series", {"end": s}),
            ("GET", f"/api/v1/telemetry/sites/{site}/energy", {"device_id": s}),
            ("GET", f"/api/v1/telemetry/sites/{site}/energy", {"start": s}),
            ("GET", "/api/v1/alarms", {"site_id": s}),
            ("GET", "/api/v1/alarms", {"device_id": s}),
            ("GET", "/api/v1/alarms", {"state": s}),
            ("GET", "/api/v1/devices", {"site_id": s}),
            ("GET", f"/api/v1/devices/{ps}", {}),
            ("GET", f"/api/v1/sites/{ps}", {}),
        ]
        for method, url, q in attempts:
            r = c.request(method, url, params=q, headers=h)
            results.append((url[:60], str(q)[:40], r.status_code))
    wrong = [x for x in results if x[2] not in (404, 422)]
    assert wrong == []
    # nothing was executed: the database, its measurement and every point are still there ...
    dbs = {v[0] for s in env.influx.query("SHOW DATABASES", db="") for v in s["values"]}
    assert env.db in dbs
    assert count_points(env) == n0
    # ... and influxd's query log shows only our SELECTs, never a user string as InfluxQL
    executed = [line for line in env.influxd.log_path.read_text(errors="replace").splitlines()
                if "Executing query" in line]
    assert executed, "query log is empty: the check would prove nothing"
    for line in executed:
        assert "DROP" not in line.upper() and "=~" not in line and "OR '1'" not in line, line
    assert not any(line for line in executed if "x" * 100 in line)


def test_abusive_telemetry_queries_are_refused(env):
    c, h, dev = env.client, env.as_("engineer1"), env.ids["acme"]["device_id"]
    r = c.get(f"/api/v1/telemetry/{dev}/series", headers=h,
              params={"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
    assert r.status_code == 422 and "400 days" in r.json()["detail"]
    r = c.get(f"/api/v1/telemetry/{dev}/series", headers=h,
              params={"start": "2025-01-01T00:00:00Z", "end": "2025-12-31T00:00:00Z", "interval_s": 1})
    assert r.status_code == 422 and "points" in r.json()["detail"]
    r = c.get(f"/api/v1/telemetry/{dev}/series", headers=h, params={"channels": "active_power,bogus_power"})
    assert r.status_code == 422 and "bogus_power" in r.json()["detail"]
    r = c.get(f"/api/v1/telemetry/{dev}/series", headers=h,
              params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
    assert r.status_code == 422
    r = c.post("/api/v1/workorders", headers={**h, "Content-Type": "application/json"},
               content=b'{"title": "' + b"x" * 1_100_000 + b'"}')
    assert r.status_code == 413


# ----------------------------------------------------------------------------- telemetry
def test_latest_and_downsampled_series_match_the_written_data(env):
    c, h = env.client, env.as_("acme-user")
    dev = env.ids["acme"]["device_id"]
    t = np.arange(env.t0 - 86400 * NS, env.t0, 60 * NS, dtype=np.int64)
    p = power_w(t, 500e3)
    r = c.get(f"/api/v1/telemetry/{dev}/latest", headers=h, params={"channels": "active_power,voltage_l1"})
    assert r.status_code == 200
    body = r.json()
    assert body["values"]["active_power"] == pytest.approx(p[-1])
    assert body["time"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(int(t[-1]) / NS)))
    for agg, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
        r = c.get(f"/api/v1/telemetry/{dev}/series", headers=h,
                  params={"channels": "active_power", "interval_s": 3600, "agg": agg})
        assert r.status_code == 200, r.text
        s = r.json()
        assert len(s["times"]) == 24
        expected = [fn(p[(t >= t0) & (t < t0 + 3600 * NS)]) for t0 in range(env.t0 - 86400 * NS, env.t0, 3600 * NS)]
        np.testing.assert_allclose(s["values"]["active_power"], expected, rtol=1e-9)
    # the other customer's meter through the customer's token: 404
    other = env.ids["huadong"]["device_id"]
    assert c.get(f"/api/v1/telemetry/{other}/latest", headers=h).status_code == 404


def test_energy_per_tou_period(env):
    c, h = env.client, env.as_("engineer1")
    site, dev = env.ids["acme"]["site_id"], env.ids["acme"]["device_id"]
    start, end = env.t0 - 86400 * NS + 3600 * NS, env.t0 - 3600 * NS
    iso = lambda ns: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / NS))  # noqa: E731
    r = c.get(f"/api/v1/telemetry/sites/{site}/energy", headers=h,
              params={"device_id": dev, "start": iso(start), "end": iso(end)})
    assert r.status_code == 200, r.text
    body = r.json()
    # expected: the power profile integrated per minute, summed per period by the tariff
    tariff = load_tariff("jiangsu_large_industry")
    t = np.arange(start, end, 60 * NS, dtype=np.int64)
    kwh = power_w(t, 500e3) * 60 / 3.6e6
    exp = energy_cost(t, kwh, tariff)
    assert body["total_kwh"] == pytest.approx(exp["total_kwh"], rel=0.01)
    got = {p["period"]: p["kwh"] for p in body["periods"]}
    for period, e in exp["kwh"].items():
        assert got[period] == pytest.approx(e, rel=0.02, abs=30.0), period
    assert body["tariff"] == "jiangsu_large_industry"


def test_site_energy_sums_the_incomer_meters_not_a_feeder(env):
    """Without device_id the site's energy is T1 + T2 (the fleet's transformer meters); the compressor
    feeder meter, first in alphabetical order, is not the site."""
    c, h = env.client, env.as_("engineer1")
    site = env.ids["acme"]["site_id"]
    t = np.arange(env.t0 - 86400 * NS, env.t0, 60 * NS, dtype=np.int64)
    points = []
    for dev, base in (("acme-plant1-t2-meter", 300e3), ("acme-plant1-compressors", 90e3)):
        e = 5e7 + np.cumsum(power_w(t, base) * 60 / 3600)
        points += [Point("meter", {"customer": "acme", "site": site, "device": dev}, {"energy_import": float(x)},
                         int(ti)) for ti, x in zip(t, e, strict=True)]
    env.influx.write_lines(points_to_lines(points))
    start, end = env.t0 - 86400 * NS + 3600 * NS, env.t0 - 3600 * NS
    iso = lambda ns: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / NS))  # noqa: E731
    got = {}
    for dev in (None, "acme-plant1-t1-meter", "acme-plant1-t2-meter", "acme-plant1-compressors"):
        params = {"start": iso(start), "end": iso(end)} | ({"device_id": dev} if dev else {})
        r = c.get(f"/api/v1/telemetry/sites/{site}/energy", headers=h, params=params)
        assert r.status_code == 200, r.text
        got[dev] = r.json()
    assert got[None]["meters"] == ["acme-plant1-t1-meter", "acme-plant1-t2-meter"]
    assert got[None]["total_kwh"] == pytest.approx(got["acme-plant1-t1-meter"]["total_kwh"]
                                                   + got["acme-plant1-t2-meter"]["total_kwh"], rel=1e-9)
    assert got[None]["total_kwh"] > 2 * got["acme-plant1-compressors"]["total_kwh"] > 0


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


def iso_ns(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + f".{ns % NS:09d}"[:7] + "Z"


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


def test_auto_interval_and_result_cache():
    from api.routes.telemetry import TtlCache, auto_interval_s

    assert auto_interval_s(86400, 5) == 120            # 720 buckets for a day of 5-s data
    assert auto_interval_s(3600, 5) == 5
    assert auto_interval_s(400 * 86400, 60) == 43200
    now = [0.0]
    cache = TtlCache(ttl_s=5, size=2, clock=lambda: now[0])
    calls = []
    for _ in range(3):
        assert cache.get_or_compute(("a",), lambda: calls.append(1) or len(calls)) == 1
    now[0] = 5.0                                        # expired: computed again
    assert cache.get_or_compute(("a",), lambda: calls.append(1) or len(calls)) == 2
    cache.get_or_compute(("b",), lambda: 0)
    cache.get_or_compute(("c",), lambda: 0)             # size 2: "a" evicted
    assert cache.get_or_compute(("a",), lambda: "fresh") == "fresh"
    assert cache.hits == 2


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
