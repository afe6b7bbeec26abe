"""A site's savings are priced from its incomer (transformer) meters only, never silently from a feeder."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import assess
from analytics import tariffs as tf
from core.config import load_fleet
from simulators.signals import FleetSignals

T0 = 1772323200                      # 2026-03-01T00:00Z
SITE = "acme-plant1"


@pytest.fixture(scope="module")
def plant():
    fleet = load_fleet("sites.example.toml")
    site = fleet.sites[SITE]
    sig = FleetSignals(fleet, seed=3)
    t = T0 + np.arange(7 * 1440) * 60.0
    data = {d.id: sig.values_array(d.id, t) | {"time_ns": (t * 1e9).astype(np.int64)} for d in site.devices}
    return site, data, tf.load_tariff(site.tariff)


def test_savings_come_from_the_incomer_meters(plant):
    site, data, tariff = plant
    ranked = assess.site_savings(site, data, tariff)
    assert ranked and all(f.type != "saving_not_priced" for f in ranked)
    peak = next(f for f in ranked if f.type == "saving_peak_shaving")
    incomers = [tr.meter for tr in site.transformers]
    p_kw = sum(np.asarray(data[m]["active_power"]) for m in incomers) / 1000.0
    demand_15min = p_kw[: p_kw.size // 15 * 15].reshape(-1, 15).mean(axis=1)
    assert peak.evidence["max_demand_kw"] == pytest.approx(float(np.max(demand_15min)), rel=0.02)


@pytest.mark.parametrize("how", ["absent", "all_nan"])
def test_incomers_offline_means_not_priced_in_words(plant, how):
    site, data, tariff = plant
    incomers = [tr.meter for tr in site.transformers]
    if how == "absent":
        offline = {k: v for k, v in data.items() if k not in incomers}
    else:
        offline = {k: ({c: (a if c == "time_ns" else np.full(len(a), np.nan)) for c, a in v.items()}
                       if k in incomers else v) for k, v in data.items()}
    out = assess.site_savings(site, offline, tariff)
    assert [f.type for f in out] == ["saving_not_priced"]          # nothing priced from a feeder meter
    f = out[0]
    assert f.yuan_month is None and f.kwh_month is None
    assert "主进线表无数据，本期节费不计算" in f.explanation_zh
    assert "the incomer meter sent no data: savings not priced" in f.explanation_en.lower()
    assert f.evidence["without_data"] == sorted(incomers)
    assert all(m in f.explanation_en for m in incomers)


def test_one_incomer_offline_is_not_priced_from_the_other(plant):
    site, data, tariff = plant
    gone = site.transformers[1].meter
    out = assess.site_savings(site, {k: v for k, v in data.items() if k != gone}, tariff)
    assert [f.type for f in out] == ["saving_not_priced"]
    assert out[0].evidence["without_data"] == [gone]
