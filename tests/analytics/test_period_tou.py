"""The period evaluation cross-checks a DL/T 645 meter's own TOU registers and clock (real influxd)."""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics import jobs
from analytics.tariffs import load_tariff
from core.config import load_fleet
from core.influx import InfluxClient, points_to_lines
from core.model import Point
from core.units import NS
from simulators.dlt645_server import TouRegisters

pytestmark = pytest.mark.integration

SITE, METER = "huadong-coldstore", "huadong-coldstore-dock"
START = dt.datetime(2026, 7, 14, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def _write(client, fleet, clock_offset_s: float, hours: float = 48.0) -> tuple[int, int]:
    """Two days of 1-min readings of the DL/T 645 meter whose clock is ``clock_offset_s`` off."""
    dev = fleet.devices[METER]
    t = START + np.arange(0, hours * 3600 + 1, 60.0)
    hour = (t - START) / 3600 % 24
    # 80 kW in the 40 min before the 08:00 and 14:00 switches (what a clock 40 min fast moves), else 20 kW
    p_w = 20_000 + 60_000 * np.isin(np.floor(hour * 3) / 3, [7 + 1 / 3, 7 + 2 / 3, 13 + 1 / 3, 13 + 2 / 3])
    e = np.r_[0.0, np.cumsum(p_w[:-1] * 60 / 3600)] + 5e7
    tou = TouRegisters(load_tariff(fleet.sites[SITE].tariff), clock_offset_s)
    pts = []
    for i, (ti, ei) in enumerate(zip(t, e, strict=True)):
        tou.update(ti, ei, lambda s: float(np.interp(s, t, e)))
        fields = {"active_power": float(p_w[i]), "energy_import": float(ei),
                  "meter_clock_offset": clock_offset_s + 0.5 * (ti - START) / 86400}
        fields |= {f"energy_import_t{k}": float(v) for k, v in enumerate(tou.regs, 1)}
        pts.append(Point("meter", dev.tags, fields, int(ti * NS)))
    client.write_lines(points_to_lines(pts))
    return int(t[0] * NS), int((t[-1] + 60) * NS)


@pytest.fixture()
def client(influxd):
    name = f"tou_{os.getpid()}_{np.random.default_rng().integers(1 << 30)}"
    influxd.create_database(name)
    c = InfluxClient(influxd.url, name)
    yield c
    c.close()


def test_a_meter_clock_40_min_fast_is_found_by_its_registers_and_its_clock(client):
    fleet = load_fleet("sites.example.toml")
    start, end = _write(client, fleet, 2400.0)
    found = {f.type: f for f in jobs.evaluate_period(fleet, client, start, end, [SITE])[SITE]
             if f.device_id == METER}
    tou = found["tou_register_mismatch"]
    assert tou.evidence["cause"] == "meter_clock" and tou.evidence["best_clock_shift_s"] == pytest.approx(2400, abs=60)
    assert "+40 min" in tou.explanation_en and "kWh" in tou.explanation_zh
    drift = found["meter_clock_drift"]
    assert drift.evidence["offset_s"] == pytest.approx(2401, abs=1) and drift.evidence["drift_s_per_day"] == 0.5
    assert "2401 s ahead" in drift.explanation_en
    assert "clock_offset" not in found          # one finding for one clock, the one with the drift rate
    events = jobs.period_events(jobs.evaluate_period(fleet, client, start, end, [SITE])[SITE], end, fleet)
    assert {e.type for e in events if e.device_id == METER} >= {"tou_register_mismatch", "meter_clock_drift"}


def test_a_meter_that_agrees_gives_no_protocol_finding(client):
    fleet = load_fleet("sites.example.toml")
    start, end = _write(client, fleet, 5.0)
    types = {f.type for f in jobs.evaluate_period(fleet, client, start, end, [SITE])[SITE] if f.device_id == METER}
    assert not types & {"tou_register_mismatch", "meter_clock_drift", "clock_offset"}
