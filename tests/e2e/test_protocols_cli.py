"""`energyhost simulate` serves DL/T 645 meters and OCPP chargers, `energyhost collect` reads them: real
processes on loopback, a real influxd, wss with Basic auth for OCPP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.waiting import wait_for

from core.influx import InfluxClient
from energyhost.devstack import free_port, make_loopback_tls

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

FLEET = """
[[customer]]
id = "cust"
  [[customer.site]]
  id = "site1"
  tariff = "jiangsu_large_industry"
  pv_capacity_kwp = 100
    [[customer.site.device]]
    id = "m645"
    kind = "meter"
    profile = "meter_dlt645_2007"
    transport = "dlt645"
    address = "000000004711"
    host = "127.0.0.1"
    port = {port}
    poll_interval_s = 1
    ct_ratio = 40
    [[customer.site.device]]
    id = "ev-ocpp"
    kind = "ev_charger"
    transport = "ocpp"
    charge_point_id = "CP-9"
    password_file = "cp9.secret"
    rated_power_kw = 22
    poll_interval_s = 1
"""


def test_collect_and_simulate_run_dlt645_and_ocpp_devices(influxd, influx_db, tmp_path):
    (tmp_path / "sites.toml").write_text(FLEET.replace("{port}", str(free_port())))
    (tmp_path / "cp9.secret").write_text("pw-of-cp9\n")
    tls = make_loopback_tls(tmp_path / "tls")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EH_INFLUX_URL": influxd.url, "EH_INFLUX_DB": influx_db,
           "EH_SPOOL_DIR": str(tmp_path / "spool"), "EH_OCPP_PORT": str(free_port()),
           "EH_OCPP_TLS_CERT": str(tls.server_cert), "EH_OCPP_TLS_KEY": str(tls.server_key),
           "EH_OCPP_TLS_CA": str(tls.ca_cert)}
    procs = []
    try:
        metrics = free_port()
        for cmd in (["collect", "--no-mqtt", "--metrics-port", str(metrics)], ["simulate", "--no-mqtt"]):
            procs.append(subprocess.Popen([sys.executable, "-m", "energyhost", *cmd, "--fleet",
                                           str(tmp_path / "sites.toml")], env=env, cwd=tmp_path,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        client = InfluxClient(influxd.url, influx_db)

        def stored():
            meter = client.query('SELECT "energy_import", "meter_clock_offset" FROM "meter" WHERE "device" = \'m645\'')
            ocpp = client.query('SELECT "online" FROM "collector_status" WHERE "device" = \'ev-ocpp\' '
                                'AND "source" = \'ocpp\'')
            charger = client.query('SELECT "ocpp_status" FROM "ev_charger" WHERE "device" = \'ev-ocpp\'')
            return meter and ocpp and charger and (meter, ocpp, charger)

        got = wait_for(stored, timeout=90, every=1.0)
        assert got, "nothing from the DL/T 645 meter or the OCPP charger reached InfluxDB"
        meter, ocpp, charger = got
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read().decode()
        assert 'energyhost_dlt645_polls_total{status="ok"}' in text and "energyhost_ocpp_connected 1.0" in text
        assert meter[0]["values"][-1][1] > 0 and abs(meter[0]["values"][-1][2]) <= 2
        assert all(r[1] in (0, 1) for r in ocpp[0]["values"])
        client.close()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=30)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "1 dlt645 meters" in outs[0] and "OCPP central system on wss://" in outs[0], outs[0][-2000:]
    assert "1 DL/T 645 lines" in outs[1] and "1 OCPP charge points" in outs[1], outs[1][-2000:]


def test_collect_without_a_chargers_password_stops_with_one_line_naming_device_and_key(tmp_path):
    (tmp_path / "sites.toml").write_text(FLEET.replace("{port}", "1"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EH_SPOOL_DIR": str(tmp_path / "spool"),
           "EH_INFLUX_URL": "http://127.0.0.1:1"}
    r = subprocess.run([sys.executable, "-m", "energyhost", "collect", "--no-mqtt", "--fleet",
                        str(tmp_path / "sites.toml")], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "energyhost: error: device 'ev-ocpp': key 'password_file': cannot read 'cp9.secret': No such file or directory"]
