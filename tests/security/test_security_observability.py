"""Observability: API Prometheus metrics by route template and status (api.metrics),
the optional scrape token, and JSON logs with site/device ids from a real collector process."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.metrics import instrument
from api.settings import ApiSettings
from core.logjson import JsonFormatter, configure_logging
from energyhost.devstack import free_port, stop_process
from workflow import Store

ROOT = Path(__file__).resolve().parents[2]


def _sample(body: str, name: str, **labels: str) -> float:
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):line.rindex("}") + 1]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _app(tmp_path: Path, token: str | None = None):
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=store, background=False)
    if not any(getattr(r, "path", None) == "/metrics" for r in app.routes):
        instrument(app, token=token)          # until api/main.py calls it itself
    return app


def test_api_metrics_by_route_template_and_status(tmp_path):
    with TestClient(_app(tmp_path, token="")) as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200
        assert c.get("/api/v1/alarms").status_code == 401               # no token
        assert c.get("/api/v1/alarms/12345").status_code == 401
        assert c.get("/no/such/path").status_code == 404
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        body = r.text
    assert _sample(body, "energyhost_api_requests_total", route="/healthz", status="200", method="GET") == 3
    assert _sample(body, "energyhost_api_requests_total", route="/api/v1/alarms", status="401") == 1
    # the template, not the raw path: bounded label cardinality
    assert _sample(body, "energyhost_api_requests_total", route="/api/v1/alarms/{alarm_id}", status="401") == 1
    assert "/api/v1/alarms/12345" not in body
    assert _sample(body, "energyhost_api_requests_total", route="<unmatched>", status="404") == 1
    assert _sample(body, "energyhost_api_request_duration_seconds_count", route="/healthz") == 3
    assert _sample(body, "energyhost_api_request_duration_seconds_bucket", route="/healthz", le="+Inf") == 3
    assert "\nenergyhost_api_requests_in_progress 0.0\n" in body       # none left in flight


def test_metrics_token_is_required_when_set(tmp_path):
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=Store(f"sqlite:///{tmp_path / 't.db'}"),
                     background=False)
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/metrics"]
    instrument(app, token="s3cret")
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200



def test_metrics_token_comes_from_the_api_settings(tmp_path):
    """EH_METRICS_TOKEN is read with the other API settings, and create_app protects /metrics with it."""
    settings = ApiSettings.from_env({"EH_METRICS_TOKEN": "from-env", "EH_ESCALATE_EVERY_S": "0", "EH_RATE_LIMIT": "0"})
    assert settings.metrics_token == "from-env"
    assert ApiSettings.from_env({}).metrics_token is None
    app = create_app(settings, store=Store(f"sqlite:///{tmp_path / 't.db'}"), background=False)
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer from-env"}).status_code == 200

def test_json_formatter_carries_site_and_device():
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(JsonFormatter())
    log = logging.getLogger("energyhost.test.json")
    log.addHandler(h)
    log.propagate = False
    try:
        log.warning("%s: offline", "dev-1", extra={"site": "site-1", "device": "dev-1"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra={"device": "dev-2"})
    finally:
        log.removeHandler(h)
    a, b = (json.loads(x) for x in buf.getvalue().splitlines())
    assert a["msg"] == "dev-1: offline" and a["site"] == "site-1" and a["device"] == "dev-1"
    assert a["level"] == "WARNING" and a["ts"].endswith("Z")
    assert b["device"] == "dev-2" and "ValueError: boom" in b["exc"] and "site" not in b
    with pytest.raises(ValueError, match="EH_LOG_FORMAT"):
        configure_logging("xml")


def test_collector_process_logs_json_with_device_ids(tmp_path, influxd, influx_db):
    """``EH_LOG_FORMAT=json energyhost collect``: every stdout line is a JSON object, and a Modbus
    device that does not answer is logged offline with its site and device id."""
    port = free_port()      # nothing listens here: the device is unreachable
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(f"""[[customer]]
id = "c-log"
  [[customer.site]]
  id = "s-log"
    [[customer.site.device]]
    id = "d-log-meter"
    kind = "meter"
    profile = "meter_acrel_dtsd1352"
    transport = "modbus"
    host = "127.0.0.1"
    port = {port}
    poll_interval_s = 1
""")
    env = {"PATH": "/usr/bin:/bin", "EH_LOG_FORMAT": "json", "EH_INFLUX_URL": influxd.url,
           "EH_INFLUX_DB": influx_db, "EH_SPOOL_DIR": str(tmp_path / "spool"), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "collect.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([sys.executable, "-m", "energyhost", "collect", "--fleet", str(fleet), "--no-mqtt"],
                             env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "offline" not in log.read_text():
            time.sleep(0.2)
    finally:
        stop_process(p, 30)
    lines = [x for x in log.read_text().splitlines() if x.strip()]
    docs = [json.loads(x) for x in lines]            # every line parses: nothing but JSON on stdout
    off = [d for d in docs if "offline" in d["msg"]]
    assert off and off[0]["site"] == "s-log" and off[0]["device"] == "d-log-meter", lines[-5:]
    assert any(d["msg"].startswith("collector started") for d in docs)
