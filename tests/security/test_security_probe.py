"""The outside probe of the API, kept as tests: one test per category, each printing
``probe <category>: <attempts> attempts, <held> held`` (docs/security.md lists the counts).

Categories: no credentials, forged credentials, tenancy (reads; writes incl. POST), role matrix,
id oracles, user enumeration by answer, hostile input.  The app runs in-process on the seeded
store and the real influxd of ``tests/conftest.py`` (server exceptions become 500 answers).
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from support.api_env import TOKEN_TTL_S, build_env, tenancy_requests
from support.hardening import EXTREME, _date_cases, _fill

API = "/api/v1"
CUSTOMER_USERS = [("acme-user", "acme"), ("huadong-user", "huadong"), ("li.wei", "acme"), ("zhang.min", "huadong")]


@pytest.fixture(scope="module")
def env(tmp_path_factory, influxd):
    e = build_env(tmp_path_factory.mktemp("probe"), influxd)
    e.http = TestClient(e.app, raise_server_exceptions=False)
    yield e
    e.http.close()
    e.client.close()
    e.influx.close()
    e.store.close()


def tally(category: str, outcomes: list[tuple[bool, str]]) -> None:
    """Print the category's attempts and held, then fail naming what did not hold."""
    held = sum(ok for ok, _ in outcomes)
    print(f"\nprobe {category}: {len(outcomes)} attempts, {held} held")
    assert outcomes, category
    assert held == len(outcomes), [what for ok, what in outcomes if not ok][:20]


def _operations(env):
    for path, ops in env.http.get("/openapi.json").json()["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def _fill_path(env, path: str) -> str:
    own = {**env.ids["acme"], "user_id": "engineer2", "key_id": "000000000000", "month": "2026-10"}
    return re.sub(r"{(\w+)}", lambda m: str(own.get(m.group(1), "x")), path)      # a new name: any id


def test_probe_no_credentials(env):
    """Every operation but login and the health check, without credentials: 401."""
    outcomes = []
    for method, path, _ in _operations(env):
        if path in (f"{API}/auth/token", "/healthz"):
            continue
        r = env.http.request(method, _fill_path(env, path), json={})
        outcomes.append((r.status_code == 401, f"{method} {path} {r.status_code}"))
    tally("no credentials", outcomes)


def test_probe_forged_credentials(env):
    """Forged, malformed, expired and revoked credentials on every read operation: 401."""
    expired = env.http.post(f"{API}/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
    revoked = env.http.post(f"{API}/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
    rev_h = {"Authorization": f"Bearer {revoked.json()['access_token']}"}
    assert env.http.post(f"{API}/auth/logout", headers=rev_h).status_code == 204
    forged = [{"Authorization": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiJ9."},
              {"Authorization": "Bearer eht_" + "A" * 43}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
              {"Authorization": "Bearer "}, {"Authorization": "bearer\teht_x"}, {"X-API-Key": "ehk_000000000000_x"},
              {"X-API-Key": "ehk_" + "0" * 200}, rev_h]
    reads = [path for method, path, _ in _operations(env) if method == "GET" and path.startswith(API)]
    outcomes = []
    for h in forged:
        for path in reads:
            r = env.http.get(_fill_path(env, path), headers=h)
            outcomes.append((r.status_code == 401, f"{h} {path} {r.status_code}"))
    exp_h = {"Authorization": f"Bearer {expired.json()['access_token']}"}
    env.clock.advance(TOKEN_TTL_S + 1)
    try:
        for path in reads:
            r = env.http.get(_fill_path(env, path), headers=exp_h)
            outcomes.append((r.status_code == 401, f"expired {path} {r.status_code}"))
    finally:
        env.clock.advance(-(TOKEN_TTL_S + 1))
    tally("forged credentials", outcomes)


@pytest.mark.parametrize("kind", ["reads", "writes"])
def test_probe_tenancy(env, kind):
    """Each customer user and manager addresses the other customer's objects through every operation
    that takes an id or a site / customer in its body: 404, and the objects are unchanged."""
    outcomes = []
    for user, own in CUSTOMER_USERS:
        other = "huadong" if own == "acme" else "acme"
        before = (env.store.alarm(env.ids[other]["alarm_id"]), env.store.work_order(env.ids[other]["wo_id"]))
        for method, url, query, body in tenancy_requests(env.app, env.ids[other]):
            if (method == "GET") != (kind == "reads"):
                continue
            r = env.http.request(method, url, params=query, json=body, headers=env.as_(user))
            outcomes.append((r.status_code == 404, f"{user} {method} {url} {query} {r.status_code}"))
        after = (env.store.alarm(env.ids[other]["alarm_id"]), env.store.work_order(env.ids[other]["wo_id"]))
        outcomes.append((before == after, f"{user}: the other customer's alarm / work order changed"))
    tally(f"tenancy ({kind})", outcomes)


def _role_routes(env) -> list[tuple[str, str, object, set[str]]]:
    """(method, url, body, roles allowed) of every function-level rule, on the caller's own objects."""
    a = env.ids["acme"]
    staff, tech = {"admin", "engineer1", "li.wei"}, {"admin", "engineer1"}
    return [
        ("GET", "/users", None, {"admin"}),
        ("POST", "/users", {"id": "probe-u", "role": "admin"}, {"admin"}),
        ("PATCH", "/users/engineer2", {"name": "x"}, {"admin"}),
        ("POST", "/api-keys", {"user_id": "engineer2"}, {"admin"}),
        ("DELETE", "/api-keys/000000000000", None, {"admin"}),
        ("POST", "/customers", {"id": "probe-c", "name": "P"}, {"admin"}),
        ("PATCH", "/customers/acme", {"name": "Acme"}, {"admin"}),
        ("POST", "/sites", {"id": "probe-s", "customer_id": "acme", "name": "P"}, {"admin"}),
        ("PATCH", f"/sites/{a['site_id']}", {"name": "P"}, tech),
        ("POST", "/devices", {"id": "probe-d", "site_id": a["site_id"], "kind": "meter", "transport": "mqtt"}, tech),
        ("PATCH", f"/devices/{a['device_id']}", {"name": "m"}, tech),
        ("POST", "/alarms/events", [], tech),
        ("GET", f"/alarms/{a['alarm_id']}/audit", None, staff),
        ("POST", f"/alarms/{a['alarm_id']}/ack", {"note": "x"}, staff),
        ("POST", f"/alarms/{a['alarm_id']}/shelve", {"minutes": 5, "reason": "x"}, staff),
        ("POST", f"/alarms/{a['alarm_id']}/unshelve", None, staff),
        ("POST", "/workorders", {"site_id": a["site_id"], "title": "x", "severity": "minor"}, staff),
        ("GET", "/workorders/review", None, staff),
        ("POST", "/workorders/escalate", None, staff),
        ("GET", "/workorders/escalations", None, staff),
        ("GET", f"/workorders/{a['wo_id']}/log", None, staff),
        ("POST", f"/workorders/{a['wo_id']}/assign", {"engineer": "engineer1"}, staff),
        ("POST", f"/workorders/{a['wo_id']}/transition", {"to": "dispatched"}, staff),
        ("POST", "/inspections/plans", {"site_id": a["site_id"], "name": "p", "interval_days": 7,
                                        "checklist": ["a"], "first_due": "2030-01-01T00:00:00Z"}, staff),
        ("POST", f"/inspections/{a['inspection_id']}/result", {"results": {"doors": {"ok": True}}}, staff),
        ("POST", "/reports/generate", {"customer_id": "acme", "month": "2026-01"}, staff),
        ("POST", "/surveys", {"kind": "work_order", "ref": str(a["wo_id"]), "rating": 5}, {"acme-user"}),
    ]


def test_probe_role_matrix(env):
    """Every role that a function is not for gets 403 on its own objects (and nothing changes)."""
    outcomes = []
    roles = ("admin", "engineer1", "li.wei", "acme-user")
    for method, url, body, allowed in _role_routes(env):
        for role in roles:
            if role in allowed:
                continue
            r = env.http.request(method, API + url, json=body, headers=env.as_(role))
            outcomes.append((r.status_code == 403, f"{role} {method} {url} {r.status_code} {r.text[:80]}"))
    assert env.store.work_order(env.ids["acme"]["wo_id"])["state"] == "new"
    tally("role matrix", outcomes)


def _same(a, b, *ids: str) -> bool:
    """Same status and same message once the ids are taken out."""
    def norm(r):
        text = r.text
        for i in ids:
            text = text.replace(i, "<id>")
        return r.status_code, text
    return norm(a) == norm(b)


def test_probe_id_oracles(env):
    """An id of another customer's object answers exactly like an id that does not exist."""
    outcomes = []
    for user, own in CUSTOMER_USERS:
        other = "huadong" if own == "acme" else "acme"
        mine, theirs = env.ids[own], env.ids[other]
        pairs = [(key, str(theirs[key]), missing) for key, missing in
                 (("device_id", "no-such-dev"), ("site_id", "no-such-site"), ("alarm_id", "999999"),
                  ("wo_id", "999998"), ("inspection_id", "999997"), ("customer_id", "no-such-cust"))]
        for key, foreign, missing in pairs:
            for method, path, op in _operations(env):
                names = re.findall(r"{(\w+)}", path)
                queries = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
                if key in names:
                    urls = [(_fill_path(env, path.replace("{" + key + "}", v)), {}) for v in (foreign, missing)]
                elif key in queries and method == "GET":
                    urls = [(_fill_path(env, path), {key: v}) for v in (foreign, missing)]
                else:
                    continue
                a, b = (env.http.request(method, u, params=q, headers=env.as_(user), json={}) for u, q in urls)
                outcomes.append((_same(a, b, foreign, missing), f"{user} {method} {path} {key}: "
                                 f"{a.status_code} {a.text[:60]} / {b.status_code} {b.text[:60]}"))
        if user in ("li.wei", "zhang.min"):          # managers may create work orders on their sites
            for field, foreign, missing in (("device_id", theirs["device_id"], "no-such-dev"),
                                            ("alarm_id", theirs["alarm_id"], 999999)):
                answers = [env.http.post(f"{API}/workorders", headers=env.as_(user),
                                         json={"site_id": mine["site_id"], "title": "t", "severity": "minor",
                                               field: v}) for v in (foreign, missing)]
                outcomes.append((_same(*answers, str(foreign), str(missing)), f"{user} POST /workorders {field}"))
    tally("id oracles", outcomes)


def test_probe_user_enumeration_by_answer(env):
    """Login with a wrong password answers the same for a real, an unknown and a deactivated user."""
    env.store.create_user("probe-gone", "engineer", password="probe-gone-password")
    env.store.update_user("probe-gone", active=False)
    outcomes = []
    for i, real in enumerate(("admin", "engineer1", "li.wei", "acme-user")):
        for j, other in enumerate(("no-such-user", "probe-gone", "ADMIN", "admin ")):
            # a client address of its own per pair, and the names unlocked after: only the answers count here
            with TestClient(env.app, client=(f"198.51.100.{4 * i + j + 1}", 40000)) as c:
                a, b = (c.post(f"{API}/auth/token", json={"username": u, "password": "wrong-password"})
                        for u in (real, other))
            for u in (real, other):
                env.app.state.login_limiter.succeeded(u)
            outcomes.append((a.status_code == b.status_code == 401 and a.json() == b.json()
                             and a.headers.get("www-authenticate") == b.headers.get("www-authenticate"),
                             f"{real} / {other}: {a.status_code} {b.status_code}"))
    tally("user enumeration", outcomes)


def test_probe_hostile_input(env):
    """Times out of range on every time field, lone surrogates, NaN, huge numbers and '..' ids: 4xx."""
    outcomes = []
    for t in EXTREME:
        for user, method, path, spec in _date_cases(env):
            spec = _fill(spec, t)
            if method == "GET":
                r = env.http.get(API + path, params=spec, headers=env.as_(user))
            else:
                r = env.http.post(API + path, json=spec["json"], headers=env.as_(user))
            outcomes.append((400 <= r.status_code < 500, f"{t} {method} {path} {r.status_code}"))
    site = env.ids["acme"]["site_id"]
    for value in ('"\\ud800"', '"x\\udfff"', "NaN", "Infinity", "-Infinity", "1e400"):
        for user, path, body in (("acme-user", "/surveys", '{"kind": "monthly_report", "ref": "2026-10", "rating": V}'),
                                 ("li.wei", "/workorders", f'{{"site_id": "{site}", "title": V, "severity": "minor"}}'),
                                 ("engineer1", "/auth/token", '{"username": V, "password": "x"}')):
            r = env.http.post(API + path, content=body.replace("V", value),
                              headers={**env.as_(user), "Content-Type": "application/json"})
            outcomes.append((400 <= r.status_code < 500, f"{user} {path} {value} {r.status_code}"))
    for path in ("/reports/a..b/2026-10", "/reports/a..b/2026-10/pdf", "/reports/a..b/2026-10/html",
                 "/devices/a..b", "/sites/..", "/telemetry/a..b/series", "/customers/a..b"):
        r = env.http.get(API + path, headers=env.as_("admin"))
        outcomes.append((400 <= r.status_code < 500, f"{path} {r.status_code}"))
    tally("hostile input", outcomes)
