"""The property "no request answers 5xx", over every route of the OpenAPI document and every role.

Three passes against one seeded app, then a look at the server log:

1. **Schemathesis**, once per role (admin, engineer, customer manager, customer): requests
   generated from the schema, date-times drawn from the whole of years 1..9999 besides the
   range edges; no 5xx, answers conform to the documented schemas.  (Its pytest plugin does not
   load under pytest 9 here, so the operations are driven through its Python API.)
2. **Hostile values** over HTTP to uvicorn on a loopback port: every path and query parameter,
   and every field of a valid request body, replaced in turn by each value of a list (times out
   of range, lone surrogates, NaN / Infinity, huge numbers, ``..`` and unicode in ids, invalid
   UTF-8, empty and 5000-character strings, wrong JSON types); an engineer and the customer
   manager take turns.
3. **Transport**: every operation with a body gets wrong content types, broken and empty JSON,
   an oversized body with and without ``Content-Length`` (chunked).

Finally the server log of the whole run must hold no traceback.  Bounded: ``MAX_EXAMPLES`` per
operation, fixed value lists, a time limit per pass; about 2 minutes in all on 2 cores.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import formats
from schemathesis.specs.openapi.checks import response_schema_conformance
from support.api_env import build_env
from support.hardening import send_chunked, served

ROLES = ("admin", "engineer1", "li.wei", "acme-user")
HOSTILE_ROLES = ("engineer1", "li.wei")
MAX_EXAMPLES = 10
PASS_TIME_LIMIT_S = 120

# values as they go into a URL (already percent-encoded where it matters)
URL_VALUES = ["%ED%A0%80", "%FF%FE", "a..b", "..", "..%2F..%2Fetc%2Fpasswd", quote("é漢字🙂"), "%00", "x" * 5000, "",
              "NaN", "Infinity", "-1", "0", "9" * 40, "1e308", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
              "1700-01-01T00:00:00Z", "2026-13-45", "9999-12-27", "0000-01", "true", "null", quote("' OR 1=1 --"),
              quote('"; DROP MEASUREMENT meter')]
# values as JSON source text (NaN, Infinity and lone surrogates are what Python's json reads)
JSON_VALUES = ['"\\ud800"', '"a\\udfffb"', '{"k\\ud800": 1}', "NaN", "Infinity", "-Infinity", "1e400", "9" * 40, "-1",
               "0", "true", "null", '""', '"a..b"', '"../../etc/passwd"', json.dumps("é漢字🙂"), json.dumps("x" * 5000),
               "[]", "{}", '[NaN]', '"9999-12-31T23:59:59Z"', '"0001-01-01T00:00:00Z"', '"1700-01-01T00:00:00Z"',
               '"0000-01"', '"9999-12"']


def extreme_times() -> st.SearchStrategy[str]:
    """ISO 8601 date-times over all of years 1..9999 and any offset, and the edges of the API's range."""
    any_time = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                            timezones=st.sampled_from([UTC, None])).map(lambda t: t.isoformat())
    edges = st.sampled_from(["1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2199-12-31T23:59:59Z",
                             "2200-01-01T00:00:00Z", "2262-04-11T23:47:16Z", "1677-09-21T00:12:43Z",
                             "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
    return st.one_of(edges, any_time)


@pytest.fixture(scope="module")
def server_log():
    """Every log record of the module's run at WARNING or above (uvicorn's included: no log_config)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def st_env(tmp_path_factory, influxd, server_log):
    env = build_env(tmp_path_factory.mktemp("api_st"), influxd)
    with served(env.app, log_config=None) as port:
        env.base = f"http://127.0.0.1:{port}"
        yield env
    env.client.close()
    env.influx.close()
    env.store.close()


@pytest.fixture(scope="module")
def extreme_date_times():
    previous = formats.STRING_FORMATS.get("date-time")
    schemathesis.openapi.format("date-time", extreme_times())
    yield
    if previous is None:
        formats.unregister_string_format("date-time")
    else:
        formats.STRING_FORMATS["date-time"] = previous
        formats._invalidate_caches()


def test_no_server_errors_and_schema_conformance_for_every_role(st_env, extreme_date_times):
    schema = schemathesis.openapi.from_asgi("/openapi.json", st_env.app)
    failures: list[str] = []
    # not POST /auth/logout: it would end the tokens the rest of the run uses (tests/test_api.py covers it)
    operations = [op for op in (r.ok() for r in schema.get_all_operations()) if not op.path.endswith("/auth/logout")]
    assert len(operations) >= 35
    calls = 0
    deadline = time.monotonic() + PASS_TIME_LIMIT_S
    for op in operations:
        if time.monotonic() > deadline:
            break

        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            nonlocal calls
            for role in ROLES:
                calls += 1
                case.call_and_validate(headers=st_env.as_(role),
                                       checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Exception as exc:            # collect every operation's failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:600]}")
    print(f"schemathesis: {len(operations)} operations x {len(ROLES)} roles, {calls} requests")
    assert calls >= len(operations) * len(ROLES), "the time limit ended the pass early"
    assert failures == [], "\n\n".join(failures)


# ----------------------------------------------------------------------------- hostile values
def _path_values(env) -> dict[str, str]:
    a = env.ids["acme"]
    return {"user_id": "engineer2", "key_id": "000000000000", "customer_id": "acme", "site_id": a["site_id"],
            "device_id": a["device_id"], "alarm_id": str(a["alarm_id"]), "wo_id": str(a["wo_id"]),
            "inspection_id": str(a["inspection_id"]), "month": "2026-10"}


def _bodies(env) -> dict[tuple[str, str], object]:
    """A valid body per operation (the hostile pass replaces one field at a time)."""
    a = env.ids["acme"]
    site, dev = a["site_id"], a["device_id"]
    return {
        ("post", "/api/v1/auth/token"): {"username": "nobody", "password": "x"},
        ("post", "/api/v1/users"): {"id": "fuzz-user", "role": "engineer", "password": "fuzz-password-1", "name": "F",
                                    "customer_id": None, "engineer_group": "g", "email": "f@example.invalid"},
        ("patch", "/api/v1/users/{user_id}"): {"name": "E2", "engineer_group": "west", "email": "e2@example.invalid"},
        ("post", "/api/v1/api-keys"): {"user_id": "engineer2", "name": "k", "ttl_days": 1},
        ("post", "/api/v1/customers"): {"id": "fuzz-c", "name": "F", "manager": "", "email": ""},
        ("patch", "/api/v1/customers/{customer_id}"): {"name": "Acme", "manager": "li.wei", "email": ""},
        ("post", "/api/v1/sites"): {"id": "fuzz-s", "customer_id": "acme", "name": "S", "timezone": "Asia/Shanghai",
                                    "voltage_level_kv": 10, "contract_demand_kw": 500},
        ("patch", "/api/v1/sites/{site_id}"): {"name": "Plant 1", "timezone": "Asia/Shanghai", "pv_capacity_kwp": 100,
                                               "nominal_voltage_v": 400},
        ("post", "/api/v1/devices"): {"id": "fuzz-d", "site_id": site, "kind": "meter", "transport": "modbus",
                                      "host": "127.0.0.1", "port": 502, "unit_id": 1, "poll_interval_s": 60},
        ("patch", "/api/v1/devices/{device_id}"): {"name": "m", "poll_interval_s": 60, "rated_power_kw": 100},
        ("post", "/api/v1/alarms/events"): [{"key": "fuzz/k", "type": "x", "site_id": site, "device_id": dev,
                                             "severity": "minor", "raised_at": "2026-01-01T00:00:00Z",
                                             "cleared_at": None, "evidence": {"v": 1}, "message_en": "m"}],
        ("post", "/api/v1/alarms/{alarm_id}/ack"): {"note": "n"},
        ("post", "/api/v1/alarms/{alarm_id}/shelve"): {"minutes": 5, "reason": "r"},
        ("post", "/api/v1/workorders"): {"site_id": site, "title": "t", "severity": "minor", "device_id": dev,
                                         "alarm_id": None, "description": "d", "assignee": "engineer1"},
        ("post", "/api/v1/workorders/{wo_id}/assign"): {"engineer": "engineer1"},
        ("post", "/api/v1/workorders/{wo_id}/transition"): {"to": "dispatched", "note": "n"},
        ("post", "/api/v1/inspections/plans"): {"site_id": site, "name": "p", "interval_days": 7, "grace_hours": 24,
                                                "checklist": ["doors"], "first_due": "2026-12-01T00:00:00Z"},
        ("post", "/api/v1/inspections/{inspection_id}/result"): {"results": {"doors": {"ok": True, "note": ""}},
                                                                 "note": "n"},
        ("post", "/api/v1/surveys"): {"kind": "monthly_report", "ref": "2026-10", "rating": 4, "comment": "c"},
        ("post", "/api/v1/reports/generate"): {"customer_id": "acme", "month": "2199-01", "langs": ["zh"]},
        ("post", "/api/v1/reports/{customer_id}/{month}/send"): {"lang": "zh"},
    }


def _operations(env) -> list[tuple[str, str, list[dict]]]:
    doc = env.client.get("/openapi.json").json()
    skip = {("post", "/api/v1/auth/logout")}          # would end the token the pass runs with
    return [(m, p, op.get("parameters", [])) for p, ops in doc["paths"].items() for m, op in ops.items()
            if (m, p) not in skip]


def _url(env, path: str, params: dict[str, str], hostile: tuple[str, str] | None = None) -> str:
    values = _path_values(env)
    if hostile and hostile[0] in values and "{" + hostile[0] + "}" in path:
        values = {**values, hostile[0]: hostile[1]}
    for name, v in values.items():
        path = path.replace("{" + name + "}", v if hostile and name == hostile[0] else quote(v, safe=""))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return env.base + path + ("?" + query if query else "")


def _body_variants(body: object) -> list[tuple[str, str]]:
    """(field, JSON text) with one field of ``body`` (or of its first item) replaced by each hostile value."""
    item = body[0] if isinstance(body, list) else body
    out = []
    for field_name in item:
        for v in JSON_VALUES:
            mutated = {**item, field_name: "__HOSTILE__"}
            text = json.dumps([mutated] if isinstance(body, list) else mutated).replace('"__HOSTILE__"', v)
            out.append((field_name, text))
    return out


def test_hostile_values_in_every_parameter_and_body_field(st_env):
    env = st_env
    bodies = _bodies(env)
    server_errors: list[str] = []
    count = 0
    deadline = time.monotonic() + PASS_TIME_LIMIT_S
    with httpx.Client(timeout=30) as h:
        def call(role: str, method: str, url: str, content: str | None = None) -> None:
            nonlocal count
            headers = {**env.as_(role), "Content-Type": "application/json"}
            count += 1
            try:
                r = h.request(method.upper(), url, headers=headers, content=content)
            except httpx.TransportError as exc:      # the server broke the connection: as bad as a 500
                server_errors.append(f"{exc!r} {role} {method.upper()} {url[:200]} {(content or '')[:200]}")
                return
            if r.status_code >= 500:
                server_errors.append(f"{r.status_code} {role} {method.upper()} {url[:200]} {(content or '')[:200]}: "
                                     f"{r.text[:200]}")

        for method, path, params in _operations(env):
            if time.monotonic() > deadline:
                break
            body = bodies.get((method, path))
            text = json.dumps(body) if body is not None else None
            for p in params:
                for i, v in enumerate(URL_VALUES):               # the roles take turns
                    role = HOSTILE_ROLES[i % len(HOSTILE_ROLES)]
                    if p["in"] == "path":
                        call(role, method, _url(env, path, {}, (p["name"], v)), text)
                    else:
                        call(role, method, _url(env, path, {p["name"]: v}), text)
            for i, (_, variant) in enumerate(_body_variants(body) if body is not None else []):
                call(HOSTILE_ROLES[i % len(HOSTILE_ROLES)], method, _url(env, path, {}), variant)
    print(f"hostile values: {count} requests, {len(server_errors)} answered 5xx")
    assert count >= 3500, f"only {count} requests before the time limit"
    assert server_errors == [], "\n".join(server_errors[:40])


# ----------------------------------------------------------------------------- transport
def test_wrong_content_types_broken_and_oversized_bodies(st_env):
    env = st_env
    bodies = _bodies(env)
    big = json.dumps({"x": "y" * 1_100_000})
    variants = [("text/plain", json.dumps), ("application/x-www-form-urlencoded", lambda b: "a=1&b=%ff"),
                ("multipart/form-data; boundary=zz", lambda b: "--zz\r\nContent-Disposition: form-data; "
                                                               "name=\"a\"\r\n\r\n1\r\n--zz--\r\n"),
                ("application/json", lambda b: "{"), ("application/json", lambda b: ""),
                ("application/json", lambda b: b"\xff\xfe{"), ("application/json; charset=utf-16", json.dumps),
                ("application/json", lambda b: big), ("application/xml", lambda b: "<a/>")]
    statuses: dict[int, int] = {}
    server_errors = []
    with httpx.Client(timeout=30) as h:
        for (method, path), body in bodies.items():
            for ctype, make in variants:
                content = make(body)
                r = h.request(method.upper(), _url(env, path, {}),
                              content=content if isinstance(content, bytes) else content.encode(),
                              headers={**env.as_("engineer1"), "Content-Type": ctype})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code >= 500:
                    server_errors.append(f"{r.status_code} {method.upper()} {path} {ctype}: {r.text[:200]}")
    port = int(env.base.rsplit(":", 1)[1])
    chunked = [send_chunked(port, _url(env, path, {})[len(env.base):], 3 * 2**20)[0][:12]
               for (method, path) in bodies if method == "post"]
    print(f"transport: {sum(statuses.values())} requests by status {dict(sorted(statuses.items()))}, "
          f"{len(chunked)} chunked 3 MB bodies")
    assert server_errors == [], "\n".join(server_errors)
    assert statuses.get(413, 0) >= len(bodies)                  # every oversized body refused
    assert all(c.startswith(b"HTTP/1.1 4") for c in chunked), chunked


def test_server_log_holds_no_traceback(st_env, server_log):
    """Runs last: no record with an exception (uvicorn's "Exception in ASGI application" included)."""
    tracebacks = [f"{r.name}: {r.getMessage()[:200]}" for r in server_log
                  if r.exc_info or "Traceback" in r.getMessage() or r.levelno >= logging.ERROR]
    assert tracebacks == [], tracebacks[:20]
