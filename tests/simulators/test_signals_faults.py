"""Every fault's effect on the signals (on arrays), and fault input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.signal_fleet import local

from simulators.signals import FAULT_TYPES, FleetSignals


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
    share = sig._sites["s1"].meter_roles["s1-main"][1]
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
        assert kinds and set(kinds) <= {"meter", "transformer", "pv_inverter", "ev_charger", "weather_station"}, name
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
