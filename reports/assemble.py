"""Assemble a :class:`~reports.model.MonthlyReport` from InfluxDB data and the analytics functions.

Every figure is computed by an :mod:`analytics` function on the arrays of
:mod:`reports.fetch` — nothing is re-derived here, so the report and the analytics
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
verified savings (IPMVP Option C)  ``baseline.fit_baseline`` on the contract's baseline days,
                                   ``baseline.avoided_energy`` on the month's days (ASHRAE
                                   Guideline 14 statistics and uncertainty)
=================================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from analytics import assess, device_checks, faults, savings
from analytics import power_quality as pq
from analytics import tariffs as tf
from core.config import Fleet, Site
from core.model import Finding
from core.units import NS
from reports.ageing import ageing_month
from reports.archive import ReportArchive, check_month
from reports.commitments import commitments_section
from reports.fetch import SiteArrays, consumption_w, fetch_consumption, fetch_site_month
from reports.model import (
    MonthlyReport,
    PowerQualityLine,
    Recommendation,
    SiteMonth,
    SiteRegression,
    TouLine,
)
from reports.summary import pq_texts
from reports.verification import (  # noqa: F401  (re-exported: the report's public names)
    BaselineContract,
    _local_midnight_ns,
    daily_conditions,
    load_baselines,
    load_contracts,
    savings_vs_baseline,
    site_regression,
)
from reports.weather import outdoor_temperature
from reports.workflow import workflow_summary
from workflow import month_bounds_ns

EV_CHARGING_W = 1000.0          # a charger drawing more than this is in a charging session


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
            limit=str(s["limit"]), standard=str(s["standard"]),
            compliant=None if s["compliant"] is None else bool(s["compliant"]), **pq_texts(check, s)))
    return out


def _pro_rate(bill: dict, share: float) -> dict:
    """A month in progress: the monthly basic charge × the share of the month lived, PF adjustment on it."""
    if share >= 1.0:
        return bill
    basic = bill["basic_yuan"] * share
    energy = bill["energy"]["total_yuan"]
    pf_yuan = bill["pf_adjust_pct"] / 100.0 * (basic + energy) if bill["pf"] is not None else 0.0
    return bill | {"basic_yuan": basic, "pf_adjust_yuan": pf_yuan, "total_yuan": energy + basic + pf_yuan}


def assemble_site(arrays: SiteArrays, tariff: tf.Tariff, month_ns: int | None = None) -> tuple[SiteMonth, list[Finding]]:
    """Figures and savings findings of one site's month (see the module table).

    ``month_ns``: the whole month's length when ``arrays`` covers only its first part (a month in
    progress); the monthly basic charge is then pro-rated by the share of the month covered.
    """
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
    bill, kvarh, method, rated_kva = _month_bill(arrays, site, tariff, p_w, q_var, month_ns)

    sm = SiteMonth(site_id=site.id, site_name=site.name, tariff=tariff.id, tariff_name=tariff.name,
                   tariff_example=tariff.prices_are_example or bool(site.province and tariff.province
                                                                    and site.province != tariff.province),
                   pf_standard=site.pf_standard)
    _bill_figures(sm, bill, tariff, kvarh, method, rated_kva, t, p_kw)

    # energy-register check (reliability.md #15): the meters' import registers over the month,
    # robust to reset / rollover / replacement (faults.counter_increments), against integrated power
    if arrays.registers:
        _register_check(sm, arrays, site)

    # chart series: daily energy per period, 15-min demand
    _chart_series(sm, t, p_w, p_kw, tariff, n_days)

    # priced recommendations: the analytics' own composition for a site (assess.site_savings); its
    # PF adjustment base is the energy charge per average month + the monthly basic charge, so
    # February's 28 days do not inflate a monthly charge
    findings = _savings_findings(sm, arrays, site, tariff)
    by_type = {f.type: f for f in findings}

    # PV
    if any(d.kind == "pv_inverter" for d in site.devices):
        _pv_figures(sm, arrays, site, by_type, t, p_kw, tariff, n_days)

    # EV charging
    if arrays.ev_power_w:
        _ev_figures(sm, arrays, t, tariff)

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


def _month_bill(arrays: SiteArrays, site: Site, tariff: tf.Tariff, p_w: np.ndarray, q_var: np.ndarray,
                month_ns: int | None) -> tuple[dict, float, str, float]:
    """The month's bill (pro-rated for a month in progress), its kvarh, basic-charge method and kVA."""
    t = arrays.time_ns
    kvarh = float(np.sum(tf.interval_energy_kwh(t, np.abs(q_var), max_gap_s=600)))
    rated_kva = float(sum(tr.rated_kva for tr in site.transformers))
    method = "demand" if site.contract_demand_kw else "capacity"
    bill = tf.monthly_bill(t, p_w, tariff, rated_kva, method, site.contract_demand_kw, kvarh)
    if month_ns:
        bill = _pro_rate(bill, (arrays.end_ns - arrays.start_ns) / month_ns)
    return bill, kvarh, method, rated_kva


def _savings_findings(sm: SiteMonth, arrays: SiteArrays, site: Site, tariff: tf.Tariff) -> list[Finding]:
    """assess.site_savings priced at the month's average energy price; none on too little data."""
    avg_price = sm.energy_yuan / sm.energy_kwh if sm.energy_kwh > 0 else tariff.price(tariff.periods[0])
    findings: list[Finding] = []
    try:
        findings = assess.site_savings(site, arrays.series, tariff, price_yuan_per_kwh=avg_price)
    except ValueError:
        findings = []        # too little data this month to judge any saving
    return findings


def _bill_figures(sm: SiteMonth, bill: dict, tariff: tf.Tariff, kvarh: float, method: str, rated_kva: float,
                  t: np.ndarray, p_kw: np.ndarray) -> None:
    """The bill lines of the month: energy by period, demand, basic charge, power factor, total."""
    energy = bill["energy"]
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


def _register_check(sm: SiteMonth, arrays: SiteArrays, site: Site) -> None:
    """Energy from the meters' import registers over the month, against the integrated power."""
    total_wh, events = 0.0, dict.fromkeys(("reset", "replacement", "rollover", "spike"), 0)
    devices = {d.id: d for d in site.devices}
    for meter_id, (rt, re_wh) in arrays.registers.items():
        # bounded upward too: a replacement meter reading higher than the old one is a spike
        # (not counted), not months of consumption
        bounds = device_checks.counter_bounds(site, devices[meter_id], {"time_ns": rt}) \
            if meter_id in devices else {}
        inc = faults.counter_increments(re_wh, **bounds)
        inside = rt >= arrays.start_ns          # the reading before the month only opens it
        total_wh += float(np.nansum(inc["increment"][inside]))
        for k in events:
            events[k] += int(np.count_nonzero(inc[k][inside]))
    sm.register_kwh = total_wh / 1000.0
    sm.register_events = {k: v for k, v in events.items() if v}
    if sm.register_kwh > 0:
        sm.register_diff_pct = 100.0 * (sm.energy_kwh - sm.register_kwh) / sm.register_kwh


def _chart_series(sm: SiteMonth, t: np.ndarray, p_w: np.ndarray, p_kw: np.ndarray, tariff: tf.Tariff,
                  n_days: int) -> None:
    """Daily energy per period and the 15-min demand series of the charts."""
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


def _pv_figures(sm: SiteMonth, arrays: SiteArrays, site: Site, by_type: dict[str, Finding], t: np.ndarray,
                p_kw: np.ndarray, tariff: tf.Tariff, n_days: int) -> None:
    """PV generation, export, self-consumption and yield, with their daily series."""
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


def _ev_figures(sm: SiteMonth, arrays: SiteArrays, t: np.ndarray, tariff: tf.Tariff) -> None:
    """EV charging sessions, energy, cost and valley share."""
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


# ---------------------------------------------------------------- the customer's report


def build_monthly_report(influx: Any, fleet: Fleet, customer_id: str, month: str, *, store: Any = None,
                         archive: ReportArchive | None = None, baseline_yuan_per_kwh: float | None = None,
                         tariff_dir: str | os.PathLike | None = None, survey_url: str = "",
                         now_ns: int | None = None, contract: BaselineContract | None = None) -> MonthlyReport:
    """The monthly saving report of ``customer_id`` for ``month`` (``YYYY-MM``, local time of its sites).

    ``contract`` (from :func:`load_contracts`) gives the baseline period of the verified savings
    and, when ``baseline_yuan_per_kwh`` is None, the contracted unit cost.

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
    now = now_ns or time.time_ns()
    if now < start_ns + 86400 * NS:
        raise ValueError(f"month {month} has not started or has less than one day of data yet")
    # a month in progress: figures up to the last whole minute, charges pro-rated (marked partial)
    upto = min(end_ns, now - now % (60 * NS))
    report = MonthlyReport(customer_id=customer.id, customer_name=customer.name, month=month,
                           start_ns=start_ns, end_ns=upto, generated_ns=now, survey_url=survey_url,
                           days_in_month=round((end_ns - start_ns) / (86400 * NS), 4),
                           days_covered=round((upto - start_ns) / (86400 * NS), 4))
    findings: list[Finding] = []
    regression: list[SiteRegression] | None = None
    if contract is not None and contract.has_period:
        regression = []
    if baseline_yuan_per_kwh is None and contract is not None:
        baseline_yuan_per_kwh = contract.yuan_per_kwh
    for site in customer.sites:
        if not site.tariff:
            raise ValueError(f"site {site.id!r} has no tariff: set 'tariff' in the fleet file")
        tariff = tf.load_tariff(site.tariff, tariff_dir)
        tf.check_site_tariff(site.id, site.province, site.tariff_example_ok, tariff)
        s_start, s_end = month_bounds_ns(month, site.timezone)
        arrays = fetch_site_month(influx, site, s_start, min(s_end, upto))
        sm, f = assemble_site(arrays, tariff, s_end - s_start)
        sm.ageing = ageing_month(influx, arrays)
        report.sites.append(sm)
        findings.extend(f)
        if regression is not None:
            regression.append(_site_regression_from_influx(influx, site, contract, arrays, sm))
    report.recommendations = [
        Recommendation(type=f.type, site_id=f.site_id, device_id=f.device_id,
                       text_zh=f"{f.explanation_zh}{f.recommendation_zh}",
                       text_en=f"{f.explanation_en} {f.recommendation_en}",
                       kwh_month=f.kwh_month, yuan_month=f.yuan_month,
                       calculation_zh=savings.calculation(f, "zh"), calculation_en=savings.calculation(f, "en"))
        for f in savings.rank(findings) if (f.yuan_month or 0) > 0]
    report.workflow = workflow_summary(store, customer.id, [s.id for s in customer.sites], start_ns, end_ns)
    report.savings = savings_vs_baseline(report, baseline_yuan_per_kwh, archive, regression)
    report.commitments = commitments_section(store, customer.id, month, archive=archive, now_ns=now,
                                             completeness_pct=None if report.partial else report.completeness_pct)
    return report


def _site_regression_from_influx(influx: Any, site: Site, contract: BaselineContract, arrays: SiteArrays,
                                 sm: SiteMonth) -> SiteRegression:
    """Read the baseline days and the month's weather, then :func:`site_regression`."""
    tz = site.timezone
    first = datetime.fromtimestamp(arrays.start_ns / NS, ZoneInfo(tz)).date()
    n_days = int(round((arrays.end_ns - arrays.start_ns) / (86400 * NS)))
    price = sm.energy_yuan / sm.energy_kwh if sm.energy_kwh > 0 else None
    if contract.baseline_end >= first:
        return SiteRegression(site_id=site.id, baseline_start=contract.baseline_start.isoformat(),
                              baseline_end=contract.baseline_end.isoformat(), confidence=contract.confidence,
                              error=f"the baseline period ends {contract.baseline_end}, not before this month")
    b0 = _local_midnight_ns(contract.baseline_start, tz)
    b1 = _local_midnight_ns(contract.baseline_end + timedelta(days=1), tz)
    bt, bp = fetch_consumption(influx, site, b0, b1)
    bw = outdoor_temperature(influx, site, b0, b1, contract.weather_feed)
    base = daily_conditions(bt, bp, bw.time_ns, bw.degc, tz, contract.baseline_start,
                            (contract.baseline_end - contract.baseline_start).days + 1)
    mw = outdoor_temperature(influx, site, arrays.start_ns, arrays.end_ns, contract.weather_feed)
    cur = daily_conditions(arrays.time_ns, consumption_w(arrays.grid_power_w, arrays.pv_power_w), mw.time_ns,
                           mw.degc, tz, first, n_days)
    r = site_regression(site.id, contract, base, cur, price)
    r.temperature_source, r.baseline_temperature_source = mw.label, bw.label
    return r
