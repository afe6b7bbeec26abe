"""Energy counters and demand: monotonic, monthly maximum, caches and memos equal a fresh evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.signal_fleet import DAY, MON, TZ, H, local

from simulators.signals import FleetSignals


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


def test_a_window_starting_on_the_counter_origin_day():
    """values_array for a day starting at local midnight of 2026-01-01 (the counters' origin) on a fresh
    model used to fail with 'min() arg is an empty sequence'."""
    from pathlib import Path

    from core.config import load_fleet
    from simulators.signals import FleetSignals

    fleet = load_fleet(Path(__file__).resolve().parents[2] / "sites.example.toml")
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
                fresh._history.clear_memos()
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
