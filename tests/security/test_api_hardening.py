"""Findings of an outside probe of the API, each a test: no input answers 5xx, no answer tells a
caller more than its role may know.

The app runs in-process (``TestClient`` with server exceptions turned into 500 answers, as a
client would see them) on the seeded store and the real influxd of ``tests/conftest.py``;
the body-size test runs uvicorn on a loopback port and sends a real chunked request.
"""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient
from support.api_env import CHEAP, build_env
from support.hardening import EXTREME, _date_cases, _fill, send_chunked, served

from api.main import create_app
from api.settings import ApiSettings
from workflow import Store

API = "/api/v1"


@pytest.fixture(scope="module")
def env(tmp_path_factory, influxd):
    e = build_env(tmp_path_factory.mktemp("harden"), influxd)
    e.http = TestClient(e.app, raise_server_exceptions=False)
    yield e
    e.http.close()
    e.client.close()
    e.influx.close()
    e.store.close()


def _json_or_text(r):
    try:
        return r.json()
    except ValueError:
        return r.text


# ----------------------------------------------------------------------------- 3: the 422 body for any input
@pytest.mark.parametrize("body", [
    '{"username": "\\ud800", "password": "x"}',             # lone surrogate
    '{"username": NaN, "password": "x"}',                     # NaN (Python's json accepts it)
    '{"username": "u", "password": Infinity}',
    '{"username": "u", "password": -Infinity, "x": "\\udfff"}',
    '{"username": 1e400, "password": 123456789012345678901234567890}',
])
def test_login_validation_error_answers_422_for_any_input(env, body):
    r = env.http.post(f"{API}/auth/token", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail and all("msg" in d and "loc" in d for d in detail)


def test_lone_surrogate_in_accepted_text_is_refused(env):
    """A string that passes the type check but holds a lone surrogate never reaches the store."""
    r = env.http.post(f"{API}/auth/token", content='{"username": "a\\ud800b", "password": "pw-\\udc00"}',
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "surrogate" in r.text, r.text
    r = env.http.post(f"{API}/workorders", headers={**env.as_("engineer1"), "Content-Type": "application/json"},
                      content='{"site_id": "acme-plant1", "title": "fan \\ud800", "severity": "minor"}')
    assert r.status_code == 422 and "surrogate" in r.text, r.text


def test_survey_rating_nan_answers_422(env):
    for rating in ("NaN", "Infinity", "1e999", "3.5"):
        r = env.http.post(f"{API}/surveys", headers={**env.as_("acme-user"), "Content-Type": "application/json"},
                          content=f'{{"kind": "monthly_report", "ref": "2026-01", "rating": {rating}}}')
        assert r.status_code == 422, (rating, r.status_code, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "rating"]


# ----------------------------------------------------------------------------- 4: ids with '..'
@pytest.mark.parametrize("path", ["/reports/a..b/2026-11", "/reports/a..b/2026-11/pdf", "/reports/a..b/2026-11/html",
                                  "/reports/..a/2026-11", "/reports/acme../2026-11/html?lang=en"])
def test_report_ids_with_dot_dot_answer_4xx(env, path):
    for user in ("admin", "li.wei"):
        r = env.http.get(API + path, headers=env.as_(user))
        assert r.status_code in (404, 422), (user, path, r.status_code, r.text)
    r = env.http.post(f"{API}/reports/a..b/2026-11/send", headers=env.as_("admin"), json={"lang": "zh"})
    assert r.status_code in (404, 422), (r.status_code, r.text)
    r = env.http.get(f"{API}/reports", params={"customer_id": "a..b"}, headers=env.as_("admin"))
    assert r.status_code in (404, 422), (r.status_code, r.text)
    r = env.http.post(f"{API}/reports/generate", headers=env.as_("admin"),
                      json={"customer_id": "a..b", "month": "2026-01"})
    assert r.status_code in (404, 422), (r.status_code, r.text)


# ----------------------------------------------------------------------------- 2: dates outside the range


def test_times_outside_the_range_answer_422(env):
    answers = {}
    for t in EXTREME:
        for user, method, path, spec in _date_cases(env):
            spec = _fill(spec, t)
            if method == "GET":
                r = env.http.get(API + path, params=spec, headers=env.as_(user))
            else:
                r = env.http.post(API + path, json=spec["json"], headers=env.as_(user))
            answers[(t, method, path, str(spec)[:60])] = (r.status_code, r.text[:200])
    bad = {k: v for k, v in answers.items() if v[0] != 422 or "1970-01-01 .. 2200-01-01" not in v[1]}
    assert not bad, bad


@pytest.mark.parametrize("week_start", ["9999-12-27", "0001-01-01", "1969-12-29", "2262-04-07"])
def test_review_week_outside_the_range_answers_422(env, week_start):
    r = env.http.get(f"{API}/workorders/review", params={"week_start": week_start}, headers=env.as_("engineer1"))
    assert r.status_code == 422 and "1970-01-01" in r.text, (r.status_code, r.text)


@pytest.mark.parametrize("ref", ["0000-01", "9999-12", "1969-12", "2200-01"])
def test_survey_month_outside_the_range_answers_422(env, ref):
    r = env.http.post(f"{API}/surveys", headers=env.as_("acme-user"),
                      json={"kind": "monthly_report", "ref": ref, "rating": 4})
    assert r.status_code == 422, (r.status_code, r.text)


def test_times_inside_the_range_still_work(env):
    """The edges of the range are accepted (an empty answer, not an error)."""
    r = env.http.get(f"{API}/alarms", params={"since": "1970-01-01T00:00:00Z", "until": "2199-12-31T23:59:59Z"},
                     headers=env.as_("acme-user"))
    assert r.status_code == 200 and r.json(), r.text
    r = env.http.get(f"{API}/surveys", params={"start": "2199-12-31T00:00:00"}, headers=env.as_("acme-user"))
    assert r.status_code == 200 and r.json() == []
    r = env.http.get(f"{API}/workorders/review", params={"week_start": "2199-12-23"}, headers=env.as_("engineer1"))
    assert r.status_code == 200 and r.json()["week_end"] == "2199-12-30T00:00:00Z", r.text


def _time_fields(node, doc, path="", seen=None):
    """(where, schema) of every date / date-time schema under ``node``, following $refs once."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref not in seen:
                seen.add(ref)
                target = doc
                for part in ref.lstrip("#/").split("/"):
                    target = target[part]
                yield from _time_fields(target, doc, path + ">" + ref.rsplit("/", 1)[1], seen)
            return
        if node.get("format") in ("date", "date-time"):
            yield path, node
        for k, v in node.items():
            yield from _time_fields(v, doc, f"{path}.{k}", seen)
    elif isinstance(node, list):
        for v in node:
            yield from _time_fields(v, doc, path, seen)


def test_every_time_input_of_every_route_is_range_checked(env):
    """Guard: each date / date-time a request may carry (query, path, body) is the validated type
    of api.validation, whose schema says its range; a new route with a bare datetime fails here."""
    doc = env.http.get("/openapi.json").json()
    found = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                for where, schema in _time_fields(p, doc, f"{method} {path} {p['name']}"):
                    found.append((where, p.get("description", "") + schema.get("description", "")))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            for where, schema in _time_fields(body, doc, f"{method} {path} body"):
                found.append((where, schema.get("description", "")))
    assert len(found) >= 12, found
    unchecked = [w for w, d in found if "1970-01-01 .. 2200-01-01" not in d]
    assert not unchecked, unchecked


# ----------------------------------------------------------------------------- 1: chunked bodies


def test_chunked_body_over_the_limit_is_refused_while_it_arrives(env):
    """60 MB chunked, no Content-Length, no login: 413 long before the 60 MB are sent."""
    with served(env.app) as port:
        answer, sent = send_chunked(port, f"{API}/auth/token", 60 * 2**20)
        small, _ = send_chunked(port, f"{API}/auth/token", 64 * 1024)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:     # declared too large: not read
            s.sendall(f"POST {API}/auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n{{".encode())
            declared = s.recv(65536)
    print(f"chunked 60 MB body: 413 after {sent / 2**20:.1f} MB sent")
    assert answer.startswith(b"HTTP/1.1 413"), (answer[:200], sent)
    assert sent < 30 * 2**20, f"{sent} bytes went in before the answer"
    assert small.startswith(b"HTTP/1.1 422"), small[:200]      # under the limit: read and parsed
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]


# ----------------------------------------------------------------------------- 6: device-id oracle
def test_work_order_device_of_another_customer_answers_like_a_missing_one(env):
    site = env.ids["acme"]["site_id"]
    answers = {}
    for user in ("li.wei", "engineer1"):
        for name, dev in (("foreign", env.ids["huadong"]["device_id"]), ("missing", "no-such-device")):
            r = env.http.post(f"{API}/workorders", headers=env.as_(user),
                              json={"site_id": site, "title": "t", "severity": "minor", "device_id": dev})
            answers[(user, name)] = (r.status_code, r.json()["detail"].replace(dev, "<id>"))
    assert answers[("li.wei", "foreign")] == answers[("li.wei", "missing")], answers
    assert answers[("li.wei", "missing")][0] == 404, answers
    assert answers[("engineer1", "foreign")] == answers[("engineer1", "missing")], answers
    r = env.http.post(f"{API}/workorders", headers=env.as_("li.wei"),        # its own device still works
                      json={"site_id": site, "title": "t", "severity": "minor", "device_id": env.ids["acme"]["device_id"]})
    assert r.status_code == 201, r.text


# ----------------------------------------------------------------------------- 7: survey refs
def test_survey_refs_must_name_a_report_or_closed_work_order_of_the_customer(env):
    arch = env.app.state.report_archive
    arch.save({"customer_id": "acme", "month": "2026-10", "generated_ns": 1}, {"zh": "<p>acme</p>"}, {})
    arch.save({"customer_id": "huadong", "month": "2026-09", "generated_ns": 1}, {"zh": "<p>hd</p>"}, {})
    h = env.as_("acme-user")
    before = env.http.get(f"{API}/surveys/results", headers=h).json()["by_kind"]["monthly_report"]["count"]

    def answer(kind: str, ref: str):
        return env.http.post(f"{API}/surveys", headers=h, json={"kind": kind, "ref": ref, "rating": 1})

    assert answer("monthly_report", "2031-07").status_code == 404           # no report that month
    assert answer("monthly_report", "2026-09").status_code == 404           # another customer's report
    assert answer("work_order", str(env.ids["huadong"]["wo_id"])).status_code == 404   # another customer's order
    assert answer("work_order", str(env.ids["acme"]["wo_id"])).status_code == 409      # not closed yet
    after = env.http.get(f"{API}/surveys/results", headers=h).json()["by_kind"]["monthly_report"]["count"]
    assert after == before                                                   # nothing refused was counted
    r = answer("monthly_report", "2026-10")
    assert r.status_code == 201, r.text
    assert env.http.get(f"{API}/surveys/results", headers=h).json()["by_kind"]["monthly_report"]["count"] == before + 1


# ----------------------------------------------------------------------------- 5: user enumeration by timing
def _scrypt_work_per_login(c: TestClient, monkeypatch, username: str) -> list[tuple[int, int, int]]:
    """The scrypt computations (n, r, p) one failed login makes: the work that sets its time."""
    import hashlib

    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(*args, **kw):
        calls.append((kw["n"], kw["r"], kw["p"]))
        return real(*args, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    r = c.post(f"{API}/auth/token", json={"username": username, "password": "not-the-password"})
    monkeypatch.setattr(hashlib, "scrypt", real)
    assert r.status_code == 401, r.text
    return calls


def test_unknown_and_inactive_users_do_the_same_work_as_a_wrong_password(tmp_path, monkeypatch):
    """With the production scrypt cost: a wrong password for a real user, an unknown user and a
    deactivated user each make exactly one scrypt computation of the same cost before the 401 (before
    the fix, the unknown and inactive users made none and answered 12 and 300 times faster), so the
    time of the answer does not tell which user names exist.  Counted, not timed: a shared machine's
    load makes wall-clock ratios meaningless."""
    store = Store(f"sqlite:///{tmp_path / 't.db'}")            # default (OWASP) password cost
    store.create_user("real.user", "engineer", password="the-right-password")
    store.create_user("gone.user", "engineer", password="the-right-password")
    store.update_user("gone.user", active=False)
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0, login_max_fails=1000), store=store,
                     background=False)
    try:
        with TestClient(app) as c:
            c.post(f"{API}/auth/token", json={"username": "warm-up", "password": "x"})   # makes the dummy hash once
            real = _scrypt_work_per_login(c, monkeypatch, "real.user")
            unknown = _scrypt_work_per_login(c, monkeypatch, "no.such.user")
            gone = _scrypt_work_per_login(c, monkeypatch, "gone.user")
    finally:
        store.close()
    assert len(real) == 1 and real[0][0] >= 2**15               # the production cost, not a test cost
    assert unknown == real and gone == real, (real, unknown, gone)


# ----------------------------------------------------------------------------- 8: login limits, frames
def _app_for_logins(tmp_path, max_fails: int = 5):
    store = Store(f"sqlite:///{tmp_path / 'l.db'}", password_cost=CHEAP)
    store.create_user("real.user", "engineer", password="the-right-password")
    return store, create_app(ApiSettings(escalate_every_s=0, rate_limit=0, login_max_fails=max_fails), store=store,
                             background=False)


def test_login_lock_says_when_to_retry(tmp_path):
    store, app = _app_for_logins(tmp_path)
    try:
        with TestClient(app) as c:
            codes = [c.post(f"{API}/auth/token", json={"username": "real.user", "password": "bad"}).status_code
                     for _ in range(6)]
            r = c.post(f"{API}/auth/token", json={"username": "real.user", "password": "the-right-password"})
    finally:
        store.close()
    assert codes == [401] * 5 + [429] and r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_failed_logins_across_user_names_are_limited_per_client_address(tmp_path):
    """A spray of many user names (one failure each) from one address is stopped; another address is not."""
    store, app = _app_for_logins(tmp_path, max_fails=5)
    try:
        with TestClient(app, client=("192.0.2.7", 40000)) as sprayer, \
                TestClient(app, client=("192.0.2.8", 40000)) as other:
            codes = [sprayer.post(f"{API}/auth/token", json={"username": f"name{i}", "password": "x"}).status_code
                     for i in range(40)]
            blocked = sprayer.post(f"{API}/auth/token", json={"username": "real.user",
                                                              "password": "the-right-password"})
            ok = other.post(f"{API}/auth/token", json={"username": "real.user", "password": "the-right-password"})
    finally:
        store.close()
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}, codes
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert ok.status_code == 200, ok.text


def test_report_html_may_not_be_framed(env):
    env.app.state.report_archive.save({"customer_id": "acme", "month": "2026-08", "generated_ns": 1},
                                      {"zh": "<p>acme</p>"}, {})
    r = env.http.get(f"{API}/reports/acme/2026-08/html", headers=env.as_("acme-user"))
    assert r.status_code == 200, r.text
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
