"""Money figures per month: window-length invariance, evidence that recomputes, contract demand rounding.

A 元/month figure must not depend on how many days were analysed (a monthly price is never
rescaled, a window energy always is), and every figure must be recomputable from the
evidence printed beside it.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from analytics import savings as sv
from analytics import tariffs as tf

MIN = 60 * 10**9
DAY = 1440 * MIN
T0 = int(np.datetime64("2026-03-01T16:00", "ns").astype(np.int64))   # 2026-03-02 00:00 Asia/Shanghai, Monday
WINDOWS = (7, 14, 28, 30.4375, 31)


def window(days: float) -> np.ndarray:
    return T0 + np.arange(int(round(days * 1440))) * MIN


def test_pf_correction_monthly_base_is_not_rescaled_by_a_7_day_window():
    """P 500 kW, Q 300 kvar (PF 0.86: +2.00 %, 0.95: -0.75 %), base 80,000 元/month over 7 days."""
    t = window(7)
    f = sv.pf_correction("s1", t, np.full(t.size, 500.0), np.full(t.size, 300.0), adjustment_base_yuan=80000)
    assert f.evidence["adjust_pct_now"] == 2.0 and f.evidence["adjust_pct_target"] == -0.75
    assert_allclose(f.yuan_month, 2200.0, atol=0.05)
    assert f.evidence["payback_months"] == 7.2
    assert f.evidence["analysed_days"] == 7.0 and f.evidence["adjustment_base_yuan_month"] == 80000


def test_site_adjustment_base_scales_only_the_energy_charge():
    """A 7-day energy charge of 14,000 元 is 60,875 元/month; a 36,000 元/month basic charge stays."""
    assert sv.adjustment_base(14000.0, 7.0, 36000.0) == 14000 * 30.4375 / 7 + 36000
    assert sv.adjustment_base(14000.0, 28.0, 36000.0) == 14000 * 30.4375 / 28 + 36000


def test_contract_demand_is_rounded_up_out_of_the_penalty_band():
    """D_max 699.72 kW: 666 kW × 1.05 = 699.3 < 699.72 would be charged double; 667 kW is the answer."""
    c, margin = sv.contract_demand(699.72, 1.05)
    assert c == 667 and 1.05 * c >= 699.72
    assert margin == round(1.05 * 667 - 699.72, 2)
    assert sv.contract_demand(699.72, 1.05, floor_kw=800)[0] == 800
    c5, m5 = sv.contract_demand(699.72, 1.05, headroom_pct=5)
    assert 1.05 * c5 >= 699.72 * 1.05 and m5 >= 0.05 * 699.72 - 1e-9


@given(st.floats(1.0, 5000.0), st.floats(1.0, 1.15))
def test_contract_demand_never_charges_the_observed_maximum_double(d, threshold):
    c, margin = sv.contract_demand(d, threshold)
    assert threshold * c >= d and margin >= 0
    assert c == math.floor(c) and threshold * (c - 1) < d      # the smallest such whole kW


def test_basic_charge_advice_shows_current_and_proposed_charge_and_margin():
    t = window(28)
    tar = tf.load_tariff("sichuan_large_industry_2023")                 # 23 元/kVA, 32 元/kW
    p = np.full(t.size, 400.0)
    p[2000:2030] = 699.72
    f = sv.basic_charge_choice("s1", t, p, 1250, tar)
    ev = f.evidence
    assert ev["best"] == "demand_contract" and ev["recommended_contract_kw"] == 667
    assert 1.05 * ev["recommended_contract_kw"] >= ev["max_demand_kw"]
    assert ev["current_yuan"] == 28750 and ev["best_yuan"] == 32 * 667
    assert "28,750 元/月" in f.explanation_zh and f"{32 * 667:,} 元/月" in f.explanation_zh
    assert "28,750 yuan/month" in f.explanation_en
    assert "667 kW" in f.recommendation_zh and "0.4 kW" in f.recommendation_zh   # 700.35 - 699.72
    assert "基本电费 按" not in f.explanation_zh


# ---------------------------------------------------------------- (a) window invariance


def _stationary(t: np.ndarray, levels: list[float]) -> np.ndarray:
    """The same 24-hour profile every day (hourly levels, local time)."""
    hour = tf.local_fields(t, "Asia/Shanghai")["minute"] // 60
    return np.asarray(levels)[hour]


def _all_findings(days: float, p_levels, q_ratio, ev_levels, pv_peak, base_yuan):
    t = window(days)
    tar = tf.load_tariff("sichuan_large_industry_2023")
    p = _stationary(t, p_levels)
    hour = tf.local_fields(t, tar.timezone)["minute"] // 60
    pv = np.where((hour >= 9) & (hour < 16), pv_peak, 0.0)
    everyday = (0, 1, 2, 3, 4, 5, 6)            # stationary: no weekly cycle
    return [
        sv.pf_correction("s", t, p, p * q_ratio, base_yuan, rated_kva=1600, pk_kw=14.5, price_yuan_per_kwh=0.6),
        sv.basic_charge_choice("s", t, p, 1600, tar),
        sv.peak_shaving("s", t, p, tar),
        sv.tou_shift("s", t, _stationary(t, ev_levels), tar, 0.5, "ev_valley_charging"),
        sv.transformer_operation("s", t, p * np.hypot(1, q_ratio), [800, 800], [1.0, 1.0], [7.5, 7.5], 0.6),
        sv.base_load_waste("s", t, p, tar, work_days=everyday),
        sv.pv_self_consumption("s", t, pv, p - pv, tar),
    ]


levels = st.lists(st.floats(50.0, 900.0), min_size=24, max_size=24)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(levels, st.floats(0.1, 0.9), st.lists(st.floats(0.0, 60.0), min_size=24, max_size=24),
       st.floats(0.0, 800.0), st.floats(1e4, 5e5))
def test_monthly_figures_do_not_depend_on_the_window(p_levels, q_ratio, ev_levels, pv_peak, base_yuan):
    """For a load with the same day every day, 元/month and kWh/month agree for 7..31-day windows.

    Whole-day windows agree to rounding.  The 30.4375-day window holds 31 of the hours 00:00-10:30
    and 30 of the others, so a figure living only in those hours may be up to 31 / 30.4375 − 1 =
    1.85 % higher: the bound below, far under the ×4.35 of a monthly price rescaled by a 7-day window.
    """
    runs = {d: _all_findings(d, p_levels, q_ratio, ev_levels, pv_peak, base_yuan) for d in WINDOWS}
    for i, ref in enumerate(runs[7]):
        for d in WINDOWS[1:]:
            f = runs[d][i]
            assert f.type == ref.type
            rel, tol = (31 / 30.4375 - 1 + 1e-3, 0.5) if d == 30.4375 else (1e-6, 0.11)    # figures are rounded to 0.1
            for name in ("yuan_month", "kwh_month"):
                a, b = getattr(ref, name), getattr(f, name)
                assert a == pytest.approx(b, rel=rel, abs=tol), (ref.type, name, d, a, b)


@pytest.mark.parametrize("days_in_month", [28, 29, 30, 31])
def test_report_month_length_does_not_change_the_pf_saving(days_in_month):
    """February's 28 days give the same PF saving per month as a 31-day month for the same load."""
    t = window(days_in_month)
    energy_yuan = 500 * 24 * days_in_month * 0.6                      # the month's energy charge
    base = sv.adjustment_base(energy_yuan, days_in_month, 36000.0)
    f = sv.pf_correction("s1", t, np.full(t.size, 500.0), np.full(t.size, 300.0), base)
    assert_allclose(f.yuan_month, 0.0275 * (500 * 24 * 30.4375 * 0.6 + 36000), atol=0.06)


# ---------------------------------------------------------------- (b) evidence recomputes


def _period_sum(amounts: dict, prices: dict, less: float) -> float:
    return sum(v * max(prices[k] - less, 0.0) for k, v in amounts.items())


RECOMPUTE = {
    "saving_pf_correction": lambda e: max(0.0, (e["adjust_pct_now"] - e["adjust_pct_target"]) / 100
                                          * e["adjustment_base_yuan_month"])
    + e["loss_kwh"] * 30.4375 / e["analysed_days"] * e["price_yuan_per_kwh"],
    "saving_basic_charge": lambda e: e["current_yuan"] - e["best_yuan"],
    "saving_peak_shaving": lambda e: (e["max_demand_kw"] - e["cap_kw"]) * e["demand_price"] * e["demand_billed"],
    "saving_tou_shift": lambda e: _period_sum(e["kwh_moved"], e["prices"], e["prices"][e["to_period"]])
    * 30.4375 / e["analysed_days"],
    "saving_transformer_operation": lambda e: e["loss_saved_kwh"] * 30.4375 / e["analysed_days"]
    * e["price_yuan_per_kwh"],
    "saving_base_load": lambda e: _period_sum(e["waste_kwh_by_period"], e["prices"], 0.0) * 30.4375
    / e["analysed_days"],
    "saving_pv_self_consumption": lambda e: e["shift_fraction"] * _period_sum(
        e["export_kwh_by_period"], e["prices"], e["feed_in_yuan_per_kwh"]) * 30.4375 / e["analysed_days"],
}
RECOMPUTE["saving_ev_valley_charging"] = RECOMPUTE["saving_tou_shift"]


@settings(max_examples=10, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(st.sampled_from([3, 7, 12.5, 28, 31]), st.integers(0, 2**31), st.floats(0.1, 0.9))
def test_every_yuan_month_recomputes_from_its_evidence_alone(days, seed, q_ratio):
    """Noisy load, any window: each finding's 元/month equals the sum of its printed evidence numbers."""
    rng = np.random.default_rng(seed)
    levels = list(rng.uniform(80, 900, 24))
    ev_levels = list(rng.uniform(0, 60, 24))
    found = _all_findings(days, levels, q_ratio, ev_levels, float(rng.uniform(0, 800)), float(rng.uniform(1e4, 5e5)))
    found.append(sv.tou_shift("s", window(days), _stationary(window(days), ev_levels), tf.load_tariff(
        "sichuan_large_industry_2023"), 0.3))
    assert {f.type for f in found} == {f"saving_{k}" for k in sv.FINDING_KINDS} == set(RECOMPUTE)
    for f in found:
        assert f.evidence["analysed_days"] == pytest.approx(days, abs=1e-6), f.type
        assert f.yuan_month == pytest.approx(RECOMPUTE[f.type](f.evidence), abs=0.051), f.type
        text = sv.calculation(f, "zh")
        assert text.endswith(f"= {f.yuan_month:,.1f} 元/月") and "yuan" not in text
        assert sv.calculation(f, "en").endswith(f"= {f.yuan_month:,.1f} yuan/month")


def test_peak_shaving_saves_nothing_under_capacity_billing():
    """A capacity-billed site does not pay for its peak: shaving it is worth 0 元, and the finding says so."""
    t = window(28)
    tar = tf.load_tariff("sichuan_large_industry_2023")
    p = np.full(t.size, 400.0)
    p[5000:5020] = 900.0
    demand, capacity = (sv.peak_shaving("s1", t, p, tar, demand_billed=b) for b in (True, False))
    assert demand.yuan_month == pytest.approx(500 * 32) and capacity.yuan_month == 0.0
    assert capacity.kwh_month == demand.kwh_month and "按容量计收" in capacity.recommendation_zh
    assert RECOMPUTE["saving_peak_shaving"](capacity.evidence) == 0.0
