"""The baseline's outdoor temperature: source rule (station, feed, weather measurement) and the gap rule."""

from __future__ import annotations

import copy
import html as htmllib
import os
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.config import parse_fleet
from core.influx import InfluxClient
from core.units import NS
from reports.assemble import BaselineContract, build_monthly_report, load_contracts
from reports.model import SiteRegression
from reports.render import render_html
from reports.weather import MIN_HOURS_PER_DAY, daily_temperature, load_feed

TZ = "Asia/Shanghai"
CUSTOMER, SITE, METER, MET = "wx", "wx-site", "wx-site-m1", "wx-site-met1"
FLEET_RAW = {"customer": [{"id": CUSTOMER, "name": "WX", "site": [{
    "id": SITE, "name": "WX site", "timezone": TZ, "tariff": "jiangsu_large_industry", "tariff_example_ok": True,
    "voltage_level_kv": 10, "nominal_voltage_v": 230,
    "device": [{"id": METER, "kind": "meter", "transport": "mqtt", "poll_interval_s": 60},
               {"id": MET, "kind": "weather_station", "transport": "mqtt", "poll_interval_s": 60}]}]}]}
BASE_START, BASE_END = date(2026, 1, 8), date(2026, 1, 31)      # 24 baseline days
FEB8 = int(datetime(2026, 2, 8, tzinfo=ZoneInfo(TZ)).timestamp())  # report of February in progress: 7 days


def _local(d: date, hour: float) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(TZ)).timestamp() + hour * 3600


def _text(html: str) -> str:
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", " ", html,
                                                                                  flags=re.S))))


# ---------------------------------------------------------------- the gap rule (pure)


def test_a_day_needs_20_hours_of_temperature_and_its_mean_is_of_hourly_means():
    first = date(2026, 3, 2)
    t0 = int(_local(first, 0)) * NS
    t, v = [], []
    for day, hours in ((0, range(24)), (1, range(19)), (2, range(20)), (3, ())):
        for h in hours:
            t.append(t0 + (day * 24 + h) * 3600 * NS)
            v.append(10.0 + h)
    # a dense hour (six values at 10 degC in hour 0 of day 2, unsorted) weighs as one hour, not six:
    # a mean of the samples would be 19.0 instead of 19.5
    t += [t0 + (2 * 24) * 3600 * NS + k * 600 * NS for k in range(1, 6)]
    v += [10.0] * 5
    mean, hours = daily_temperature(np.array(t), np.array(v), TZ, first, 4)
    assert MIN_HOURS_PER_DAY == 20
    assert hours.tolist() == [24, 19, 20, 0]
    assert mean[0] == pytest.approx(10 + 11.5) and mean[2] == pytest.approx(10 + 9.5)
    assert np.isnan(mean[1]) and np.isnan(mean[3])


def test_the_report_counts_days_without_temperature_in_both_languages():
    from support.report_labels import _line, _report

    from reports.assemble import savings_vs_baseline

    r = _report()
    r.savings = savings_vs_baseline(r, 1.0, None, [_line(temperature_source="station:plant-1-met1",
                                                         baseline_temperature_source="feed:temps.csv",
                                                         n_no_temperature_days=3, n_baseline_no_temperature_days=2)])
    en, zh = _text(render_html(r, "en", charts=False)), _text(render_html(r, "zh", charts=False))
    assert "3 days without outdoor temperature (fewer than 20 h): not compared." in en
    assert "2 baseline days without outdoor temperature (fewer than 20 h): left out of the model." in en
    assert ("Outdoor temperature: this month the site's weather station plant-1-met1; baseline period the "
            "external feed file temps.csv.") in en
    assert "3 天缺少室外温度（不足 20 小时）：未比较。" in zh and "基准期 2 天缺少室外温度" in zh
    assert "室外温度来源：本月 本站气象站 plant-1-met1；基准期 外部气温文件 temps.csv。" in zh
    plain = _text(render_html(r.__class__(**{**r.__dict__}), "en", charts=False))
    r.savings.regression = [_line()]
    assert "without outdoor temperature" not in _text(render_html(r, "en", charts=False)) and plain


# ---------------------------------------------------------------- the operator's feed


def test_feed_file_reads_hourly_rows_and_names_file_line_and_column(tmp_path):
    p = tmp_path / "temps.csv"
    p.write_text("site,time,temperature_c\nb,2026-02-01T01:00:00+08:00,3.5\n"
                 "b,2026-02-01T00:00:00+08:00,2.5\na,2026-02-01T00:00:00Z,-1\n", encoding="utf-8")
    feed = load_feed(p)
    t, v = feed.series["b"]
    feb1 = int(_local(date(2026, 2, 1), 0)) * NS
    assert t.tolist() == [feb1, feb1 + 3600 * NS]
    assert v.tolist() == [2.5, 3.5] and feed.series["a"][1].tolist() == [-1.0] and feed.path == "temps.csv"
    assert feed.window("b", int(t[1]), int(t[1]) + 1)[1].tolist() == [3.5]
    for body, words in (("site,time,temp\n", "header must be site,time,temperature_c"),
                        ("site,time,temperature_c\nb,2026-02-01T00:00:00,1\n", "temps.csv:2: column 'time'"),
                        ("site,time,temperature_c\nb,2026-02-01T00:00:00Z,1\nb,yesterday,1\n",
                         "temps.csv:3: column 'time'"),
                        ("site,time,temperature_c\nb,2026-02-01T00:00:00Z,warm\n", "column 'temperature_c'"),
                        ("site,time,temperature_c\nb,2026-02-01T00:00:00Z,95\n", "outside -80..70"),
                        ("site,time,temperature_c\n,2026-02-01T00:00:00Z,5\n", "column 'site' is empty")):
        p.write_text(body, encoding="utf-8")
        with pytest.raises(ValueError, match=re.escape(words)):
            load_feed(p)
    cfg = tmp_path / "baselines.toml"
    cfg.write_text('[customer.wx]\nbaseline_start = 2026-01-01\nbaseline_end = 2026-01-31\n'
                   'weather_feed = "missing.csv"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="missing.csv: cannot read the weather feed"):
        load_contracts(cfg)
    cfg.write_text('[customer.wx]\nweather_feed = 3\n', encoding="utf-8")
    with pytest.raises(ValueError, match="customer.wx.weather_feed must be a file name"):
        load_contracts(cfg)


# ---------------------------------------------------------------- end to end: backfilled station, real influxd


@pytest.fixture(scope="module")
def history(influxd):
    """Jan 8 - Feb 7 2026 of the meter and the weather station (FleetSignals seed 3, 1-min steps), plus the
    site's backfilled ``weather``; the station is silent on Feb 3 10:00-15:00 (19 h left) and Feb 5
    10:00-14:00 (20 h left)."""
    from simulators.backfill import backfill
    from simulators.signals import FleetSignals

    name = f"wx_{os.getpid()}"
    influxd.create_database(name)
    client = InfluxClient(influxd.url, name, timeout=60)
    fl = parse_fleet(FLEET_RAW, "<test fleet>")
    sig = FleetSignals(fl, 3)
    silent = [(MET, "device_silent", _local(date(2026, 2, 3), 10), _local(date(2026, 2, 3), 15)),
              (MET, "device_silent", _local(date(2026, 2, 5), 10), _local(date(2026, 2, 5), 14))]
    res = backfill(fl, sig, client, days=31, end=FEB8, devices=[METER, MET], status=False, faults=silent)
    assert res["gap_points"] == 9 * 60
    yield client, sig
    client.close()


def _regression(client, fleet_raw, contract) -> tuple[SiteRegression, str]:
    report = build_monthly_report(client, parse_fleet(fleet_raw, "<test fleet>"), CUSTOMER, "2026-02",
                                  now_ns=FEB8 * NS, contract=contract)
    (x,) = report.savings.regression
    return x, _text(render_html(report, "en", charts=False))


def test_report_baseline_uses_the_station_and_leaves_its_gap_day_out(history):
    client, sig = history
    contract = BaselineContract(baseline_start=BASE_START, baseline_end=BASE_END)
    x, en = _regression(client, FLEET_RAW, contract)
    assert x.error == "" and (x.temperature_source, x.baseline_temperature_source) == (f"station:{MET}",) * 2
    # Feb 3 (19 h) is not compared, although the weather measurement holds that day in full; Feb 5 (20 h) is
    assert (x.n_no_temperature_days, x.m_days, x.n_excluded_days) == (1, 6, 1)
    assert (x.n_baseline_no_temperature_days, x.n_baseline_days) == (0, 24)
    assert x.daily_measured_kwh[2] is None and x.daily_measured_kwh[4] is not None
    assert f"Outdoor temperature: this month the site's weather station {MET}" in en
    assert "1 days without outdoor temperature (fewer than 20 h): not compared." in en
    # the station's temperature is the site's modelled outdoor temperature: the baseline's range matches
    grid = np.arange(_local(BASE_START, 0), _local(date(2026, 2, 1), 0), 60.0)
    want, _ = daily_temperature((grid * NS).astype(np.int64), sig.weather(SITE, grid)["outdoor_temperature"], TZ,
                                BASE_START, 24)
    assert (x.baseline_t_min_c, x.baseline_t_max_c) == pytest.approx((want.min(), want.max()), abs=0.06)


def test_without_a_station_the_feed_then_the_weather_measurement_is_used(history, tmp_path):
    client, sig = history
    no_station = copy.deepcopy(FLEET_RAW)
    no_station["customer"][0]["site"][0]["device"] = no_station["customer"][0]["site"][0]["device"][:1]
    x, en = _regression(client, no_station, BaselineContract(baseline_start=BASE_START, baseline_end=BASE_END))
    assert (x.temperature_source, x.n_no_temperature_days, x.m_days) == ("weather", 0, 7)
    assert "this month the weather measurement" in en
    hours = np.arange(_local(BASE_START, 0), FEB8, 3600.0)
    temps = sig.weather(SITE, hours)["outdoor_temperature"]
    lines = [f"{SITE},{datetime.fromtimestamp(h, ZoneInfo(TZ)).isoformat()},{v:.1f}" for h, v in zip(hours, temps,
                                                                                                  strict=True)
             if not _local(date(2026, 2, 6), 0) <= h < _local(date(2026, 2, 6), 5)]   # Feb 6: 19 h
    (tmp_path / "temps.csv").write_text("site,time,temperature_c\n" + "\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "b.toml").write_text('[customer.wx]\nbaseline_start = 2026-01-08\nbaseline_end = 2026-01-31\n'
                                     'weather_feed = "temps.csv"\n', encoding="utf-8")
    contract = load_contracts(tmp_path / "b.toml")[CUSTOMER]
    x, en = _regression(client, no_station, contract)
    assert (x.temperature_source, x.baseline_temperature_source) == ("feed:temps.csv",) * 2
    assert (x.n_no_temperature_days, x.m_days, x.n_baseline_days) == (1, 6, 24) and x.error == ""
    assert "this month the external feed file temps.csv" in en
