"""Findings of an outside probe of the API, each a test: no input answers 5xx, no answer tells a
caller more than its role may know.

The app runs in-process (``TestClient`` with server exceptions turned into 500 answers, as a
client would see them) on the seeded store and the real influxd of ``tests/conftest.py``;
the body-size test runs uvicorn on a loopback port and sends a real chunked request.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api import build_env  # tests/ is on sys.path (rootdir-relative test modules)

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
