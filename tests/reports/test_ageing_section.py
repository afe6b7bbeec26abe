"""Transformer ageing in the monthly report: life consumed this month, from winding temperatures in a real influxd."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.workflow import CHEAP

from analytics import ageing
from api.main import create_app
from api.settings import ApiSettings
from core.config import parse_fleet
from core.influx import InfluxClient
from core.units import NS
from reports.assemble import build_monthly_report
from reports.render import render_html, render_pdf
from workflow import Store, month_bounds_ns

MONTH, TZ = "2026-02", "Asia/Shanghai"
CTL, METER = "c1-s1-t1-temp", "c1-s1-m1"
FLEET = parse_fleet({"customer": [{"id": "c1", "name": "C1", "site": [{
    "id": "c1-s1", "timezone": TZ, "tariff": "jiangsu_large_industry", "tariff_example_ok": True,
    "transformer": [{"id": "c1-s1-t1", "rated_kva": 800, "p0_kw": 1.2, "pk_kw": 6.96, "meter": METER,
                     "temperature_controller": CTL, "insulation_class": 155}],
    "device": [{"id": CTL, "kind": "transformer", "transport": "mqtt", "poll_interval_s": 60},
               {"id": METER, "kind": "meter", "transport": "mqtt", "poll_interval_s": 60}]}]}]}, "<test>")


@pytest.fixture(scope="module")
def report(influxd):
    influxd.create_database("ageing_month")
    client = InfluxClient(influxd.url, "ageing_month")
    start, end = month_bounds_ns(MONTH, TZ)
    t = start + 3 * 86400 * NS + np.arange(2 * 1440, dtype=np.int64) * 60 * NS     # days 4 and 5 of the month
    hottest = np.where(np.arange(t.size) < 1440, 130.0, 136.0)   # hot spot 145 °C (rate 1), then 151 °C
    lines = [f"transformer,customer=c1,device={CTL},site=c1-s1 winding_temperature_l1={w - 5:.1f},"
             f"winding_temperature_l2={w:.1f},winding_temperature_l3={w - 3:.1f} {ti}"
             for ti, w in zip(t, hottest, strict=True)]
    lines += [f"meter,customer=c1,device={METER},site=c1-s1 active_power=400000,reactive_power=150000,"
              f"apparent_power=427000 {ti}" for ti in t]
    client.write_lines("\n".join(lines))
    rep = build_monthly_report(client, FLEET, "c1", MONTH, now_ns=end + 86400 * NS)
    yield rep, hottest
    client.close()


def test_life_consumed_this_month_follows_the_windings(report):
    rep, hottest = report
    [a] = rep.sites[0].ageing
    assert a.transformer == "c1-s1-t1" and a.basis == "windings"
    rate_hot = float(ageing.relative_ageing_dry(151.0, 155))
    assert a.covered_days == pytest.approx(2.0, abs=2 / 1440)
    # one day at the design rate (1.0) and one at the 151 °C rate (about 2.0)
    assert a.days_consumed == pytest.approx(1.0 + rate_hot, abs=0.01)
    assert a.peak_hot_spot_c == pytest.approx(151.0, abs=0.05)
    assert a.design_life_days == pytest.approx(7500.0)          # 180,000 h of class F
    assert a.share_of_life_pct == pytest.approx(100 * a.days_consumed / 7500.0, rel=1e-3)
    assert rep.to_dict()["sites"][0]["ageing"][0]["days_consumed"] == a.days_consumed


@pytest.mark.parametrize(("lang", "words"), [("zh", ["变压器绝缘老化", "温控器绕组温度"]),
                                             ("en", ["Transformer insulation ageing", "controller"])])
def test_ageing_section_in_the_pdf(report, tmp_path, lang, words):
    rep, _ = report
    pdf = tmp_path / f"report-{lang}.pdf"
    pdf.write_bytes(render_pdf(render_html(rep, lang, charts=False)))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    a = rep.sites[0].ageing[0]
    for w in [*words, f"{a.days_consumed:.2f}", "c1-s1-t1"]:
        assert w in text, w


def test_site_ageing_api_for_the_customer_page(report, influxd, tmp_path):
    rep, _ = report
    start, end = month_bounds_ns(MONTH, TZ)
    store = Store(f"sqlite:///{tmp_path / 'wf.db'}", clock=lambda: end + 86400 * NS, password_cost=CHEAP)
    store.seed_fleet(FLEET)
    store.create_user("c1.user", "customer", password="cust-pass-1", customer_id="c1")
    client = InfluxClient(influxd.url, "ageing_month")
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=store, influx=client,
                     clock=lambda: end + 86400 * NS, fleet=FLEET)
    with TestClient(app) as c:
        tok = c.post("/api/v1/auth/token", json={"username": "c1.user", "password": "cust-pass-1"}).json()
        h = {"Authorization": f"Bearer {tok['access_token']}"}
        r = c.get(f"/api/v1/sites/c1-s1/transformer-ageing?month={MONTH}", headers=h)
        assert r.status_code == 200, r.text
        [row] = r.json()["transformers"]
        assert row["days_consumed"] == rep.sites[0].ageing[0].days_consumed
        assert c.get("/api/v1/sites/c1-s1/transformer-ageing", headers=h).json()["month"] == "2026-03"
        assert c.get("/api/v1/sites/c1-s1/transformer-ageing?month=2026-13", headers=h).status_code == 422
        assert c.get("/api/v1/sites/c1-s1/transformer-ageing?month=2030-01", headers=h).status_code == 422
        assert c.get("/api/v1/sites/nope/transformer-ageing", headers=h).status_code == 404
    client.close()
    store.close()
