"""InfluxDB over HTTPS, end to end, against a real influxd 1.6 with ``https-enabled``.

Certificates come from :func:`energyhost.devstack.make_loopback_tls` (a throw-away CA and a server
certificate for 127.0.0.1); a second, unrelated CA plays the wrong trust anchor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from core.config import ConfigError, Settings
from core.influx import InfluxClient, InfluxError, InfluxQueryError, InfluxWriteError, Writer
from core.model import Point
from energyhost.devstack import make_loopback_tls
from energyhost.status import collect_status

pytestmark = pytest.mark.integration

DB = "tlsdb"


@pytest.fixture
def tls(tmp_path):
    return make_loopback_tls(tmp_path / "tls")


@pytest.fixture
def wrong_ca(tmp_path):
    return make_loopback_tls(tmp_path / "other-ca").ca_cert


@pytest.fixture
def https_influxd(make_influxd, tls):
    """influxd serving HTTPS only, auth on: admin, a write-only and a read-only user."""
    d = make_influxd(auth=True, tls=(tls.ca_cert, tls.server_cert, tls.server_key))
    d.create_database(DB)                 # the admin path (Influxd.query) runs over HTTPS too
    d.add_user("collector", "w-secret", database=DB, privilege="WRITE")
    d.add_user("reader", "r-secret", database=DB, privilege="READ")
    return d


def _points(n: int, t0: int = 1_700_000_000_000_000_000) -> list[Point]:
    return [Point("meter", {"customer": "c", "site": "s", "device": "d1"},
                  {"active_power": float(i), "voltage_l1": 230.0 + i / 10}, t0 + i * 1_000_000_000)
            for i in range(n)]


def _count(client: InfluxClient) -> int:
    s = client.query("SELECT count(active_power) FROM meter")
    return int(s[0]["values"][0][1]) if s else 0


def test_write_and_query_over_https_with_the_ca(https_influxd, tls):
    d = https_influxd
    assert d.url.startswith("https://127.0.0.1:")
    writer_st = Settings(influx_url=d.url, influx_db=DB, influx_user="collector", influx_password="w-secret",
                         influx_tls_ca=str(tls.ca_cert))
    reader_st = Settings(influx_url=d.url, influx_db=DB, influx_user="reader", influx_password="r-secret",
                         influx_tls_ca=str(tls.ca_cert))
    with InfluxClient.from_settings(writer_st) as w, InfluxClient.from_settings(reader_st) as r:
        assert w.ping().startswith("1.")
        w.write_lines(b"meter,device=d1 active_power=1.5 1000000000\nmeter,device=d1 active_power=2.5 2000000000")
        rows = r.query("SELECT active_power FROM meter WHERE device = $d", {"d": "d1"})
        assert rows[0]["values"] == [[1_000_000_000, 1.5], [2_000_000_000, 2.5]]
        arrays = r.query_arrays("SELECT active_power FROM meter")      # MessagePack over TLS too
        assert arrays["active_power"].tolist() == [1.5, 2.5]


def test_the_demo_settings_path_from_env(https_influxd, tls, tmp_path):
    """EH_INFLUX_TLS_CA through Settings.from_env -> from_settings, as every component builds it."""
    env = {"EH_INFLUX_URL": https_influxd.url, "EH_INFLUX_DB": DB, "EH_INFLUX_USER": "reader",
           "EH_INFLUX_PASSWORD": "r-secret", "EH_INFLUX_TLS_CA": str(tls.ca_cert)}
    st = Settings.from_env(env)
    assert st.influx_tls_ca == str(tls.ca_cert)
    with InfluxClient.from_settings(st) as c:
        assert c.query("SHOW MEASUREMENTS") == []
    with pytest.raises(ConfigError, match="EH_INFLUX_TLS_CA.*not https"):
        Settings.from_env({**env, "EH_INFLUX_URL": https_influxd.url.replace("https://", "http://")})
    with pytest.raises(ConfigError, match="EH_INFLUX_TLS_CA: cannot read"):
        Settings.from_env({**env, "EH_INFLUX_TLS_CA": str(tmp_path / "missing.crt")})


@pytest.mark.parametrize("which", ["no CA", "wrong CA"])
def test_unverified_certificate_is_refused_clearly(https_influxd, wrong_ca, which):
    url = https_influxd.url
    ca = None if which == "no CA" else wrong_ca
    c = InfluxClient(url, DB, username="collector", password="w-secret", tls_ca=ca, timeout=5)
    with pytest.raises(InfluxWriteError) as e:
        c.write_lines(b"meter v=1 1")
    assert e.value.status == 0 and e.value.retryable
    msg = str(e.value)
    assert f"TLS certificate of {url} not verified" in msg
    assert ("unable to get local issuer certificate" in msg or "self-signed" in msg
            or "self signed" in msg), msg
    assert (str(wrong_ca) in msg) if ca else ("default trust store" in msg)
    with pytest.raises(InfluxQueryError, match="not verified"):
        c.query("SHOW DATABASES")
    with pytest.raises(InfluxError, match="unreachable: TLS certificate"):
        c.ping()


def test_writer_spools_while_the_certificate_does_not_verify_nothing_lost(https_influxd, tls, wrong_ca,
                                                                          tmp_path):
    spool = tmp_path / "spool"
    points = _points(300)
    bad = InfluxClient(https_influxd.url, DB, username="collector", password="w-secret", tls_ca=wrong_ca,
                       timeout=5)
    w = Writer(bad, spool, batch_size=100, flush_interval_s=0.05, retry_max_s=0.5)
    durable = []
    w.submit(points, on_durable=lambda: durable.append(True))
    assert w.flush(15)
    s = w.stats()
    assert durable == [True]                          # safe to acknowledge upstream: it is on disk
    assert (s["written"], s["rejected"], s["dropped"], s["spooled"]) == (0, 0, 0, 300), s
    assert s["write_errors"] >= 1
    assert not (spool / "deadletter.jsonl").exists()  # nothing quarantined as if the data were bad
    w.close()
    # the operator fixes EH_INFLUX_TLS_CA; the next process replays the spool
    good = InfluxClient(https_influxd.url, DB, username="collector", password="w-secret",
                        tls_ca=tls.ca_cert, timeout=5)
    w2 = Writer(good, spool, batch_size=100, flush_interval_s=0.05, retry_max_s=0.5)
    try:
        assert w2.drain(30), w2.stats()
        s2 = w2.stats()
        assert s2["recovered"] == 300 and s2["written"] == 300 and s2["pending"] == 0, s2
    finally:
        w2.close()
    reader = InfluxClient(https_influxd.url, DB, username="reader", password="r-secret", tls_ca=tls.ca_cert)
    assert _count(reader) == 300


def test_plain_http_client_against_https_server(https_influxd, tmp_path):
    plain = https_influxd.url.replace("https://", "http://")
    c = InfluxClient(plain, DB, username="collector", password="w-secret", timeout=5)
    with pytest.raises(InfluxWriteError) as e:
        c.write_lines(b"meter v=1 1")
    # influxd (Go net/http) answers 400 "Client sent an HTTP request to an HTTPS server."; that is
    # not a verdict on our lines, so it must not be a 400 (the Writer would quarantine them)
    assert e.value.status == 0 and e.value.retryable
    assert f"{plain} is an HTTPS server" in str(e.value) and "EH_INFLUX_TLS_CA" in str(e.value)
    with pytest.raises(InfluxQueryError, match="is an HTTPS server"):
        c.query("SHOW DATABASES")
    with pytest.raises(InfluxError, match="is an HTTPS server"):
        c.ping()
    w = Writer(c, tmp_path / "spool", flush_interval_s=0.05, retry_max_s=0.5)
    try:
        w.submit(_points(50))
        assert w.flush(15)
        s = w.stats()
        assert (s["spooled"], s["rejected"], s["quarantined_400"]) == (50, 0, 0), s
        assert not (tmp_path / "spool" / "deadletter.jsonl").exists()
    finally:
        w.close()


def test_https_client_against_plain_http_server(influxd, tls):
    url = influxd.url.replace("http://", "https://")
    c = InfluxClient(url, "x", tls_ca=tls.ca_cert, timeout=5)
    with pytest.raises(InfluxWriteError) as e:
        c.write_lines(b"m v=1 1")
    assert e.value.status == 0 and f"TLS handshake with {url} failed" in str(e.value)


def test_client_refuses_a_ca_it_would_not_use(tls, tmp_path):
    with pytest.raises(ValueError, match="plain http://"):
        InfluxClient("http://127.0.0.1:8086", "db", tls_ca=tls.ca_cert)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="junk.pem.*cannot be loaded"):
        InfluxClient("https://127.0.0.1:8086", "db", tls_ca=junk)


def test_status_and_check_config_over_https(https_influxd, tls, wrong_ca, tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    state = {"influx_url": https_influxd.url, "influx_ca": str(tls.ca_cert), "pids": {"influxd": https_influxd.pid},
             "var": str(var)}
    (var / "state.json").write_text(json.dumps(state))
    st = collect_status(var)["influxd"]
    assert st["ok"] and "TLS verified" in st["detail"], st
    (var / "state.json").write_text(json.dumps({**state, "influx_ca": str(wrong_ca)}))
    st = collect_status(var)["influxd"]
    assert not st["ok"] and "not verified" in st["detail"], st

    env = {"PATH": "/usr/bin:/bin", "EH_INFLUX_URL": https_influxd.url, "EH_INFLUX_DB": DB,
           "EH_INFLUX_USER": "reader", "EH_INFLUX_PASSWORD": "r-secret"}

    def check(**extra):
        return subprocess.run([sys.executable, "-m", "energyhost", "check-config", "--connect"],
                              env={**env, **extra}, capture_output=True, text=True, timeout=60)

    ok = check(EH_INFLUX_TLS_CA=str(tls.ca_cert))
    assert ok.returncode == 0, ok.stderr
    assert f"HTTPS, CA {tls.ca_cert}" in ok.stdout and "reachable, version 1." in ok.stdout
    bad = check(EH_INFLUX_TLS_CA=str(wrong_ca))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert f"TLS certificate of {https_influxd.url} not verified" in bad.stderr
    mixed = check(EH_INFLUX_TLS_CA=str(tls.ca_cert), EH_INFLUX_URL=https_influxd.url.replace("https", "http"))
    assert mixed.returncode == 2 and "not https://" in mixed.stderr


def test_influxd_restart_keeps_https(https_influxd, tls):
    """stop/start reuses port, dirs and certificates; the readiness check runs over HTTPS."""
    d = https_influxd
    port = d.port
    d.stop()
    t0 = time.monotonic()
    d.start()
    assert d.port == port and time.monotonic() - t0 < 30
    with InfluxClient(d.url, DB, username="reader", password="r-secret", tls_ca=tls.ca_cert) as c:
        assert c.ping()
