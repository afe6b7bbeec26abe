"""The energyhost command: help everywhere, one-line errors, no tracebacks."""

import os
import subprocess
import sys

import pytest

from core.config import ConfigError
from energyhost.cli import build_parser
from energyhost.settings import AppSettings

SUBCOMMANDS = ["demo", "collect", "collect-mqtt", "simulate", "backfill", "fault", "analyze", "serve", "reports", "status",
               "check-config", "profiles", "commission"]


def run(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "energyhost", *argv], capture_output=True, text=True,
                          timeout=60, **kw)


def test_help_lists_every_subcommand():
    r = run("--help")
    assert r.returncode == 0
    for name in SUBCOMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([name, "--help"])
    assert exit_.value.code == 0


def test_bad_fleet_is_one_clear_line(tmp_path):
    bad = tmp_path / "fleet.toml"
    bad.write_text('[[customer]]\nid = "c1"\n[[customer.site]]\nid = "s1"\n[[customer.site.device]]\n'
                   'id = "d1"\nkind = "meter"\ntransport = "modbus"\nprofile = "meter_acrel_dtsd1352"\n'
                   'host = "127.0.0.1"\nport = 99999\n')
    r = run("check-config", "--fleet", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "fleet.toml" in lines[0] and "device 'd1'" in lines[0] and "'port'" in lines[0]


def test_missing_fleet_file(tmp_path):
    r = run("check-config", "--fleet", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "not found" in r.stderr


def test_example_fleet_checks_out():
    r = run("check-config")
    assert r.returncode == 0, r.stderr
    assert "3 sites" in r.stdout and "28 devices" in r.stdout


def test_status_without_demo_is_clear(tmp_path):
    r = run("status", "--var", str(tmp_path))
    assert r.returncode == 2 and "no running demo" in r.stderr and "Traceback" not in r.stderr


def _env(**kw: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EH_")}, **kw}


def test_settings_tree_is_one_snapshot():
    """Read once: a later change of the environment does not reach a tree already read."""
    env = {"EH_LOG_FORMAT": "json", "EH_FLEET": "f.toml", "EH_STORE_URL": "sqlite:///x.db",
           "EH_INFLUX_DB": "eh", "EH_TOKEN_TTL_S": "600"}
    st = AppSettings.from_env(env)
    env["EH_INFLUX_DB"] = "other"
    assert (st.run.log_format, st.run.fleet, st.run.store_url, st.core.influx_db) == ("json", "f.toml",
                                                                                      "sqlite:///x.db", "eh")
    assert st.api().store_url == "sqlite:///x.db" and st.api().token_ttl_s == 600
    with pytest.raises(ConfigError, match="EH_LOG_FORMAT"):
        AppSettings.from_env({"EH_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="EH_SIM_CONTROL_URL"):
        AppSettings.from_env({"EH_SIM_CONTROL_URL": "127.0.0.1:8765"})


def test_bad_setting_is_one_clear_line():
    r = run("profiles", env=_env(EH_LOG_FORMAT="xml"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "EH_LOG_FORMAT" in r.stderr, r.stderr


def test_fleet_default_comes_from_the_settings(tmp_path):
    r = run("check-config", env=_env(EH_FLEET=str(tmp_path / "nowhere.toml")))
    assert r.returncode == 2 and "nowhere.toml" in r.stderr, r.stderr
