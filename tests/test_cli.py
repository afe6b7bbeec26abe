"""The energyhost command: help everywhere, one-line errors, no tracebacks."""

import subprocess
import sys

import pytest

from energyhost.cli import build_parser

SUBCOMMANDS = ["demo", "collect", "simulate", "backfill", "fault", "analyze", "serve", "reports", "status",
               "check-config", "profiles"]


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
    assert "3 sites" in r.stdout and "27 devices" in r.stdout


def test_status_without_demo_is_clear(tmp_path):
    r = run("status", "--var", str(tmp_path))
    assert r.returncode == 2 and "no running demo" in r.stderr and "Traceback" not in r.stderr
