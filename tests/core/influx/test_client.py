"""core.influx.client against a real influxd: /write, /query with bound params, arrays, auth."""

from __future__ import annotations

import numpy as np
import pytest
from support.influx_values import EXTREME_FLOATS

from core.influx import (
    ARRAYS_ACCEPT,
    InfluxClient,
    InfluxQueryError,
    InfluxWriteError,
    StatementRefused,
    check_read_only,
    points_to_lines,
)
from core.model import Point

T0 = 1_700_000_000_000_000_000


# (tag value as given, the same value read back from InfluxDB)
INJECTION_TAGS = [
    "plain",
    "with,comma",
    "with=equals",
    "with space",
    'double"quote',
    "single'quote",
    "a,b=c d",
    "x' OR site =~ /.*/ OR site='y",
    "中文站点",
]


def test_client_refuses_credentials_in_url():
    with pytest.raises(ValueError, match="credentials"):
        InfluxClient("http://u:p@127.0.0.1:1", "db")
    with pytest.raises(ValueError, match="http"):
        InfluxClient("127.0.0.1:8086", "db")


@pytest.mark.integration
def test_injection_tags_round_trip(influxd, influx_db):
    c = InfluxClient(influxd.url, influx_db)
    assert c.ping().startswith("1.")
    pts = [Point("meter", {"site": tag, "device": "d1"}, {"active_power": float(i)}, T0 + i)
           for i, tag in enumerate(INJECTION_TAGS)]
    c.write_lines(points_to_lines(pts))
    series = c.query("SHOW TAG VALUES FROM meter WITH KEY = site")
    assert sorted(v[1] for v in series[0]["values"]) == sorted(INJECTION_TAGS)
    for i, tag in enumerate(INJECTION_TAGS):       # bound parameters: each value matches only itself
        got = c.query('SELECT "active_power" FROM meter WHERE site = $s', params={"s": tag})
        assert got[0]["values"] == [[T0 + i, float(i)]], tag
    assert c.query("SELECT * FROM meter WHERE site = $s", params={"s": "nope"}) == []


@pytest.mark.integration
def test_write_errors_carry_status(influxd, influx_db):
    c = InfluxClient(influxd.url, influx_db)
    with pytest.raises(InfluxWriteError) as e:
        c.write_lines(b"m v= 1")
    assert e.value.status == 400 and not e.value.retryable and "unable to parse" in e.value.message
    with pytest.raises(InfluxWriteError) as e:
        InfluxClient(influxd.url, "no_such_db").write_lines(b"m v=1 1")
    assert e.value.status == 404 and "database not found" in e.value.message
    with pytest.raises(InfluxQueryError, match="error parsing query"):
        c.query("SELECT FROM")
    with pytest.raises(ValueError, match="precision"):
        c.write_lines(b"m v=1 1", precision="xs")
    from energyhost.devstack import free_port
    down = InfluxClient(f"http://127.0.0.1:{free_port()}", "x", timeout=1)
    with pytest.raises(InfluxWriteError) as e:
        down.write_lines(b"m v=1 1")
    assert e.value.status == 0 and e.value.retryable


@pytest.mark.integration
def test_query_arrays_fast_path_nulls_and_groups(influxd, influx_db):
    c = InfluxClient(influxd.url, influx_db)
    n = 2000
    rng = np.random.default_rng(1)
    v = rng.normal(230.0, 3.0, (n, 3))
    pts = [Point("meter", {"site": "s1", "device": f"d{i % 2}"},
                 {"voltage_l1": v[i, 0], "voltage_l2": v[i, 1], "voltage_l3": v[i, 2]}, T0 + i * 10**9)
           for i in range(n)]
    c.write_lines(points_to_lines(pts))
    q = 'SELECT "voltage_l1","voltage_l2","voltage_l3" FROM meter WHERE site = $s AND device = $d'
    # influxd 1.6.7 answers the Accept header of query_arrays with MessagePack (the fast path)
    r = c._query_raw(q, {"s": "s1", "d": "d0"}, "ns", None, ARRAYS_ACCEPT)
    assert r.headers["content-type"] == "application/x-msgpack"
    a = c.query_arrays(q, {"s": "s1", "d": "d0"})
    assert a["time"].dtype == np.int64 and np.array_equal(a["time"], T0 + np.arange(0, n, 2) * 10**9)
    assert np.array_equal(a["voltage_l2"], v[0::2, 1])            # bit-exact float64 round trip
    # nulls (empty GROUP BY time buckets) take the cell-by-cell path and become NaN
    g = c.query_arrays('SELECT mean("voltage_l1") FROM meter WHERE site = $s AND time >= $t0 AND '
                       'time < $t1 GROUP BY time(1s), device',
                       {"s": "s1", "t0": T0, "t1": T0 + 4 * 10**9})
    assert list(g["device"]) == ["d0"] * 4 + ["d1"] * 4
    np.testing.assert_allclose(g["mean"][[0, 2]], v[[0, 2], 0])
    assert np.isnan(g["mean"][[1, 3, 4, 6]]).all()
    np.testing.assert_allclose(g["mean"][[5, 7]], v[[1, 3], 0])
    # the JSON path gives the same numbers
    js = c.query(q, {"s": "s1", "d": "d0"})
    assert np.array_equal(np.array([r[2] for r in js[0]["values"]]), a["voltage_l2"])
    empty = c.query_arrays(q, {"s": "none", "d": "d0"})
    assert empty["time"].size == 0


@pytest.mark.integration
def test_query_arrays_mixed_types(influxd, influx_db):
    c = InfluxClient(influxd.url, influx_db)
    c.write_lines(b'collector_status,device=a status="ok",online=1i,latency_ms=3.5 1000000000000000000\n'
                  b'collector_status,device=a status="timeout",online=0i,latency_ms=1000.0 1000000001000000000')
    a = c.query_arrays('SELECT "status","online","latency_ms" FROM collector_status')
    assert list(a["status"]) == ["ok", "timeout"]
    assert a["online"].tolist() == [1.0, 0.0] and a["latency_ms"].tolist() == [3.5, 1000.0]
    with pytest.raises(InfluxQueryError, match="error parsing query"):
        c.query_arrays("SELECT FROM")


@pytest.mark.integration
def test_auth_basic_header_and_token(make_influxd):
    d = make_influxd(auth=True)
    d.add_user("w", "wpw", database="authdb", privilege="WRITE")
    d.add_user("r", "rpw", database="authdb", privilege="READ")
    InfluxClient(d.url, "authdb", username="w", password="wpw").write_lines(b"m v=1 1")
    with pytest.raises(InfluxWriteError) as e:
        InfluxClient(d.url, "authdb", username="r", password="rpw").write_lines(b"m v=1 2")
    assert e.value.status == 403
    with pytest.raises(InfluxWriteError) as e:
        InfluxClient(d.url, "authdb", token="w:wpw-wrong").write_lines(b"m v=1 2")
    assert e.value.status == 401
    r = InfluxClient(d.url, "authdb", username="r", password="rpw")
    assert r.query("SELECT v FROM m")[0]["values"] == [[1, 1.0]]
    with pytest.raises(InfluxQueryError) as e:
        r.query('SELECT v FROM "no_such_db".."m"')          # a statement the server refuses for r
    assert e.value.status == 403 or "not authorized" in e.value.message


@pytest.mark.integration
def test_float_fields_round_trip_exactly(influxd, influx_db):
    """Every double the fast path writes reads back bit-for-bit (orjson's formatting, e.g. 1e16
    rather than repr's 1e+16, is accepted by InfluxDB's parser)."""
    from core.model import FloatFields
    c = InfluxClient(influxd.url, influx_db)
    fields = {f"ch_{i}": v for i, v in enumerate(EXTREME_FLOATS)}
    c.write_lines(points_to_lines([Point("ff", {"device": "d1"}, FloatFields(fields), T0)]))
    s = c.query("SELECT * FROM ff")[0]
    row = dict(zip(s["columns"], s["values"][0], strict=True))
    assert all(row[k] == v for k, v in fields.items()), row


@pytest.mark.parametrize("q", [
    'SELECT "v" FROM "m" WHERE "site" = $site', "select mean(v) from m group by time(1m)",
    '  SHOW FIELD KEYS FROM "meter"', "SHOW MEASUREMENTS", 'SELECT "v" FROM "intoxicated"'])
def test_read_only_statements_pass(q):
    assert check_read_only(q) == q


@pytest.mark.parametrize("q", [
    'CREATE CONTINUOUS QUERY "cq" ON "eh" BEGIN SELECT count("v") INTO "x" FROM "m" GROUP BY time(1m) END',
    'SELECT * INTO "copy" FROM "m"', 'select * into copy from m', 'SELECT "v" FROM "m"; DROP DATABASE "eh"',
    '-- c\nDROP DATABASE "eh"', 'DROP MEASUREMENT "m"', 'DELETE FROM "m"', "GRANT ALL TO r", "KILL QUERY 1",
    'SELECT * FROM (SELECT "v" INTO "x" FROM "m")', "", "SHOWS"])
def test_other_statements_are_refused(q):
    with pytest.raises(StatementRefused):
        check_read_only(q)


@pytest.mark.integration
def test_reader_path_cannot_make_influxd_write(make_influxd):
    """A READ user may CREATE CONTINUOUS QUERY on InfluxDB 1.x, and the server then writes every
    interval: the client refuses such statements and SELECT INTO before sending, and the influxd
    the project starts runs no continuous-query service at all."""
    d = make_influxd(auth=True)
    d.add_user("r", "rpw", database="eh", privilege="READ")
    InfluxClient(d.url, "eh", username=d.admin_user, password=d.admin_password).write_lines(b"m v=1 1")
    reader = InfluxClient(d.url, "eh", username="r", password="rpw")
    for q in ('CREATE CONTINUOUS QUERY "cq" ON "eh" BEGIN SELECT count("v") INTO "x" FROM "m" '
              'GROUP BY time(1m) END',
              'SELECT * INTO "copy" FROM "m"',
              'SELECT "v" FROM "m"; CREATE CONTINUOUS QUERY "cq2" ON "eh" BEGIN SELECT count("v") INTO "y" '
              'FROM "m" GROUP BY time(1m) END'):
        with pytest.raises(StatementRefused):
            reader.query(q)
        with pytest.raises(StatementRefused):
            reader.query_arrays(q)
    cqs = [v for s in d.query("SHOW CONTINUOUS QUERIES")["results"][0].get("series", []) for v in s.get("values") or []]
    assert cqs == []
    assert d.query("SHOW MEASUREMENTS", db="eh")["results"][0]["series"][0]["values"] == [["m"]]
    stats = {s["name"] for s in d.query("SHOW STATS")["results"][0]["series"]}
    assert "cq" not in stats and "httpd" in stats, stats        # the CQ service is not running
    reader.close()
