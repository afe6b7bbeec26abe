"""Detections that were missed or wrong: each case a known fault shape, found with the right evidence.

Data: the simulator's signal model (simulators.signals.FleetSignals), with faults injected through
its schedule or channels edited to a known shape.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics import assess
from analytics import faults as fl
from analytics.jobs import LIVE_RULES
from core.config import load_fleet
from core.units import NS
from simulators.signals import FleetSignals

H = 3600
DAY1 = 1772323200 + 86400            # Monday 2026-03-02 08:00 local
SITE = "acme-plant1"


@pytest.fixture(scope="module")
def fleet():
    return load_fleet("sites.example.toml")


def values(fleet, dev, t, faults=(), seed=41):
    sig = FleetSignals(fleet, seed=seed)
    sig.schedule(list(faults))
    return sig.values_array(dev, t) | {"time_ns": (t * NS).astype(np.int64)}


def check(fleet, dev, v, rules=None, step=60.0):
    t = v["time_ns"]
    return assess.assess_device(fleet.sites[SITE], fleet.devices[dev], v, int(t[0]), int(t[-1] + step * NS), None,
                                rules)


def types(findings):
    return sorted(f.type for f in findings)


# ---------------------------------------------------------------- EV charger voltage


def test_voltage_sag_on_an_ev_charger_is_found(fleet):
    tf_ = DAY1 + 3 * H
    t = np.arange(tf_ - 1800, tf_ + 600, 5.0)
    v = values(fleet, "acme-plant1-ev1", t, [("acme-plant1-ev1", "voltage_sag", tf_, tf_ + H, {})])
    f = [x for x in check(fleet, "acme-plant1-ev1", v, LIVE_RULES, 5.0) if x.type == "voltage_deviation"]
    assert len(f) == 1 and tf_ * NS <= f[0].start_ns <= (tf_ + 20) * NS
    assert f[0].evidence["deviation_pct"] < -25


# ---------------------------------------------------------------- NaN = missing, for every on-delay


def test_low_pf_found_with_30_percent_nan(fleet):
    tf_ = DAY1 + 2 * H
    t = np.arange(tf_ - H, tf_ + 2 * H, 60.0)
    v = values(fleet, "acme-plant1-t1-meter", t, [("acme-plant1-t1-meter", "low_power_factor", tf_, tf_ + 2 * H,
                                                   {})])
    rng = np.random.default_rng(8)
    for k in ("power_factor", "active_power", "apparent_power"):
        v[k] = np.where(rng.random(t.size) < 0.3, np.nan, v[k])
    f = [x for x in check(fleet, "acme-plant1-t1-meter", v) if x.type == "low_power_factor"]
    assert len(f) == 1, [(x.start_ns, x.end_ns) for x in f]
    assert tf_ * NS <= f[0].start_ns <= (tf_ + 900 + 300) * NS


def test_nan_and_missing_samples_are_alike_for_persistence():
    t = np.arange(20) * 60 * NS
    m = np.ones(20, bool)
    known = np.ones(20, bool)
    known[[3, 7, 11]] = False
    m[[3, 7, 11]] = False                                    # what a NaN comparison gives
    got = fl.persistent(m, t, 600, known=known)
    ref = np.zeros(20, bool)
    ref[10:] = True                                          # 600 s after the start, NaNs inside count as run
    assert got.tolist() == ref.tolist()
    keep = known
    assert got[keep].tolist() == fl.persistent(m[keep], t[keep], 600).tolist()   # = the samples were absent


# ---------------------------------------------------------------- energy counters


def _counter_run(fleet, dev, edit):
    t = np.arange(DAY1, DAY1 + 6 * H, 60.0)
    v = values(fleet, dev, t)
    v["energy_import"] = edit(t, v["energy_import"].copy())
    return [x for x in check(fleet, dev, v) if x.type == "counter_reset"], v


def test_replacement_meter_reading_higher_is_found_and_not_counted(fleet):
    jump = 34 * 1e6
    fs, v = _counter_run(fleet, "acme-plant1-t1-meter", lambda t, e: np.where(t >= DAY1 + 3 * H, e + jump, e))
    assert [(x.evidence["kind"], x.start_ns) for x in fs] == [("jump", (DAY1 + 3 * H) * NS)]
    real = float(np.nanmax(v["energy_import"]) - jump - v["energy_import"][0])
    got = fl.consumption_wh(v["energy_import"], **assess.dc.counter_bounds(
        fleet.sites[SITE], fleet.devices["acme-plant1-t1-meter"], v))
    assert abs(got - real) < 0.02 * real                     # the jump is not consumption


def test_reset_to_zero_is_a_reset_even_when_the_first_minute_is_large(fleet):
    def reset(t, e):
        i = int(np.searchsorted(t, DAY1 + 3 * H))
        return np.r_[e[:i], e[i:] - e[i - 1]]                # restarts from 0: the first sample holds a minute
    fs, v = _counter_run(fleet, "acme-plant1-t1-meter", reset)
    i = int(np.searchsorted(v["time_ns"], (DAY1 + 3 * H) * NS))
    assert v["energy_import"][i] > 1000                      # more than the old fixed 1 kWh "reset" bound
    assert [x.evidence["kind"] for x in fs] == ["reset"]


def test_second_reset_in_one_period_is_reported(fleet):
    def two(t, e):
        for at in (DAY1 + 2 * H, DAY1 + 4 * H):
            i = int(np.searchsorted(t, at))
            e = np.r_[e[:i], e[i:] - e[i - 1]]
        return e
    fs, _ = _counter_run(fleet, "acme-plant1-t1-meter", two)
    assert [(x.evidence["kind"], x.start_ns) for x in fs] == [("reset", (DAY1 + 2 * H) * NS),
                                                               ("reset", (DAY1 + 4 * H) * NS)]


# ---------------------------------------------------------------- PV strings / MPPT inputs


def _without_sensor(v):
    return {k: a for k, a in v.items() if k not in ("irradiance_poa", "temperature_module")}


def test_string_loss_on_an_overcast_day_is_one_finding(fleet):
    """DAY1 is overcast at this seed (POA 45-245 W/m², around the old fixed 200 W/m² gate)."""
    t = np.arange(DAY1 - 2 * H, DAY1 + 12 * H, 60.0)
    v = values(fleet, "acme-plant1-pv2", t, [("acme-plant1-pv2", "string_loss", DAY1 - 2 * H, DAY1 + 12 * H,
                                              {"mppt": 2})])
    assert np.nanmax(v["irradiance_poa"]) < 260
    f = [x for x in check(fleet, "acme-plant1-pv2", v) if x.type == "string_mismatch"]
    assert [x.evidence["input"] for x in f] == ["mppt2_dc_current"]
    assert f[0].start_ns <= DAY1 * NS and f[0].evidence["deficit_pct"] > 90      # by 08:00 local, POA 50-80 W/m²


def test_string_finding_holds_through_clouds_and_clears_after_repair(fleet):
    t = np.arange(DAY1 - 2 * H, DAY1 + 12 * H, 60.0)
    end = DAY1 + 4 * H
    v = values(fleet, "acme-plant1-pv2", t, [("acme-plant1-pv2", "string_loss", DAY1 - 2 * H, end, {"mppt": 2})])
    v["irradiance_poa"] = np.where((t // 600) % 2 == 1, 20.0, v["irradiance_poa"])   # 10-min cloud gaps
    for k in range(1, 5):
        v[f"mppt{k}_dc_current"] = np.where((t // 600) % 2 == 1, 0.3, v[f"mppt{k}_dc_current"])
    f = [x for x in check(fleet, "acme-plant1-pv2", v) if x.type == "string_mismatch"]
    assert len(f) == 1 and end * NS <= f[0].end_ns <= (end + 1200) * NS


def test_three_of_four_mppt_lost_without_sensor(fleet):
    tf_ = DAY1 + 86400 + 2 * H                                   # a sunny day at this seed
    t = np.arange(tf_ - 2 * H, tf_ + 2 * H, 60.0)
    v = _without_sensor(values(fleet, "acme-plant1-pv2", t, [
        ("acme-plant1-pv2", "string_loss", tf_, tf_ + 4 * H, {"mppt": k}) for k in (1, 2, 3)]))
    f = [x for x in check(fleet, "acme-plant1-pv2", v) if x.type == "string_mismatch"]
    assert sorted(x.evidence["input"] for x in f) == ["mppt1_dc_current", "mppt2_dc_current", "mppt3_dc_current"]
    assert all(tf_ * NS <= x.start_ns <= (tf_ + 900 + 120) * NS for x in f)


# ---------------------------------------------------------------- device clock


@pytest.mark.parametrize("offset_h", [8, -8])
def test_inverter_clock_8_h_off_is_found(fleet, offset_h):
    """An inverter stamping its readings 8 h off produces 'at night': the sun is the reference clock."""
    t = np.arange(DAY1 - 8 * H, DAY1 + 40 * H, 60.0)
    v = values(fleet, "acme-plant1-pv1", t)
    v["time_ns"] = ((t + offset_h * H) * NS).astype(np.int64)
    f = [x for x in check(fleet, "acme-plant1-pv1", v) if x.type == "clock_offset"]
    assert f and abs(f[0].evidence["offset_h"] - offset_h) < 0.75, [x.evidence for x in f]
    assert f"{offset_h:+.1f} h" in f[0].explanation_en


def test_inverter_clock_offset_seen_in_the_live_window(fleet):
    tn = DAY1 + 13 * H                                            # 21:00 local at the stamps, 13:00 in truth
    t = np.arange(tn - 8 * H - 2100, tn - 8 * H, 5.0)
    v = values(fleet, "acme-plant1-pv1", t)
    v["time_ns"] = ((t + 8 * H) * NS).astype(np.int64)
    f = [x for x in check(fleet, "acme-plant1-pv1", v, LIVE_RULES, 5.0) if x.type == "clock_offset"]
    assert len(f) == 1 and f[0].evidence["offset_h"] is None      # too short a window to estimate the offset
