"""Telemetry through HTTP (api/routes/telemetry.py): InfluxQL injection and abusive queries refused,
latest values, downsampled series, TOU energy, site energy, auto interval and the result cache.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import numpy as np
import pytest
from support.api_env import Env, build_env, count_points, power_w

from analytics.tariffs import energy_cost, load_tariff
from core.influx import points_to_lines
from core.model import Point
from core.units import NS

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
