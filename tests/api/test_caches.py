"""The API's response caches (the alarm list, api/alarm_cache.py; telemetry results) and the body-size limit.

Alarm list: pre-serialised bodies equal the pydantic response model's; the cache is invalidated by
every alarm write (new alarm, ack, shelve, unshelve, clear) made through the API, through another
Store on the same database (another process or instance; SQLite and PostgreSQL) and by a shelve
running out without any write; it never answers one tenant, or a customer user, with another's
entry; filters and pagination answer what the uncached list answers.  Telemetry: concurrent
identical queries share one InfluxDB query, a busy view is refreshed ahead, errors reach every waiter.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from support.api_env import CUSTOMERS, NS, build_env, iso_ns
from support.workflow import CHEAP, ev

from api.alarm_cache import ALARM_FIELDS, AlarmListCache, encode_alarms
from api.main import create_app
from api.models import AlarmOut, alarm_out
from api.routes.telemetry import TtlCache
from api.settings import ApiSettings
from core.model import AlarmEvent
from workflow import Store

_REFERENCE = TypeAdapter(list[AlarmOut])


def reference_body(rows: list[dict], staff: bool) -> bytes:
    """What the list answered before the cache: every row through the pydantic response model."""
    return _REFERENCE.dump_json([AlarmOut.model_validate(alarm_out(a, staff)) for a in rows])


@pytest.fixture
def env(tmp_path, influxd):
    e = build_env(tmp_path, influxd)
    yield e
    e.client.close()


def alarms(env, user: str, **params) -> list[dict]:
    r = env.client.get("/api/v1/alarms", headers=env.as_(user), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def event(site: str, device: str, name: str, t_ns: int, *, cleared_ns: int | None = None,
          evidence: dict | None = None) -> AlarmEvent:
    return AlarmEvent(f"{site}/{device}/{name}", name, site, device, "minor", t_ns, cleared_ns, "告警", "alarm",
                      evidence if evidence is not None else {"v": 1.0})


# ----------------------------------------------------------------------------- encoding
def test_encoded_list_equals_the_response_model(env):
    """Same JSON as the pydantic path for staff and customer users, NaN evidence as null, non-ASCII kept."""
    t = env.clock()
    env.store.upsert_alarm_events([
        event("acme-plant1", "acme-plant1-t1-meter", "odd_evidence", t - 5 * NS,
              evidence={"nan": math.nan, "inf": math.inf, "中文": "值", "nested": {"a": [1, 2.5, None]},
                        "big": 1e300, "tiny": 5e-324}),
        event("acme-plant1", "acme-plant1-t1-meter", "plain", t - 4 * NS, evidence={"temp_c": 131.25}),
        event("acme-plant1", "acme-plant1-t1-meter", "cleared", t - 3 * NS, cleared_ns=t - 2 * NS,
              evidence={}),
    ])
    a = env.store.alarms(site_id="acme-plant1", limit=1)[0]
    env.store.ack_alarm(a["id"], "engineer1", "checked on site")
    b = env.store.alarms(site_id="acme-plant1", open_only=True, limit=3)[1]
    env.store.shelve_alarm(b["id"], "engineer1", t + 3600 * NS, "maintenance")
    for staff in (True, False):
        rows = env.store.alarms(limit=1000)
        raw = env.store.alarms(limit=1000, raw_evidence=True)
        assert isinstance(raw[0]["evidence"], str)
        ours, ref = encode_alarms(raw, staff), reference_body(rows, staff)
        assert json.loads(ours) == json.loads(ref)
        assert [list(x) for x in json.loads(ours)] == [list(x) for x in json.loads(ref)]   # field order
        by_db = env.store.alarms_json(fields=ALARM_FIELDS, staff=staff, limit=1000)       # built by the database
        assert json.loads(by_db) == json.loads(ref)
        assert [list(x) for x in json.loads(by_db)] == [list(x) for x in json.loads(ref)]
    got = {x["type"]: x for x in alarms(env, "acme-user", site_id="acme-plant1")}
    assert got["odd_evidence"]["evidence"]["nan"] is None and got["odd_evidence"]["evidence"]["中文"] == "值"
    assert got["odd_evidence"]["evidence"]["nested"] == {"a": [1, 2.5, None]}
    assert all(x["ack_note"] == "" and x["acked_by"] is None and x["shelve_reason"] == "" for x in got.values())
    staff = {x["type"]: x for x in alarms(env, "engineer1", site_id="acme-plant1")}
    assert any(x["ack_note"] == "checked on site" for x in staff.values())
    assert any(x["shelve_reason"] == "maintenance" and x["state"] == "shelved" for x in staff.values())


# ----------------------------------------------------------------------------- alarm-list cache
def test_cache_hits_and_every_write_through_the_api_invalidates(env):
    c, h = env.client, env.as_("engineer1")
    cache: AlarmListCache = env.app.state.alarm_list_cache
    first = alarms(env, "engineer1")
    hits = cache.hits
    assert alarms(env, "engineer1") == first and cache.hits == hits + 1          # served from the cache
    t = env.clock()
    r = c.post("/api/v1/alarms/events", headers=h, json=[{
        "key": "acme-office/acme-office-meter/new_one", "type": "new_one", "site_id": "acme-office",
        "device_id": "acme-office-meter", "severity": "major", "raised_at": iso_ns(t - 30 * NS)}])
    assert r.json()["raised"] == 1
    now = alarms(env, "engineer1")
    new = next(a for a in now if a["type"] == "new_one")
    assert len(now) == len(first) + 1 and new["state"] == "active-unacked"
    assert c.post(f"/api/v1/alarms/{new['id']}/shelve", headers=h,
                  json={"minutes": 30, "reason": "sensor work"}).status_code == 200
    assert next(a for a in alarms(env, "engineer1") if a["id"] == new["id"])["state"] == "shelved"
    assert [a["id"] for a in alarms(env, "engineer1", state="shelved")] == [new["id"]]
    assert c.post(f"/api/v1/alarms/{new['id']}/unshelve", headers=h).status_code == 200
    assert alarms(env, "engineer1", state="shelved") == []
    assert c.post(f"/api/v1/alarms/{new['id']}/ack", headers=h, json={"note": "seen"}).status_code == 200
    a = next(a for a in alarms(env, "engineer1") if a["id"] == new["id"])
    assert a["state"] == "active-acked" and a["ack_note"] == "seen" and a["acked_by"] == "engineer1"
    r = c.post("/api/v1/alarms/events", headers=h, json=[{
        "key": "acme-office/acme-office-meter/new_one", "type": "new_one", "site_id": "acme-office",
        "device_id": "acme-office-meter", "severity": "major", "raised_at": iso_ns(t - 30 * NS),
        "cleared_at": iso_ns(t - 10 * NS)}])
    assert r.json()["cleared"] == 1
    a = next(a for a in alarms(env, "engineer1") if a["id"] == new["id"])
    assert a["state"] == "cleared" and a["closed_at"] is not None


def test_shelve_running_out_without_a_write(env):
    """The derived state changes with time alone: the entry ends at the next shelve expiry."""
    h = env.as_("engineer1")
    aid = env.ids["acme"]["alarm_id"]
    assert env.client.post(f"/api/v1/alarms/{aid}/shelve", headers=h,
                           json={"minutes": 60, "reason": "fan swap"}).status_code == 200
    version = env.store.alarms_version()
    assert next(a for a in alarms(env, "acme-user") if a["id"] == aid)["state"] == "shelved"
    assert next(a for a in alarms(env, "acme-user") if a["id"] == aid)["state"] == "shelved"   # cached
    saved = env.clock.t
    try:
        env.clock.advance(3600 + 1)
        assert next(a for a in alarms(env, "acme-user") if a["id"] == aid)["state"] == "active-unacked"
        assert alarms(env, "acme-user", state="shelved") == []
        env.clock.t = saved + 60 * NS                  # a clock stepped back: shelved again, not a stale entry
        assert next(a for a in alarms(env, "acme-user") if a["id"] == aid)["state"] == "shelved"
        assert [a["id"] for a in alarms(env, "acme-user", state="shelved")] == [aid]
    finally:
        env.clock.t = saved
    assert env.store.alarms_version() == version       # no write happened meanwhile


def test_no_entry_crosses_tenants_or_roles(env):
    """Same sites, other role (customer manager vs customer user), and other customers: separate entries."""
    aid = env.ids["acme"]["alarm_id"]
    assert env.client.post(f"/api/v1/alarms/{aid}/ack", headers=env.as_("engineer1"),
                           json={"note": "internal: contractor late"}).status_code == 200
    manager = CUSTOMERS["acme"]["manager"]              # staff role, exactly the acme sites
    for _ in range(2):                                  # fill, then from the cache
        staff_view = alarms(env, manager)
        assert next(a for a in staff_view if a["id"] == aid)["ack_note"] == "internal: contractor late"
        cust_view = alarms(env, "acme-user")
        mine = next(a for a in cust_view if a["id"] == aid)
        assert mine["ack_note"] == "" and mine["acked_by"] is None
        assert "contractor" not in json.dumps(cust_view)
        assert {a["customer_id"] for a in cust_view} == {"acme"}
        other = alarms(env, "huadong-user")
        assert other and {a["customer_id"] for a in other} == {"huadong"}
        assert aid not in {a["id"] for a in other}
    # a foreign filter still answers 404 (the checks run before any cache lookup)
    for params in ({"site_id": "acme-plant1"}, {"device_id": CUSTOMERS["acme"]["meter"]}):
        r = env.client.get("/api/v1/alarms", headers=env.as_("huadong-user"), params=params)
        assert r.status_code == 404
    r = env.client.get("/api/v1/alarms", headers=env.as_("acme-user"))
    assert r.status_code == 200
    assert env.client.get("/api/v1/alarms").status_code == 401


def test_filters_and_pages_match_the_uncached_list(env):
    t = env.clock()
    env.store.upsert_alarm_events([
        AlarmEvent(f"acme-office/acme-office-meter/k{i}", f"k{i}", "acme-office", "acme-office-meter",
                   ("critical", "major", "minor", "warning")[i % 4], t - (600 - i) * NS,
                   t - (300 - i) * NS if i % 3 == 0 else None, "告警", "alarm", {"i": i})
        for i in range(40)])
    uncached = TestClient(create_app(ApiSettings(escalate_every_s=0, rate_limit=0, alarm_cache_mb=0),
                                     store=env.store, influx=env.influx, clock=env.clock, background=False))
    queries = [{}, {"limit": 7}, {"limit": 7, "offset": 7}, {"limit": 7, "offset": 35}, {"severity": "minor"},
               {"state": "rtn-unacked"}, {"open_only": True}, {"site_id": "acme-office", "limit": 1000},
               {"device_id": "acme-office-meter", "severity": "critical"},
               {"since": iso_ns(t - 200 * NS)}, {"until": iso_ns(t - 590 * NS)}]
    for user in ("engineer1", "acme-user", "huadong-user"):
        for q in queries:
            want = uncached.get("/api/v1/alarms", headers=env.as_(user), params=q)
            for _ in range(2):
                got = env.client.get("/api/v1/alarms", headers=env.as_(user), params=q)
                assert got.status_code == want.status_code and got.json() == want.json(), (user, q)
    pages = [a["id"] for o in range(0, 42, 6) for a in alarms(env, "engineer1", site_id="acme-office",
                                                               limit=6, offset=o)]
    assert pages == [a["id"] for a in alarms(env, "engineer1", site_id="acme-office", limit=1000)]
    uncached.close()


def test_a_write_by_another_process_invalidates(env):
    """Another Store on the same SQLite file (an analytics process) writes: the API sees it at once."""
    before = alarms(env, "acme-user")
    other = Store(env.store.db.url, clock=env.clock, password_cost=CHEAP)
    try:
        other.upsert_alarm_events([event("acme-plant1", "acme-plant1-t1-meter", "from_elsewhere",
                                         env.clock() - NS)])
        after = alarms(env, "acme-user")
        assert len(after) == len(before) + 1 and after[0]["type"] == "from_elsewhere"
        other.ack_alarm(after[0]["id"], "engineer1", "by the other instance")
        assert alarms(env, "acme-user")[0]["state"] == "active-acked"
    finally:
        other.close()


def test_two_instances_on_postgresql(tmp_path, influxd, postgres):
    """Two API instances on one PostgreSQL database: a write through one is seen by the other's cache."""
    e = build_env(tmp_path, influxd, store_url=postgres.url(postgres.create_database()))
    second = Store(e.store.db.url, clock=e.clock, password_cost=CHEAP)
    app2 = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=second, influx=e.influx, clock=e.clock,
                      background=False)
    c2 = TestClient(app2)
    try:
        h = e.as_("engineer1")
        listed = c2.get("/api/v1/alarms", headers=h).json()
        assert c2.get("/api/v1/alarms", headers=h).json() == listed and app2.state.alarm_list_cache.hits == 1
        aid = e.ids["huadong"]["alarm_id"]
        assert e.client.post(f"/api/v1/alarms/{aid}/ack", headers=h, json={"note": "pg"}).status_code == 200
        a = next(x for x in c2.get("/api/v1/alarms", headers=h).json() if x["id"] == aid)
        assert a["state"] == "active-acked" and a["ack_note"] == "pg"
        r = e.client.post("/api/v1/alarms/events", headers=h, json=[{
            "key": "huadong-coldstore/huadong-coldstore-meter/pg_new", "type": "pg_new",
            "site_id": "huadong-coldstore", "severity": "warning", "raised_at": iso_ns(e.clock() - NS)}])
        assert r.json()["raised"] == 1
        assert c2.get("/api/v1/alarms", headers=h).json()[0]["type"] == "pg_new"
    finally:
        c2.close()
        second.close()
        e.client.close()


def test_change_counter_moves_with_every_alarm_write(store, clock):
    """Store level, SQLite and PostgreSQL: writes bump the counter (at commit), reads do not."""
    v0 = store.alarms_version()
    store.upsert_alarm_events([ev()])
    v1 = store.alarms_version()
    assert v1 > v0
    store.alarms()
    store.alarm(store.alarms()[0]["id"])
    assert store.alarms_version() == v1
    store.upsert_alarm_events([ev()])                   # unchanged: nothing written
    assert store.alarms_version() == v1
    aid = store.alarms()[0]["id"]
    store.shelve_alarm(aid, "eng1", clock() + 600 * NS, "work")
    v2 = store.alarms_version()
    assert v2 > v1 and store.next_shelve_expiry_ns(clock()) == clock() + 600 * NS
    assert store.next_shelve_expiry_ns(clock() + 600 * NS) is None
    store.unshelve_alarm(aid, "eng1")
    v3 = store.alarms_version()
    store.ack_alarm(aid, "eng1", "ok")
    v4 = store.alarms_version()
    store.upsert_alarm_events([ev(cleared=clock())])
    assert v2 < v3 < v4 < store.alarms_version()


def test_cache_is_bounded_by_bytes():
    cache = AlarmListCache(max_bytes=1000)
    for i in range(10):
        cache.put(("k", i), 1, 0, None, b"x" * 200)
    assert len(cache) == 5 and cache.get(("k", 9), 1, 0) and cache.get(("k", 0), 1, 0) is None
    cache.put(("big",), 1, 0, None, b"x" * 300)           # over a quarter of the budget: not kept
    assert cache.get(("big",), 1, 0) is None
    assert cache.get(("k", 9), 2, 0) is None               # another version
    cache.put(("s",), 1, 100, 200, b"s")
    assert cache.get(("s",), 1, 150) == b"s"
    assert cache.get(("s",), 1, 200) is None and cache.get(("s",), 1, 99) is None
    assert not AlarmListCache(0).enabled


# ----------------------------------------------------------------------------- telemetry cache
def test_telemetry_cache_is_single_flight_and_refreshes_ahead():
    now = [0.0]
    cache = TtlCache(ttl_s=5, clock=lambda: now[0])
    calls: list[int] = []
    gate = threading.Event()

    def slow() -> int:
        gate.wait(5)
        calls.append(1)
        return len(calls)

    async def scenario() -> None:
        waiters = [asyncio.create_task(cache.get_or_compute_async(("q",), slow)) for _ in range(20)]
        await asyncio.sleep(0.05)
        waiters[0].cancel()                                # one client goes away: the others still get it
        gate.set()
        results = await asyncio.gather(*waiters[1:])
        assert results == [1] * 19 and len(calls) == 1
        now[0] = 3.0                                       # young entry: served, no query
        assert await cache.get_or_compute_async(("q",), slow) == 1 and len(calls) == 1
        now[0] = 4.5                                       # last fifth of its life: served, refreshed behind
        assert await cache.get_or_compute_async(("q",), slow) == 1
        for _ in range(100):
            if len(calls) == 2 and not cache._running:
                break
            await asyncio.sleep(0.01)
        assert len(calls) == 2
        now[0] = 8.0                                       # 3.5 s after the refresh began: fresh, young
        assert await cache.get_or_compute_async(("q",), slow) == 2 and len(calls) == 2 and not cache._running

        def broken() -> int:
            raise RuntimeError("influx down")

        outcomes = await asyncio.gather(*(cache.get_or_compute_async(("bad",), broken) for _ in range(5)),
                                        return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        assert await cache.get_or_compute_async(("bad",), lambda: "recovered") == "recovered"

    asyncio.run(scenario())


def test_telemetry_series_served_from_the_cache_equals_a_fresh_query(env):
    """The encoded series body is what the response model describes, on a miss and on a hit."""
    from api.models import SeriesOut

    dev = CUSTOMERS["acme"]["meter"]
    h = env.as_("acme-user")
    params = {"start": iso_ns(env.t0 - 3600 * NS), "end": iso_ns(env.t0), "interval_s": 300,
              "channels": "active_power,voltage_l1,frequency"}
    first = env.client.get(f"/api/v1/telemetry/{dev}/series", headers=h, params=params)
    second = env.client.get(f"/api/v1/telemetry/{dev}/series", headers=h, params=params)
    assert first.status_code == 200 and first.content == second.content
    s = SeriesOut.model_validate_json(first.content)
    assert len(s.times) == 12 and s.values["frequency"] == [None] * 12
    assert s.times[0].timestamp() == (env.t0 - 3600 * NS) / NS and s.times[0].tzinfo is not None
    assert all(v is not None and v > 0 for v in s.values["active_power"])
    assert json.loads(first.content)["start"].endswith("Z")
    foreign = env.client.get(f"/api/v1/telemetry/{dev}/series", headers=env.as_("huadong-user"), params=params)
    assert foreign.status_code == 404                      # the tenancy check runs before the cache


def test_body_limit_is_pure_asgi(env):
    """413 for a body over 1 MB before any route or authentication runs (FastAPI's max_body_size:
    a declared Content-Length at once, a chunked body as the bytes arrive, tests/security/test_api_hardening.py)."""
    from api.main import MAX_BODY_BYTES

    assert env.app.max_body_size == MAX_BODY_BYTES == 1_000_000
    r = env.client.post("/api/v1/auth/token", content=b'{"username": "' + b"x" * 1_000_001 + b'"}',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "Content Too Large" in r.text
    assert env.client.post("/api/v1/auth/token", json={"username": "x", "password": "y" * 12}).status_code == 401


# ----------------------------------------------------------------------------- principal cache
def test_principal_cache_honours_logout_deactivation_scope_and_expiry(env):
    """Writes through this app take effect on the next request; others' writes within 1 s (or at once
    when the app clock moves on, e.g. past a token's expiry)."""
    c = env.client
    r = c.post("/api/v1/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert c.get("/api/v1/auth/me", headers=h).status_code == 200
    assert c.patch("/api/v1/users/engineer2", headers=env.as_("admin"), json={"active": False}).status_code == 200
    assert c.get("/api/v1/auth/me", headers=h).status_code == 401         # deactivated: at once
    assert c.patch("/api/v1/users/engineer2", headers=env.as_("admin"), json={"active": True}).status_code == 200
    assert c.get("/api/v1/auth/me", headers=h).status_code == 401         # its sessions were ended
    r = c.post("/api/v1/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    # a new site of acme is visible to the acme user at once (the POST empties the cache)
    assert c.get("/api/v1/sites/acme-annex", headers=env.as_("acme-user")).status_code == 404
    r = c.post("/api/v1/sites", headers=env.as_("admin"), json={"id": "acme-annex", "customer_id": "acme",
                                                                "name": "Annex"})
    assert r.status_code == 201
    assert c.get("/api/v1/sites/acme-annex", headers=env.as_("acme-user")).status_code == 200
    # revoked by another process (the store directly): in force within the cache's second ...
    token = h["Authorization"].split()[1]
    assert c.get("/api/v1/auth/me", headers=h).status_code == 200
    env.store.revoke_token(token)
    deadline = time.monotonic() + 1.5
    while c.get("/api/v1/auth/me", headers=h).status_code == 200:
        assert time.monotonic() < deadline, "revocation not in force after 1.5 s"
        time.sleep(0.05)
    # ... and at once when the app clock moves (a token's expiry is measured on it)
    r = c.post("/api/v1/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
    h2 = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert c.get("/api/v1/auth/me", headers=h2).status_code == 200
    env.store.revoke_token(h2["Authorization"].split()[1])
    env.clock.advance(1)
    try:
        assert c.get("/api/v1/auth/me", headers=h2).status_code == 401
    finally:
        env.clock.advance(-1)


def test_principal_cache_off(tmp_path, influxd):
    e = build_env(tmp_path, influxd)
    try:
        app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0, auth_cache_s=0), store=e.store,
                         influx=e.influx, clock=e.clock, background=False)
        with TestClient(app) as c:
            r = c.post("/api/v1/auth/token", json={"username": "engineer2", "password": "engineer2-password"})
            token = r.json()["access_token"]
            h = {"Authorization": f"Bearer {token}"}
            assert c.get("/api/v1/auth/me", headers=h).status_code == 200
            e.store.revoke_token(token)
            assert c.get("/api/v1/auth/me", headers=h).status_code == 401
        with pytest.raises(Exception, match="EH_AUTH_CACHE_S"):
            ApiSettings.from_env({"EH_AUTH_CACHE_S": "5"})
    finally:
        e.client.close()
