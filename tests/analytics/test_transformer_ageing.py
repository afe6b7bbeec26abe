"""Transformer ageing findings and life consumed, from simulated controller and meter data."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics import ageing
from analytics.assess import assess_site
from analytics.transformer_ageing import AgeingRules, ageing_series, life_per_day, transformer_ageing
from core.config import load_fleet
from core.units import NS
from simulators.signals import FleetSignals

ROOT = Path(__file__).resolve().parents[2]
FLEET = load_fleet(ROOT / "sites.example.toml")
SITE = FLEET.site("acme-office")            # one transformer, its meter and its temperature controller
TR = SITE.transformers[0]
DAY0 = datetime(2025, 7, 15, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def _sim(faults=(), hours: float = 24, step_s: int = 60, devices=(TR.temperature_controller, TR.meter)):
    sig = FleetSignals(FLEET, seed=3)
    for dev, fault, a, b, params in faults:
        sig.inject(dev, fault, start=a, end=b, **params)
    secs = DAY0 + np.arange(0, hours * 3600, step_s, dtype=float)
    data = {}
    for dev in devices:
        ch = sig.values_array(dev, secs)
        data[dev] = {"time_ns": (secs * 1e9).astype(np.int64), **ch}
    return data, int(secs[0] * NS), int((secs[-1] + step_s) * NS)


def test_overheated_windings_raise_one_finding_with_the_measured_rate():
    hot = (TR.temperature_controller, "transformer_overtemp", DAY0 + 10 * 3600, DAY0 + 14 * 3600, {"target_c": 140.0})
    data, a, b = _sim([hot])
    findings = [f for f in assess_site(SITE, data, a, b) if f.type == "transformer_ageing"]
    assert len(findings) == 1
    f = findings[0]
    assert f.device_id == TR.id and f.evidence["basis"] == "windings"
    # 140 °C winding + 15 K allowance = 155 °C hot spot: class F ages about 3.2 times the design rate
    rate = float(ageing.relative_ageing_dry(155.0, 155))
    assert f.evidence["hot_spot_c"] == pytest.approx(155.0, abs=0.5)
    assert f.evidence["rate"] == pytest.approx(rate, rel=0.05)
    assert f"老化速率 {f.evidence['rate']:.1f} 倍（热点 {f.evidence['hot_spot_c']:.0f} °C）" in f.explanation_zh
    assert f"{f.evidence['rate']:.1f} times the design rate" in f.explanation_en
    assert 2.5 <= f.evidence["hours"] <= 4.0          # the 4 h fault less the ramp and the 1 h on-delay


def test_normal_day_raises_nothing_and_still_counts_life():
    data, a, b = _sim()
    findings, life = transformer_ageing(SITE, data, a, b)
    assert findings == []
    lol = life[TR.id]
    assert lol.covered_days == pytest.approx(1.0, abs=0.01)
    assert 0 < lol.days_consumed < 0.5                 # a normal day ages the insulation less than the design


def test_a_high_rate_shorter_than_the_on_delay_is_no_finding():
    hot = (TR.temperature_controller, "transformer_overtemp", DAY0 + 10 * 3600, DAY0 + 11 * 3600, {"target_c": 145.0})
    data, a, b = _sim([hot])
    assert transformer_ageing(SITE, data, a, b, AgeingRules(on_delay_s=3600))[0] == []
    assert len(transformer_ageing(SITE, data, a, b, AgeingRules(on_delay_s=600))[0]) == 1


def test_without_a_controller_the_load_model_is_used():
    oil = dataclasses.replace(TR, temperature_controller=None, insulation="oil", rated_kva=100.0)
    site = dataclasses.replace(SITE, transformers=(oil,))
    data, a, b = _sim(devices=(TR.meter,))
    s = ageing_series(site, oil, data)
    assert s is not None and s.basis == "load"
    k = data[TR.meter]["apparent_power"] / 100e3        # the office load on a 100 kVA unit: overloaded
    assert np.nanmax(s.hot_spot_c) <= float(ageing.hot_spot_steady(np.nanmax(k), 30.0)) + 0.1
    findings, life = transformer_ageing(site, data, a, b)
    assert findings and all(f.evidence["basis"] == "load" for f in findings)
    days = life_per_day(s, np.array([a]))
    assert days[0] == pytest.approx(life[oil.id].days_consumed, rel=1e-6)


def test_a_meter_without_apparent_power_gives_it_from_active_and_reactive_or_pf():
    oil = dataclasses.replace(TR, temperature_controller=None, insulation="oil")
    site = dataclasses.replace(SITE, transformers=(oil,))
    data, a, b = _sim(devices=(TR.meter,))
    full = ageing_series(site, oil, data)
    m = data[TR.meter]
    s_va = np.hypot(m["active_power"], m["reactive_power"])
    bare = {TR.meter: {"time_ns": m["time_ns"], "active_power": m["active_power"], "reactive_power": m["reactive_power"]}}
    derived = ageing_series(site, oil, bare)
    assert derived is not None and derived.basis == "load"
    expected = ageing.hot_spot_dynamic(m["time_ns"], s_va / (oil.rated_kva * 1e3), 30.0)
    np.testing.assert_allclose(derived.hot_spot_c, expected, rtol=1e-9)
    assert full is not None
    assert ageing_series(site, oil, {TR.meter: {"time_ns": m["time_ns"], "active_power": m["active_power"]}}) is None
    nan = np.full(m["time_ns"].size, np.nan)       # columns of fields never written come back as NaN
    pf = {TR.meter: {"time_ns": m["time_ns"], "active_power": m["active_power"], "apparent_power": nan,
                     "reactive_power": nan, "power_factor": np.full(m["time_ns"].size, 0.8)}}
    by_pf = ageing_series(site, oil, pf)
    np.testing.assert_allclose(by_pf.hot_spot_c, ageing.hot_spot_dynamic(
        m["time_ns"], np.abs(m["active_power"]) / 0.8 / (oil.rated_kva * 1e3), 30.0), rtol=1e-9)


def _pair(k1: float, k2: float):
    t = (DAY0 + np.arange(0, 86400, 60, dtype=float)) * 1e9
    t = t.astype(np.int64)
    trs = tuple(dataclasses.replace(TR, id=f"t{i}", meter=f"m{i}", temperature_controller=None, insulation="oil",
                                    rated_kva=1000.0, replacement_cost_yuan=300_000.0) for i in (1, 2))
    site = dataclasses.replace(SITE, transformers=trs)
    data = {f"m{i}": {"time_ns": t, "apparent_power": np.full(t.size, k * 1e6)} for i, k in ((1, k1), (2, k2))}
    return site, data, int(t[0]), int(t[-1]) + 60 * NS


def test_balancing_two_parallel_transformers_is_priced_by_life_saved():
    from analytics.savings import calculation
    from analytics.transformer_ageing import load_sharing_saving

    site, data, a, b = _pair(1.2, 0.4)
    f = load_sharing_saving(site, data, a, b)
    assert f is not None and f.type == "saving_transformer_ageing"
    ev = f.evidence
    # steady state: 1.2 pu ages far faster than two units at 0.8 pu
    assert ev["t1_days_now"] > 5 * ev["t1_days_balanced"] and ev["t2_days_now"] < ev["t2_days_balanced"]
    per_day = 300_000.0 / (20 * 365.25)
    saved = (ev["t1_days_now"] - ev["t1_days_balanced"] + ev["t2_days_now"] - ev["t2_days_balanced"]) * round(per_day, 4)
    assert f.yuan_month == pytest.approx(saved * 30.4375 / ev["analysed_days"], abs=0.05)
    assert calculation(f, "en").endswith(f"= {f.yuan_month:,.1f} yuan/month")
    assert load_sharing_saving(*_pair(0.7, 0.7)) is None            # already balanced: nothing to save
