"""Known-value tests for analytics.ageing (docs/standards.md §7.5)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import ageing
from core.units import NS

MIN = 60 * NS


def test_oil_plain_paper_doubles_every_6_k_from_98_c():
    got = ageing.relative_ageing_oil([80, 86, 92, 98, 104, 110])
    assert got == pytest.approx([0.125, 0.25, 0.5, 1.0, 2.0, 4.0], rel=1e-12)


def test_oil_upgraded_paper_known_values():
    got = ageing.relative_ageing_oil([80, 98, 110, 122], upgraded_paper=True)
    assert got == pytest.approx([0.0358, 0.2817, 1.0, 3.2864], abs=5e-5)


def test_dry_class_f_gives_180000_h_at_rated_hot_spot_and_halves_per_6_k():
    assert float(ageing.dry_life_hours(145.0, 155)) == pytest.approx(180_000, rel=1e-3)
    assert float(ageing.relative_ageing_dry(145.0, 155)) == pytest.approx(1.0)
    assert float(ageing.relative_ageing_dry(151.0, 155)) == pytest.approx(2.0, rel=1e-4)
    # Arrhenius, not a power of two: 6 K below the rated hot spot slows ageing a little more than half
    assert float(ageing.relative_ageing_dry(139.0, 155)) == pytest.approx(0.4900, abs=1e-4)


@pytest.mark.parametrize("cls", sorted(ageing.DRY_CLASSES))
def test_every_dry_class_is_rated_near_180000_h(cls):
    rated = ageing.DRY_CLASSES[cls][2]
    assert float(ageing.dry_life_hours(rated, cls)) == pytest.approx(180_000, rel=0.02)


def test_unknown_insulation_class_is_a_clear_error():
    with pytest.raises(ValueError, match="insulation class 150"):
        ageing.relative_ageing_dry(100.0, 150)


def test_steady_hot_spot_at_rated_load_and_20_c_is_98_c():
    assert float(ageing.hot_spot_steady(1.0, 20.0)) == pytest.approx(98.0)
    # no load: only the no-load share of the oil rise remains, 55 * (1/6)^0.8
    assert float(ageing.hot_spot_steady(0.0, 20.0)) == pytest.approx(20 + 55 * (1 / 6) ** 0.8)


def test_dynamic_model_settles_on_the_steady_state_after_a_load_step():
    t = np.arange(0, 24 * 60) * MIN                     # one day of 1-min samples
    k = np.where(t < 2 * 60 * MIN, 0.5, 1.2)            # step from 0.5 to 1.2 p.u. after two hours
    hs = ageing.hot_spot_dynamic(t, k, 25.0)
    assert hs[0] == pytest.approx(float(ageing.hot_spot_steady(0.5, 25.0)))
    assert hs[-1] == pytest.approx(float(ageing.hot_spot_steady(1.2, 25.0)), abs=0.05)
    # the winding responds within minutes, the oil over hours: monotone rise after the step
    after = hs[2 * 60:]
    assert np.all(np.diff(after) >= -1e-9)
    assert after[10] - hs[2 * 60 - 1] > 0.5 * (ageing.hot_spot_steady(1.2, 25.0) - hs[0]) * 0.2


def test_dynamic_model_is_the_same_with_coarse_steps():
    fine = np.arange(0, 6 * 60) * MIN
    coarse = fine[::15]
    k_fine = np.where(fine < 60 * MIN, 0.6, 1.0)
    k_coarse = np.where(coarse < 60 * MIN, 0.6, 1.0)
    a = ageing.hot_spot_dynamic(fine, k_fine, 30.0)[::15]
    b = ageing.hot_spot_dynamic(coarse, k_coarse, 30.0)
    # the step is applied a little later on the coarse grid; by the end both agree closely
    assert b[-1] == pytest.approx(a[-1], abs=0.5)


def test_missing_load_yields_nan_and_is_not_zero_load():
    t = np.arange(0, 10) * MIN
    k = np.array([1.0, 1.0, np.nan, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    hs = ageing.hot_spot_dynamic(t, k, 20.0)
    assert np.isnan(hs[2]) and np.isnan(hs[3])
    assert hs[4] == pytest.approx(98.0, abs=1e-6)


def test_dry_hot_spot_from_hottest_winding_plus_allowance():
    w = np.array([[100.0, 104.0, 102.0], [np.nan, np.nan, np.nan], [90.0, np.nan, 95.0]])
    assert ageing.dry_hot_spot_from_windings(w, 15.0) == pytest.approx([119.0, np.nan, 110.0], nan_ok=True)


def test_one_day_at_design_hot_spot_consumes_one_day_of_life():
    t = np.arange(0, 24 * 60 + 1) * MIN
    v = ageing.relative_ageing_oil(np.full(t.size, 98.0))
    lol = ageing.loss_of_life(t, v)
    assert lol.covered_days == pytest.approx(1.0)
    assert lol.days_consumed == pytest.approx(1.0)
    assert lol.mean_rate == pytest.approx(1.0)
    assert lol.fraction_of_life(20.0) == pytest.approx(1 / (20 * 365.25))


def test_gaps_and_nan_are_not_counted_as_ageing():
    t = np.concatenate([np.arange(0, 61) * MIN, (np.arange(0, 61) + 240) * MIN])   # a 3-h gap
    v = np.full(t.size, 2.0)
    v[10] = np.nan
    lol = ageing.loss_of_life(t, v)
    covered_min = 120 - 2                              # two 1-min intervals touch the NaN sample
    assert lol.covered_days == pytest.approx(covered_min / 1440)
    assert lol.days_consumed == pytest.approx(2.0 * covered_min / 1440)
    assert lol.peak_rate == 2.0
