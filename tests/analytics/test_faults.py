"""Known-value tests for analytics.faults (docs/standards.md §§8-10 [C] vectors and worked examples)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import faults as fl

MIN = 60 * 10**9
T0 = 1_767_225_600 * 10**9          # 2026-01-01T00:00Z


def tmin(n):
    return T0 + np.arange(n) * MIN


# -- plain-loop reference implementations of docs/standards.md §10.1, for vector == loop tests

def stale_tail_ref(x, window=6, rtol=1e-5, atol=1e-8):
    x = np.asarray(x, float)
    f = np.zeros(len(x), bool)
    for i in range(window - 1, len(x)):
        seg = x[i - window + 1:i + 1]
        if np.allclose(seg, seg[0], rtol=rtol, atol=atol):
            f[i - window + 2:i + 1] = True
    return f


def hysteresis_ref(x, on, off, on_delay_samples):
    state, cnt, out = False, 0, []
    for v in x:
        if not state:
            cnt = cnt + 1 if v >= on else 0
            state = cnt >= on_delay_samples
        elif v <= off:
            state, cnt = False, 0
        out.append(state)
    return np.array(out)


def test_run_helpers():
    m = np.array([0, 1, 1, 0, 1, 1, 1], bool)
    assert fl.run_length(m).tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert fl.run_start(m).tolist() == [-1, 1, 1, -1, 4, 4, 4]
    assert fl.intervals(m, tmin(7)) == [(T0 + MIN, T0 + 2 * MIN), (T0 + 4 * MIN, T0 + 6 * MIN)]
    assert fl.persistent(m, tmin(7), 120).tolist() == [0, 0, 0, 0, 0, 0, 1]


def test_gaps_vector():
    t = np.array([0, 60, 120, 180, 420, 480, 540, 1200]) * 10**9
    g = fl.gaps(t, 60)
    assert g["after_index"].tolist() == [3, 6]
    assert g["duration_s"].tolist() == [240, 660]
    assert g["missing"].tolist() == [3, 10]
    assert_allclose(fl.completeness(t, np.ones(8), 60, 0, 1260 * 10**9), 0.380952, rtol=1e-5)


def test_comms_loss_from_gaps_and_status():
    t = tmin(60)
    keep = np.r_[np.arange(0, 20), np.arange(30, 50)]          # 10-min hole, then silent after 50
    loss = fl.comms_loss(t[keep], 60, T0, T0 + 60 * MIN)
    assert loss == [(T0 + 20 * MIN, T0 + 30 * MIN), (T0 + 50 * MIN, T0 + 60 * MIN)]
    # a single missed poll is not comms loss
    assert fl.comms_loss(np.delete(t, 5), 60, T0, T0 + 60 * MIN) == []
    online = np.ones(60)
    online[10:13] = 0
    loss = fl.comms_loss(t, 60, T0, T0 + 60 * MIN, online, t)
    assert loss == [(T0 + 10 * MIN, T0 + 13 * MIN)]
    with pytest.raises(ValueError, match="online_time_ns"):
        fl.comms_loss(t, 60, T0, T0 + 60 * MIN, online)


def test_stale_vector_and_equals_reference():
    x = [1, 2, 3, 3, 3, 3, 3, 3, 4, 5]
    assert fl.stale_values(x, 6).astype(int).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert not fl.stale_values([1, 2, 3, 3, 3, 3, 3, 4], 6).any()
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 3, 200).astype(float)
        x[rng.random(200) < 0.02] = np.nan
        for w in (2, 3, 5):
            ref = stale_tail_ref(np.where(np.isnan(x), 1000.0 * (np.arange(200) + 10), x), w)   # NaN never equal
            assert fl.stale_values(x, w).tolist() == ref.tolist()
    ign = np.zeros(10, bool)
    ign[4] = True
    assert fl.stale_values([1, 2, 3, 3, 3, 3, 3, 3, 4, 5], 6, ignore=ign)[4] == False   # noqa: E712
    with pytest.raises(ValueError, match="window"):
        fl.stale_values(x, 1)


def test_out_of_range_and_roc_vector():
    assert fl.out_of_range([np.nan, -5, 300, 230], 0, 280).tolist() == [False, True, True, False]
    rate, f = fl.rate_of_change([60, 61, 61.5, 75, 76], tmin(5), 5 / 60)
    assert_allclose(rate * 60, [1, 0.5, 13.5, 1])
    assert f.tolist() == [False, False, False, True, False]


def test_robust_z_vector():
    z = fl.robust_z([10.0, 10.2, 9.9, 10.1, 10.0, 15.0, 10.1, 9.8])
    assert_allclose(z, [-0.33725, 1.01175, -1.01175, 0.33725, -0.33725, 33.38775, 0.33725, -1.68625],
                    atol=1e-9)
    assert np.flatnonzero(np.abs(z) > 3.5).tolist() == [5]
    assert np.isnan(fl.robust_z([1.0, 1.0, 1.0])).all()


def test_ewma_and_cusum_vectors():
    r = fl.ewma([10, 10, 10, 12, 12, 12, 12, 12], 10, 1, 0.2, 3)
    assert_allclose(r["z"], [10, 10, 10, 10.4, 10.72, 10.976, 11.1808, 11.34464], rtol=1e-12)
    assert_allclose(r["ucl"][:6], [10.6, 10.768375, 10.858985, 10.912265, 10.944789, 10.965029], atol=1e-6)
    assert np.flatnonzero(r["alarm"]).tolist() == [5, 6, 7]
    s, a = fl.cusum_upper([10, 10.5] + [11] * 9, 10, 0.5, 4)
    assert_allclose(s, [0, 0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
    assert np.flatnonzero(a).tolist() == [10]


def test_hysteresis_vector_and_reference():
    T = [120, 128, 131, 132, 133, 134, 129, 127, 126, 124, 131, 126, 131]
    st = fl.hysteresis_alarm(T, 130, 125, 3)
    assert st.astype(int).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    rng = np.random.default_rng(4)
    x = rng.normal(128, 4, 500)
    assert fl.hysteresis_alarm(x, 130, 125, 3).tolist() == hysteresis_ref(x, 130, 125, 3).tolist()
    # same as the time-based variant with on-delay = 2 sample periods
    assert fl.threshold_alarm(T, tmin(13), 130, 5, on_delay_s=120).tolist() == st.tolist()
    low = fl.hysteresis_alarm([200, 190, 190, 205, 212], 195, 210, 2, direction="low")
    assert low.astype(int).tolist() == [0, 0, 1, 1, 0]
    with pytest.raises(ValueError, match="off"):
        fl.hysteresis_alarm(T, 130, 135)
    with pytest.raises(ValueError, match="direction"):
        fl.hysteresis_alarm(T, 130, 125, direction="up")


def test_threshold_alarm_off_delay_and_nan_holds():
    x = [0, 10, 10, 0, 10, 0, 0, 0, np.nan, 0]
    st = fl.threshold_alarm(x, tmin(10), 5, 1, on_delay_s=60, off_delay_s=120)
    assert st.astype(int).tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0]


def test_transformer_overload_and_load_rate():
    s = np.r_[np.full(10, 800e3), np.full(15, 1050e3), np.full(5, 980e3), np.full(5, 900e3)]
    assert_allclose(fl.load_rate(1000e3, 1000), 1.0)
    ov = fl.overload(s, tmin(s.size), 1000, on_delay_s=600)
    assert np.flatnonzero(ov).tolist() == list(range(20, 30))    # raised after 10 min, clears < 0.95


def test_temperature_trend_warns_before_trip():
    t = tmin(240)
    temp = np.r_[np.full(120, 90.0), 90.0 + 0.5 * np.arange(1, 121)]   # +30 degC/h from minute 120
    r = fl.temperature_trend(temp, t, trip_c=150, alarm_c=130, window_s=1800, horizon_s=3600)
    first = int(np.argmax(r["warning"]))
    assert r["warning"][:120].sum() == 0
    assert temp[first] < 130.0                                          # before the alarm set point
    assert_allclose(r["slope_c_per_h"][-1], 30.0, rtol=1e-9)
    assert_allclose(r["eta_s"][-1], 0.0)                                # at trip now
    assert not fl.temperature_trend(np.full(100, 100.0), tmin(100))["warning"].any()


def test_performance_ratio_vectors():
    assert_allclose(fl.performance_ratio([420], 100, [5000], 1.0), 0.84)
    assert_allclose(fl.performance_ratio([420], 100, [5000], 1.0, [45.0], -0.0035), 0.9032258065, rtol=1e-9)
    g = [200, 500, 800, 900, 800, 500, 200]
    tc = [25, 35, 48, 55, 50, 40, 30]
    e = [18.0, 43.0, 64.0, 70.0, 63.0, 42.0, 17.5]
    assert_allclose(fl.performance_ratio(e, 100, g, 1.0), 0.8141025641, rtol=1e-9)
    assert_allclose(fl.performance_ratio(e, 100, g, 1.0, tc, -0.0035), 0.8761400168, rtol=1e-9)
    assert np.isnan(fl.performance_ratio([0], 100, [0], 1.0))
    with pytest.raises(ValueError, match="together"):
        fl.performance_ratio(e, 100, g, 1.0, tc)


def test_pv_flags():
    poa = np.array([0, 100, 600, 800, 800, 800])
    exp = fl.expected_pv_power(poa, 100, system_pr=1.0)
    assert_allclose(exp, poa * 100.0)
    p = np.array([0, 9e3, 55e3, 40e3, 0, 78e3])
    assert fl.pv_underperformance(p, exp, 100e3).tolist() == [False, False, False, True, True, False]
    assert fl.inverter_offline_daylight(p, poa, 100e3).tolist() == [False, False, False, False, True, False]
    st = np.array([2, 4, 4, 4, 4, 7])
    assert fl.inverter_offline_daylight(p, poa, 100e3, st).tolist()[-1] is True


def test_clearsky_poa_daylight_shape():
    t = T0 + np.arange(24) * 3600 * 10**9            # UTC hours of 2026-01-01, Suzhou
    g = fl.clearsky_poa(t, 31.3, 120.6)
    assert g.shape == (24,) and (g >= 0).all()
    assert g[4] > 400 and g[16] == 0                # 12:00 local ~ 04 UTC; 00:00 local = 16 UTC


def test_string_mismatch_vector():
    i = np.array([[8.1, 8.0, 8.2, 7.9, 8.0, 6.4, 8.1, 8.0]])
    r = fl.string_mismatch(i)
    assert_allclose(r["deviation_pct"][0, 5], -20.0)
    assert r["fault"][0].tolist() == [False] * 5 + [True, False, False]
    assert_allclose(r["dispersion_pct"], [7.0157], atol=5e-5)
    assert_allclose(fl.robust_z(i)[0, 5], -10.792, atol=5e-4)
    r = fl.string_mismatch(np.vstack([i, i]), poa_wm2=[100, 800])
    assert r["fault"].sum() == 1 and r["fault"][1, 5]
    r = fl.string_mismatch(np.array([[np.nan, np.nan], [1.0, 1.0]]))
    assert not r["warning"].any()


def test_ev_rules():
    t = tmin(40)
    st = np.zeros(40)
    st[5:30] = 8
    f = fl.ev_faulted(t, ocpp_status=st)
    assert np.flatnonzero(f).tolist() == list(range(20, 30))
    f = fl.ev_faulted(t, fault_code=np.where(st == 8, 12, 0), min_duration_s=0)
    assert f.sum() == 25
    prep = np.r_[np.zeros(5), np.ones(20), np.full(15, 2)]
    assert np.flatnonzero(fl.ev_session_stuck(t, prep)).tolist() == list(range(15, 25))
    status = np.full(40, 2.0)
    e = np.r_[np.arange(20) * 100.0, np.full(20, 1900.0)]       # 6 kW, then flat while "charging"
    f = fl.ev_charging_no_energy(t, status, e)
    assert np.flatnonzero(f).tolist() == list(range(30, 40))


def test_counter_integrity_never_negative():
    assert fl.counter_increments([10.0, -5.0, 20.0])["invalid"].tolist() == [False, True, False]
    c = np.array([100, 200, np.nan, 400, 50, 150, 5000, 5100, 4_294_967_000, 200, 300, 1e9])
    r = fl.counter_increments(c, rollover_wh=4_294_967_296, max_step_wh=1e6)
    inc = r["increment"]
    assert inc[3] == 200                        # gap: energy lands on first valid sample after it
    assert r["reset"][4] and inc[4] == 50
    assert not r["replacement"][6] and inc[6] == 4850
    assert r["rollover"][9] and inc[9] == 296 + 200
    assert r["spike"][11] and np.isnan(inc[11])
    assert (np.nan_to_num(inc) >= 0).all()
    rng = np.random.default_rng(5)
    for _ in range(50):
        x = np.cumsum(rng.uniform(0, 10, 100)) * rng.choice([1, -1], 100)
        assert (np.nan_to_num(fl.counter_increments(x)["increment"]) >= 0).all()
    r = fl.counter_increments([1000.0, 900_000.0, 500_000.0, 500_100.0])
    assert r["replacement"][2] and r["increment"][2] == 0
    assert fl.consumption_wh([1000.0, 900_000.0, 500_000.0, 500_100.0]) == 899_100.0


def test_counter_small_fall_is_quantisation_not_replacement():
    """A 1-min history in 0.1 Wh followed by a live register in 10 Wh steps: 120.2 -> 120.0 is
    not a meter swap; the energy across it is counted once, from the high-water mark."""
    r = fl.counter_increments([100.0, 120.2, 120.0, 130.0, 5.0, 20.0])
    np.testing.assert_allclose(r["increment"], [0.0, 20.2, 0.0, 9.8, 5.0, 15.0])
    assert not r["replacement"].any()
    assert r["reset"].tolist() == [False, False, False, False, True, False]
    # a fall larger than the resolution is still an event
    r = fl.counter_increments([5000.0, 6000.0, 4000.0, 4100.0], resolution_wh=50.0)
    assert r["replacement"].tolist() == [False, False, True, False]
    np.testing.assert_allclose(r["increment"], [0.0, 1000.0, 0.0, 100.0])


def test_stale_range_against_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n, w = int(rng.integers(2, 60)), int(rng.integers(2, 12))
        x = np.round(rng.normal(0, 1, n).cumsum() * rng.choice([0.0, 0.01, 1.0]), 2)
        x[rng.random(n) < 0.2] = np.nan
        res = float(rng.choice([0.0, 0.01, 0.5]))
        ref = np.zeros(n, bool)
        for i in range(w - 1, n):
            seg = x[i - w + 1:i + 1]
            seg = seg[np.isfinite(seg)]
            ref[i] = seg.size >= max(2, int(np.ceil(0.5 * w))) and np.ptp(seg) <= res
        assert fl.stale_range(x, w, res).tolist() == ref.tolist()


def test_stale_range_drift_is_live_frozen_is_not():
    drift = 231.0 + 0.27 * np.arange(361) / 360               # 0.27 V over 30 min of 5-s samples
    assert not fl.stale_range(drift, 361, 0.01).any()
    assert fl.stale_values(drift, 361).any()                   # the sample-to-sample test calls it frozen
    assert fl.stale_range(np.full(361, 231.4), 361, 0.01).tolist() == [False] * 360 + [True]
    with pytest.raises(ValueError, match="window"):
        fl.stale_range(drift, 1, 0.01)
