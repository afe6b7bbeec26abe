"""Meter TOU registers vs. our tariff schedule, and meter clock drift (analytics.tou_check)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics.tariffs import load_tariff
from analytics.tou_check import clock_drift_check, schedule_split, tou_register_check
from simulators.dlt645_server import TouRegisters

SH = ZoneInfo("Asia/Shanghai")
JIANGSU = load_tariff("jiangsu_large_industry")
START = dt.datetime(2026, 7, 14, 0, 0, tzinfo=SH).timestamp()      # July: Jiangsu has critical hours


def _load(hours: float = 48.0):
    """A working-day-like load, 1-min counter samples [unix s, Wh]."""
    t = START + np.arange(0, hours * 3600 + 1, 60.0)
    hour = (t - START) / 3600 % 24
    p_w = 200_000 + 300_000 * ((hour > 7.5) & (hour < 18)) + 20_000 * np.sin(t / 977.0)
    e = np.r_[0.0, np.cumsum(p_w[:-1] * 60 / 3600)] + 5e8
    return t, e


def _meter_registers(t, e, tariff, offset_s: float):
    """What a meter with clock offset ``offset_s`` accumulates: the DL/T 645 simulator's registers."""
    tou = TouRegisters(tariff, offset_s)

    def energy_at(s):
        return float(np.interp(s, t, e))

    tou.update(t[0], e[0], energy_at)
    start = dict(enumerate(tou.regs, 1))
    for ti, ei in zip(t[1:], e[1:], strict=True):
        tou.update(ti, ei, energy_at)
    return start, dict(enumerate(tou.regs, 1))


def test_schedule_split_sums_to_the_energy_and_follows_the_calendar():
    t, e = _load(24)
    split = schedule_split((t * 1e9).astype(np.int64), e, JIANGSU)
    assert sum(split.values()) == pytest.approx(e[-1] - e[0])
    # 00:00-08:00 is valley in Jiangsu: 8 h x 200 kW (plus the small ripple) lands in T4
    assert split[4] == pytest.approx(8 * 200_000 + 30 * 300_000 / 60, rel=0.02)


def test_a_meter_that_agrees_gives_no_finding():
    t, e = _load()
    r0, r1 = _meter_registers(t, e, JIANGSU, 0.0)
    assert tou_register_check((t * 1e9).astype(np.int64), e, r0, r1, JIANGSU, site_id="s", device_id="m") is None


def test_a_meter_clock_40_min_fast_is_found_and_named_as_the_clock():
    t, e = _load()
    r0, r1 = _meter_registers(t, e, JIANGSU, 2400.0)
    f = tou_register_check((t * 1e9).astype(np.int64), e, r0, r1, JIANGSU, site_id="s", device_id="m")
    assert f is not None and f.type == "tou_register_mismatch"
    assert f.evidence["cause"] == "meter_clock" and f.evidence["best_clock_shift_s"] == 2400.0
    assert f.evidence["misallocated_share"] > 0.02 and f.evidence["misallocated_at_best_shift_kwh"] < 1.0
    # the explanation's figures are the evidence's
    assert f"{f.evidence['misallocated_kwh']:.1f} kWh" in f.explanation_en and "+40 min" in f.explanation_en


def test_a_meter_on_another_tariff_table_is_named_as_the_schedule():
    t, e = _load()
    other = load_tariff("sichuan_large_industry_2023")
    r0, r1 = _meter_registers(t, e, other, 0.0)
    f = tou_register_check((t * 1e9).astype(np.int64), e, r0, r1, JIANGSU, site_id="s", device_id="m")
    assert f is not None and f.evidence["cause"] == "schedule"
    assert f.evidence["misallocated_at_best_shift_kwh"] > 0.02 * f.evidence["period_energy_kwh"]


def test_too_little_energy_is_not_judged():
    t = (START + np.arange(0, 3601, 60.0)) * 1e9
    e = np.linspace(0, 500, t.size)
    assert tou_register_check(t.astype(np.int64), e, {1: 0, 2: 0, 3: 0, 4: 0}, {1: 500, 2: 0, 3: 0, 4: 0},
                              JIANGSU, site_id="s", device_id="m") is None


def test_clock_drift_is_flagged_with_its_rate():
    t = (START + np.arange(0, 10) * 86400.0) * 1e9
    off = -5.0 * np.arange(10) - 30            # 5 s a day slow, starting 30 s slow
    f = clock_drift_check(t.astype(np.int64), off, site_id="s", device_id="m", limit_s=60)
    assert f is not None and f.evidence["offset_s"] == -75.0 and f.evidence["drift_s_per_day"] == pytest.approx(-5.0)
    assert "75 s behind" in f.explanation_en
    assert clock_drift_check(t.astype(np.int64)[:3], off[:3], site_id="s", device_id="m", limit_s=60) is None
