"""Assemble a :class:`~api.report.model.MonthlyReport` from InfluxDB data and the analytics functions.

Every figure is computed by an :mod:`analytics` function on the arrays of
:mod:`api.report.fetch` — nothing is re-derived here, so the report and the analytics
agree by construction (the tests check it):

=================================  ==========================================================
figure                             analytics function
=================================  ==========================================================
energy and cost by TOU period,     ``tariffs.monthly_bill`` (energy by period, 15-min max
max demand, basic charge, PF,      demand, capacity/demand charge, monthly PF and its
PF adjustment, bill                adjustment per (83)水电财字第215号)
reactive energy                    ``tariffs.interval_energy_kwh`` of \\|Q\\|
energy-register check              ``faults.counter_increments`` of 15-min ``last(energy_import)``
PV generation, export, self-use    ``savings.pv_self_consumption`` evidence
EV energy, cost, valley share      ``tariffs.interval_energy_kwh`` + ``tariffs.energy_cost``
EV sessions                        ``faults.intervals`` of charger power > 1 kW
power-quality compliance           ``power_quality.compliance_summary`` on 10-min means
                                   (GB/T 12325, 15945, 15543, 14549)
data completeness                  ``faults.completeness`` of the 1-min (or poll-period)
                                   intervals holding data
recommendations                    ``assess.site_savings`` (``savings.*``, yuan/month, ranked)
=================================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from analytics import assess, faults, savings
from analytics import power_quality as pq
from analytics import tariffs as tf
from api.report.archive import ReportArchive, check_month
from api.report.fetch import SiteArrays, fetch_site_month
from api.report.model import (
    MonthlyReport,
    PowerQualityLine,
    Recommendation,
    Savings,
    SiteMonth,
    TouLine,
)
from api.report.workflow import workflow_summary
from core.config import Fleet, Site
from core.model import Finding
from core.store import month_bounds_ns

NS = 10**9
EV_CHARGING_W = 1000.0          # a charger drawing more than this is in a charging session
BASELINE_MONTHS = 3             # previous archived months averaged for the fallback baseline


# ---------------------------------------------------------------- one site


def _max_demand_start(t: np.ndarray, p_kw: np.ndarray, window: int, sliding: bool) -> int | None:
    """Start [ns] of the window that sets the maximum demand (same windows as tariffs.max_demand_kw)."""
    if p_kw.size < window:
        return None
    if sliding:
        c = np.r_[0.0, np.cumsum(p_kw)]
        means = (c[window:] - c[:-window]) / window
        starts = t[: means.size]
    else:
        n = p_kw.size // window * window
        means = p_kw[:n].reshape(-1, window).mean(axis=1)
        starts = t[:n:window]
    if not np.isfinite(means).any():
        return None
    return int(starts[int(np.nanargmax(np.where(np.isfinite(means), means, -np.inf)))])


def _per_day(t: np.ndarray, values: np.ndarray, tz: str, n_days: int) -> np.ndarray:
    day = tf.local_fields(t, tz)["day"]
    idx = day - day[0]
    out = np.zeros(n_days)
    ok = (idx >= 0) & (idx < n_days)
    np.add.at(out, idx[ok], np.nan_to_num(values[ok]))
    return out


def _pq_lines(device_id: str, summary: dict) -> list[PowerQualityLine]:
    stats = {"voltage": ("qualification rate", "qualification_rate_pct", "%"),
             "frequency": ("", None, "Hz"),
             "unbalance": ("p95", "p95_pct", "%"),
             "thd_voltage": ("p95", "p95_pct", "%")}
    out = []
    for check, s in summary.items():
        name, key, unit = stats.get(check, ("", None, ""))
        value = s.get(key) if key else None
        value = None if value is None or not math.isfinite(float(value)) else float(value)
        n, nout = int(s["n_valid"]), int(s["n_outside"])
        out.append(PowerQualityLine(
            check=check, device_id=device_id, n_valid=n, n_outside=nout,
            compliance_pct=(100.0 * (1 - nout / n)) if n else None, statistic=name, value=value, unit=unit,
            limit=str(s["limit"]), standard=str(s["standard"]), compliant=None if s["compliant"] is None else bool(s["compliant"])))
    return out


def assemble_site(arrays: SiteArrays, tariff: tf.Tariff) -> tuple[SiteMonth, list[Finding]]:
    """Figures and savings findings of one site's month (see the module table)."""
    site: Site = arrays.site
    # the customer's PF standard is a property of the supply contract (fleet file), not of the tariff
    tariff = dataclasses.replace(tariff, pf_standard=site.pf_standard)
    t = arrays.time_ns
    # A minute without data counts as 0 kW / 0 kvar for billing and savings (no energy is
    # invented for it; data completeness reports the gap).  NaN is not passed on because
    # tariffs.max_demand_kw's running sum would turn every window after a gap into NaN.
    p_w, q_var = np.nan_to_num(arrays.grid_power_w), np.nan_to_num(arrays.grid_reactive_var)
    p_kw = p_w / 1000.0
    n_days = int(round((arrays.end_ns - arrays.start_ns) / (86400 * NS)))
    kvarh = float(np.sum(tf.interval_energy_kwh(t, np.abs(q_var), max_gap_s=600)))
    rated_kva = float(sum(tr.rated_kva for tr in site.transformers))
    method = "demand" if site.contract_demand_kw else "capacity"
    bill = tf.monthly_bill(t, p_w, tariff, rated_kva, method, site.contract_demand_kw, kvarh)
    energy = bill["energy"]

    sm = SiteMonth(site_id=site.id, site_name=site.name, tariff=tariff.id, pf_standard=site.pf_standard)
    sm.tou = [TouLine(period=p, kwh=energy["kwh"][p], yuan=energy["yuan"][p], price=tariff.price(p))
              for p in reversed(tariff.periods) if p in energy["kwh"]]
    sm.energy_kwh = float(energy["total_kwh"])
    sm.energy_yuan = float(energy["total_yuan"])
    sm.reactive_kvarh = kvarh
    dmax = bill["max_demand_kw"]
    sm.max_demand_kw = 0.0 if dmax is None or not math.isfinite(dmax) else float(dmax)
    sm.max_demand_time_ns = _max_demand_start(t, np.clip(p_kw, 0, None), tariff.demand_window_min,
                                              tariff.demand_sliding)
    sm.basic_charge_yuan = float(bill["basic_yuan"])
    sm.basic_charge_method = method if (rated_kva > 0 or method == "demand") else ""
    sm.power_factor = None if bill["pf"] is None else float(bill["pf"])
    sm.pf_adjustment_pct = float(bill["pf_adjust_pct"])
    sm.pf_adjustment_yuan = float(bill["pf_adjust_yuan"])
    sm.bill_yuan = float(bill["total_yuan"])

    # energy-register check (reliability.md #15): the meters' import registers over the month,
    # robust to reset / rollover / replacement (faults.counter_increments), against integrated power
    if arrays.registers:
        total_wh, events = 0.0, dict.fromkeys(("reset", "replacement", "rollover", "spike"), 0)
        for rt, re_wh in arrays.registers.values():
            inc = faults.counter_increments(re_wh)
            inside = rt >= arrays.start_ns          # the reading before the month only opens it
            total_wh += float(np.nansum(inc["increment"][inside]))
            for k in events:
                events[k] += int(np.count_nonzero(inc[k][inside]))
        sm.register_kwh = total_wh / 1000.0
        sm.register_events = {k: v for k, v in events.items() if v}
        if sm.register_kwh > 0:
            sm.register_diff_pct = 100.0 * (sm.energy_kwh - sm.register_kwh) / sm.register_kwh

    # chart series: daily energy per period, 15-min demand
    e_int = tf.interval_energy_kwh(t, np.clip(p_w, 0, None), max_gap_s=600)
    pidx = tariff.period_index(t)
    for i, period in reversed(list(enumerate(tariff.periods))):
        sel = pidx == i
        if sel.any():
            sm.daily_kwh[period] = _per_day(t, np.where(sel, e_int, 0.0), tariff.timezone, n_days).tolist()
    blocks = p_kw[: p_kw.size // 15 * 15].reshape(-1, 15)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(blocks).any(axis=1)
        sums = np.nansum(blocks, axis=1)
        counts = np.isfinite(blocks).sum(axis=1)
        sm.demand_kw = np.where(finite, sums / np.maximum(counts, 1), np.nan).tolist()
    sm.demand_start_ns = int(t[0])

    # priced recommendations: the analytics' own composition for a site (assess.site_savings),
    # with this month's actual basic + energy charge as the PF adjustment base
    avg_price = sm.energy_yuan / sm.energy_kwh if sm.energy_kwh > 0 else tariff.price(tariff.periods[0])
    findings: list[Finding] = []
    try:
        findings = assess.site_savings(site, arrays.series, tariff,
                                       adjustment_base_yuan=sm.basic_charge_yuan + sm.energy_yuan,
                                       price_yuan_per_kwh=avg_price)
    except ValueError:
        findings = []        # too little data this month to judge any saving
    by_type = {f.type: f for f in findings}

    # PV
    if any(d.kind == "pv_inverter" for d in site.devices):
        pv_kw = arrays.pv_power_w / 1000.0
        pv_finding = by_type.get("saving_pv_self_consumption")
        if pv_finding is not None:
            ev = pv_finding.evidence
            sm.pv_generation_kwh = float(ev["pv_kwh"])
            sm.export_kwh = float(ev["export_kwh"])
            sm.pv_self_consumed_kwh = max(0.0, sm.pv_generation_kwh - sm.export_kwh)
            ratio = ev["self_consumption_ratio"]
            sm.pv_self_consumption_pct = None if ratio is None else 100.0 * float(ratio)
        if site.pv_capacity_kwp > 0:
            sm.pv_yield_kwh_per_kwp = sm.pv_generation_kwh / site.pv_capacity_kwp
        dt_h = np.r_[np.diff(t), np.median(np.diff(t))] / 3600e9
        gen = np.clip(np.nan_to_num(pv_kw), 0, None) * dt_h
        exp = np.clip(-np.nan_to_num(p_kw), 0, None) * dt_h
        if pv_finding is None and np.nansum(gen) > 0:
            # no site-level PV evidence (e.g. no billing meter data): generation alone, self-use unknown
            sm.pv_generation_kwh = float(np.sum(gen))
            if site.pv_capacity_kwp > 0:
                sm.pv_yield_kwh_per_kwp = sm.pv_generation_kwh / site.pv_capacity_kwp
        daily_gen = _per_day(t, gen, tariff.timezone, n_days)
        sm.daily_pv_kwh = daily_gen.tolist()
        sm.daily_pv_self_kwh = np.clip(daily_gen - _per_day(t, exp, tariff.timezone, n_days), 0, None).tolist()

    # EV charging
    if arrays.ev_power_w:
        total = np.zeros(t.size)
        for series in arrays.ev_power_w.values():
            w = np.clip(np.nan_to_num(series), 0, None)
            total += w
            sm.ev_sessions += len(faults.intervals(w > EV_CHARGING_W, t))
        e_ev = tf.interval_energy_kwh(t, total, max_gap_s=600)
        cost = tf.energy_cost(t, e_ev, tariff)
        sm.ev_energy_kwh = float(cost["total_kwh"])
        sm.ev_cost_yuan = float(cost["total_yuan"])
        if sm.ev_energy_kwh > 0:
            sm.ev_valley_share_pct = 100.0 * (cost["kwh"].get("valley", 0.0)
                                              + cost["kwh"].get("deep_valley", 0.0)) / sm.ev_energy_kwh

    # power quality, per billing meter
    for mid, (tm, chans) in arrays.pq.items():
        summary = pq.compliance_summary(tm, chans, site.nominal_voltage_v, voltage_level_kv=0.4, period_s=600.0)
        sm.pq.extend(_pq_lines(mid, summary))

    # data completeness: faults.completeness of the intervals holding data (fetch.coverage)
    for d in site.devices:
        starts, interval_s = arrays.coverage.get(d.id, (np.empty(0, np.int64), max(60.0, d.poll_interval_s)))
        frac = faults.completeness(starts, np.ones(starts.size), interval_s, arrays.start_ns, arrays.end_ns)
        sm.device_completeness_pct[d.id] = 100.0 * frac
    if sm.device_completeness_pct:
        sm.completeness_pct = float(np.mean(list(sm.device_completeness_pct.values())))
    return sm, findings


# ---------------------------------------------------------------- baseline


def load_baselines(path: str | os.PathLike) -> dict[str, float]:
    """Contracted baselines: ``[customer.<id>] yuan_per_kwh = <float>`` in a TOML file.

    Returns customer id -> baseline unit cost [yuan/kWh]; ``ValueError`` names the file and key.
    """
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{p}: cannot read baselines: {exc}") from None
    out: dict[str, float] = {}
    for cid, table in (raw.get("customer") or {}).items():
        v = table.get("yuan_per_kwh") if isinstance(table, dict) else None
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise ValueError(f"{p}: customer.{cid}.yuan_per_kwh must be a number > 0, got {v!r}")
        out[cid] = float(v)
    return out


def _previous_months(month: str, n: int) -> list[str]:
    y, m = int(month[:4]), int(month[5:])
    out = []
    for _ in range(n):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out


def savings_vs_baseline(report: MonthlyReport, baseline_yuan_per_kwh: float | None,
                        archive: ReportArchive | None) -> Savings:
    """Savings achieved against the customer's baseline unit cost.

    Baseline, in order of preference:

    1. ``configured`` — the unit cost [yuan/kWh] agreed in the hosting contract (the
       customer's bills of the year before hosting), from ``EH_REPORT_BASELINES``;
    2. ``previous_months`` — the mean unit cost of up to 3 previous archived reports;
    3. ``none`` — no saving is claimed.

    ``saved = (baseline − actual unit cost) × this month's kWh``: comparing unit costs keeps
    a busier month from looking like a loss.
    """
    kwh, bill = report.energy_kwh, report.bill_yuan
    actual = bill / kwh if kwh > 0 else None
    s = Savings(method="none", actual_yuan_per_kwh=actual, actual_kwh=kwh)
    if baseline_yuan_per_kwh is not None:
        s.method, s.baseline_yuan_per_kwh = "configured", float(baseline_yuan_per_kwh)
    elif archive is not None:
        costs, used = [], []
        for m in _previous_months(report.month, BASELINE_MONTHS):
            if archive.has(report.customer_id, m):
                f = archive.figures(report.customer_id, m)
                if f.get("energy_kwh", 0) > 0:
                    costs.append(f["bill_yuan"] / f["energy_kwh"])
                    used.append(m)
        if costs:
            s.method, s.baseline_yuan_per_kwh, s.baseline_months = "previous_months", float(np.mean(costs)), used
    if s.baseline_yuan_per_kwh is not None and actual is not None:
        s.saved_yuan = (s.baseline_yuan_per_kwh - actual) * kwh
        s.saved_pct = 100.0 * (s.baseline_yuan_per_kwh - actual) / s.baseline_yuan_per_kwh
    return s


# ---------------------------------------------------------------- the customer's report


def build_monthly_report(influx: Any, fleet: Fleet, customer_id: str, month: str, *, store: Any = None,
                         archive: ReportArchive | None = None, baseline_yuan_per_kwh: float | None = None,
                         tariff_dir: str | os.PathLike | None = None, survey_url: str = "",
                         now_ns: int | None = None) -> MonthlyReport:
    """The monthly saving report of ``customer_id`` for ``month`` (``YYYY-MM``, local time of its sites).

    Raises ``KeyError`` for an unknown customer and ``ValueError`` for a bad month or a
    site without a tariff (the message names the site and the tariff files available).
    """
    check_month(month)
    customer = next((c for c in fleet.customers if c.id == customer_id), None)
    if customer is None:
        raise KeyError(f"unknown customer {customer_id!r}; fleet has {[c.id for c in fleet.customers]}")
    if not customer.sites:
        raise ValueError(f"customer {customer_id!r} has no site")
    tz = customer.sites[0].timezone
    start_ns, end_ns = month_bounds_ns(month, tz)
    report = MonthlyReport(customer_id=customer.id, customer_name=customer.name, month=month,
                           start_ns=start_ns, end_ns=end_ns, generated_ns=now_ns or time.time_ns(),
                           survey_url=survey_url)
    findings: list[Finding] = []
    for site in customer.sites:
        if not site.tariff:
            raise ValueError(f"site {site.id!r} has no tariff: set 'tariff' in the fleet file")
        tariff = tf.load_tariff(site.tariff, tariff_dir)
        s_start, s_end = month_bounds_ns(month, site.timezone)
        arrays = fetch_site_month(influx, site, s_start, s_end)
        sm, f = assemble_site(arrays, tariff)
        report.sites.append(sm)
        findings.extend(f)
    report.recommendations = [
        Recommendation(type=f.type, site_id=f.site_id, device_id=f.device_id,
                       text_zh=f"{f.explanation_zh}{f.recommendation_zh}",
                       text_en=f"{f.explanation_en} {f.recommendation_en}",
                       kwh_month=f.kwh_month, yuan_month=f.yuan_month)
        for f in savings.rank(findings) if (f.yuan_month or 0) > 0]
    report.workflow = workflow_summary(store, customer.id, [s.id for s in customer.sites], start_ns, end_ns)
    report.savings = savings_vs_baseline(report, baseline_yuan_per_kwh, archive)
    return report
