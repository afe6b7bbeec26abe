"""Tests for analytics.tariffs: shipped data files, loader validation, TOU mapping, billing vectors."""

import dataclasses
import tomllib

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import tariffs as tf

H = 3600 * 10**9
MIN = 60 * 10**9


def utc_ns(s):
    return int(np.datetime64(s, "ns").astype(np.int64))


@pytest.mark.parametrize("tid", sorted(p.stem for p in tf.TARIFF_DIR.glob("*.toml")))
def test_every_shipped_tariff_loads(tid):
    t = tf.load_tariff(tid)
    assert t.id == tid and (t.calendar[1:] >= 0).all()


def test_sichuan_prices_and_periods():
    t = tf.load_tariff("sichuan_large_industry_2023")
    assert_allclose([t.price("peak"), t.price("valley"), t.price("critical")], [0.96, 0.24, 1.152])
    # local 2026-07-15 16:00 (UTC+8) = 08:00 UTC -> critical; 03:00 local -> valley; 11:00 -> peak
    assert t.periods[t.period_index([utc_ns("2026-07-15T08:00")])[0]] == "critical"
    assert t.periods[t.period_index([utc_ns("2026-03-15T08:00")])[0]] == "peak"
    assert t.periods[t.period_index([utc_ns("2026-03-14T19:00")])[0]] == "valley"
    assert t.periods[t.period_index([utc_ns("2026-12-31T11:30")])[0]] == "critical"   # 19:30 local Dec
    # 2026-01-31T23:30 UTC is already 1 February 07:30 local: flat, ordinary season
    assert t.periods[t.period_index([utc_ns("2026-01-31T23:30")])[0]] == "flat"
    hours = t.calendar[3].reshape(24, 60)[:, 0]
    names = [t.periods[i] for i in hours]
    assert names.count("peak") == 8 and names.count("valley") == 8 and names.count("flat") == 8


def test_energy_by_period_one_day():
    t = tf.load_tariff("beijing_ev_charging_2016")
    day = utc_ns("2026-03-01T00:00") - 8 * H              # local midnight
    ts = day + np.arange(1440) * MIN
    e = np.full(1440, 1.0 / 60)                            # 1 kW all day -> 1 kWh per hour
    kwh = tf.energy_by_period(ts, e, t)
    assert_allclose([kwh["peak"], kwh["flat"], kwh["valley"]], [8, 8, 8])
    c = tf.energy_cost(ts, e, t)
    assert_allclose(c["total_yuan"], 8 * (1.0044 + 0.6950 + 0.3946))
    # EV session shift vector (docs/standards.md §9.3): 60 kWh peak -> valley saves 36.588 yuan
    assert_allclose(60 * (t.price("peak") - t.price("valley")), 36.588)


def test_dst_zone_is_respected(tmp_path):
    data = tomllib.loads((tf.TARIFF_DIR / "beijing_ev_charging_2016.toml").read_text())
    data["timezone"] = "Europe/Berlin"
    t = tf.parse_tariff(data)
    # 10:30 local in winter (UTC+1) and summer (UTC+2) are both peak
    assert t.periods[t.period_index([utc_ns("2026-01-10T09:30")])[0]] == "peak"
    assert t.periods[t.period_index([utc_ns("2026-07-10T08:30")])[0]] == "peak"
    assert t.periods[t.period_index([utc_ns("2026-07-10T09:30") - 2 * H])[0]] == "flat"   # 09:30 local


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("timezone"), "timezone"),
    (lambda d: d.update(timezone="Mars/Base"), "unknown time zone"),
    (lambda d: d["energy_price"].update(peak=0.1), "must not decrease"),
    (lambda d: d["energy_price"].update(super=2.0), "unknown period"),
    (lambda d: d["season"][0]["periods"].pop(), "not covered"),
    (lambda d: d["season"][0]["periods"].append(["06:00", "08:00", "flat"]), "overlaps"),
    (lambda d: d["season"][0]["periods"].__setitem__(0, ["00:00", "07:00", "nightly"]), "has no price"),
    (lambda d: d["season"][0]["months"].remove(3), "months \\[3\\]"),
    (lambda d: d["season"][1]["months"].append(2), "already in season"),
    (lambda d: d["basic"].update(contract_excess_rule="C"), "contract_excess_rule"),
    (lambda d: d["basic"].update(demand_yuan_per_kw_month=-1), "demand_yuan_per_kw_month"),
    (lambda d: d.update(power_factor={"standard": 0.95}), "power_factor.standard"),
    (lambda d: d["season"][0]["periods"].__setitem__(0, ["0700", "00:00", "valley"]), "HH:MM"),
])
def test_loader_rejects_bad_files(mutate, message):
    data = tomllib.loads((tf.TARIFF_DIR / "sichuan_large_industry_2023.toml").read_text())
    mutate(data)
    with pytest.raises(tf.TariffError, match=message):
        tf.parse_tariff(data, "bad.toml")


def test_load_unknown_lists_available(tmp_path):
    with pytest.raises(tf.TariffError, match="sichuan_large_industry_2023"):
        tf.load_tariff("atlantis")
    p = tmp_path / "other.toml"
    p.write_text((tf.TARIFF_DIR / "beijing_ev_charging_2016.toml").read_text())
    with pytest.raises(tf.TariffError, match="must equal the file name"):
        tf.load_tariff(p)


def test_max_demand_window_vector():
    p = np.r_[np.full(10, 100.0), np.full(15, 400.0), np.full(5, 100.0)]
    assert tf.max_demand_kw(p, 15, sliding=False) == 300.0
    assert tf.max_demand_kw(p, 15, sliding=True) == 400.0
    assert np.isnan(tf.max_demand_kw(p[:5]))


@pytest.mark.parametrize("d, a, b", [(500, 24000, 24000), (600, 24000, 24000), (630, 24000, 24000),
                                     (650, 26800, 25600), (700, 30800, 29600)])
def test_demand_charge_contract_vectors(d, a, b):
    assert_allclose(tf.demand_charge(d, 40, 600, rule="A"), a)
    assert_allclose(tf.demand_charge(d, 40, 600, rule="B"), b)


def test_capacity_charge_and_bill():
    assert tf.capacity_charge(1250, 30) == 37500
    t = tf.load_tariff("sichuan_large_industry_2023")
    start = utc_ns("2026-03-01T00:00") - 8 * H
    ts = start + np.arange(31 * 1440) * MIN
    p = np.full(ts.size, 500e3)                              # 500 kW flat
    bill = tf.monthly_bill(ts, p, t, rated_kva=1000, method="demand", kvarh=None)
    assert_allclose(bill["energy"]["total_kwh"], 500 * 24 * 31)
    assert_allclose(bill["max_demand_kw"], 500)
    assert_allclose(bill["basic_yuan"], 500 * 32)
    expected_energy = 500 * 31 * 8 * (0.96 + 0.60 + 0.24)
    assert_allclose(bill["energy"]["total_yuan"], expected_energy)
    bill2 = tf.monthly_bill(ts, p, t, rated_kva=1000, kvarh=500 * 24 * 31 * 0.6)
    assert bill2["pf"] == 0.86 and bill2["pf_adjust_pct"] == 2.0
    assert_allclose(bill2["pf_adjust_yuan"], 0.02 * (23000 + expected_energy))


def test_interval_energy_skips_gaps_and_nan():
    ts = np.array([0, 60, 120, 3720, 3780]) * 10**9
    e = tf.interval_energy_kwh(ts, [60e3, np.nan, 60e3, 60e3, 60e3], max_gap_s=600)
    assert_allclose(e, [1.0, 0.0, 0.0, 1.0, 1.0])


def test_max_demand_nan_spoils_only_its_own_windows():
    p = np.r_[np.full(100, 100.0), [np.nan], np.full(100, 400.0)]
    assert tf.max_demand_kw(p) == pytest.approx(400.0)
    assert tf.max_demand_kw(p, sliding=False) == pytest.approx(400.0)


def test_site_on_an_example_or_other_province_tariff_is_refused_unless_accepted():
    """Huadong's cold store (Zhejiang) on the Jiangsu example schedule: refused, naming site and key."""
    jiangsu = tf.load_tariff("jiangsu_large_industry")
    with pytest.raises(tf.TariffError, match=r"site 'huadong-coldstore'.*example prices.*tariff_example_ok = true"):
        tf.check_site_tariff("huadong-coldstore", "Zhejiang", False, jiangsu)
    tf.check_site_tariff("huadong-coldstore", "Zhejiang", True, jiangsu)           # the fleet accepts it
    verified = dataclasses.replace(jiangsu, prices_are_example=False)
    tf.check_site_tariff("acme-plant1", "Jiangsu", False, verified)
    with pytest.raises(tf.TariffError, match=r"province 'Zhejiang' is billed on tariff .* of 'Jiangsu'"):
        tf.check_site_tariff("huadong-coldstore", "Zhejiang", False, verified)
    assert jiangsu.province == "Jiangsu"


def test_fleet_file_reads_province_and_tariff_example_ok(tmp_path):
    from core.config import ConfigError, load_fleet

    fleet = load_fleet(tf.TARIFF_DIR.parent / "sites.example.toml")
    site = fleet.sites["huadong-coldstore"]
    assert (site.province, site.tariff_example_ok) == ("Zhejiang", True)
    bad = (tf.TARIFF_DIR.parent / "sites.example.toml").read_text(encoding="utf-8").replace(
        'province = "Zhejiang"\n  tariff_example_ok = true', 'province = "Zhejiang"\n  tariff_example_ok = "yes"')
    (tmp_path / "f.toml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match="huadong-coldstore.*tariff_example_ok.*expected bool"):
        load_fleet(tmp_path / "f.toml")
