"""A running app for the browser tests and the dashboard benchmark: real influxd holding the current
month up to now (5-min samples), a real SQLite store with users, an alarm and orders, uvicorn on
a free loopback port; Playwright driving Debian's chromium with every non-loopback request blocked.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import uvicorn

from api.main import create_app
from api.settings import ApiSettings
from core.model import AlarmEvent
from core.units import NS
from energyhost.devstack import free_port
from support.report_month import CUSTOMER, EV, METER, OTHER_CUSTOMER, OTHER_SITE, PV, SITE, TZ, fleet
from workflow import Store

STEP_S = 300
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def month_data(now_ns: int, step_s: int = STEP_S) -> dict[str, tuple[str, dict[str, np.ndarray], np.ndarray]]:
    """Samples every ``step_s`` from the day before this month (site time) to now:
    device -> (kind, fields, time_ns)."""
    local = datetime.fromtimestamp(now_ns / NS, ZoneInfo(TZ))
    start = int(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()) - 86400
    t_s = np.arange(start, now_ns // NS, step_s, dtype=np.int64)
    hour = ((t_s + 8 * 3600) % 86400) / 3600.0
    load_kw = 200.0 + 300.0 * ((hour >= 8) & (hour < 18)) + 20.0 * np.sin(t_s / 5000.0)
    pv_kw = np.where((hour >= 6) & (hour < 18), 250.0 * np.sin(np.pi * (hour - 6) / 12.0), 0.0)
    ev_kw = np.where((hour >= 1) & (hour < 3), 7.0, 0.0)
    grid_kw = load_kw + ev_kw - pv_kw
    imp_wh = 1.0e6 + np.cumsum(np.clip(grid_kw, 0, None) * 1000.0 * step_s / 3600.0)
    exp_wh = 1.0e4 + np.cumsum(np.clip(-grid_kw, 0, None) * 1000.0 * step_s / 3600.0)
    pv_wh = 5.0e5 + np.cumsum(pv_kw * 1000.0 * step_s / 3600.0)
    u = 230.0 + 2.0 * np.sin(t_s / 3000.0)
    t = t_s * NS
    return {
        METER: ("meter", {"active_power": grid_kw * 1000.0, "energy_import": imp_wh, "energy_export": exp_wh,
                          "voltage_l1": u, "voltage_l2": u + 0.5, "voltage_l3": u - 0.5,
                          "power_factor": np.full(t.size, 0.93)}, t),
        PV: ("pv_inverter", {"active_power": pv_kw * 1000.0, "energy_export": pv_wh}, t),
        EV: ("ev_charger", {"active_power": ev_kw * 1000.0, "ocpp_status": np.where(ev_kw > 0, 2.0, 0.0)}, t),
    }


def write_data(influx, data: dict, site: str = SITE, customer: str = CUSTOMER) -> int:
    n = 0
    for dev, (kind, fields, t) in data.items():
        names = list(fields)
        cols = [np.char.mod("%.4f", fields[k]) for k in names]
        prefix = f"{kind},customer={customer},device={dev},site={site} "
        lines = [prefix + ",".join(f"{k}={c[i]}" for k, c in zip(names, cols, strict=True)) + f" {t[i]}"
                 for i in range(t.size)]
        for i in range(0, len(lines), 20000):
            influx.write_lines("\n".join(lines[i:i + 20000]))
        n += len(lines)
    return n


def seed_store(store: Store, now_ns: int) -> dict:
    """Users (every role); a major alarm on the meter, a critical one on the charger (its order opens by
    itself); one order on the other customer's site."""
    store.seed_fleet(fleet())
    store.create_user("boss", "admin", name="Boss")
    store.create_user("eng1", "engineer", name="Wang Gong")
    store.create_user("eng2", "engineer", name="Zhao Gong")
    store.create_user("li.wei", "customer_manager", name="Li Wei", password="li-wei-pass-1")
    store.create_user("acme.user", "customer", customer_id=CUSTOMER, name="Acme Buyer", password="acme-pass-1")
    store.create_user("beta.user", "customer", customer_id=OTHER_CUSTOMER)
    store.upsert_alarm_events([AlarmEvent(
        key=f"{SITE}/{METER}/overvoltage", type="overvoltage", site_id=SITE, device_id=METER, severity="major",
        raised_ns=now_ns - 1800 * NS, cleared_ns=None, message_zh="母线电压越上限", message_en="Bus over-voltage",
        evidence={"min_v": 231.0, "max_v": 254.0, "nominal_v": 230.0, "band_pct": 7.0}), AlarmEvent(
        key=f"{SITE}/{EV}/fault", type="charger_fault", site_id=SITE, device_id=EV, severity="critical",
        raised_ns=now_ns - 900 * NS, cleared_ns=None, message_zh="充电桩故障", message_en="Charger faulted",
        evidence={"fault_code": 5})])
    old = store.create_work_order(site_id=OTHER_SITE, title="Transformer fan noisy", severity="minor",
                                  created_by="eng1")
    return {"old_order": old["id"]}


class LiveApp:
    """uvicorn serving ``app`` on a free loopback port in a thread (stopped by :meth:`stop`)."""

    def __init__(self, store: Store, influx, clock=time.time_ns) -> None:
        app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=store, influx=influx,
                         clock=clock, background=False, fleet=fleet())
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def block_outside(context, blocked: list[str]) -> None:
    """Abort (and record) every request of ``context`` that is not to a loopback host."""
    def route(r) -> None:
        host = urlsplit(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()
    context.route("**/*", route)


def shoot(page, name: str) -> None:
    """Screenshots at 1400 px and 390 px wide (full page)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.screenshot(path=str(SHOTS / f"{name}-1400.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"{name}: the page is {width} px wide at 390 px"
    page.set_viewport_size({"width": 1400, "height": 900})
