"""Known-value tests for analytics.power_quality (vectors from docs/standards.md §§1-5, tagged [C])."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import power_quality as pq

A = np.exp(2j * np.pi / 3)


# ---------------------------------------------------------------- §1 voltage deviation

@pytest.mark.parametrize("nominal, measured, dev, single, fail", [
    (10.0, 10.5, 5.0, False, False),
    (10.0, 9.25, -7.5, False, True),
    (380.0, 410.0, 7.8947368421, False, True),
    (380.0, 355.0, -6.5789473684, False, False),
    (220.0, 198.0, -10.0, True, False),          # inclusive limit
    (220.0, 236.0, 7.2727272727, True, True),
    (220.0, 235.4, 7.0, True, False),            # boundary
])
def test_voltage_deviation_vectors(nominal, measured, dev, single, fail):
    assert_allclose(pq.voltage_deviation(measured, nominal), dev, rtol=1e-9)
    lo, hi = pq.voltage_deviation_limits(0.22 if single else 10.0, single_phase=single)
    assert bool(pq.voltage_outside(measured, nominal, lo, hi)) is fail


def test_deviation_span_35kv():
    span, flag = pq.deviation_span_35kv([6.0, 8.0], [-5.0, 4.0])
    assert_allclose(span, [11.0, 8.0])
    assert flag.tolist() == [True, False]


def test_voltage_limits_bad_level():
    with pytest.raises(ValueError, match="deviation_span_35kv"):
        pq.voltage_deviation_limits(35)
    with pytest.raises(ValueError, match="nominal_v"):
        pq.voltage_deviation([230], 0)


def test_qualification_rate_vector():
    u = np.full(43200, 230.0)
    u[:300] = 250.0       # above +7 %
    u[300:432] = 210.0    # below -7 %
    r = pq.qualification_rate(u, 230.0, -7, 7)
    assert_allclose(r["rate_pct"], 99.0)
    assert (r["t_above"], r["t_below"], r["t_monitored"]) == (300, 132, 43200)


def test_qualification_rate_nan_not_monitored():
    r = pq.qualification_rate([np.nan, 230.0, 260.0, np.nan], 230.0, -7, 7)
    assert r["t_monitored"] == 2 and r["rate_pct"] == 50.0
    assert np.isnan(pq.qualification_rate([np.nan], 230.0, -7, 7)["rate_pct"])


def test_voltage_outside_nan_never_flags():
    assert pq.voltage_outside([np.nan, 300.0], 230.0, -7, 7).tolist() == [False, True]


# ---------------------------------------------------------------- §2 frequency

def test_frequency_vector():
    assert_allclose(pq.frequency_deviation(49.75), -0.25)
    assert bool(pq.frequency_outside(49.75, 0.2))
    assert not bool(pq.frequency_outside(49.75, 0.5))
    assert not bool(pq.frequency_outside(49.8, 0.2))   # inclusive


# ---------------------------------------------------------------- §3 unbalance

def test_unbalance_vector_u1():
    va, vb, vc = 1.0, 0.9 * np.exp(-2j * np.pi / 3), np.exp(2j * np.pi / 3)
    v0, v1, v2 = pq.sequence_components(va, vb, vc)
    assert_allclose(np.abs([v0, v1, v2]), [0.1 / 3, 2.9 / 3, 0.1 / 3], rtol=1e-12)
    e2, e0 = pq.unbalance_from_phasors(va, vb, vc)
    assert_allclose([e2, e0], [100 / 29, 100 / 29], rtol=1e-10)
    lines = np.abs([va - vb, vb - vc, vc - va])
    assert_allclose(lines, [1.6462077633, 1.6462077633, 1.7320508076], rtol=1e-9)
    assert_allclose(pq.unbalance_from_line_voltages(*lines), 3.4482758621, rtol=1e-9)
    assert_allclose(pq.nema_unbalance(1, 0.9, 1), 6.8965517241, rtol=1e-9)
    assert_allclose(pq.nema_unbalance(*lines), 3.4170014702, rtol=1e-9)


def test_unbalance_vector_u2_and_vectorised():
    assert_allclose(pq.unbalance_from_line_voltages(400, 390, 410), 2.8880309966, rtol=1e-9)
    rng = np.random.default_rng(1)
    u = rng.uniform(380, 420, size=(3, 50))
    vec = pq.unbalance_from_line_voltages(*u)
    loop = [float(pq.unbalance_from_line_voltages(*u[:, i])) for i in range(50)]
    assert_allclose(vec, loop)
    assert_allclose(pq.unbalance_from_line_voltages(400, 400, 400), 0.0, atol=1e-6)
    assert np.isnan(pq.unbalance_from_line_voltages(np.nan, 400, 400))


def test_phasors_from_channels_match_sequence():
    va, vb, vc = pq.phasors_from_channels(230, 207, 230, -120, 120)
    e2, _ = pq.unbalance_from_phasors(va, vb, vc)
    assert_allclose(e2, 100 / 29, rtol=1e-10)


def test_unbalance_assessment():
    x = np.r_[np.full(95, 1.0), np.full(5, 3.0)]
    a = pq.unbalance_assessment(x)
    assert a["n_valid"] == 100 and a["max_pct"] == 3.0 and not a["fail"]
    a = pq.unbalance_assessment(np.r_[x, 4.5, np.nan])
    assert a["n_valid"] == 101 and a["fail_max"] and a["fail"]
    assert pq.unbalance_assessment([np.nan])["n_valid"] == 0


def test_current_unbalance_vector_i1():
    assert_allclose(pq.current_unbalance(500, 400, 450), 20.0)
    assert_allclose(pq.nema_unbalance(500, 400, 450), 11.1111111, rtol=1e-7)
    assert_allclose(pq.neutral_current_from_phases(500, 400, 450), 86.6025404, rtol=1e-8)
    assert_allclose(pq.rated_current(630, 400), 909.3266739, rtol=1e-8)
    assert_allclose(86.6025404 / pq.rated_current(1000, 400) * 100, 6.0, rtol=1e-7)
    f = pq.current_unbalance_flags(500, 400, 450, None, pq.rated_current(630))
    assert bool(f["unbalance_flag"]) and not bool(f["neutral_flag"])
    assert_allclose(f["neutral_pct"], 9.5238, rtol=1e-4)
    # light load: unbalance not judged
    f = pq.current_unbalance_flags(50, 10, 30, 20, 909.3)
    assert not bool(f["unbalance_flag"])
    assert np.isnan(pq.current_unbalance(0, 0, 0))


# ---------------------------------------------------------------- aggregation / EN 50160

def test_aggregate_10min_rms_alignment_and_validity():
    t0 = 1_700_000_400 * 10**9 - 120 * 10**9           # 2 min before a 10-min tick
    t = t0 + np.arange(22) * 60 * 10**9
    x = np.full(22, 230.0)
    x[2:12] = [220, 240] * 5
    x[15] = np.nan
    start, agg, ok = pq.aggregate_10min(t, x)
    assert (start % pq.TEN_MIN_NS == 0).all()
    assert len(start) == 3
    assert_allclose(agg[1], np.sqrt((220**2 + 240**2) / 2))
    assert ok.tolist() == [False, True, False]        # partial, complete, has a NaN
    s2, a2, ok2 = pq.aggregate_10min(t, np.column_stack([x, 2 * x]), method="mean")
    assert a2.shape == (3, 2) and ok2.shape == (3, 2)
    assert_allclose(a2[1], [230.0, 460.0])


def test_aggregate_10min_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        pq.aggregate_10min([0], [1.0], method="median")
    with pytest.raises(ValueError, match="non-decreasing"):
        pq.aggregate_10min([5, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="rows"):
        pq.aggregate_10min([1, 2], [1.0])


def test_en50160_week_counts():
    n = 7 * 24 * 6
    assert n == 1008
    u = np.full(n, 230.0)
    u[:50] = 255.0                          # +10.9 %: outside ±10 % only
    r = pq.en50160_voltage(u, np.ones(n, bool), 230.0)
    assert (r["n_valid"], r["n1"], r["n2"], r["n1_allowed"], r["compliant"]) == (1008, 50, 50, 50, False)
    u[:50] = 202.0                          # -12.2 %: outside ±10 %, inside -15 %
    r = pq.en50160_voltage(u, np.ones(n, bool), 230.0)
    assert (r["n1"], r["n2"], r["compliant"]) == (50, 0, True)
    u[50] = 202.0
    assert not pq.en50160_voltage(u, np.ones(n, bool), 230.0)["compliant"]


def test_compliance_summary_site():
    n = 7 * 24 * 60
    t = 1_700_000_400 * 10**9 + np.arange(n) * 60 * 10**9
    ch = {f"voltage_l{p}": np.full(n, 230.0) for p in (1, 2, 3)}
    ch["voltage_l1"][:600] = 250.0        # 60 ten-minute values at +8.7 %
    ch["frequency"] = np.full(n, 50.0)
    ch.update({"voltage_l12": np.full(n, 400.0), "voltage_l23": np.full(n, 390.0),
               "voltage_l31": np.full(n, 410.0)})
    ch.update({f"thd_voltage_l{p}": np.full(n, 2.0) for p in (1, 2, 3)})
    s = pq.compliance_summary(t, ch, 230.0)
    assert s["voltage"]["n_valid"] == 3 * 1008 and s["voltage"]["n_outside"] == 60
    assert not s["voltage"]["compliant"]
    assert s["frequency"]["compliant"] and s["thd_voltage"]["compliant"]
    assert not s["unbalance"]["compliant"]
    assert_allclose(s["unbalance"]["p95_pct"], 2.8880309966, rtol=1e-8)


# ---------------------------------------------------------------- §4 harmonics

def _h1(f0=50.0, n=2560, fs=12800.0):
    t = np.arange(n) / fs
    w = 2 * np.pi * f0
    return np.sqrt(2) * (100 * np.sin(w * t) + 5 * np.sin(5 * w * t + 0.3) + 3 * np.sin(7 * w * t - 1.1))


def test_harmonic_vector_h1():
    h = pq.harmonic_spectrum(_h1(), 12800.0, grouping="none")
    assert_allclose(h[[1, 5, 7]], [100, 5, 3], rtol=1e-10)
    assert_allclose(pq.thd(h), np.sqrt(34), rtol=1e-10)
    assert_allclose(pq.harmonic_ratio(h)[5], 5.0, rtol=1e-10)
    for g in ("subgroup", "group"):
        assert_allclose(pq.thd(pq.harmonic_spectrum(_h1(), 12800.0, grouping=g)), 5.8309518948, rtol=1e-9)


@pytest.mark.parametrize("f0, grouping, true_thd, all_thd, v1", [
    (50.2, "none", 5.2357, 5.2887, 99.5535),
    (50.2, "subgroup", 5.5649, 5.7144, 99.7141),
    (50.2, "group", 5.7071, 6.2458, 99.7837),
    (50.5, "none", 3.5137, 3.9247, 97.9841),
    (50.5, "subgroup", 5.5956, 6.3549, 99.0028),
    (50.5, "group", 5.9861, 8.3927, 99.4372),
])
def test_harmonic_vector_h2_leakage(f0, grouping, true_thd, all_thd, v1):
    h = pq.harmonic_spectrum(_h1(f0), 12800.0, grouping=grouping)
    assert_allclose(h[1], v1, atol=6e-5)
    assert_allclose(np.sqrt(h[5] ** 2 + h[7] ** 2) / h[1] * 100, true_thd, atol=6e-5)
    assert_allclose(pq.thd(h), all_thd, atol=6e-5)


def test_harmonic_spectrum_batch_equals_loop_and_bad_window():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 2048))
    batch = pq.harmonic_spectrum(w, 10240.0)
    assert_allclose(batch, [pq.harmonic_spectrum(x, 10240.0) for x in w])
    with pytest.raises(ValueError, match="cycles"):
        pq.harmonic_spectrum(w, 12800.0)
    with pytest.raises(ValueError, match="grouping"):
        pq.harmonic_spectrum(w, 10240.0, grouping="bins")


def test_tdd_vector_h3():
    h = np.zeros(8)
    h[1], h[5], h[7] = 80, 4, 3
    assert_allclose(pq.thd(h), 6.25)
    assert_allclose(pq.tdd(h, 100.0), 5.0)
    lim, tdd_lim = pq.ieee519_current_limits(15)
    assert tdd_lim == 5.0 and lim[5] == 4.0 and lim[7] == 4.0 and lim[11] == 2.0
    assert lim[2] == 2.0 and lim[8] == 4.0           # 2022 even rule
    assert pq.ieee519_current_limits(15, edition=2014)[0][2] == 1.0
    assert not pq.tdd(h, 100.0) > tdd_lim             # passes (equal to limit)
    assert pq.ieee519_voltage_limits(0.4) == (5.0, 8.0) and pq.ieee519_voltage_limits(10) == (3.0, 5.0)


def test_gbt14549_vector_h4():
    assert_allclose(pq.gbt14549_current_limit(5, 10, sk_min_mva=200), 40.0)
    assert_allclose(pq.gbt14549_current_limit(5, 10, 200, 2, 10), 10.4612839, rtol=1e-8)
    assert_allclose(pq.gbt14549_current_limit(7, 10, 200, 2, 10), 9.5029177, rtol=1e-8)
    assert pq.gbt14549_current_limit(2, 0.4) == 78
    with pytest.raises(ValueError, match="order"):
        pq.gbt14549_current_limit(26, 10)
    with pytest.raises(ValueError, match="nominal_kv"):
        pq.gbt14549_voltage_limits(20)


def test_harmonic_voltage_flags():
    hr = np.zeros(8)
    hr[1], hr[3], hr[4] = 100, 3.5, 2.1
    f = pq.harmonic_voltage_flags(hr, 4.5, 0.38)
    assert not bool(f["thd_flag"]) and f["order_flags"].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    f = pq.harmonic_voltage_flags(hr, 4.5, 10)
    assert bool(f["thd_flag"]) and f["order_flags"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]


# ---------------------------------------------------------------- §5 power factor

def test_monthly_pf_vector():
    assert pq.monthly_power_factor(100000, 60000) == 0.86
    assert pq.monthly_power_factor(100000, 40000, 20000) == 0.86      # |imp| + |exp|
    assert_allclose(pq.pf_adjustment_pct(0.86), 2.0)
    assert_allclose(pq.pf_adjustment_yuan(0.86, 80000), 1600.0)
    assert np.isnan(pq.monthly_power_factor(0, 0))
    with pytest.raises(ValueError, match="kwh"):
        pq.monthly_power_factor(-1, 0)


PF_TABLE = [  # pf, std 0.90, std 0.85, std 0.80  (docs/standards.md §5.4)
    (1.00, -0.75, -1.10, -1.30), (0.95, -0.75, -1.10, -1.30), (0.94, -0.60, -1.10, -1.30),
    (0.93, -0.45, -0.95, -1.30), (0.92, -0.30, -0.80, -1.30), (0.91, -0.15, -0.65, -1.15),
    (0.90, 0.00, -0.50, -1.00), (0.89, 0.50, -0.40, -0.90), (0.86, 2.00, -0.10, -0.60),
    (0.85, 2.50, 0.00, -0.50), (0.80, 5.00, 2.50, 0.00), (0.75, 7.50, 5.00, 2.50),
    (0.70, 10.00, 7.50, 5.00), (0.69, 11.00, 8.00, 5.50), (0.66, 14.00, 9.50, 7.00),
    (0.65, 15.00, 10.00, 7.50), (0.64, 17.00, 11.00, 8.00), (0.60, 25.00, 15.00, 10.00),
    (0.55, 35.00, 25.00, 15.00), (0.50, 45.00, 35.00, 25.00),
]


@pytest.mark.parametrize("row", PF_TABLE)
def test_pf_adjustment_table(row):
    pf, *expected = row
    got = [float(pq.pf_adjustment_pct(pf, s)) for s in (0.90, 0.85, 0.80)]
    assert_allclose(got, expected, atol=1e-9)


def test_pf_adjustment_vector_equals_scalar_and_rounding():
    pfs = np.array([r[0] for r in PF_TABLE])
    assert_allclose(pq.pf_adjustment_pct(pfs), [float(pq.pf_adjustment_pct(p)) for p in pfs])
    assert float(pq.pf_adjustment_pct(0.8999999999)) == 0.0       # rounds to 0.90
    assert float(pq.pf_adjustment_pct(0.895)) == 0.0              # half-up
    with pytest.raises(ValueError, match="standard"):
        pq.pf_adjustment_pct(0.9, 0.95)
    with pytest.raises(ValueError, match="pf"):
        pq.pf_adjustment_pct(1.2)


def test_compliance_summary_without_valid_intervals_gives_no_verdict():
    t = 1_700_000_400 * 10**9 + np.arange(5) * 60 * 10**9          # 5 minutes: no complete 10-min value
    ch = {f"voltage_l{p}": np.full(5, 300.0) for p in (1, 2, 3)} | {"frequency": np.full(5, 50.0)}
    s = pq.compliance_summary(t, ch, 230.0)
    assert s["voltage"]["n_valid"] == 0 and s["voltage"]["compliant"] is None
    assert s["frequency"]["compliant"] is None


def test_prob95_discards_the_top_5_percent_and_takes_the_largest_left():
    """1..100: discard 96..100, the 95 % probability value is 95 (an observed value, not 95.05)."""
    x = np.arange(1.0, 101.0)
    np.random.default_rng(3).shuffle(x)
    assert pq.prob95(x) == 95.0
    assert pq.prob95(np.arange(1.0, 20.0)) == 19.0          # 19 values: 5 % is 0.95 value, nothing discarded
    assert pq.prob95(np.r_[np.arange(1.0, 1009.0), np.nan]) == 1008 - 50   # a week of 10-min values: 50 go
    assert np.isnan(pq.prob95([np.nan]))
    # the same definition in the unbalance assessment and the THD summary
    u = np.r_[np.full(950, 1.0), np.linspace(2.5, 3.9, 50)]
    a = pq.unbalance_assessment(u)
    assert a["p95_pct"] == 1.0 and not a["fail"]
    assert pq.unbalance_assessment(np.r_[u, 2.1])["p95_pct"] == pq.prob95(np.r_[u, 2.1])


def test_gbt14549_220kv_uses_110kv_limits_at_2000_mva():
    assert pq.gbt14549_voltage_limits(220) == pq.gbt14549_voltage_limits(110)
    assert pq.gbt14549_current_limit(5, 110) == 9.6
    assert pq.gbt14549_current_limit(5, 220) == 9.6              # at the 2000 MVA base itself
    assert_allclose(pq.gbt14549_current_limit(5, 220, sk_min_mva=1000), 9.6 * 1000 / 2000)
    assert_allclose(pq.gbt14549_current_limit(5, 110, sk_min_mva=1000), 9.6 * 1000 / 750)
