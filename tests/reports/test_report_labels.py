"""Honest labels: a saving is called verified only within IPMVP / Guideline 14 limits; a month in
progress is marked partial everywhere; the words say so in zh and en (no InfluxDB needed)."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from support.report_labels import FEB1, _line, _report

from core.units import NS
from reports.assemble import _pro_rate, savings_vs_baseline
from reports.render import render_html
from reports.summary import headline


def _text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_verified_saving_is_called_verified_in_both_languages():
    r = _report()
    r.savings = savings_vs_baseline(r, 1.0, None, [_line()])
    assert r.savings.verdict == "verified" and r.savings.saved_yuan == pytest.approx(6200.0)
    zh, en = _text(render_html(r, "zh", charts=False)), _text(render_html(r, "en", charts=False))
    assert "经核证的节能量：10,000 kWh，折合 6,200 元" in zh and "节能量经核证：" in zh
    assert "Verified saving: 10,000 kWh, worth 6,200 yuan" in en
    assert "无法核证" not in zh and "cannot be verified" not in en


@pytest.mark.parametrize("line,code,zh_words,en_words", [
    (_line(n_extrapolated_days=25), "out_of_range", "有 25 / 28 天的日均气温超出基准期的范围",
     "25 of 28 days had a daily mean temperature outside the baseline's range"),
    (_line(savings_kwh=300.0, savings_yuan=186.0), "uncertain", "无法与零区分", "cannot be told from zero"),
    (_line(meets_guideline14=False, cv_rmse_pct=31.0), "model_fit", "CV(RMSE) 31%（上限 20%）",
     "CV(RMSE) 31 % (limit 20 %)"),
])
def test_not_verifiable_says_so_and_why(line, code, zh_words, en_words):
    r = _report()
    r.savings = savings_vs_baseline(r, 1.0, None, [line])
    assert r.savings.verdict == "not_verifiable" and code in [x["code"] for x in r.savings.reasons]
    assert r.savings.method == "configured"                      # a unit-cost comparison, labelled as such
    zh, en = _text(render_html(r, "zh", charts=False)), _text(render_html(r, "en", charts=False))
    assert "本月无法核证节能量" in zh and zh_words in zh and "经核证的节能量：" not in zh
    assert "No saving can be verified this month" in en and en_words in en and "Verified saving:" not in en
    assert "仅供参考（未经核证）" in zh and "For reference only (not verified)" in en


def test_partial_month_is_marked_everywhere_and_never_verified():
    r = _report(days_covered=4.0)
    assert r.partial and r.to_dict()["partial"] is True
    r.savings = savings_vs_baseline(r, None, None, [_line()])
    assert r.savings.verdict == "not_verifiable" and r.savings.reasons[0]["code"] == "partial_month"
    assert r.savings.saved_yuan is None
    zh, en = _text(render_html(r, "zh", charts=False)), _text(render_html(r, "en", charts=False))
    assert "本月尚未结束：本报告只含前 4.0 天（共 28 天）" in zh and "按已过天数折算" in zh
    assert "Month in progress: this report covers only the first 4.0 of 28 days" in en
    assert "pro-rated by days" in en and "No saving can be verified this month" in en


def test_partial_month_pro_rates_the_basic_charge_like_with_like():
    bill = {"basic_yuan": 36_000.0, "energy": {"total_yuan": 8_000.0}, "pf": 0.86, "pf_adjust_pct": 2.0,
            "pf_adjust_yuan": 880.0, "total_yuan": 44_880.0}
    b = _pro_rate(bill, 4 / 28)
    assert b["basic_yuan"] == pytest.approx(36_000 * 4 / 28)
    assert b["pf_adjust_yuan"] == pytest.approx(0.02 * (36_000 * 4 / 28 + 8_000))
    assert b["total_yuan"] == pytest.approx(8_000 + 36_000 * 4 / 28 + 0.02 * (36_000 * 4 / 28 + 8_000))
    assert _pro_rate(bill, 1.0) is bill


def test_headline_says_bill_saving_and_advice_in_words():
    r = _report()
    r.savings = savings_vs_baseline(r, None, None, None)
    zh, en = headline(r, "zh"), headline(r, "en")
    assert zh[0] == "用电 100,000 kWh，电费 98,000 元（平均 0.9800 元/kWh）。"
    assert zh[1] == "本月无法核证节能量：" and "合同未约定基准" in zh[2]
    assert zh[-1].startswith("1 项节能建议合计约 2,200 元/月")
    assert en[-1].startswith("1 recommendation is worth about 2,200 yuan/month, the largest about 2,200")


ALLOWED = {"kWh", "kVA", "kvar", "IPMVP", "ASHRAE", "RMSE", "NMBE", "acme", "plant", "sichuan", "large",
           "industry", "energyhost"}


@pytest.mark.parametrize("verified", [True, False])
def test_zh_report_has_no_english_words_and_en_no_yuan_sign(verified):
    r = _report()
    r.savings = savings_vs_baseline(r, 1.0, None, [_line() if verified else _line(n_extrapolated_days=25)])
    zh = _text(render_html(r, "zh", charts=False))
    words = {w for w in re.findall(r"[A-Za-z]{3,}", zh) if w not in ALLOWED}
    assert words == set(), words
    assert not re.search(r"[\u4e00-\u9fff][,:;()]|[,:;(][\u4e00-\u9fff]", zh), "half-width punctuation in zh"
    en = _text(render_html(r, "en", charts=False))
    assert "元" not in en and "yuan" in en


def test_pq_verdict_prints_limit_failing_count_and_basis():
    """Voltage 99.98 % within: 'not compliant' with the limit, the 3 failing values and why 3 × 4,320."""
    import numpy as np

    from analytics import power_quality as pq
    from reports.assemble import _pq_lines

    t = FEB1 + np.arange(30 * 1440) * 60 * NS
    u = np.full(t.size, 230.0)
    u[1000:1010] = 250.0                                   # one 10-min value of L1 above +7 %
    u2 = np.full(t.size, 230.0)
    u2[5000:5020] = 200.0                                  # two of L2 below -7 %
    ch = {"voltage_l1": u, "voltage_l2": u2, "voltage_l3": np.full(t.size, 230.0),
          "frequency": np.full(t.size, 50.0)}
    lines = {x.check: x for x in _pq_lines("m1", pq.compliance_summary(t, ch, 230.0, period_s=60.0))}
    v, f = lines["voltage"], lines["frequency"]
    assert (v.n_valid, v.n_outside, v.compliant) == (12960, 3, False) and f.n_valid == 4320
    assert v.limit_zh == "标称电压 ±7%" and v.limit_en == "±7 % of nominal"
    assert v.basis_zh == "三相各 4,320 个 10 分钟值，共 12,960 个，其中 3 个越限；任一值越限即判为不合格。"
    assert "3 phases × 4,320 10-min values = 12,960, 3 outside the limit" in v.basis_en
    assert "不分相" in f.basis_zh and "not per phase" in f.basis_en
    r = _report()
    r.sites[0].pq = list(lines.values())
    zh = _text(render_html(r, "zh", charts=False))
    assert "越限个数" in zh and "其中 3 个越限" in zh and "±7 % of nominal" not in zh


def test_report_refuses_an_unaccepted_example_tariff_naming_site_and_key():
    import copy

    from support.report_month import CUSTOMER, FLEET_RAW, MONTH, SITE

    from core.config import parse_fleet
    from reports.assemble import build_monthly_report

    raw = copy.deepcopy(FLEET_RAW)
    del raw["customer"][0]["site"][0]["tariff_example_ok"]
    fleet = parse_fleet(raw, "fleet.toml")
    with pytest.raises(ValueError, match=f"site '{SITE}'.*example prices.*tariff_example_ok = true"):
        build_monthly_report(None, fleet, CUSTOMER, MONTH, now_ns=FEB1 + 40 * 86400 * NS)


def test_february_pf_base_is_the_monthly_basic_charge_plus_energy_per_average_month():
    """The report's PF saving base: energy charge × 30.4375/28 + basic charge, not (both) × 30.4375/28."""
    import numpy as np
    from support.report_month import EV, METER, MONTH, PV, SITE, fleet, grid_arrays, synthetic_month

    from analytics import tariffs as tf
    from reports.assemble import assemble_site
    from reports.fetch import SiteArrays
    from workflow import month_bounds_ns

    g = grid_arrays(synthetic_month())
    site = fleet().sites[SITE]
    start, end = month_bounds_ns(MONTH, "Asia/Shanghai")
    t = g["time_ns"]
    arrays = SiteArrays(site=site, start_ns=start, end_ns=end, time_ns=t, main_meters=[METER], grid_power_w=g["p_w"],
                        grid_reactive_var=g["q_var"], pv_power_w=g["pv_w"], ev_power_w={EV: g["ev_w"]},
                        series={METER: {"time_ns": t, "active_power": g["p_w"], "reactive_power": g["q_var"]},
                                PV: {"time_ns": t, "active_power": g["pv_w"]}})
    sm, findings = assemble_site(arrays, tf.load_tariff(site.tariff))
    pf = next(f for f in findings if f.type == "saving_pf_correction")
    assert pf.evidence["analysed_days"] == 28.0
    assert pf.evidence["adjustment_base_yuan_month"] == pytest.approx(
        sm.energy_yuan * 30.4375 / 28 + sm.basic_charge_yuan, abs=0.01)
    pct = pf.evidence["adjust_pct_now"] - pf.evidence["adjust_pct_target"]
    assert pf.yuan_month == pytest.approx(pct / 100 * pf.evidence["adjustment_base_yuan_month"] + pf.evidence[
        "loss_kwh"] * 30.4375 / 28 * pf.evidence["price_yuan_per_kwh"], abs=0.06)
    assert np.isfinite(pf.yuan_month) and pf.yuan_month > 0
