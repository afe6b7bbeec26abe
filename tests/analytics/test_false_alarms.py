"""Conditions a healthy installation shows must not alarm: slow voltage drift, light-load unbalance.

Data: the simulator's signal model (simulators.signals.FleetSignals) at the live 5-s polling,
evaluated with the live rules (analytics.jobs.LIVE_RULES), some channels replaced by a known shape.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics import assess
from analytics.jobs import LIVE_RULES
from core.config import load_fleet
from core.units import NS
from simulators.signals import FleetSignals

H = 3600
MIDNIGHT = 1772323200 - 8 * H + 2 * 86400        # 2026-03-03 00:00 local (Tuesday)
SITE = "acme-plant1"


@pytest.fixture(scope="module")
def fleet():
    return load_fleet("sites.example.toml")


def live(fleet, dev, t, seed=1, faults=()):
    sig = FleetSignals(fleet, seed=seed)
    sig.schedule(list(faults))
    return sig.values_array(dev, t) | {"time_ns": (t * NS).astype(np.int64)}


def check(fleet, dev, v, rules=LIVE_RULES):
    t = v["time_ns"]
    return assess.assess_device(fleet.sites[SITE], fleet.devices[dev], v, int(t[0]), int(t[-1] + 5 * NS), None, rules)


@pytest.mark.parametrize("seed", [1, 3])
def test_fault_free_day_at_5s_no_stale_voltage(fleet, seed):
    """The simulated bus voltage drifts by 0.08-0.23 V over half an hour on these days: that is a live value."""
    t = np.arange(MIDNIGHT, MIDNIGHT + 8 * H, 5.0)
    v = live(fleet, "acme-plant1-t1-meter", t, seed)
    assert [(f.type, f.evidence) for f in check(fleet, "acme-plant1-t1-meter", v)] == []


def test_voltage_drifting_027_v_in_30_min_is_not_stale(fleet):
    t = np.arange(MIDNIGHT + 10 * H, MIDNIGHT + 10 * H + 2400, 5.0)
    v = live(fleet, "acme-plant1-t1-meter", t)
    v["voltage_l1"] = 231.0 + 0.27 * (t - t[0]) / 1800.0
    assert [f.type for f in check(fleet, "acme-plant1-t1-meter", v)] == []


def test_frozen_voltage_is_stale_after_the_window(fleet):
    t = np.arange(MIDNIGHT + 10 * H, MIDNIGHT + 10 * H + 2400, 5.0)
    v = live(fleet, "acme-plant1-t1-meter", t)
    v["voltage_l1"] = np.where(t >= t[0] + 300, 231.4, v["voltage_l1"])          # frozen from minute 5
    f = [x for x in check(fleet, "acme-plant1-t1-meter", v) if x.type == "stale_value"]
    assert len(f) == 1 and f[0].evidence["change"] == 0 and f[0].evidence["value"] == 231.4
    assert f[0].start_ns == int((t[0] + 300 + 1800) * NS)          # known once the 30-min window is flat
    v["voltage_l1"][::7] = np.nan                                   # missing samples do not hide it
    assert [x.type for x in check(fleet, "acme-plant1-t1-meter", v)] == ["stale_value"]


def test_light_load_unbalance_for_40_s_is_not_alarmed(fleet):
    """A fault-free transformer meter at 12 % load, one phase 20 % low for 40 s: no current_unbalance."""
    t = np.arange(MIDNIGHT + 10 * H, MIDNIGHT + 10 * H + 600, 5.0)
    v = live(fleet, "acme-plant1-t1-meter", t)
    ir = 1000e3 / (np.sqrt(3) * 400)
    for p in (1, 2, 3):
        v[f"current_l{p}"] = np.full(t.size, 0.12 * ir)
    v["current_l3"][60:68] = 0.12 * ir * 0.8
    assert [f.type for f in check(fleet, "acme-plant1-t1-meter", v)] == []


def test_sustained_unbalance_under_load_is_still_alarmed(fleet):
    t0 = MIDNIGHT + 11 * H
    t = np.arange(t0 - 1800, t0 + 120, 5.0)
    v = live(fleet, "acme-plant1-compressors", t, faults=[("acme-plant1-compressors", "phase_unbalance", t0,
                                                           t0 + H, {})])
    f = [x for x in check(fleet, "acme-plant1-compressors", v) if x.type == "current_unbalance"]
    assert len(f) == 1 and t0 * NS <= f[0].start_ns <= (t0 + LIVE_RULES.unbalance_on_delay_s + 10) * NS
