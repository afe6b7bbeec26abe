"""No sample pattern stops the analysis: NaN codes, isolation of a failing device, arbitrary NaN/inf/missing.

Data: the simulator's signal model (simulators.signals.FleetSignals) at 5-s polling with faults active,
then damaged channel by channel.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import assess
from core.config import load_fleet
from core.units import NS
from simulators.signals import FleetSignals

H = 3600
DAY1 = 1772323200 + 86400            # Monday 2026-03-02 08:00 local
SITE = "acme-plant1"
TF = DAY1 + 3 * H                    # 11:00 local
FAULTED = [("acme-plant1-pv1", "inverter_trip", {}), ("acme-plant1-ev1", "ev_fault", {}),
           ("acme-plant1-ev3", "ev_stuck", {}), ("acme-plant1-t1-temp", "transformer_overtemp", {}),
           ("acme-plant1-hvac", "voltage_sag", {}), ("acme-plant1-pv2", "string_loss", {"mppt": 2})]


@pytest.fixture(scope="module")
def fleet():
    return load_fleet("sites.example.toml")


@pytest.fixture(scope="module")
def live(fleet):
    """35 min of 5-s data of every device of SITE, with a fault on one device of each kind."""
    sig = FleetSignals(fleet, seed=21)
    sig.schedule([(d, f, TF - 1200, TF + H, p) for d, f, p in FAULTED])
    t = np.arange(TF - 2100, TF, 5.0)
    data = {d.id: sig.values_array(d.id, t) | {"time_ns": (t * NS).astype(np.int64)}
            for d in fleet.sites[SITE].devices}
    return data, int(t[0] * NS), int((t[-1] + 5) * NS)


def test_inverter_fault_with_nan_event_code_is_found(fleet, live):
    data, start, end = live
    v = dict(data["acme-plant1-pv1"])
    v["inverter_events"] = np.full(v["time_ns"].size, np.nan)        # an MQTT inverter without event words
    f = assess.assess_device(fleet.sites[SITE], fleet.devices["acme-plant1-pv1"], v, start, end)
    trips = [x for x in f if x.type == "inverter_trip"]
    assert trips and trips[0].evidence["inverter_events"] is None


def test_charger_fault_with_nan_fault_code_is_found(fleet, live):
    data, start, end = live
    v = dict(data["acme-plant1-ev1"])
    v["fault_code"] = np.full(v["time_ns"].size, np.nan)             # a charger that has no fault code
    f = assess.assess_device(fleet.sites[SITE], fleet.devices["acme-plant1-ev1"], v, start, end)
    faults = [x for x in f if x.type == "ev_fault"]
    assert faults and faults[0].evidence["fault_code"] is None


def test_one_failing_device_does_not_stop_the_others(fleet, live, monkeypatch, caplog):
    data, start, end = live
    real = assess.dc.ev_charger

    def broken(c, r):
        if c.device.id == "acme-plant1-ev1":
            raise RuntimeError("boom")
        return real(c, r)

    monkeypatch.setattr(assess.dc, "ev_charger", broken)
    with caplog.at_level(logging.ERROR, logger="analytics.assess"):
        f = assess.assess_site(fleet.sites[SITE], data, start, end)
    bad = [x for x in f if x.device_id == "acme-plant1-ev1"]
    assert [(x.type, x.severity) for x in bad] == [("analysis_failed", "warning")]
    assert "RuntimeError" in bad[0].evidence["error"] and "boom" in bad[0].evidence["error"]
    assert "acme-plant1-ev1" in caplog.text
    others = {(x.device_id, x.type) for x in f}
    assert ("acme-plant1-pv1", "inverter_trip") in others and ("acme-plant1-ev3", "ev_stuck") in others


_DAMAGE = st.sampled_from(["keep", "drop", "all_nan", "all_inf", "sprinkle", "constant"])


KINDS = ["acme-plant1-t1-meter", "acme-plant1-hvac", "acme-plant1-t1-temp", "acme-plant1-pv1", "acme-plant1-pv2",
         "acme-plant1-ev1", "acme-plant1-ev3"]


@pytest.mark.parametrize("device_id", KINDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data_=st.data())
def test_any_nan_inf_missing_pattern_never_raises(fleet, live, device_id, data_):
    """Every channel of every device kind (faulted and healthy), each kept, dropped, all NaN, all ±inf,
    constant or sprinkled with NaN/inf/junk, and the series cut at any length: assess never raises."""
    data, start, end = live
    site = fleet.sites[SITE]
    device = fleet.devices[device_id]
    v = dict(data[device.id])
    n = v["time_ns"].size
    for name in sorted(k for k in v if k != "time_ns"):
        how = data_.draw(_DAMAGE, label=name)
        if how == "drop":
            del v[name]
        elif how == "all_nan":
            v[name] = np.full(n, np.nan)
        elif how == "all_inf":
            v[name] = np.full(n, data_.draw(st.sampled_from([np.inf, -np.inf])))
        elif how == "constant":
            v[name] = np.full(n, data_.draw(st.floats(allow_nan=False, allow_infinity=False, width=32)))
        elif how == "sprinkle":
            seed = data_.draw(st.integers(0, 2**32 - 1))
            rng = np.random.default_rng(seed)
            a = v[name].copy()
            a[rng.random(n) < rng.random()] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e12], size=1)[0]
            v[name] = a
    keep = data_.draw(st.one_of(st.just(n), st.integers(0, n)), label="samples kept")
    v = {k: a[:keep] for k, a in v.items()}
    f = assess.assess_device(site, device, v, start, end)
    assert all(x.device_id for x in f) and not [x for x in f if x.type == "analysis_failed"]
