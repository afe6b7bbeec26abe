"""The API test environment: a seeded store, a day of meter data in a real influxd, the app and
logged-in users of every role; and the requests of the tenancy matrix (shared by the API and security tests).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.auth import seed_demo_users
from api.main import create_app
from api.settings import ApiSettings
from core.config import load_fleet
from core.influx import InfluxClient, points_to_lines
from core.model import AlarmEvent, Point
from core.units import NS
from reports.archive import ReportArchive
from support.waiting import Clock
from workflow import Store

ROOT = Path(__file__).resolve().parents[2]


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


def count_points(env: Env) -> int:
    cols = env.influx.query_arrays('SELECT count("active_power") AS n FROM "meter"')
    return int(cols["n"][0]) if len(cols.get("n", ())) else 0


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
    body-bearing route of these tags without a sample body fails the test).  Body routes of the
    report and web pages are left to their own tests.
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


def iso_ns(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + f".{ns % NS:09d}"[:7] + "Z"
