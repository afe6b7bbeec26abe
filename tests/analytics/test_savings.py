"""Known-value tests for analytics.savings (docs/standards.md §§5-9 [C] vectors and worked examples)."""

import tomllib

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import savings as sv
from analytics import tariffs as tf
from core.model import Finding

MIN = 60 * 10**9
H = 60 * MIN
N_MONTH = int(30.4375 * 1440)                      # exactly one analysis month at 1 min
T0 = int(np.datetime64("2026-03-01T00:00", "ns").astype(np.int64)) - 8 * H   # local midnight, Monday 2026-03-02 - 1 d


def month_t():
    return T0 + np.arange(N_MONTH) * MIN


def tariff(**basic):
    data = tomllib.loads((tf.TARIFF_DIR / "sichuan_large_industry_2023.toml").read_text())
    data["basic"].update(basic)
    return tf.parse_tariff(data)


def test_formula_vectors():
    assert_allclose(sv.capacitor_kvar(500, 0.80, 0.95), 210.6579474, rtol=1e-9)
    assert_allclose(sv.capacitor_kvar(500, 0.86, 0.95), 132.3405247, rtol=1e-9)
    assert_allclose(np.tan(np.arccos(0.95)), 0.3286841052, rtol=1e-9)
    assert_allclose(sv.economic_load_rate(1.15, 10.3), 0.3341, atol=5e-5)
    assert_allclose(sv.economic_load_rate(1.15, 10.3, 7, 45, 0.1), 0.35355, atol=5e-6)
    assert_allclose(sv.transformer_losses([0.5, 1.0], 1.15, 10.3), [3.725, 11.45])
    assert_allclose(sv.transformer_losses(0.5, 1.15, 10.3) * 8760, 32631, atol=0.5)
    assert_allclose(sv.economic_load_rate(1.77, 8.13), 0.4666, atol=5e-5)
    with pytest.raises(ValueError, match="pf_from"):
        sv.capacitor_kvar(500, 0, 0.95)


def test_pf_correction_priced():
    t = month_t()
    f = sv.pf_correction("s1", t, np.full(t.size, 500.0), np.full(t.size, 300.0), adjustment_base_yuan=80000)
    assert isinstance(f, Finding) and f.type == "saving_pf_correction"
    assert f.evidence["pf_month"] == 0.86 and f.evidence["adjust_pct_now"] == 2.0
    assert_allclose(f.yuan_month, (2.0 + 0.75) / 100 * 80000, atol=0.1)
    assert_allclose(f.evidence["kvar_to_install"], 132.3, atol=0.05)
    assert f.kwh_month == 0.0 and f.inputs["target_pf"] == 0.95
    # with a transformer: the load-loss reduction adds kWh
    g = sv.pf_correction("s1", t, np.full(t.size, 500.0), np.full(t.size, 300.0), 80000, rated_kva=1000,
                         pk_kw=10.3, price_yuan_per_kwh=0.6)
    s_new = np.hypot(500, 500 * np.tan(np.arccos(0.95)))
    loss = 10.3 * ((np.hypot(500, 300) / 1000) ** 2 - (s_new / 1000) ** 2) * N_MONTH / 60
    assert_allclose(g.kwh_month, loss, atol=0.1)
    assert_allclose(g.yuan_month, 2200 + loss * 0.6, atol=0.2)
    ok = sv.pf_correction("s1", t, np.full(t.size, 500.0), np.full(t.size, 100.0), 80000)
    assert ok.evidence["kvar_to_install"] == 0 and ok.yuan_month == 0


def test_basic_charge_choice_vectors():
    t = month_t()
    tar = tariff(capacity_yuan_per_kva_month=30.0, demand_yuan_per_kw_month=40.0)
    p = np.full(t.size, 400.0)
    p[1000:1030] = 800.0
    f = sv.basic_charge_choice("s1", t, p, 1250, tar)
    assert f.evidence["breakeven_kw"] == 937.5 and f.evidence["floor_kw"] == 500
    assert f.evidence["options_yuan"]["capacity"] == 37500
    assert f.evidence["best"] == "demand_contract"
    assert_allclose(f.evidence["recommended_contract_kw"], 762)          # 800 / 1.05 = 761.9, rounded up
    assert_allclose(f.yuan_month, 37500 - 40 * 762, atol=0.1)
    # above the break-even, capacity billing stays best: nothing to gain
    p[:] = 1000.0
    g = sv.basic_charge_choice("s1", t, p, 1250, tar)
    assert g.evidence["best"] == "capacity" and g.yuan_month == 0


def test_peak_shaving():
    t = month_t()
    p = np.full(t.size, 400.0)
    p[5000:5020] = 900.0                  # one 20-min peak
    f = sv.peak_shaving("s1", t, p, tariff(demand_yuan_per_kw_month=40.0))
    assert f.evidence["max_demand_kw"] == 900 and f.evidence["cap_kw"] == 400
    assert_allclose(f.yuan_month, 500 * 40)
    assert_allclose(f.kwh_month, 500 * 20 / 60, atol=0.1)
    assert f.evidence["peaks"][0]["demand_kw"] == 900
    assert t[5000 - 14] <= f.evidence["peaks"][0]["start_ns"] <= t[5005]


def test_tou_shift_ev_valley_charging():
    t = month_t()
    tar = tf.load_tariff("beijing_ev_charging_2016")
    minute = ((t - T0) // MIN) % 1440
    ev = np.where((minute >= 600) & (minute < 900), 7.0, 0.0)   # 10:00-15:00 local, 7 kW: peak
    f = sv.tou_shift("s1", t, ev, tar, shift_fraction=1.0, kind="ev_valley_charging", device_id="ev1")
    kwh = 7.0 * np.count_nonzero(ev) / 60
    assert_allclose(f.kwh_month, kwh, atol=0.1)
    assert_allclose(f.yuan_month, kwh * (1.0044 - 0.3946), atol=0.1)
    assert f.type == "saving_ev_valley_charging" and f.device_id == "ev1"
    with pytest.raises(ValueError, match="shift_fraction"):
        sv.tou_shift("s1", t, ev, tar, shift_fraction=2)


def test_transformer_operation_two_units():
    t = month_t()
    f = sv.transformer_operation("s1", t, np.full(t.size, 300.0), [1000, 1000], [1.15, 1.15], [10.3, 10.3],
                                 price_yuan_per_kwh=0.6)
    diff = (2 * 1.15 + 2 * 10.3 * 0.15**2) - (1.15 + 10.3 * 0.3**2)
    assert_allclose(f.kwh_month, diff * N_MONTH / 60, atol=0.1)
    assert_allclose(f.evidence["critical_kva"], 472.5, atol=0.05)
    assert f.evidence["share_of_time_one_unit_enough"] == 1.0
    g = sv.transformer_operation("s1", t, np.full(t.size, 900.0), [1000, 1000], [1.15, 1.15], [10.3, 10.3], 0.6)
    assert g.kwh_month == 0 and g.yuan_month == 0


def test_base_load_waste():
    t = month_t()
    tar = tf.load_tariff("sichuan_large_industry_2023")
    loc = tf.local_fields(t, tar.timezone)
    hour = loc["minute"] // 60
    work = (loc["weekday"] < 5) & (hour >= 8) & (hour < 18)
    p = np.where(work, 600.0, 100.0)
    p[~work & (loc["day"] % 7 == 0)] = 50.0        # one night/weekend day in seven reaches 50 kW
    f = sv.base_load_waste("s1", t, p, tar)
    assert f.evidence["off_hours_floor_kw"] == 50 and f.evidence["off_hours_median_kw"] == 100
    n_excess = np.sum(~work & (p == 100.0))
    assert_allclose(f.kwh_month, 50 * n_excess / 60, atol=0.1)
    assert f.yuan_month > 0
    with pytest.raises(ValueError, match="work hours"):
        sv.base_load_waste("s1", t, p, tar, 18, 8)


def test_pv_self_consumption_and_rank():
    t = month_t()
    tar = tf.load_tariff("beijing_ev_charging_2016")
    minute = ((t - T0) // MIN) % 1440
    pv = np.where((minute >= 600) & (minute < 900), 100.0, 0.0)     # 100 kW 10-15 local (peak)
    grid = np.where(pv > 0, -40.0, 80.0)                             # 40 kW exported while producing
    f = sv.pv_self_consumption("s1", t, pv, grid, tar, feed_in_yuan_per_kwh=0.4, shift_fraction=0.5)
    export_kwh = 40 * np.count_nonzero(pv) / 60
    assert_allclose(f.evidence["self_consumption_ratio"], 0.6)
    assert_allclose(f.yuan_month, 0.5 * export_kwh * (1.0044 - 0.4), atol=0.1)
    ranked = sv.rank([f._replace(yuan_month=1.0), f, f._replace(yuan_month=None)])
    assert [r.yuan_month for r in ranked] == [f.yuan_month, 1.0, None]
