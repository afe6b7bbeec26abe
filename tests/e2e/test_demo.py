"""`energyhost demo` end to end: every component its own process, data flowing, clean stop on SIGINT."""

import json
import os
import signal
import ssl
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
    # the demo's InfluxDB serves HTTPS only; verify it against the demo's CA
    assert state["influx_url"].startswith("https://")
    ctx = ssl.create_default_context(cafile=state["influx_ca"])
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        body = json.loads(r.read())
    return body["results"][0].get("series", [])


def _post(url: str, body: dict, headers: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _wait_alarm(api: str, auth: dict, device: str, type_: str, *, open_: bool, timeout: float) -> dict | None:
    """Poll the API until the alarm of ``type_`` on ``device`` is open (or no longer active)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{api}/api/v1/alarms?device_id={device}&limit=100", headers=auth)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
        items = body["items"] if isinstance(body, dict) else body
        mine = [a for a in items if a["type"] == type_]
        if open_ and any(a.get("cleared_at") is None for a in mine):
            return mine[0]
        if not open_ and mine and all(a.get("cleared_at") is not None for a in mine):
            return mine[0]
        time.sleep(1)
    return None


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended: after the supervisor dies init inherits it)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


TINY_FLEET = """
[[customer]]
id = "tiny"
name = "Tiny"
manager = "li.wei"
email = "energy@tiny.example"

  [[customer.site]]
  id = "tiny-s1"
  name = "Tiny site"
  timezone = "Asia/Shanghai"
  tariff = "jiangsu_large_industry"
  voltage_level_kv = 10
  nominal_voltage_v = 230
  latitude = 31.30
  longitude = 120.62
  contract_demand_kw = 300

    [[customer.site.device]]
    id = "tiny-s1-meter"
    name = "Main meter"
    kind = "meter"
    profile = "meter_acrel_dtsd1352"
    transport = "modbus"
    host = "127.0.0.1"
    port = 15020
    poll_interval_s = 5
"""


def _start_tiny_demo(tmp_path) -> tuple[subprocess.Popen, dict]:
    """The supervisor on a one-meter fleet without history, up to its banner; returns it and its state."""
    fleet = tmp_path / "tiny.toml"
    fleet.write_text(TINY_FLEET)
    var = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "energyhost", "demo", "--var", str(var), "--fleet", str(fleet),
                             "--backfill-days", "0", "--duration", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "energyhost demo is running" in line:
            break
    if not any("is running" in x for x in out):
        proc.kill()
        proc.wait()
        raise AssertionError("".join(out))
    state = json.loads((var / "state.json").read_text())
    assert set(state["pids"]) == {"simulate", "collect", "analyze", "serve", "reports", "influxd", "mosquitto"}
    return proc, state["pids"]


def _left_running(pids: dict, within_s: float) -> dict:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        left = {n: p for n, p in pids.items() if _alive(p)}
        if not left:
            return {}
        time.sleep(0.2)
    return left


def _kill_leftovers(pids: dict) -> None:
    for pid in pids.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_demo_children_end_when_the_supervisor_is_killed(tmp_path):
    """SIGKILL leaves the supervisor no chance to clean up: the parent-death signal ends every child."""
    proc, pids = _start_tiny_demo(tmp_path)
    try:
        proc.kill()
        proc.wait(10)
        left = _left_running(pids, 10)
        assert not left, f"still running 10 s after the supervisor was SIGKILLed: {left}"
    finally:
        _kill_leftovers(pids)
        proc.stdout.close()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT with its output pipe closed"])
def test_demo_stops_its_children_in_order_on_every_signal(tmp_path, how):
    """`demo | tee log` then Ctrl-C: tee dies too, so "stopping ..." meets a broken pipe; the clean-up goes on."""
    proc, pids = _start_tiny_demo(tmp_path)
    try:
        if how.startswith("SIGINT"):
            proc.stdout.close()
        proc.send_signal(getattr(signal, how.split()[0]))
        rc = proc.wait(60)
        left = {n: p for n, p in pids.items() if _alive(p)}
        assert rc == 0, f"the supervisor ended with {rc} instead of an orderly stop"
        assert not left, f"still running after the supervisor returned: {left}"
    finally:
        _kill_leftovers(pids)
        if not proc.stdout.closed:
            proc.stdout.close()


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
        # a fault injected into the simulator raises its alarm (seen through the API) and clears when removed
        api, control = state["api_url"], state["control_url"]
        users = json.loads((var / "secrets" / "api_users.json").read_text())
        tok = _post(f"{api}/api/v1/auth/token", {"username": "engineer1", "password": users["engineer1"]})
        auth = {"Authorization": f"Bearer {tok['access_token']}"}
        device = "acme-plant1-ev3"
        _post(f"{control}/faults", {"device": device, "fault": "ev_fault", "params": {}})
        t_inject = time.monotonic()
        raised = _wait_alarm(api, auth, device, "ev_fault", open_=True, timeout=60)
        raise_s = time.monotonic() - t_inject
        req = urllib.request.Request(f"{control}/faults/{device}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).read()
        t_clear = time.monotonic()
        cleared = _wait_alarm(api, auth, device, "ev_fault", open_=False, timeout=60)
        print(f"ev_fault raised {raise_s:.1f} s after injection, cleared {time.monotonic() - t_clear:.1f} s "
              f"after removal (poll interval 5 s)")
        assert raised and cleared
        assert raise_s <= 2 * 5 + 10 + 5, f"alarm raised after {raise_s:.1f} s (limit: two polls + 10 s + a sweep)"
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


def test_demo_history_covers_the_due_report_and_its_baseline(tmp_path):
    """The automatic history holds last month and the 28 days before it; the contracts file declares that."""
    from datetime import date, datetime
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from energyhost.demo import history_plan, write_contracts
    from reports.assemble import load_contracts

    now = datetime(2026, 11, 28, 12, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    days, hosting = history_plan(now, "Asia/Shanghai")
    assert hosting == date(2026, 10, 1)
    # 2026-09-03 00:00 (28 days before October) to 2026-11-28 12:30 local: 86.5 days -> 87
    assert days == 87
    assert history_plan(datetime(2027, 1, 2, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp(),
                        "Asia/Shanghai") == (60, date(2026, 12, 1))
    path = tmp_path / "baselines.toml"
    write_contracts(path, Path(__file__).resolve().parents[2] / "sites.example.toml", hosting)
    c = load_contracts(path)
    assert {k: (v.baseline_start, v.baseline_end) for k, v in c.items()} == {
        "acme": (date(2026, 9, 3), date(2026, 9, 30)), "huadong": (date(2026, 9, 3), date(2026, 9, 30))}
