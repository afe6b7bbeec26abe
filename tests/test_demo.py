"""`energyhost demo` end to end: every component its own process, data flowing, clean stop on SIGINT."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from base64 import b64encode

import pytest

pytestmark = pytest.mark.integration


def _query(state: dict, password: str, q: str, params: dict) -> list:
    data = urllib.parse.urlencode({"db": state["influx_db"], "q": q, "params": json.dumps(params)}).encode()
    req = urllib.request.Request(state["influx_url"] + "/query", data=data)
    req.add_header("Authorization", "Basic " + b64encode(f"reader:{password}".encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.loads(r.read())
    return body["results"][0].get("series", [])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_the_whole_stack_and_stops_cleanly(tmp_path):
    var = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "energyhost", "demo", "--var", str(var),
                             "--backfill-days", "1", "--duration", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if "energyhost demo is running" in line:
                break
        assert any("is running" in x for x in out), "".join(out)
        state = json.loads((var / "state.json").read_text())
        password = (var / "secrets" / "influx_reader").read_text().strip()
        # history from the backfill
        hist = _query(state, password, "SELECT count(active_power) FROM meter WHERE device = $d",
                      {"d": "acme-plant1-t1-meter"})
        assert hist and hist[0]["values"][0][1] >= 1000
        # live data from a Modbus meter, a gateway (RTU) EV charger, a SunSpec inverter and an MQTT device
        wanted = {"meter": "acme-plant1-t1-meter", "ev_charger": "acme-plant1-ev1",
                  "pv_inverter": "acme-plant1-pv1", "transformer": "acme-plant1-t1-temp"}
        mqtt_dev = ("meter", "huadong-coldstore-compressors")
        deadline = time.monotonic() + 60
        missing = set(wanted) | {"mqtt"}
        while missing and time.monotonic() < deadline:
            for kind, dev in list(wanted.items()):
                if kind in missing and _query(state, password,
                                              f'SELECT count(*) FROM "{kind}" WHERE device = $d AND time > now() - 1m',
                                              {"d": dev}):
                    missing.discard(kind)
            if "mqtt" in missing and _query(state, password,
                                            "SELECT count(*) FROM meter WHERE device = $d AND time > now() - 1m",
                                            {"d": mqtt_dev[1]}):
                missing.discard("mqtt")
            time.sleep(2)
        assert not missing, f"no live data for {missing}"
        status = subprocess.run([sys.executable, "-m", "energyhost", "status", "--var", str(var)],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        pids = state["pids"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    assert proc.returncode == 0, "".join(out) + rest
    assert "stopped." in rest
    for name, pid in pids.items():
        assert not _alive(pid), f"{name} (pid {pid}) still running after the demo stopped"
