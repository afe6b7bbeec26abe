"""Signal model: physics invariants, exact counters, determinism and every fault's effect (on arrays)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pvlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.channels import CHANNELS
from core.config import parse_fleet
from simulators.control import ControlError, ControlServer, _request, clear_remote, inject_remote, list_remote
from simulators.signals import FAULT_TYPES, FleetSignals

FLEET_RAW = {
    "customer": [{
        "id": "c1",
        "site": [{
            "id": "s1", "timezone": "Asia/Shanghai", "pv_capacity_kwp": 300, "latitude": 31.3, "longitude": 120.6,
            "contract_demand_kw": 800,
            "transformer": [{"id": "s1-t1", "rated_kva": 1000, "p0_kw": 1.415, "pk_kw": 8.13,
                             "meter": "s1-main", "temperature_controller": "s1-temp"}],
            "device": [
                {"id": "s1-main", "kind": "meter", "transport": "mqtt"},
                {"id": "s1-feeder", "kind": "meter", "transport": "mqtt"},
                {"id": "s1-temp", "kind": "transformer", "transport": "mqtt"},
                {"id": "s1-pv1", "kind": "pv_inverter", "transport": "mqtt", "rated_power_kw": 110},
                {"id": "s1-pv2", "kind": "pv_inverter", "transport": "mqtt", "rated_power_kw": 150},
                {"id": "s1-ev1", "kind": "ev_charger", "transport": "mqtt", "rated_power_kw": 7},
                {"id": "s1-ev2", "kind": "ev_charger", "transport": "mqtt", "rated_power_kw": 22},
            ],
        }],
    }],
}
TZ = "Asia/Shanghai"
MON = pd.Timestamp("2026-01-12", tz=TZ).timestamp()        # Monday 2026-01-12 00:00 local
DAY = 86400.0
H = 3600.0


def local(day: int, hour: float) -> float:
    return MON + day * DAY + hour * H


@pytest.fixture(scope="module")
def fleet():
    return parse_fleet(FLEET_RAW)


@pytest.fixture(scope="module")
def sig(fleet):
    return FleetSignals(fleet, seed=7)


@pytest.fixture(scope="module")
def week(sig):
    """One week of 1-min values of every device."""
    t = np.arange(MON, MON + 7 * DAY, 60.0)
    return t, {d: sig.values_array(d, t) for d in sig.fleet.devices}


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
    share = sm.meter_role["s1-main"][1]
    feeder_share = sm.meter_role["s1-feeder"][1]
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


# ----------------------------------------------------------------------------------------- faults
# Faulted instance: each fault on its own window of Tuesday 2026-01-13 (day 1) or Wednesday (day 2).
SCHEDULE = [
    ("s1-pv1", "inverter_trip", local(1, 10), local(1, 11), {}),
    ("s1-pv2", "string_loss", local(1, 11), local(1, 12), {"mppt": 2}),
    ("s1-temp", "transformer_overtemp", local(1, 13), local(1, 16), {}),
    ("s1-main", "low_power_factor", local(1, 14), local(1, 15), {"pf": 0.75}),
    ("s1-feeder", "harmonic_distortion", local(1, 15), local(1, 16), {}),
    ("s1-feeder", "phase_unbalance", local(1, 16), local(1, 17), {"ratio": 0.4}),
    ("s1-feeder", "voltage_sag", local(1, 9), local(1, 9.1), {"depth": 0.3}),
    ("s1-feeder", "device_silent", local(2, 9), local(2, 10), {}),
    ("s1-pv1", "device_exceptions", local(2, 11), local(2, 12), {"code": 2}),
    ("s1-feeder", "meter_reset", local(2, 14), local(2, 14.01), {}),
]


@pytest.fixture(scope="module")
def faulted(fleet, sig):
    f = FleetSignals(fleet, seed=7)
    f.schedule(SCHEDULE)
    # EV faults inside real charging periods of each charger on Wednesday
    t = np.arange(local(2, 0), local(3, 0), 60.0)
    for dev, fault in (("s1-ev1", "ev_fault"), ("s1-ev2", "ev_stuck")):
        charging = t[sig.values_array(dev, t)["charger_state"] == 3]
        assert len(charging) > 40, f"{dev} has no charging on Wednesday"
        a = float(charging[5])
        params = {"code": 17} if fault == "ev_fault" else {}
        f.schedule([(dev, fault, a, a + 1800.0, params)])
    return f


def _cmp(sig, faulted, dev, a, b, step=60.0):
    t = np.arange(a, b, step)
    return t, sig.values_array(dev, t), faulted.values_array(dev, t)


def test_inverter_trip(sig, faulted):
    t, base, f = _cmp(sig, faulted, "s1-pv1", local(1, 9.5), local(1, 11.5))
    inside = (t >= local(1, 10)) & (t < local(1, 11))
    assert np.all(f["active_power"][inside] == 0) and base["active_power"][inside].min() > 0
    assert np.all(f["inverter_state"][inside] == 7) and np.all(f["inverter_events"][inside] == 1)
    assert np.all(f["dc_current"][inside] == 0) and np.all(f["dc_voltage"][inside] > base["dc_voltage"][inside])
    assert np.array_equal(f["active_power"][~inside], base["active_power"][~inside])
    e = f["energy_export"]
    assert np.ptp(e[inside]) == 0 and np.all(np.diff(e) >= 0)
    lost = np.trapezoid(base["active_power"][inside], t[inside]) / 3600
    assert base["energy_export"][-1] - e[-1] == pytest.approx(lost, rel=0.02)
    # the main meter imports what the inverter no longer produces
    _t, mb, mf = _cmp(sig, faulted, "s1-main", local(1, 9.5), local(1, 11.5))
    share = sig._sites["s1"].meter_role["s1-main"][1]
    assert np.allclose(mf["active_power"][inside] - mb["active_power"][inside],
                       share * base["active_power"][inside])
    assert mf["energy_import"][-1] > mb["energy_import"][-1]


def test_string_loss(sig, faulted):
    t, base, f = _cmp(sig, faulted, "s1-pv2", local(1, 11), local(1, 12))
    assert np.all(f["mppt2_dc_current"] == 0) and np.all(f["mppt2_dc_power"] == 0)
    assert np.all(f["mppt2_dc_voltage"] > f["mppt1_dc_voltage"])          # open circuit
    assert np.allclose(f["mppt1_dc_current"], base["mppt1_dc_current"])
    assert np.allclose(f["dc_power"] / base["dc_power"], 0.75, atol=0.02)
    assert np.all(f["active_power"] < base["active_power"]) and np.all(f["inverter_events"] == 0)


def test_transformer_overtemp(sig, faulted):
    t, base, f = _cmp(sig, faulted, "s1-temp", local(1, 13), local(1, 16))
    hottest = np.max([f[f"winding_temperature_l{i}"] for i in (1, 2, 3)], axis=0)
    rise = f["winding_temperature_l2"] - base["winding_temperature_l2"]
    assert rise[0] == 0 and np.all(np.diff(rise[t <= local(1, 13.5)]) > 0)
    assert np.allclose(hottest[t >= local(1, 13.5)], 140.0)                 # default target_c
    assert np.array_equal(f["temperature_alarm"] == 1, hottest > 130)
    assert f["temperature_alarm"][-1] == 1 and np.all(f["temperature_trip"] == 0)
    assert np.all(f["fan_running"][t >= local(1, 13.5)] == 1)
    assert np.all(base["temperature_alarm"] == 0)


def test_low_power_factor(sig, faulted):
    t, base, f = _cmp(sig, faulted, "s1-main", local(1, 14), local(1, 15))
    assert np.allclose(f["power_factor"], 0.75) and np.allclose(f["power_factor_l3"], 0.75)
    assert np.allclose(f["active_power"], base["active_power"])
    assert np.all(f["reactive_power"] > 2 * base["reactive_power"])
    kvarh_f = f["reactive_energy_import"][-1] - f["reactive_energy_import"][0]
    kvarh_b = base["reactive_energy_import"][-1] - base["reactive_energy_import"][0]
    assert kvarh_f / kvarh_b == pytest.approx(np.tan(np.arccos(0.75)) / np.mean(np.tan(np.arccos(
        base["power_factor"]))), rel=0.05)


def test_harmonic_distortion_and_unbalance_and_sag(sig, faulted):
    _t, base, f = _cmp(sig, faulted, "s1-feeder", local(1, 15), local(1, 16))
    assert np.all(f["thd_voltage_l1"] > 6.0) and np.all(f["thd_current_l2"] > 30)
    assert np.allclose(f["active_power"], base["active_power"])
    _t, base, f = _cmp(sig, faulted, "s1-feeder", local(1, 16), local(1, 17))
    cur = np.array([f[f"current_l{i}"] for i in (1, 2, 3)])
    ratio = (cur.max(0) - cur.min(0)) / cur.max(0)
    assert np.allclose(ratio, 0.4, atol=0.02)
    assert np.allclose(f["active_power"], base["active_power"])
    assert np.ptp([f[f"voltage_l{i}"][0] for i in (1, 2, 3)]) > np.ptp([base[f"voltage_l{i}"][0] for i in (1, 2, 3)])
    _t, base, f = _cmp(sig, faulted, "s1-feeder", local(1, 9), local(1, 9.1))
    assert np.allclose(f["voltage_l1"], 0.7 * base["voltage_l1"])
    assert np.allclose(f["current_l3"], base["current_l3"] / 0.7)
    assert np.allclose(f["voltage_l12"], 0.7 * base["voltage_l12"])


def test_behaviour_faults(faulted):
    assert faulted.behaviour("s1-feeder", local(2, 9.5)) == "silent"
    assert faulted.behaviour("s1-feeder", local(2, 10)) == "normal"
    assert faulted.behaviour("s1-pv1", local(2, 11.5)) == 2
    assert faulted.fault_mask("s1-pv1", "device_exceptions", np.array([local(2, 10.9), local(2, 11)])).tolist() \
        == [False, True]


def test_ev_fault_and_stuck(sig, faulted):
    for dev, fault in (("s1-ev1", "ev_fault"), ("s1-ev2", "ev_stuck")):
        w = next(w for w in faulted.windows(dev) if w.fault == fault)
        t, base, f = _cmp(sig, faulted, dev, w.start - 600, w.end + 600)
        inside = (t >= w.start) & (t < w.end)
        assert np.all(f["active_power"][inside] == 0) and base["active_power"][inside].max() > 0
        assert np.ptp(f["energy_import"][inside]) == 0 and np.all(np.diff(f["energy_import"]) >= 0)
        if fault == "ev_fault":
            assert np.all(f["charger_state"][inside] == 6) and np.all(f["ocpp_status"][inside] == 8)
            assert np.all(f["fault_code"][inside] == 17) and np.all(f["max_current_offered"][inside] == 0)
        else:
            assert np.all(f["charger_state"][inside] == 3) and np.all(f["ocpp_status"][inside] == 2)
            assert np.ptp(f["session_energy"][inside]) == 0
        assert np.all(f["fault_code"][~inside] == 0)


def test_meter_reset_restarts_counters_once(faulted):
    t = np.arange(local(2, 13), local(2, 15), 60.0)
    e = faulted.values_array("s1-feeder", t)["energy_import"]
    d = np.diff(e)
    assert (d < 0).sum() == 1
    assert e[t >= local(2, 14)][0] == pytest.approx(0.0, abs=1e-6)
    assert e[-1] > 1000


def test_live_inject_clear_and_active_faults(fleet):
    s = FleetSignals(fleet, seed=7)
    t0 = local(3, 11)
    before = s.values("s1-pv1", t0)["energy_export"]
    w = s.inject("s1-pv1", "inverter_trip", start=t0, event="GRID_DISCONNECT")
    assert s.values("s1-pv1", t0)["inverter_events"] == 16
    assert [f["fault"] for f in s.active_faults(t0 + 5)] == ["inverter_trip"]
    assert s.active_faults(t0 + 5)[0]["params"] == {"event": "GRID_DISCONNECT"}
    assert s.clear("s1-pv1", at=t0 + 600) == 1 and s.windows("s1-pv1")[0].end == t0 + 600
    assert w.end == math.inf                                               # the old record is not mutated
    assert s.active_faults(t0 + 700) == []
    v = s.values_array("s1-pv1", np.array([t0 + 599, t0 + 601]))
    assert v["active_power"][0] == 0 and v["active_power"][1] > 0
    assert s.values("s1-pv1", t0)["energy_export"] == before               # the past is not rewritten
    assert s.values("s1-pv1", t0 + 600)["energy_export"] - before < 0.05   # nothing produced while tripped
    assert s.behaviour("s1-pv1", t0) == "normal"


@pytest.mark.parametrize("call, match", [
    (lambda s: s.inject("nope", "inverter_trip"), "unknown device 'nope'"),
    (lambda s: s.inject("s1-pv1", "meltdown"), "unknown fault 'meltdown'"),
    (lambda s: s.inject("s1-main", "inverter_trip"), "does not apply to meter"),
    (lambda s: s.inject("s1-pv1", "string_loss", mppt=9), "'mppt' must be in 1..4"),
    (lambda s: s.inject("s1-main", "low_power_factor", pf="low"), "'pf' must be a number"),
    (lambda s: s.inject("s1-main", "low_power_factor", power=3), "unknown parameter 'power'"),
    (lambda s: s.inject("s1-pv1", "device_exceptions", code=300), "Modbus exception code"),
    (lambda s: s.inject("s1-pv1", "inverter_trip", start=10.0, end=5.0), "must be after start"),
    (lambda s: s.schedule([("s1-pv1", "inverter_trip")]), "schedule entry #0"),
    (lambda s: s.values("s1-main", 1.0e9), "before 2025-01-01"),
])
def test_bad_input_is_named(fleet, call, match):
    s = FleetSignals(fleet, seed=7)
    with pytest.raises((ValueError, KeyError), match=match):
        call(s)


def test_fault_table_kinds_are_known():
    for name, (kinds, _defaults) in FAULT_TYPES.items():
        assert kinds and set(kinds) <= {"meter", "transformer", "pv_inverter", "ev_charger"}, name
    assert {"inverter_trip", "string_loss", "transformer_overtemp", "low_power_factor", "harmonic_distortion",
            "phase_unbalance", "voltage_sag", "device_silent", "device_exceptions", "ev_fault", "ev_stuck",
            "meter_reset"} <= set(FAULT_TYPES)


def test_counters_stay_monotonic_through_power_faults(faulted):
    t = np.arange(local(1, 0), local(3, 0), 60.0)
    for dev in ("s1-main", "s1-pv1", "s1-pv2", "s1-ev1", "s1-ev2"):
        v = faulted.values_array(dev, t)
        for c in ("energy_import", "energy_export", "reactive_energy_import"):
            if c in v:
                assert np.all(np.diff(v[c]) >= 0), (dev, c)
    assert math.isfinite(faulted.values("s1-main", local(2, 12))["demand_active_power_max"])


# ----------------------------------------------------------------------------------------- control server
@pytest.fixture
def control(fleet):
    s = FleetSignals(fleet, seed=7)
    with ControlServer(s) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        yield s, srv.url


def test_control_inject_list_clear(control):
    s, url = control
    rec = inject_remote(url, "s1-pv1", "device_exceptions", {"code": 6})
    assert rec["device"] == "s1-pv1" and rec["params"] == {"code": 6} and rec["end"] is None
    assert s.behaviour("s1-pv1") == 6
    assert [f["fault"] for f in list_remote(url)] == ["device_exceptions"]
    inject_remote(url, "s1-main", "low_power_factor", {"pf": 0.7}, duration_s=3600)
    assert s.values("s1-main", __import__("time").time() + 1)["power_factor"] == pytest.approx(0.7)
    assert clear_remote(url, "s1-pv1", "device_exceptions") == 1
    assert s.behaviour("s1-pv1") == "normal"
    assert clear_remote(url, "s1-main") == 1
    assert list_remote(url) == []


@pytest.mark.parametrize("body, match", [
    ({"device": "ghost", "fault": "inverter_trip"}, "unknown device 'ghost'"),
    ({"device": "s1-pv1", "fault": "meltdown"}, "unknown fault 'meltdown'"),
    ({"device": "s1-main", "fault": "ev_fault"}, "does not apply to meter"),
    ({"device": "s1-pv1", "fault": "string_loss", "params": {"mppt": 0}}, "'mppt' must be in 1..4"),
    ({"device": "s1-pv1"}, "'fault' is required"),
    ({"device": "s1-pv1", "fault": "inverter_trip", "when": 1}, "unknown key 'when'"),
    ({"device": "s1-pv1", "fault": "inverter_trip", "duration_s": -5}, "'duration_s' must be > 0"),
    ({"device": "s1-pv1", "fault": "inverter_trip", "start": 1.0e9}, "'start' .* is in the past"),
])
def test_control_bad_input_is_400_naming_the_problem(control, body, match):
    _s, url = control
    with pytest.raises(ControlError, match=match) as exc:
        _request("POST", url + "/faults", body)
    assert exc.value.status == 400


def test_control_raw_http_errors(control):
    import urllib.error
    import urllib.request
    _s, url = control
    req = urllib.request.Request(url + "/faults", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400 and "not valid JSON" in exc.value.read().decode()
    with pytest.raises(ControlError, match="unknown device 'nobody'"):
        clear_remote(url, "nobody")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url + "/nothing", timeout=5)
    assert exc.value.code == 404
    with urllib.request.urlopen(url + "/faults/types", timeout=5) as resp:
        types = __import__("json").loads(resp.read())["types"]
    assert types["voltage_sag"]["params"] == {"depth": 0.3, "phases": [1, 2, 3]}


@settings(max_examples=25, deadline=None)
@given(a=st.floats(0, 60 * DAY), gap=st.floats(0, 3 * DAY), dev=st.sampled_from(["s1-main", "s1-pv2", "s1-ev1"]))
def test_counters_never_decrease_between_any_two_times(sig, a, gap, dev):
    t1 = MON - 20 * DAY + a
    v1, v2 = sig.values(dev, t1), sig.values(dev, t1 + gap)
    for c in ("energy_import", "energy_export", "reactive_energy_import"):
        if c in v1:
            assert v2[c] >= v1[c], (dev, c, t1, gap)


def test_maximum_demand_restarts_with_the_month(sig):
    feb = pd.Timestamp("2026-02-01", tz=TZ).timestamp()
    before = sig.values("s1-main", feb - 60)
    t = np.arange(feb, feb + 2 * H, 60.0)
    v = sig.values_array("s1-main", t)
    assert v["demand_active_power_max"][-1] < before["demand_active_power_max"]   # night vs January's peak
    assert v["demand_active_power_max"][-1] == pytest.approx(v["demand_active_power"][:-1].max(), rel=0.01)


def test_warm_fills_the_caches(fleet):
    s = FleetSignals(fleet, seed=7)
    assert s.warm(local(3, 12)) > 0
    import time
    t0 = time.perf_counter()
    s.values("s1-feeder", local(3, 12.5))
    assert time.perf_counter() - t0 < 0.5


def test_behaviour_answers_while_a_cold_computation_runs(fleet):
    import threading
    import time

    s = FleetSignals(fleet, seed=11)
    s.inject("s1-pv1", "device_silent", start=time.time())
    worker = threading.Thread(target=s.values, args=("s1-main", time.time()))   # cold: integrates from ORIGIN
    worker.start()
    try:
        time.sleep(0.05)
        t0 = time.perf_counter()
        assert s.behaviour("s1-pv1") == "silent" and s.behaviour("s1-main") == "normal"
        assert time.perf_counter() - t0 < 0.2
        assert worker.is_alive(), "the cold computation should still be running"
    finally:
        worker.join(timeout=120)


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


def test_a_window_starting_on_the_counter_origin_day():
    """values_array for a day starting at local midnight of 2026-01-01 (the counters' origin) on a fresh
    model used to fail with 'min() arg is an empty sequence'."""
    from pathlib import Path

    from core.config import load_fleet
    from simulators.signals import FleetSignals

    fleet = load_fleet(Path(__file__).resolve().parents[1] / "sites.example.toml")
    sig = FleetSignals(fleet)
    t0 = 1767196800.0            # 2026-01-01 00:00 Asia/Shanghai
    out = sig.values_array("acme-plant1-t1-meter", np.arange(t0, t0 + 3600, 60.0))
    assert np.all(np.diff(out["energy_import"]) >= 0)


def test_memoised_history_equals_a_fresh_evaluation(fleet):
    """The live simulator memoises completed fault windows (counter offsets, monthly max demand) and
    counters at fixed instants; every value must equal what a memo-free evaluation gives — before,
    inside and after windows, and after a fault is injected or cleared (the memo key changes)."""
    sched = [("s1-pv1", "string_loss", local(0, 9), local(3, 15), {}),
             ("s1-pv2", "inverter_trip", local(1, 11), local(1, 13), {}),
             ("s1-main", "low_power_factor", local(2, 8), local(2, 10), {})]
    live, fresh = FleetSignals(fleet, seed=7), FleetSignals(fleet, seed=7)
    live.schedule(sched)
    fresh.schedule(sched)
    times = [local(0, 8), local(0, 12), local(1, 12), local(3, 14.9), local(3, 15.1), local(3, 15.3),
             local(4, 10), local(4, 10) + 5, local(4, 10) + 10]

    def check():
        for t in times:
            for dev in ("s1-main", "s1-feeder", "s1-pv1", "s1-pv2", "s1-ev1"):
                a = live.values(dev, t)
                fresh._window_memo.clear()
                fresh._counter_memo.clear()
                b = fresh.values(dev, t)
                assert a.keys() == b.keys()
                for k in a:
                    assert a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-9), (dev, t, k)

    check()
    check()                                      # second pass: answered from the memo
    for s in (live, fresh):
        s.inject("s1-pv2", "string_loss", start=local(3, 9), end=local(3, 16))
        s.clear("s1-pv1", "string_loss", at=local(2, 12))
    check()
    for s in (live, fresh):                      # inside a completed window: same extent, new content
        s.inject("s1-pv2", "inverter_trip", start=local(0, 10), end=local(0, 12))
    check()
