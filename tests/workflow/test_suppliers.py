"""Yearly supplier rating: scores from field records, ranking within a category, the two-year flag."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.units import NS
from workflow import suppliers as sp

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400 * NS
Y0 = 1_735_660_800 * NS                      # 2025-01-01T00:00Z
YEAR = int(365 * DAY)
RULES = sp.load_rules(ROOT / "suppliers" / "rating.toml")


def _fleet(rng, suppliers=("alpha", "beta", "gamma"), per=6, category="pv_inverter"):
    return [sp.Device(f"{s}-{i}", s, category, Y0 - 400 * DAY, site_id=f"site{i % 3}")
            for s in suppliers for i in range(per)]


def _year(devices, *, faulty="", start=Y0, rng=None):
    """A simulated year: every device has a few random faults; the ``faulty`` supplier's have many."""
    rng = rng or np.random.default_rng(7)
    faults, orders = [], []
    for d in devices:
        n = rng.poisson(6 if d.supplier == faulty else 0.5)
        for t in np.sort(rng.integers(start, start + YEAR, n)):
            faults.append({"device_id": d.id, "first_raised_ns": int(t)})
            repair_h = 90 if d.supplier == faulty else 12
            orders.append({"device_id": d.id, "created_ns": int(t), "resolved_ns": int(t) + repair_h * 3600 * NS})
    availability = {d.id: (0.97 if d.supplier == faulty else 0.999) for d in devices}
    peer = {d.id: (0.9 if d.supplier == faulty else 1.0) for d in devices}
    deliveries = [{"supplier": s, "category": "pv_inverter", "promised_ns": start + 30 * DAY,
                   "delivered_ns": start + (40 if s == faulty else 20) * DAY} for s in {d.supplier for d in devices}]
    return sp.YearData(start, start + YEAR, devices, faults, availability, peer, orders, deliveries)


def test_the_shipped_weights_add_up_to_one():
    assert sum(RULES.weights.values()) == pytest.approx(1.0)


def test_the_supplier_with_injected_faults_ranks_last_in_its_category():
    rng = np.random.default_rng(11)
    devices = _fleet(rng)
    ratings = sp.rate_year(_year(devices, faulty="beta", rng=rng), RULES)
    last = [r for r in ratings if r.rank == r.of]
    assert [(r.supplier, r.of) for r in last] == [("beta", 3)]
    beta = next(r for r in ratings if r.supplier == "beta")
    assert beta.scores["delivery"] == 0.0 and "0 of 1 deliveries on time" in beta.evidence["delivery"]
    assert beta.scores["after_sales"] < 50 and "mean repair 90.0 h" in beta.evidence["after_sales"]
    assert all(r.total > beta.total for r in ratings if r.supplier != "beta")


def test_quality_counts_early_failures_double():
    d = sp.Device("m1", "acme", "meter", Y0 + 10 * DAY)
    year = sp.YearData(Y0, Y0 + YEAR, [d], faults=[{"device_id": "m1", "first_raised_ns": Y0 + 20 * DAY},
                                                  {"device_id": "m1", "first_raised_ns": Y0 + 200 * DAY}])
    (r,) = sp.rate_year(year, RULES)
    dy = (YEAR - 10 * DAY) / DAY / 365.25
    rate = 3 / dy                                           # one early (x2) + one ordinary
    assert r.scores["quality"] == pytest.approx(100 * (1 - rate / 4.0))
    assert "2 faults (1 early, counted double)" in r.evidence["quality"]


def test_an_aspect_without_data_is_left_out_of_the_total_not_scored():
    d = sp.Device("m1", "acme", "meter", Y0 - DAY)
    (r,) = sp.rate_year(sp.YearData(Y0, Y0 + YEAR, [d]), RULES)
    assert r.scores["quality"] == 100.0
    assert all(math.isnan(r.scores[a]) for a in ("operation", "after_sales", "delivery"))
    assert r.total == 100.0
    assert r.evidence["delivery"] == "no delivery recorded"


def test_ranked_last_two_years_running_is_flagged_and_one_year_is_not():
    rng = np.random.default_rng(5)
    devices = _fleet(rng)
    y1 = sp.rate_year(_year(devices, faulty="gamma", rng=rng), RULES)
    y2 = sp.rate_year(_year(devices, faulty="gamma", start=Y0 + YEAR, rng=rng), RULES)
    y3 = sp.rate_year(_year(devices, faulty="alpha", start=Y0 + 2 * YEAR, rng=rng), RULES)
    assert sp.last_two_years(y1, y2) == [("gamma", "pv_inverter")]
    assert sp.last_two_years(y2, y3) == []


def test_a_category_with_one_supplier_flags_nobody():
    devices = _fleet(np.random.default_rng(1), suppliers=("solo",), category="transformer")
    y = sp.rate_year(_year(devices, faulty="solo"), RULES)
    assert sp.last_two_years(y, y) == []


def test_weights_that_do_not_add_up_are_refused(tmp_path):
    text = (ROOT / "suppliers" / "rating.toml").read_text(encoding="utf-8").replace(
        "quality = 0.35", "quality = 0.45")
    f = tmp_path / "rating.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="must add up to 1"):
        sp.load_rules(f)


def test_a_tie_at_the_bottom_flags_nobody():
    def r(supplier, total, rank):
        return sp.Rating(supplier, "meter", 3, {}, {}, total, rank, 2)

    tied = [r("alpha", 100.0, 1), r("beta", 100.0, 2)]          # e.g. a year without field data
    assert sp.last_two_years(tied, tied) == []
    apart = [r("alpha", 90.0, 1), r("beta", 60.0, 2)]
    assert sp.last_two_years(apart, apart) == [("beta", "meter")]
    assert sp.last_two_years(tied, apart) == []
