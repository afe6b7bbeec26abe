"""Monthly saving report: figures equal the analytics' own, PDF opens, e-mail arrives, zh and en.

A synthetic February 2026 (tests/support/report_month.py) is written to the session's real
influxd; a real SQLite workflow store holds the month's alarms and work orders; a real
aiosmtpd SMTP server on a free loopback port receives the e-mail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import date, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from support.report_month import (  # noqa: E402  (the month's key instants)
    CUSTOMER,
    EV,
    FEB10,
    MAR2,
    METER,
    MONTH,
    OTHER_CUSTOMER,
    PV,
    SITE,
    fleet,
    grid_arrays,
)
from support.smtp_sink import start_smtp

from analytics import assess, faults, savings
from analytics import power_quality as pq
from analytics import tariffs as tf
from core.influx import InfluxClient
from core.units import NS
from energyhost.devstack import free_port
from reports import archive as archive_mod
from reports.archive import ReportArchive
from reports.assemble import (
    BaselineContract,
    build_monthly_report,
    load_baselines,
    load_contracts,
    savings_vs_baseline,
)
from reports.mail import MailError, SmtpSettings
from reports.render import render_html, render_pdf
from reports.schedule import due_reports, generate, mail_report, previous_month, run_due_reports
from workflow import month_bounds_ns


@pytest.fixture(scope="module")
def report(month, store):
    client, _ = month
    return build_monthly_report(client, fleet(), CUSTOMER, MONTH, store=store, baseline_yuan_per_kwh=1.0,
                                survey_url="http://127.0.0.1:8000/web/customer?survey=2026-02", now_ns=MAR2)


def test_bill_figures_equal_analytics(report, month):
    """TOU energy/cost, max demand, basic charge, PF and its adjustment = tariffs.monthly_bill on the same data."""
    _, data = month
    g = grid_arrays(data)
    site = fleet().sites[SITE]
    tariff = tf.load_tariff(site.tariff)
    p, q = np.nan_to_num(g["p_w"]), np.nan_to_num(g["q_var"])
    kvarh = float(np.sum(tf.interval_energy_kwh(g["time_ns"], np.abs(q), max_gap_s=600)))
    bill = tf.monthly_bill(g["time_ns"], p, tariff, 1000.0, "demand", 600.0, kvarh)
    s = report.sites[0]
    assert s.energy_kwh == pytest.approx(bill["energy"]["total_kwh"], rel=1e-9)
    assert s.energy_yuan == pytest.approx(bill["energy"]["total_yuan"], rel=1e-9)
    assert {t.period: t.kwh for t in s.tou} == pytest.approx(bill["energy"]["kwh"], rel=1e-9)
    assert {t.period: t.yuan for t in s.tou} == pytest.approx(bill["energy"]["yuan"], rel=1e-9)
    assert s.max_demand_kw == pytest.approx(bill["max_demand_kw"], rel=1e-9)
    assert s.basic_charge_yuan == pytest.approx(bill["basic_yuan"]) and s.basic_charge_method == "demand"
    assert s.power_factor == bill["pf"] and s.pf_adjustment_pct == bill["pf_adjust_pct"]
    assert s.pf_adjustment_yuan == pytest.approx(bill["pf_adjust_yuan"], rel=1e-9)
    assert s.bill_yuan == pytest.approx(bill["total_yuan"], rel=1e-9)
    # the data's own physics: the spike on day 17 sets the demand, PF ~ 0.77 is surcharged
    assert 500 < s.max_demand_kw < 560
    assert s.max_demand_time_ns is not None
    assert (s.max_demand_time_ns - data["start_ns"]) // (86400 * NS) == 16
    assert s.power_factor == pytest.approx(0.77) and s.pf_adjustment_pct > 0
    # contract 600 kW, demand below 105 %: billed the contract value
    assert s.basic_charge_yuan == pytest.approx(600 * tariff.demand_price)
    assert report.bill_yuan == pytest.approx(s.bill_yuan)
    # the register counts the gap's energy too; at the meter swap the new register already holds
    # 15 min of energy when read: no more than the transformer's rating could deliver in 15 min, so
    # faults.counter_increments (bounded by the rating) takes it as counted from zero (a reset) and
    # counts it; only the quarter-hour before the first reading of the month is not counted
    meter, _ = data[METER]
    all_import_kwh = float(np.sum(np.clip(meter["active_power"], 0, None))) / 60 / 1000
    first_minute_kwh = (meter["energy_import"][14] - 5.0e6) / 1000    # no reading before the month: the
    #                                                                  first quarter-hour's reading opens it
    assert s.register_kwh == pytest.approx(all_import_kwh - first_minute_kwh, rel=1e-9)
    assert s.register_events == {"reset": 1}
    assert s.register_diff_pct == pytest.approx(100 * (s.energy_kwh - s.register_kwh) / s.register_kwh)
    assert abs(s.register_diff_pct) < 1.0          # gap missing from power, swap quarter-hour from register


def test_pv_ev_pq_completeness_equal_analytics(report, month):
    _, data = month
    g = grid_arrays(data)
    t = g["time_ns"]
    site = fleet().sites[SITE]
    tariff = tf.load_tariff(site.tariff)
    s = report.sites[0]
    f = savings.pv_self_consumption(SITE, t, g["pv_w"] / 1000, np.nan_to_num(g["p_w"]) / 1000, tariff)
    assert s.pv_generation_kwh == f.evidence["pv_kwh"]
    assert s.pv_self_consumed_kwh == pytest.approx(f.evidence["pv_kwh"] - f.evidence["export_kwh"])
    assert s.pv_generation_kwh == pytest.approx(np.sum(g["pv_w"]) / 60 / 1000, abs=0.1)
    ev_e = tf.interval_energy_kwh(t, g["ev_w"], max_gap_s=600)
    cost = tf.energy_cost(t, ev_e, tariff)
    assert s.ev_energy_kwh == pytest.approx(cost["total_kwh"]) and s.ev_cost_yuan == pytest.approx(cost["total_yuan"])
    assert s.ev_energy_kwh == pytest.approx(np.sum(data[EV][0]["active_power"]) / 60 / 1000)
    assert s.ev_sessions == len(faults.intervals(g["ev_w"] > 1000, t)) == 28 + 20   # 28 nights + 20 weekday evenings
    # power quality: compliance_summary on the meter's samples
    meter, present = data[METER]
    ten = present.reshape(-1, 10).all(axis=1)        # the gap is whole 10-min intervals
    chans = {c: v.reshape(-1, 10).mean(axis=1)[ten] for c, v in meter.items()
             if c not in ("active_power", "reactive_power")}
    summary = pq.compliance_summary(t[::10][ten], chans, 230.0, voltage_level_kv=0.4, period_s=600.0)
    lines = {q.check: q for q in s.pq}
    assert set(lines) == set(summary)
    for check, want in summary.items():
        assert (lines[check].n_valid, lines[check].n_outside, lines[check].compliant) == (
            want["n_valid"], want["n_outside"], want["compliant"])
    assert lines["voltage"].compliant is False and lines["voltage"].n_outside > 0      # the day-10 over-voltage
    assert lines["thd_voltage"].compliant is True
    # completeness: faults.completeness of each device's samples
    for dev, period_s in ((METER, 60.0), (EV, 60.0)):
        fields, present = data[dev]
        want = faults.completeness(t[present], fields["active_power"][present], period_s, data["start_ns"],
                                   data["end_ns"])
        assert s.device_completeness_pct[dev] == pytest.approx(100 * want)
    assert s.device_completeness_pct[METER] == pytest.approx(100 * (1 - 360 / (28 * 1440)))


def test_recommendations_workflow_and_baseline(report, store, month):
    _, data = month
    g = grid_arrays(data)
    site = fleet().sites[SITE]
    s = report.sites[0]
    series = {METER: {"time_ns": g["time_ns"], "active_power": g["p_w"], "reactive_power": g["q_var"]},
              PV: {"time_ns": g["time_ns"], "active_power": g["pv_w"]},
              EV: {"time_ns": g["time_ns"], "active_power": g["ev_w"]}}
    want = assess.site_savings(site, series, tf.load_tariff(site.tariff), price_yuan_per_kwh=s.energy_yuan / s.energy_kwh)
    assert [(r.type, r.yuan_month, r.kwh_month) for r in report.recommendations] == [
        (f.type, f.yuan_month, f.kwh_month) for f in want if f.yuan_month > 0]
    assert report.recommendations, "the site wastes energy at night and pays a PF surcharge"
    yuan = [r.yuan_month for r in report.recommendations]
    assert yuan == sorted(yuan, reverse=True) and all(y > 0 for y in yuan)
    types = {r.type for r in report.recommendations}
    assert "saving_pf_correction" in types and "saving_ev_valley_charging" in types
    assert all(r.text_zh and r.text_en for r in report.recommendations)
    w = report.workflow
    assert (w.alarms_raised, w.alarms_cleared, w.alarms_by_severity) == (1, 1, {"major": 1})
    assert (w.orders_opened, w.orders_closed, w.orders_in_time, w.orders_overdue) == (2, 1, 1, 1)
    assert w.time_limit_compliance_pct == pytest.approx(100.0)
    assert (w.surveys, w.survey_mean_rating) == (2, 4.5)
    sv = report.savings
    assert sv.method == "configured" and sv.baseline_yuan_per_kwh == 1.0
    unit = report.bill_yuan / report.energy_kwh
    assert sv.actual_yuan_per_kwh == pytest.approx(unit)
    assert sv.saved_yuan == pytest.approx((1.0 - unit) * report.energy_kwh)


def test_baseline_from_previous_months_and_config(tmp_path, report):
    arch = ReportArchive(tmp_path)
    none = savings_vs_baseline(report, None, arch)
    assert none.method == "none" and none.saved_yuan is None
    for m, unit in (("2026-01", 1.10), ("2025-12", 1.00), ("2025-10", 9.99)):   # 2025-10 is 4 months back
        arch.save({"customer_id": CUSTOMER, "month": m, "energy_kwh": 1000.0, "bill_yuan": 1000.0 * unit,
                   "generated_ns": 1}, {}, {})
    s = savings_vs_baseline(report, None, arch)
    assert s.method == "previous_months" and s.baseline_months == ["2026-01", "2025-12"]
    assert s.baseline_yuan_per_kwh == pytest.approx(1.05)
    cfg = tmp_path / "baselines.toml"
    cfg.write_text("[customer.acme]\nyuan_per_kwh = 0.98\n", encoding="utf-8")
    assert load_baselines(cfg) == {"acme": 0.98}
    cfg.write_text("[customer.acme]\nyuan_per_kwh = -1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="customer.acme.yuan_per_kwh"):
        load_baselines(cfg)


def test_bad_input_is_named(month):
    client, _ = month
    with pytest.raises(KeyError, match="unknown customer 'nobody'"):
        build_monthly_report(client, fleet(), "nobody", MONTH)
    with pytest.raises(ValueError, match="month must be YYYY-MM"):
        build_monthly_report(client, fleet(), CUSTOMER, "2026-13")
    arch = ReportArchive("/tmp/unused-archive")
    with pytest.raises(ValueError, match="customer id"):
        arch.path("../etc", MONTH, "pdf")
    with pytest.raises(ValueError, match="format"):
        arch.path(CUSTOMER, MONTH, "exe")
    with pytest.raises(MailError, match="EH_SMTP_HOST"):
        SmtpSettings.from_env({})
    with pytest.raises(MailError, match="EH_SMTP_PORT"):
        SmtpSettings.from_env({"EH_SMTP_HOST": "127.0.0.1", "EH_SMTP_PORT": "smtp"})


def test_month_in_progress_is_partial_and_like_with_like(month, report, tmp_path):
    """Generated on 10 Feb: 9 of 28 days, basic charge pro-rated, completeness over the days lived, no saving
    verified; the archived partial report does not stand in for the month's report once it is due."""
    client, _ = month
    part = build_monthly_report(client, fleet(), CUSTOMER, MONTH, baseline_yuan_per_kwh=1.0, now_ns=FEB10)
    s, full = part.sites[0], report.sites[0]
    assert part.partial and (part.days_covered, part.days_in_month) == (9.0, 28.0) and not report.partial
    assert s.basic_charge_yuan == pytest.approx(full.basic_charge_yuan * 9 / 28, rel=1e-9)
    assert s.energy_kwh < full.energy_kwh * 0.4 and s.completeness_pct > 95
    assert s.bill_yuan == pytest.approx(s.energy_yuan + s.basic_charge_yuan + s.pf_adjustment_yuan, rel=1e-9)
    # like with like: the unit cost of 9 days with 9 days' basic charge is close to the full month's
    assert part.bill_yuan / part.energy_kwh == pytest.approx(report.bill_yuan / report.energy_kwh, rel=0.05)
    assert part.savings.verdict == "not_verifiable" and part.savings.reasons[0]["code"] == "partial_month"
    with pytest.raises(ValueError, match="has not started"):
        build_monthly_report(client, fleet(), CUSTOMER, "2026-03", now_ns=MAR2 - 86400 * NS)
    arch = ReportArchive(tmp_path / "arch")
    arch.save(part.to_dict(), {}, {})
    assert (CUSTOMER, MONTH) in due_reports(MAR2, fleet(), arch)
    arch.save(report.to_dict(), {}, {})
    assert (CUSTOMER, MONTH) not in due_reports(MAR2, fleet(), arch)


@pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                    reason="poppler-utils (pdftoppm, pdftotext) not installed")
@pytest.mark.parametrize("lang,title", [("zh", "月度节能报告"), ("en", "Monthly energy saving report")])
def test_html_and_pdf_render_in_both_languages(report, tmp_path, lang, title):
    html = render_html(report, lang)
    assert title in html and "data:image/png;base64," in html
    bill = f"{report.bill_yuan:,.2f}"
    assert bill in html
    pdf = render_pdf(html)
    path = tmp_path / f"r_{lang}.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert title in text and bill in text          # the CJK font is embedded and extractable
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
                   check=True, timeout=60)
    png = next(tmp_path.glob("p*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.fixture
def smtp_server():
    ctl, sink = start_smtp()
    yield sink, ctl.port
    ctl.stop()


def test_schedule_generate_archive_and_mail(month, store, tmp_path, smtp_server):
    client, _ = month
    sink, port = smtp_server
    arch = ReportArchive(tmp_path / "reports")
    fl = fleet()
    before = 1_772_323_200 * NS                           # 2026-03-01 08:00 local, due from 06:00
    assert previous_month(before) == "2026-02"
    assert due_reports(before - 3 * 3600 * NS, fl, arch) == []          # 05:00: not yet
    assert due_reports(before, fl, arch) == [(CUSTOMER, MONTH), (OTHER_CUSTOMER, MONTH)]
    smtp = SmtpSettings.from_env({"EH_SMTP_HOST": "127.0.0.1", "EH_SMTP_PORT": str(port),
                                  "EH_SMTP_FROM": "reports@energyhost.test"})
    t0 = time.monotonic()
    generate(client, fl, CUSTOMER, MONTH, arch, store=store, langs=("zh",), base_url="http://127.0.0.1:8000",
             now_ns=before)
    assert time.monotonic() - t0 < 20
    assert due_reports(before, fl, arch) == [(OTHER_CUSTOMER, MONTH)]
    entry = arch.entry(CUSTOMER, MONTH)
    assert entry is not None and entry.langs == ("zh",) and not entry.sent
    assert arch.path(CUSTOMER, MONTH, "pdf", "zh").read_bytes()[:5] == b"%PDF-"
    figures = arch.figures(CUSTOMER, MONTH)
    assert figures["survey_url"] == "http://127.0.0.1:8000/web/customer?survey=2026-02"
    sent_to = mail_report(arch, fl.customers[0], MONTH, smtp, now_ns=before)
    assert sent_to == ["energy@acme.example"] and arch.entry(CUSTOMER, MONTH).sent
    mail_from, rcpt, raw = sink.messages[-1]
    assert mail_from == "reports@energyhost.test" and rcpt == ["energy@acme.example"]
    msg = message_from_bytes(raw, policy=default_policy)
    assert "月度节能报告" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert f"{figures['bill_yuan']:,.2f}" in body and "survey=2026-02" in body
    att = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(att) == 1 and att[0].get_filename() == "energyhost-acme-2026-02-zh.pdf"
    assert att[0].get_content() == arch.path(CUSTOMER, MONTH, "pdf", "zh").read_bytes()
    # the runner: generates the other customer's report, mails only what is unsent, then has nothing left
    n_mail = len(sink.messages)
    res = run_due_reports(before, fl, client, arch, store=store, smtp=smtp)
    assert res.generated == [(OTHER_CUSTOMER, MONTH)] and res.errors == []
    assert res.mailed == [(OTHER_CUSTOMER, MONTH)] and len(sink.messages) == n_mail + 1
    assert sink.messages[-1][1] == ["ops@beta.example"]
    again = run_due_reports(before, fl, client, arch, store=store, smtp=smtp)
    assert (again.generated, again.mailed, again.errors) == ([], [], [])


def test_mail_failure_is_reported_not_raised(tmp_path):
    arch = ReportArchive(tmp_path)
    for cid in (CUSTOMER, OTHER_CUSTOMER):
        arch.save({"customer_id": cid, "month": MONTH, "energy_kwh": 10.0, "bill_yuan": 9.0, "generated_ns": 1},
                  {"zh": "<p>x</p>"}, {"zh": b"%PDF-1.7 stand-in bytes"})
    dead = SmtpSettings(host="127.0.0.1", port=free_port(), timeout_s=2.0)
    res = run_due_reports(1_772_323_200 * NS, fleet(), None, arch, smtp=dead)
    assert res.generated == [] and len(res.errors) == 2
    assert all(" mail: " in e and "127.0.0.1" in e for e in res.errors)
    assert not any(e.sent for e in arch.list())
    assert archive_mod.MONTH_RE.match(MONTH)


def test_completeness_counts_expected_intervals(influxd):
    """5-s meter written at 1-min steps is complete per minute; a 15-min device needs one sample per 15 min."""
    from core.config import parse_fleet
    from reports.fetch import coverage

    name = f"cov_{os.getpid()}"
    influxd.create_database(name)
    client = InfluxClient(influxd.url, name)
    site_raw = {"customer": [{"id": "c", "site": [{"id": "s", "device": [
        {"id": "fast", "kind": "meter", "transport": "mqtt", "poll_interval_s": 5},
        {"id": "slow", "kind": "meter", "transport": "mqtt", "poll_interval_s": 900}]}]}]}
    site = parse_fleet(site_raw).sites["s"]
    start = FEB10
    fast = [start + m * 60 * NS + 7 * NS for m in range(60) if not 20 <= m < 26]     # 6 minutes missing
    slow = [start + m * 60 * NS for m in (1, 16, 31)]                               # 4th quarter hour missing
    lines = [f"meter,customer=c,device=fast,site=s active_power=1 {t}" for t in fast]
    lines += [f"meter,customer=c,device=slow,site=s active_power=2 {t}" for t in slow]
    client.write_lines("\n".join(lines))
    cov = coverage(client, site, start, start + 3600 * NS)
    got = {d: faults.completeness(ts, np.ones(ts.size), period, start, start + 3600 * NS) for d, (ts, period) in
           cov.items()}
    assert got == pytest.approx({"fast": 54 / 60, "slow": 3 / 4})
    assert cov["slow"][1] == 900.0 and cov["fast"][1] == 60.0
    client.close()


def _backfill_to_month_end(influxd, name: str, days: int, devices: list[str], **kw):
    """A new database ``name`` holding the ``days`` before the end of February, written by
    simulators.backfill (FleetSignals seed 3, 1-min steps): (client, signals, backfill result)."""
    from simulators.backfill import backfill
    from simulators.signals import FleetSignals

    influxd.create_database(name)
    client = InfluxClient(influxd.url, name, timeout=60)
    fl = fleet()
    sig = FleetSignals(fl, 3)
    _, end = month_bounds_ns(MONTH, "Asia/Shanghai")
    return client, sig, backfill(fl, sig, client, days=days, end=end / NS, devices=devices, **kw)


@pytest.fixture(scope="module")
def backfilled(influxd):
    """The last 7 days of February written by simulators.backfill (FleetSignals, 1-min steps)."""
    client, _, _ = _backfill_to_month_end(influxd, f"backfill_{os.getpid()}", 7, [METER, PV, EV])
    yield client
    client.close()


def test_backfilled_month_equals_analytics_jobs_data(backfilled):
    """Cross-check with the analytics' own reader: jobs.fetch_site's 1-min data give the same figures."""
    from analytics import jobs

    fl = fleet()
    site = fl.sites[SITE]
    tariff = tf.load_tariff(site.tariff)
    start, end = month_bounds_ns(MONTH, "Asia/Shanghai")
    report = build_monthly_report(backfilled, fl, CUSTOMER, MONTH, now_ns=MAR2)
    s = report.sites[0]
    data, _ = jobs.fetch_site(backfilled, site, start, end, 60)
    grid = np.arange(start, end, 60 * NS, dtype=np.int64)

    def on_grid(dev: str, ch: str) -> np.ndarray:
        out = np.full(grid.size, np.nan)
        out[(data[dev]["time_ns"] - start) // (60 * NS)] = data[dev][ch]
        return out

    p, q = np.nan_to_num(on_grid(METER, "active_power")), np.nan_to_num(on_grid(METER, "reactive_power"))
    kvarh = float(np.sum(tf.interval_energy_kwh(grid, np.abs(q), max_gap_s=600)))
    bill = tf.monthly_bill(grid, p, tariff, 1000.0, "demand", 600.0, kvarh)
    assert s.energy_kwh == pytest.approx(bill["energy"]["total_kwh"], rel=1e-9) and s.energy_kwh > 1000
    assert s.max_demand_kw == pytest.approx(bill["max_demand_kw"], rel=1e-9)
    assert (s.power_factor, s.pf_adjustment_pct) == (bill["pf"], bill["pf_adjust_pct"])
    assert s.bill_yuan == pytest.approx(bill["total_yuan"], rel=1e-9)
    series = {METER: {"time_ns": grid, "active_power": on_grid(METER, "active_power"),
                      "reactive_power": on_grid(METER, "reactive_power"),
                      "apparent_power": on_grid(METER, "apparent_power")},
              PV: {"time_ns": grid, "active_power": on_grid(PV, "active_power")},
              EV: {"time_ns": grid, "active_power": on_grid(EV, "active_power")}}
    want = assess.site_savings(site, series, tariff, price_yuan_per_kwh=s.energy_yuan / s.energy_kwh)
    assert [(r.type, r.yuan_month) for r in report.recommendations] == [
        (f.type, f.yuan_month) for f in want if f.yuan_month > 0]
    pv = next(f for f in want if f.type == "saving_pv_self_consumption")
    assert s.pv_generation_kwh == pv.evidence["pv_kwh"] > 0
    quarter_hour_last = data[METER]["energy_import"][14::15]          # the report reads last() per 15 min
    assert s.register_kwh == pytest.approx(faults.consumption_wh(quarter_hour_last) / 1000, rel=1e-9)
    assert s.register_events == {} and abs(s.register_diff_pct) < 2.0
    ev_e = tf.interval_energy_kwh(grid, np.nan_to_num(series[EV]["active_power"]), max_gap_s=600)
    assert s.ev_energy_kwh == pytest.approx(float(ev_e.sum()))
    # 7 of 28 days were written: a quarter of every device's expected minutes hold data
    assert s.device_completeness_pct == pytest.approx({METER: 25.0, PV: 25.0, EV: 25.0})
    # power quality on the same 1-min data (the report reads 10-min means): same verdicts and interval counts
    meter = data[METER]
    chans = {c: meter[c] for c in ("voltage_l1", "voltage_l2", "voltage_l3", "voltage_l12", "voltage_l23",
                                   "voltage_l31", "frequency", "thd_voltage_l1", "thd_voltage_l2", "thd_voltage_l3")
             if c in meter}
    summary = pq.compliance_summary(meter["time_ns"], chans, site.nominal_voltage_v, voltage_level_kv=0.4,
                                    period_s=60.0)
    got = {x.check: (x.n_valid, x.compliant) for x in s.pq}
    assert got == {k: (v["n_valid"], v["compliant"]) for k, v in summary.items()}


BASE_START, BASE_END = date(2026, 1, 4), date(2026, 1, 31)     # the 28 days before hosting starts (Feb 1)


@pytest.fixture(scope="module")
def verified(influxd):
    """January 4 - February 28 2026 of the meter and the inverter, with the site's weather, by simulators.backfill."""
    client, sig, res = _backfill_to_month_end(influxd, f"verified_{os.getpid()}", 56, [METER, PV], status=False)
    assert res["weather_points"] == 56 * 1440
    yield client, sig
    client.close()


def _analytics_days(client, sig, site, first: date, n_days: int) -> dict[str, np.ndarray]:
    """The analytics' own inputs for n days: 1-min data of jobs.fetch_site, temperature from the model."""
    from analytics import baseline as bl
    from analytics import jobs
    from core import workdays

    start = int(datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(site.timezone)).timestamp()) * NS
    end = start + n_days * 86400 * NS                     # Asia/Shanghai: no DST, every day has 24 h
    data, _ = jobs.fetch_site(client, site, start, end, 60)
    grid = np.arange(start, end, 60 * NS, dtype=np.int64)
    on = {}
    for dev in (METER, PV):
        on[dev] = np.full(grid.size, np.nan)
        on[dev][(data[dev]["time_ns"] - start) // (60 * NS)] = data[dev]["active_power"]
    day = (grid - start) // (86400 * NS)
    p_mean, p_cov = bl.daily_sums(day, on[METER] + np.nan_to_num(on[PV]), n_days, expected_per_day=1440)
    temp = sig.weather(site.id, grid / NS)["outdoor_temperature"]
    t_mean, _ = bl.daily_sums(day, temp, n_days, expected_per_day=1440)
    return {"energy_kwh": p_mean * 24 / 1000, "coverage": p_cov, "t_mean_c": t_mean,
            "day_type": np.array([workdays.day_type(first + timedelta(days=i)) for i in range(n_days)])}


def test_verified_savings_equal_analytics(verified, tmp_path):
    """IPMVP Option C in the report = analytics.baseline on the analytics' own reading of the same history."""
    from analytics import baseline as bl

    client, sig = verified
    fl = fleet()
    site = fl.sites[SITE]
    contract = BaselineContract(yuan_per_kwh=1.0, baseline_start=BASE_START, baseline_end=BASE_END)
    report = build_monthly_report(client, fl, CUSTOMER, MONTH, now_ns=MAR2, contract=contract)
    sv, sm = report.savings, report.sites[0]
    base = _analytics_days(client, sig, site, BASE_START, 28)
    month = _analytics_days(client, sig, site, date(2026, 2, 1), 28)
    model = bl.fit_baseline(base["energy_kwh"], base["day_type"], base["t_mean_c"], coverage=base["coverage"])
    res = bl.avoided_energy(model, month["energy_kwh"], month["day_type"], month["t_mean_c"],
                            coverage=month["coverage"], confidence=0.90)
    (x,) = sv.regression
    assert x.error == "" and x.calendar == "official" and x.terms == list(model.terms)
    assert (x.n_baseline_days, x.n_baseline_excluded, x.m_days, x.n_excluded_days) == (28, 0, 28, 0)
    # 0.01 degC rounding of the stored temperature is the only difference between the two readings
    assert x.coefficients == pytest.approx(model.coefficients(), rel=1e-4)
    assert (x.r2, x.cv_rmse_pct) == pytest.approx((model.r2, model.cv_rmse_pct), rel=1e-4)
    assert abs(x.nmbe_pct) <= bl.NMBE_MAX_PCT and x.meets_guideline14 == model.meets_guideline14 is True
    assert x.adjusted_baseline_kwh == pytest.approx(res.adjusted_baseline_kwh, rel=1e-6)
    assert x.measured_kwh == pytest.approx(res.measured_kwh, rel=1e-9)
    assert x.savings_kwh == pytest.approx(res.savings_kwh, abs=1e-4 * res.adjusted_baseline_kwh)
    assert x.uncertainty_kwh == pytest.approx(res.uncertainty_kwh, rel=1e-3)
    assert x.daily_measured_kwh == pytest.approx(res.daily_measured_kwh.tolist(), rel=1e-9)
    # priced at the site's average energy price of the month (tariffs.monthly_bill's energy charge / kWh)
    price = sm.energy_yuan / sm.energy_kwh
    assert x.savings_yuan == pytest.approx(x.savings_kwh * price) and x.uncertainty_yuan == pytest.approx(
        x.uncertainty_kwh * price)
    # the simulator has no saving measure: no saving beyond the model's uncertainty, so none is "verified",
    # no regression yuan is claimed and the report says why in words
    assert abs(x.savings_kwh) <= x.uncertainty_kwh and sv.regression_status == "uncertain"
    assert sv.fsu_68_pct > 50 and sv.confidence == 0.90
    assert sv.verdict == "not_verifiable" and sv.method == "configured" and sv.saved_kwh is None
    assert {r["code"] for r in sv.reasons} == {"uncertain", "out_of_range"}
    assert x.n_extrapolated_days > 0
    html = render_html(report, "en")
    assert "No saving can be verified this month" in html and "cannot be told from zero" in html
    assert "Daily measured energy and adjusted baseline" in html
    zh = render_html(report, "zh", charts=False)
    assert "基准模型与调整后基准" in zh and "本月无法核证节能量" in zh and "节能量经核证：" not in zh
    # a baseline period without data: the model is refused, the report says so and uses the contracted cost
    empty = BaselineContract(yuan_per_kwh=1.0, baseline_start=date(2025, 11, 1), baseline_end=date(2025, 11, 28))
    r2 = build_monthly_report(client, fl, CUSTOMER, MONTH, now_ns=MAR2, contract=empty)
    assert r2.savings.regression_status == "model_failed" and r2.savings.method == "configured"
    assert "too few usable baseline days: 0 of 28" in r2.savings.regression[0].error
    assert r2.savings.verdict == "not_verifiable" and r2.savings.reasons[0]["code"] == "no_model"
    assert "no baseline regression model could be built" in render_html(r2, "en", charts=False)
    # the baseline period may not reach into the reporting month
    late = BaselineContract(baseline_start=date(2026, 1, 20), baseline_end=date(2026, 2, 3))
    r3 = build_monthly_report(client, fl, CUSTOMER, MONTH, now_ns=MAR2, contract=late)
    assert "not before this month" in r3.savings.regression[0].error and r3.savings.method == "none"


def test_contracts_file(tmp_path):
    cfg = tmp_path / "baselines.toml"
    cfg.write_text("[customer.acme]\nyuan_per_kwh = 0.98\nhosting_start = 2026-02-01\nbaseline_days = 28\n"
                   "confidence = 0.68\n[customer.beta]\nbaseline_start = \"2026-01-01\"\nbaseline_end = 2026-01-31\n",
                   encoding="utf-8")
    c = load_contracts(cfg)
    assert (c["acme"].baseline_start, c["acme"].baseline_end, c["acme"].confidence) == (BASE_START, BASE_END, 0.68)
    assert c["beta"].has_period and c["beta"].yuan_per_kwh is None and c["beta"].heating_base_c == 18.0
    assert load_baselines(cfg) == {"acme": 0.98}
    for text, key in (("hosting_start = 2026-02-01\nbaseline_start = 2026-01-01\nbaseline_end = 2026-01-02", "not both"),
                      ("baseline_days = 5", "needs hosting_start"), ("baseline_start = 2026-01-01", "go together"),
                      ("hosting_start = 2026-02-01\nbaseline_days = 0", "baseline_days"),
                      ("baseline_start = 2026-01-05\nbaseline_end = 2026-01-01", "before"),
                      ("confidence = 90", "confidence"), ("colour = 1", "unknown key")):
        cfg.write_text(f"[customer.acme]\n{text}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=key):
            load_contracts(cfg)


def test_assemble_site_pv_without_meter_data():
    """Pure assembly on arrays: PV produced while the billing meter sent nothing -> generation still reported."""
    from reports.assemble import assemble_site
    from reports.fetch import SiteArrays, month_grid

    site = fleet().sites[SITE]
    start, end = month_bounds_ns(MONTH, "Asia/Shanghai")
    t = month_grid(start, end)
    pv_w = np.where((t // (60 * NS)) % 1440 < 600, 100e3, 0.0)                    # 100 kW for 10 h a day
    nan = np.full(t.size, np.nan)
    arrays = SiteArrays(site=site, start_ns=start, end_ns=end, time_ns=t, main_meters=[METER], grid_power_w=nan,
                        grid_reactive_var=nan, pv_power_w=pv_w,
                        series={PV: {"time_ns": t, "active_power": pv_w}})
    sm, findings = assemble_site(arrays, tf.load_tariff(site.tariff))
    assert [f.type for f in findings] == ["saving_not_priced"]           # said in words, no figure
    assert sm.energy_kwh == 0.0 and sm.bill_yuan == pytest.approx(sm.basic_charge_yuan)
    assert sm.pv_generation_kwh == pytest.approx(28 * 10 * 100.0)
    assert sm.pv_self_consumption_pct is None and sm.pv_yield_kwh_per_kwp == pytest.approx(28 * 10 * 100.0 / 400)
    assert sm.completeness_pct == 0.0 and sm.power_factor is None


def test_power_quality_without_data_is_no_data_not_a_failure():
    """compliance_summary says compliant=None when no valid 10-min value exists: the report must
    say "no data", never "not compliant"."""
    from reports.assemble import _pq_lines

    row = {"n_valid": 0, "n_outside": 0, "limit": "±7 %", "standard": "GB/T 12325-2008 §4.2",
           "compliant": None, "qualification_rate_pct": float("nan")}
    (line,) = _pq_lines("m1", {"voltage": row})
    assert line.compliant is None and line.compliance_pct is None
    (bad,) = _pq_lines("m1", {"voltage": {**row, "n_valid": 10, "n_outside": 3, "compliant": False}})
    assert bad.compliant is False and bad.compliance_pct == pytest.approx(70.0)


def test_register_check_does_not_count_a_higher_reading_replacement_meter():
    """A replacement meter reading higher than the old one is an implausible upward jump (a spike,
    not counted), bounded by the transformer's rating: never months of consumption in the report."""
    from reports.assemble import assemble_site
    from reports.fetch import SiteArrays, month_grid

    site = fleet().sites[SITE]
    start, end = month_bounds_ns(MONTH, "Asia/Shanghai")
    t = month_grid(start, end)
    p_w = np.full(t.size, 100e3)                                   # a steady 100 kW
    rt = t[::15]
    reg = 5.0e6 + np.arange(rt.size) * 25e3                        # 25 kWh per quarter-hour
    swap = rt.size // 2
    reg[swap:] += 3.0e9                                            # the new meter starts 3,000 MWh higher
    arrays = SiteArrays(site=site, start_ns=start, end_ns=end, time_ns=t, main_meters=[METER], grid_power_w=p_w,
                        grid_reactive_var=np.zeros(t.size), pv_power_w=np.zeros(t.size),
                        registers={METER: (rt, reg)})
    sm, _ = assemble_site(arrays, tf.load_tariff(site.tariff))
    assert sm.register_events == {"spike": 1}
    assert sm.register_kwh == pytest.approx((rt.size - 2) * 25.0)   # every quarter-hour but the jump and the first
    assert abs(sm.register_diff_pct) < 1.0
