"""Signal model physics: glossary, determinism, PV, load, meters, EV, transformer, documented ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest
from support.signal_fleet import DAY, MON, TZ, H, local

from core.channels import CHANNELS
from simulators.signals import FleetSignals


def test_every_channel_is_in_the_glossary(week):
    _t, vals = week
    for dev, v in vals.items():
        unknown = set(v) - set(CHANNELS)
        assert not unknown, f"{dev}: {unknown}"
        for k, arr in v.items():
            assert np.all(np.isfinite(arr)), f"{dev}.{k} has non-finite values"


def test_values_equals_values_array_at_the_same_time(sig):
    rng = np.random.default_rng(1)
    ts = MON + rng.uniform(0, 3 * DAY, 6)
    for dev in sig.fleet.devices:
        arr = sig.values_array(dev, ts)
        for i, t in enumerate(ts):
            one = sig.values(dev, float(t))
            assert one.keys() == arr.keys()
            assert all(one[k] == arr[k][i] for k in one), dev


def test_deterministic_per_seed(fleet, sig):
    t = np.array([local(1, 10.25), local(3, 15.5)])
    other = FleetSignals(fleet, seed=7)
    a, b = sig.values_array("s1-main", t), other.values_array("s1-main", t)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = FleetSignals(fleet, seed=8).values_array("s1-main", t)
    assert not np.array_equal(a["active_power"], c["active_power"])


@pytest.mark.parametrize("dev, counter, power", [
    ("s1-main", "energy_import", lambda v: np.maximum(v["active_power"], 0)),
    ("s1-main", "reactive_energy_import", lambda v: np.maximum(v["reactive_power"], 0)),
    ("s1-feeder", "energy_import", lambda v: v["active_power"]),
    ("s1-pv1", "energy_export", lambda v: v["active_power"]),
    ("s1-ev2", "energy_import", lambda v: v["active_power"]),
])
def test_counters_are_monotonic_and_integrate_power(sig, dev, counter, power):
    t = np.arange(local(0, 0), local(2, 0) + 1, 20.0)        # 20 s steps: not the 60 s model grid
    v = sig.values_array(dev, t)
    e = v[counter]
    assert np.all(np.diff(e) >= 0), f"{dev}.{counter} went backwards"
    integral = np.trapezoid(power(v), t) / 3600.0
    assert integral > 1000.0
    assert e[-1] - e[0] == pytest.approx(integral, rel=0.005)


def test_counters_continue_across_days_and_calls(sig):
    # the value at midnight asked alone equals the end of the previous day asked as an array
    t = np.arange(local(2, 23), local(3, 0) + 1, 60.0)
    arr = sig.values_array("s1-main", t)["energy_import"]
    assert sig.values("s1-main", local(3, 0))["energy_import"] == arr[-1]
    assert np.all(np.diff(arr) >= 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")       # pvlib 0.16 uses DatetimeIndex.dayofyear
def test_pv_zero_at_night_peak_near_noon_and_below_rating(sig, week, fleet):
    t, vals = week
    site = fleet.sites["s1"]
    sp = pvlib.solarposition.ephemeris(pd.DatetimeIndex(pd.to_datetime(t, unit="s", utc=True)),
                                       site.latitude, site.longitude)
    night = sp["elevation"].to_numpy() < -1.0
    for dev, rated in (("s1-pv1", 110e3), ("s1-pv2", 150e3)):
        p = vals[dev]["active_power"]
        assert np.all(p[night] == 0.0)
        assert p.max() <= rated
        assert p.max() > 0.3 * rated
        assert np.all(vals[dev]["inverter_state"][night] == 2.0)        # SunSpec SLEEPING
        # daily production-weighted centre time within 1 h of solar noon (~11:58 local here)
        hours = (t - MON) % DAY / H
        for d in range(7):
            m = (t >= local(d, 0)) & (t < local(d + 1, 0))
            centre = np.sum(hours[m] * p[m]) / np.sum(p[m])
            assert abs(centre - 11.97) < 1.0, (dev, d, centre)


def test_load_shape_night_day_weekend(week):
    t, vals = week
    p = vals["s1-feeder"]["active_power"]           # a feeder: pure load, no PV or EV
    hours = (t - MON) % DAY / H
    wd = ((t - MON) // DAY).astype(int)             # 0 = Monday ... 6 = Sunday
    night = (hours >= 2) & (hours < 4)
    day = (hours >= 9.5) & (hours < 11)
    for d in range(5):
        assert p[night & (wd == d)].mean() < 0.6 * p[day & (wd == d)].mean()
    weekday_day = p[day & (wd < 5)].mean()
    assert p[day & (wd == 5)].mean() < 0.8 * weekday_day
    assert p[day & (wd == 6)].mean() < 0.6 * weekday_day
    lunch = (hours >= 12.1) & (hours < 12.9)
    assert p[lunch & (wd < 5)].mean() < 0.9 * weekday_day


def test_meter_phase_consistency(week, fleet):
    _t, vals = week
    vn = fleet.sites["s1"].nominal_voltage_v
    for dev in ("s1-main", "s1-feeder"):
        v = vals[dev]
        p, q, s = v["active_power"], v["reactive_power"], v["apparent_power"]
        assert np.allclose(p, sum(v[f"active_power_l{i}"] for i in (1, 2, 3)), rtol=1e-9)
        assert np.allclose(q, sum(v[f"reactive_power_l{i}"] for i in (1, 2, 3)), rtol=1e-9)
        assert np.allclose(s ** 2, p ** 2 + q ** 2, rtol=1e-9)
        assert np.allclose(v["power_factor"], p / s)
        for i in (1, 2, 3):
            assert np.allclose(v[f"current_l{i}"], v[f"apparent_power_l{i}"] / v[f"voltage_l{i}"])
            assert np.all(np.abs(v[f"voltage_l{i}"] / vn - 1) < 0.07)          # GB/T 12325 ±7 %
            assert np.all((v[f"thd_voltage_l{i}"] > 0.5) & (v[f"thd_voltage_l{i}"] < 5.0))
        importing = p > 0.05 * p.max()
        assert np.all((np.abs(v["power_factor"][importing]) >= 0.92) & (v["power_factor"][importing] <= 0.97))
        assert np.all(np.abs(v["frequency"] - 50.0) < 0.2)                     # GB/T 15945
        assert np.all(v["voltage_l12"] / v["voltage_l1"] > 1.68)
        assert np.all(v["demand_active_power_max"] >= v["demand_active_power"] - 1e-3)  # rounding only
        assert np.all(np.diff(v["demand_active_power_max"]) >= 0)


def test_main_meter_is_load_minus_pv_plus_ev(week, sig):
    _t, vals = week
    sm = sig._sites["s1"]
    share = sm.meter_roles["s1-main"][1]
    feeder_share = sm.meter_roles["s1-feeder"][1]
    load = vals["s1-feeder"]["active_power"] / feeder_share
    expect = share * (load - vals["s1-pv1"]["active_power"] - vals["s1-pv2"]["active_power"]
                      + vals["s1-ev1"]["active_power"] + vals["s1-ev2"]["active_power"])
    assert np.allclose(vals["s1-main"]["active_power"], expect, rtol=1e-9, atol=1e-6)


def test_demand_is_15_min_mean_of_power(sig):
    t = local(1, 10.5)
    fine = np.linspace(t - 900, t, 901)
    p = sig.values_array("s1-main", fine)["active_power"]
    assert sig.values("s1-main", t)["demand_active_power"] == pytest.approx(np.trapezoid(p, fine) / 900, rel=1e-3)


def test_ev_states_and_power_consistent(week):
    _t, vals = week
    for dev, rated in (("s1-ev1", 7000.0), ("s1-ev2", 22000.0)):
        v = vals[dev]
        st, oc, p = v["charger_state"], v["ocpp_status"], v["active_power"]
        assert np.all(p <= rated)
        assert np.all(p[st == 1] == 0) and np.all(oc[st == 1] == 0)        # A: Available, no power
        assert np.all(p[st == 2] == 0)                                      # B: connected, not charging
        assert np.all(np.isin(oc[st == 3], [2]))                            # C: Charging
        assert (st == 3).sum() > 60                                         # sessions exist this week
        assert np.all(v["session_energy"][st == 1] == 0)
        assert v["session_energy"].max() > 5000
        assert np.all(v["max_current_offered"][st > 1] > 0)
    # single-phase charger draws on L1 only
    assert np.all(vals["s1-ev1"]["current_l2"] == 0) and vals["s1-ev1"]["current_l1"].max() > 20


def test_transformer_temperature_follows_load_with_lag(week):
    t, vals = week
    temp = vals["s1-temp"]["winding_temperature_l1"]
    s = vals["s1-main"]["apparent_power"]
    assert np.all(temp < 130) and np.all(temp > -10)
    assert np.all(vals["s1-temp"]["temperature_alarm"] == 0)
    d = (t >= local(1, 0)) & (t < local(2, 0))
    lag_h = (t[d][np.argmax(temp[d])] - t[d][np.argmax(s[d])]) / H
    assert 0 <= lag_h < 6
    assert np.corrcoef(temp, s)[0, 1] > 0.5


@pytest.mark.parametrize("start", ["2026-07-20", "2026-01-19"])
def test_documented_normal_ranges_hold(sig, fleet, start):
    t0 = pd.Timestamp(start, tz=TZ).timestamp()
    t = np.arange(t0, t0 + 7 * DAY, 120.0)
    vn = fleet.sites["s1"].nominal_voltage_v
    for dev in ("s1-main", "s1-feeder"):
        v = sig.values_array(dev, t)
        cur = np.array([v[f"current_l{i}"] for i in (1, 2, 3)])
        assert np.all((cur.max(0) - cur.min(0)) / cur.max(0) < 0.05)
        for i in (1, 2, 3):
            assert np.all(np.abs(v[f"voltage_l{i}"] / vn - 1) < 0.07)
            assert np.all(v[f"thd_voltage_l{i}"] < 3.0) and np.all(v[f"thd_current_l{i}"] < 15.0)
        imp = v["active_power"] > 0
        assert np.all((v["power_factor"][imp] >= 0.93 - 1e-9) & (v["power_factor"][imp] <= 0.97 + 1e-9))
    w = sig.values_array("s1-temp", t)
    assert np.all(w["winding_temperature_l1"] < 130) and np.all(w["temperature_alarm"] == 0)
    for dev in ("s1-pv1", "s1-pv2"):
        v = sig.values_array(dev, t)
        m = np.array([v[f"mppt{k}_dc_current"] for k in (1, 2, 3, 4)])
        day = m.min(0) > 1.0
        med = np.median(m[:, day], axis=0)
        assert np.all(np.abs(m[:, day] / med - 1) < 0.03)
        assert np.all(v["inverter_state"] != 7)
