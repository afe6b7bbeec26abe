"""Fleet-file defects found by outside users: each once passed check-config or named the wrong key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, parse_fleet

ROOT = Path(__file__).resolve().parents[2]
MODBUS = {"id": "d1", "kind": "meter", "transport": "modbus", "profile": "p", "host": "127.0.0.1", "port": 502}


def _fleet(device: dict | None = None, site_extra: dict | None = None, gateway: dict | None = None) -> dict:
    site = {"id": "s1", "device": [device or MODBUS], **(site_extra or {})}
    if gateway is not None:
        site["gateway"] = [gateway]
    return {"customer": [{"id": "c1", "site": [site]}]}


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_fleet(raw, "fleet.toml")
    return str(err.value)


def test_port_zero_is_refused_for_a_device():
    msg = _error(_fleet({**MODBUS, "port": 0}))
    assert "device 'd1'" in msg and "'port'" in msg and "1..65535" in msg


def test_port_zero_is_refused_for_a_gateway():
    gw = {"id": "gw1", "host": "127.0.0.1", "port": 0}
    dev = {k: v for k, v in MODBUS.items() if k not in ("host", "port")} | {"gateway": "gw1"}
    msg = _error(_fleet(dev, gateway=gw))
    assert "gateway 'gw1'" in msg and "'port'" in msg


def test_misspelled_required_key_is_reported_as_unknown_with_a_hint():
    dev = {k: v for k, v in MODBUS.items() if k != "host"} | {"hots": "127.0.0.1"}
    msg = _error(_fleet(dev))
    assert "'hots'" in msg and "unknown key" in msg and "did you mean 'host'" in msg
    assert "required" not in msg


def test_misspelled_gateway_key_is_reported_before_the_missing_one():
    gw = {"id": "gw1", "hots": "127.0.0.1", "port": 502}
    dev = {k: v for k, v in MODBUS.items() if k not in ("host", "port")} | {"gateway": "gw1"}
    msg = _error(_fleet(dev, gateway=gw))
    assert "gateway 'gw1'" in msg and "'hots'" in msg and "did you mean 'host'" in msg


def test_misspelled_site_key_gets_a_hint():
    msg = _error(_fleet(site_extra={"tarif": "jiangsu_large_industry"}))
    assert "site 's1'" in msg and "'tarif'" in msg and "did you mean 'tariff'" in msg


def _cli(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "energyhost", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


FLEET = """[[customer]]
id = "c1"
[[customer.site]]
id = "s1"
tariff = "{tariff}"
[[customer.site.device]]
id = "d1"
kind = "meter"
transport = "modbus"
profile = "meter_acrel_dtsd1352"
host = "127.0.0.1"
port = 1502
"""


def test_unknown_tariff_fails_check_config_naming_site_and_key(tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text(FLEET.format(tariff="jiangsu_large_industy"))
    r = _cli("check-config", "--fleet", str(f))
    assert r.returncode == 2, r.stdout
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "site 's1'" in line[0] and "'tariff'" in line[0]
    assert "jiangsu_large_industy" in line[0] and "jiangsu_large_industry" in line[0]


def test_known_tariff_passes_check_config(tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text(FLEET.format(tariff="jiangsu_large_industry"))
    r = _cli("check-config", "--fleet", str(f))
    assert r.returncode == 0, r.stderr


def test_connect_notices_a_missing_database(influxd, tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text(FLEET.format(tariff="jiangsu_large_industry"))
    env = {"EH_INFLUX_URL": influxd.url, "EH_INFLUX_DB": "no_such_db_here"}
    r = _cli("check-config", "--fleet", str(f), "--connect", env=env)
    assert r.returncode == 2, r.stdout
    assert "no_such_db_here" in r.stderr and "does not exist" in r.stderr
    assert "CREATE DATABASE" in r.stderr


def test_connect_passes_when_the_database_exists(influxd, influx_db, tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text(FLEET.format(tariff="jiangsu_large_industry"))
    env = {"EH_INFLUX_URL": influxd.url, "EH_INFLUX_DB": influx_db}
    r = _cli("check-config", "--fleet", str(f), "--connect", env=env)
    assert r.returncode == 0, r.stderr
    assert f"database {influx_db}: exists" in r.stdout
