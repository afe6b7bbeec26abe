"""analytics.baseline: daily regression baseline, Guideline 14 statistics, avoided energy with its band."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import baseline as bl

TRUE = {"intercept": 1000.0, "sat": -300.0, "sun": -600.0, "hdd": 20.0, "cdd": 35.0}


def conditions(n: int, seed: int, t0: float = 8.0, t1: float = 30.0):
    """n days: day types 0 working / 1 Saturday / 2 Sunday, temperatures sweeping t0..t1 with wiggle."""
    rng = np.random.default_rng(seed)
    weekday = np.arange(n) % 7
    day_type = np.where(weekday == 5, 1, np.where(weekday == 6, 2, 0)).astype(np.int64)
    temp = np.linspace(t0, t1, n) + rng.normal(0, 2.0, n)
    return day_type, temp


def truth(day_type, temp):
    return (TRUE["intercept"] + TRUE["sat"] * (day_type == 1) + TRUE["sun"] * (day_type == 2)
            + TRUE["hdd"] * np.maximum(0, 18 - temp) + TRUE["cdd"] * np.maximum(0, temp - 18))


def test_degree_days_and_daily_sums():
    t = np.array([10.0, 18.0, 25.5, np.nan])
    assert np.array_equal(bl.degree_days(t, 18, "heating")[:3], [8.0, 0.0, 0.0])
    assert np.array_equal(bl.degree_days(t, 18, "cooling")[:3], [0.0, 0.0, 7.5])
    assert np.isnan(bl.degree_days(t, 18, "cooling")[3])
    with pytest.raises(ValueError, match="kind"):
        bl.degree_days(t, 18, "both")
    idx = np.array([0, 0, 0, 1, 1, 2, 5])                  # day 5 is outside n_days = 3: ignored
    v = np.array([1.0, 2.0, np.nan, 4.0, 6.0, np.nan, 9.0])
    mean, cov = bl.daily_sums(idx, v, 3, expected_per_day=4)
    assert mean[0] == 1.5 and mean[1] == 5.0 and np.isnan(mean[2])
    assert np.array_equal(cov, [0.5, 0.5, 0.0])


def test_fit_recovers_known_coefficients_exactly_without_noise():
    d, t = conditions(63, 1)
    m = bl.fit_baseline(truth(d, t), d, t)
    c = m.coefficients()
    assert m.terms == ("intercept", "day_type_1", "day_type_2", "hdd", "cdd")
    assert m.reference_day_type == 0 and m.p == 5 and m.n == 63 and m.n_excluded == 0
    assert c["intercept"] == pytest.approx(TRUE["intercept"], abs=1e-8)
    assert c["day_type_1"] == pytest.approx(TRUE["sat"], abs=1e-8)
    assert c["day_type_2"] == pytest.approx(TRUE["sun"], abs=1e-8)
    assert c["hdd"] == pytest.approx(TRUE["hdd"], abs=1e-8)
    assert c["cdd"] == pytest.approx(TRUE["cdd"], abs=1e-8)
    assert m.r2 == pytest.approx(1.0) and m.cv_rmse_pct < 1e-9
    assert np.allclose(bl.predict(m, d, t), truth(d, t))


def test_fit_with_noise_recovers_coefficients_within_their_scatter():
    d, t = conditions(90, 2)
    e = truth(d, t) + np.random.default_rng(3).normal(0, 15.0, d.size)
    m = bl.fit_baseline(e, d, t)
    c = m.coefficients()
    assert c["intercept"] == pytest.approx(TRUE["intercept"], abs=25)
    assert c["day_type_1"] == pytest.approx(TRUE["sat"], abs=15)
    assert c["day_type_2"] == pytest.approx(TRUE["sun"], abs=15)
    assert c["hdd"] == pytest.approx(TRUE["hdd"], abs=3)
    assert c["cdd"] == pytest.approx(TRUE["cdd"], abs=3)
    assert m.rmse_kwh == pytest.approx(15.0, rel=0.25)
    assert m.meets_guideline14 and 0 < m.cv_rmse_pct < 3 and abs(m.nmbe_pct) < 1e-9


def test_guideline14_statistics_against_hand_computation():
    y = np.array([10.0, 12.0, 14.0, 13.0])
    # residuals 0, 1, 1, 1: SSE 3, n - p = 2, mean 12.25, SST 8.75
    g = bl.goodness_of_fit(y, np.array([10.0, 11.0, 13.0, 12.0]), p=2)
    assert g["rmse"] == pytest.approx(1.5 ** 0.5)
    assert g["cv_rmse_pct"] == pytest.approx(100 * 1.224744871 / 12.25, rel=1e-9)     # 9.9979 %
    assert g["nmbe_pct"] == pytest.approx(100 * 3 / (2 * 12.25), rel=1e-12)           # 12.2449 %
    assert g["r2"] == pytest.approx(1 - 3 / 8.75, rel=1e-12)
    with pytest.raises(ValueError, match="more observations than parameters"):
        bl.goodness_of_fit(y, y, p=4)
    with pytest.raises(ValueError, match="constant"):
        bl.goodness_of_fit(np.full(5, 3.0), np.full(5, 3.0), p=1)


def test_savings_uncertainty_against_hand_computation():
    """GL14 Annex B: n = 30, p = 3, CV 10 %, ρ = 0.5 -> n' = 10, 7 dof, t(0.95, 7) = 1.8946 (table)."""
    d, t = conditions(30, 4)
    m = bl.fit_baseline(truth(d, t) + np.random.default_rng(5).normal(0, 10, 30), d, t)
    import dataclasses
    m = dataclasses.replace(m, p=3, cv_rmse_pct=10.0, rho=0.5)
    u = bl.savings_uncertainty(m, m=30, adjusted_baseline_kwh=30000.0, confidence=0.90)
    assert u["n_eff"] == pytest.approx(10.0) and u["dof"] == pytest.approx(7.0)
    assert u["t"] == pytest.approx(1.8946, abs=1e-4)
    hand = 1.8946 * 1.26 * 0.10 * 30000.0 * (3.0 * (1 + 2 / 30) / 30) ** 0.5     # = 2338.9 kWh
    assert u["uncertainty_kwh"] == pytest.approx(hand, rel=1e-4)
    # 68 % confidence, many independent days: t -> the normal quantile z(0.84) = 0.9945 (table)
    big = dataclasses.replace(m, n=100_000, rho=0.0)
    assert bl.savings_uncertainty(big, 30, 30000.0, 0.68)["t"] == pytest.approx(0.9945, abs=1e-3)
    with pytest.raises(ValueError, match="independent baseline days"):
        bl.savings_uncertainty(dataclasses.replace(m, rho=0.9), 30, 30000.0)
    with pytest.raises(ValueError, match="confidence"):
        bl.savings_uncertainty(m, 30, 30000.0, 90)


def test_known_step_change_is_recovered_within_the_band():
    d, t = conditions(60, 6, 6.0, 24.0)
    rng = np.random.default_rng(7)
    base = bl.fit_baseline(truth(d, t) + rng.normal(0, 20.0, d.size), d, t)
    dr, tr = conditions(31, 8, 11.0, 20.0)
    expected = truth(dr, tr)
    measured = 0.9 * expected + rng.normal(0, 20.0, dr.size)         # a 10 % saving
    step = float(np.sum(0.1 * expected))
    s = bl.avoided_energy(base, measured, dr, tr, confidence=0.90)
    assert s.m == 31 and s.n_excluded == 0 and s.n_extrapolated == 0
    assert s.savings_kwh == pytest.approx(s.adjusted_baseline_kwh - s.measured_kwh)
    assert abs(s.savings_kwh - step) <= s.uncertainty_kwh
    assert s.significant and s.savings_pct == pytest.approx(10.0, abs=1.0)
    assert s.fsu == pytest.approx(s.uncertainty_kwh / s.savings_kwh) and s.fsu_68 < s.fsu < bl.FSU_MAX
    # no change at all: the saving is inside the band around zero
    same = bl.avoided_energy(base, expected + rng.normal(0, 20.0, dr.size), dr, tr)
    assert abs(same.savings_kwh) <= same.uncertainty_kwh and not same.significant


def test_incomplete_days_are_excluded_and_counted():
    d, t = conditions(40, 9)
    e = truth(d, t)
    cov = np.ones(40)
    cov[[3, 10, 11]] = 0.5                          # incomplete days: their energy is too low
    e[[3, 10, 11]] *= 0.5
    e[20] = np.nan                                  # no energy data
    t2 = t.copy()
    t2[25] = np.nan                                 # no temperature
    m = bl.fit_baseline(e, d, t2, coverage=cov)
    assert m.n == 35 and m.n_excluded == 5 and m.cv_rmse_pct < 1e-9
    s = bl.avoided_energy(m, e, d, t2, coverage=cov)
    assert s.m == 35 and s.n_excluded == 5 and s.savings_kwh == pytest.approx(0, abs=1e-6)
    assert not s.used[3] and np.isnan(s.daily_adjusted_kwh[20]) and np.isnan(s.daily_measured_kwh[25])


def test_degree_day_terms_only_when_the_baseline_can_learn_them():
    d, t = conditions(28, 10, 20.0, 29.0)           # a summer baseline: no heating day
    m = bl.fit_baseline(truth(d, t), d, t)
    assert "hdd" not in m.terms and "cdd" in m.terms
    s = bl.avoided_energy(m, truth(d, t - 15.0), d, t - 15.0)   # a cold reporting month
    assert s.n_extrapolated == s.m                  # every day is outside the baseline's temperatures


def test_refusals_are_named():
    d, t = conditions(30, 11)
    with pytest.raises(ValueError, match="too few usable baseline days: 20 of 30"):
        bl.fit_baseline(truth(d, t), d, t, coverage=np.r_[np.ones(20), np.zeros(10)])
    with pytest.raises(ValueError, match="constant"):
        bl.fit_baseline(np.full(30, 500.0), d, np.full(30, 18.0))
    # HDD equal to 5 x the Sunday indicator: collinear
    tc = np.where(d == 2, 13.0, 18.0)
    with pytest.raises(ValueError, match="collinear"):
        bl.fit_baseline(truth(d, tc) + np.arange(30) % 3, d, tc, min_degree_days=3)
    with pytest.raises(ValueError, match="equal length"):
        bl.fit_baseline(truth(d, t), d[:-1], t)
    with pytest.raises(ValueError, match="integer"):
        bl.fit_baseline(truth(d, t), d.astype(float), t)
    m = bl.fit_baseline(truth(d, t), d, t)
    with pytest.raises(ValueError, match=r"day types \[3\] do not occur"):
        bl.predict(m, np.array([0, 3]), np.array([20.0, 20.0]))
    with pytest.raises(ValueError, match="no usable reporting day"):
        bl.avoided_energy(m, np.full(5, np.nan), d[:5], t[:5])
