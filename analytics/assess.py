"""Run every check on one site's arrays already in memory and return :class:`core.model.Finding` s.

This is the composition layer between the pure topic modules (``faults``, ``power_quality``,
``savings``) and the jobs that read InfluxDB (``analytics.jobs``): it knows which check applies
to which device kind and channel (the checks themselves are in ``device_checks`` and
``pv_checks``; their texts in the table ``finding_types``).  No I/O.

Data shape: ``data[device_id]`` is a mapping with ``time_ns`` (int64, sorted) and one float
array per glossary channel; ``status[device_id]`` (optional) is ``(time_ns, online)`` or
``(time_ns, online, status_text)`` from ``collector_status``.  Thresholds and delays live in :class:`Rules`; defaults suit 1-min data
and the live 5-s polling alike (delays are in seconds, not samples).

Detection map (fault → finding type): comms loss → ``comms_loss``; voltage out of the
GB/T 12325 band → ``voltage_deviation``; low PF → ``low_power_factor``; THD_u above
GB/T 14549 → ``harmonic_voltage``; THD_i → ``harmonic_current``; current unbalance (SD 292)
→ ``current_unbalance``; neutral current → ``neutral_current``; counter reset/replacement
→ ``counter_reset`` (also an implausible upward jump); stuck values → ``stale_value``; out-of-range →
``out_of_range``; transformer over-temperature trend → ``transformer_overtemp``, at the trip point
``transformer_trip``; overload → ``transformer_overload``; PV output while the sun is down at the
device's timestamps, or a measured clock offset (MQTT arrival, DL/T 645 meter clock) → ``clock_offset``;
inverter fault state → ``inverter_trip``; no output in daylight → ``inverter_offline``; MPPT
mismatch → ``string_mismatch``; low PR → ``pv_underperformance``; charger fault → ``ev_fault``;
charging without energy → ``ev_stuck``; stuck in Preparing → ``ev_session_stuck``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from analytics import _checks
from analytics import device_checks as dc
from analytics import finding_types as ft
from analytics import power_quality as pq
from analytics import pv_checks as pvc
from analytics.transformer_ageing import transformer_ageing
from core.config import Device, Site
from core.model import Finding
from core.units import NS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """Thresholds [unit in the name] and on-delays [s] of the site checks (all configurable)."""

    comms_min_missing: int = 2             # missing samples before a gap is comms loss
    voltage_band_pct: float = 7.0          # GB/T 12325 §4, ≤ 20 kV three-phase
    voltage_on_delay_s: float = 60.0
    pf_limit: float = 0.85                 # below the 0.90 standard's surcharge zone with margin
    pf_min_load_frac: float = 0.05         # of the reference apparent power
    pf_on_delay_s: float = 900.0
    thd_current_limit_pct: float = 30.0
    harmonic_on_delay_s: float = 600.0
    unbalance_limit_pct: float = 15.0      # SD 292-1988
    neutral_limit_pct: float = 25.0
    unbalance_on_delay_s: float = 900.0
    unbalance_min_load_pct: float = 20.0   # of rated current: a ratio of small currents is not a fault
    stale_window_s: float = 1800.0
    stale_resolution_v: float = 0.01        # a voltage whose 30-min range is within this is frozen
    overload_limit: float = 1.0
    overload_on_delay_s: float = 600.0
    temp_alarm_c: float = 130.0            # dry-type F class controller defaults (docs/standards.md §7.4)
    temp_trip_c: float = 150.0
    temp_horizon_s: float = 3600.0
    temp_max_rate_c_per_min: float = 5.0
    pv_min_poa_wm2: float = 150.0
    pv_clearsky_min_poa_wm2: float = 300.0   # daylight test when the inverter has no irradiance sensor
    string_min_current_a: float = 1.0
    pv_offline_on_delay_s: float = 600.0
    pv_ratio_limit: float = 0.7
    pv_underperf_on_delay_s: float = 3600.0
    pv_gamma: float = -0.0037
    pv_system_pr: float = 0.85
    string_fault_pct: float = -20.0
    string_on_delay_s: float = 900.0
    string_off_delay_s: float = 300.0       # back within half the limit this long before a string alarm clears
    pv_string_min_poa_wm2: float = 50.0     # strings are compared in daylight only (with a sensor)
    clock_min_power_frac: float = 0.05      # PV output ≥ this share of rating while the sun is down …
    clock_on_delay_s: float = 1200.0        # … for this long: the device clock is off
    clock_offset_limit_s: float = 120.0     # a measured device/meter clock offset beyond this (≥ 90 s: MQTT
                                            # offsets nearer are not stored) …
    clock_offset_on_delay_s: float = 300.0  # … for this long (of arrival time): clock_offset
    ev_fault_on_delay_s: float = 0.0
    ev_stuck_on_delay_s: float = 600.0
    ev_min_power_w: float = 500.0
    ev_preparing_max_s: float = 600.0


def _period_s(t: np.ndarray, device: Device, recent: int = 20) -> float:
    """Sample period [s] of the most recent samples (a window may start with coarser history,
    e.g. 1-min backfill before 5-s live polls; the recent period is what durations need)."""
    if t.size >= 3:
        return float(np.median(np.diff(t[-recent:]))) / NS
    return float(device.poll_interval_s)


def assess_device(site: Site, device: Device, data: Mapping[str, np.ndarray], start_ns: int, end_ns: int,
                  status: tuple | None = None, rules: Rules | None = None) -> list[Finding]:
    """All checks that apply to one device's data over ``[start_ns, end_ns)``.

    Parameters
    ----------
    site, device : core.config.Site, core.config.Device
    data : mapping
        ``time_ns`` plus channel arrays (glossary names and units).
    start_ns, end_ns : int
        Evaluated window [ns] (comms loss is judged against it).
    status : (time_ns, online), optional
        ``collector_status`` samples of the device.
    rules : Rules, optional
    """
    r = rules or Rules()
    if end_ns <= start_ns:
        raise ValueError(f"end_ns must be > start_ns, got {start_ns}..{end_ns}")
    if "time_ns" not in data:
        raise ValueError(f"data of device {device.id!r} has no 'time_ns' array")
    t = _checks.time_ns(data["time_ns"])
    ch = {k: _checks.as_float(v, k) for k, v in data.items() if k != "time_ns"}
    for k, v in ch.items():
        if v.shape != t.shape:
            raise ValueError(f"device {device.id!r}: channel {k!r} has shape {v.shape}, time_ns {t.shape}")
    c = dc.Ctx(site, device, t, ch, _period_s(t, device))
    dc.comms(c, r, start_ns, end_ns, status)
    if t.size < 2:
        return c.out
    rated = next((tr.rated_kva for tr in site.transformers if tr.meter == device.id), None)
    if device.kind == "meter":
        dc.meter(c, r, rated)
        dc.overload(c, r)
    elif device.kind == "transformer":
        dc.transformer(c, r)
    elif device.kind == "pv_inverter":
        pvs = [d for d in site.devices if d.kind == "pv_inverter"]
        tot = sum(d.rated_power_kw or 0.0 for d in pvs)
        kwp = (site.pv_capacity_kwp * (device.rated_power_kw or 0.0) / tot if site.pv_capacity_kwp and tot
               else 1.15 * (device.rated_power_kw or 100.0))
        pvc.pv_inverter(c, r, kwp)
        _terminal_voltage(c, r, producing_only=True)
    elif device.kind == "ev_charger":
        dc.ev_charger(c, r)
        _terminal_voltage(c, r, producing_only=False)
    if device.kind in ("meter", "pv_inverter", "ev_charger"):
        dc.counters(c)
        dc.clock_offset(c, r)
    return c.out


def _terminal_voltage(c: dc.Ctx, r: Rules, producing_only: bool) -> None:
    """Voltage band on a non-meter device that measures its terminals (EV charger; PV inverter judged while
    producing, as an inverter may report 0 V at night)."""
    phases = [f"voltage_l{p}" for p in (1, 2, 3) if f"voltage_l{p}" in c.ch]
    if not phases:
        return
    u = np.vstack([c.ch[p] for p in phases])
    with np.errstate(invalid="ignore"):
        umin, umax = np.fmin.reduce(u, axis=0), np.fmax.reduce(u, axis=0)
        when = np.nan_to_num(c.ch.get("active_power", np.ones_like(umin))) > 0 if producing_only else None
    dc.voltage(c, r, umin, umax, when)


def assess_site(site: Site, data: Mapping[str, Mapping[str, np.ndarray]], start_ns: int, end_ns: int,
                status: Mapping[str, tuple] | None = None, rules: Rules | None = None) -> list[Finding]:
    """Run :func:`assess_device` for every device of ``site`` (a device with no data is all comms loss).

    One device's data never stops another's analysis: an exception in one device's checks is logged
    with the device id and becomes an ``analysis_failed`` finding of that device; the others go on.
    """
    out: list[Finding] = []
    for d in site.devices:
        dd = data.get(d.id) or {"time_ns": np.zeros(0, np.int64)}
        try:
            out += assess_device(site, d, dd, start_ns, end_ns, (status or {}).get(d.id), rules)
        except Exception as exc:  # noqa: BLE001 - isolate the device, report it, go on with the rest
            log.exception("analysis of device %s (site %s) failed", d.id, site.id)
            out.append(_failed(site, d, start_ns, end_ns, exc))
    return out + transformer_ageing(site, data, start_ns, end_ns)[0]


def _failed(site: Site, device: Device, start_ns: int, end_ns: int, exc: Exception) -> Finding:
    ev = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return Finding(type="analysis_failed", site_id=site.id, device_id=device.id, start_ns=int(start_ns),
                   end_ns=int(max(end_ns, start_ns)), evidence=ev, **ft.texts("analysis_failed", ev))


def pq_findings(site: Site, meter_id: str, data: Mapping[str, np.ndarray], period_s: float = 60.0) -> list[Finding]:
    """EN 50160-style compliance of a meter over the window as findings of type ``pq_<parameter>``.

    Every parameter yields one finding (compliant ones, and those without valid data —
    ``evidence['compliant']`` None — with severity ``warning``) so a report can show the whole table.  Indicative, not
    IEC 61000-4-30 Class A.  These are reports, not alarms (exclude ``pq_*`` from alarms).
    """
    t = _checks.time_ns(data["time_ns"])
    if t.size == 0:
        return []
    summ = pq.compliance_summary(t, data, site.nominal_voltage_v, 0.4, period_s)
    out = []
    for name, s in summ.items():
        ok = s["compliant"]
        verdict_zh = "无有效数据" if ok is None else "合格" if ok else "不合格"
        verdict_en = "no valid data" if ok is None else "compliant" if ok else "NOT compliant"
        out.append(Finding(
            type=f"pq_{name}", site_id=site.id, device_id=meter_id, start_ns=int(t[0]),
            end_ns=int(t[-1] + round(period_s * NS)), severity="minor" if ok is False else "warning",
            evidence={k: (float(v) if isinstance(v, np.floating) else v) for k, v in s.items()},
            explanation_zh=f"{name}：{s['standard']}，有效 10 分钟值 {s['n_valid']} 个，越限 {s['n_outside']} 个"
                           f"（{verdict_zh}；指示性评估，非 A 级仪表）。",
            explanation_en=f"{name}: {s['standard']}, {s['n_valid']} valid 10-min values, {s['n_outside']} outside "
                           f"({verdict_en}; indicative, not IEC 61000-4-30 Class A).",
        ))
    return out


def site_savings(site: Site, data: Mapping[str, Mapping[str, np.ndarray]], tariff,
                 adjustment_base_yuan: float | None = None, price_yuan_per_kwh: float | None = None,
                 min_days: float = 3.0) -> list[Finding]:
    """Priced saving findings of one site over the window, ranked by yuan/month.

    Site grid power is the sum of the transformer (billing) meters; EV and PV power the sums
    of the chargers and inverters.  All series must share one time grid (1-min means, as
    :func:`analytics.jobs.fetch_site` returns in period mode).  ``adjustment_base_yuan`` [yuan/month]
    defaults to the window's energy charge per month + the present monthly basic charge
    (:func:`analytics.savings.adjustment_base`); it is never rescaled by the window.  No advice
    (an empty list) unless the billing meters hold at least ``min_days`` days of data (figures are
    scaled from the data to an average month).  Only the incomer meters (:func:`incomer_meters`) are
    priced: when one has no data in the window the result is a single ``saving_not_priced`` finding
    that says so, never a figure from a feeder meter.
    """
    from analytics import savings
    from analytics import tariffs as tf

    meters, missing = incomer_meters(site, data)
    if missing:
        return [_not_priced(site, data, meters + missing, missing)]
    series = _billing_series(meters, data, min_days)
    if series is None:
        return []
    t, p_kw, q_kvar, s_kva = series
    kva = sum(tr.rated_kva for tr in site.transformers) or float(np.nanmax(s_kva) if s_kva is not None else 1.0)
    e = tf.interval_energy_kwh(t, np.clip(p_kw, 0, None) * 1000.0, max_gap_s=600)
    energy_yuan = tf.energy_cost(t, e, tariff)["total_yuan"]
    avg_price = price_yuan_per_kwh or (energy_yuan / max(e.sum(), 1e-9))
    basic = savings.basic_charge_choice(site.id, t, p_kw, kva, tariff,
                                        "demand" if site.contract_demand_kw else "capacity", site.contract_demand_kw)
    base = adjustment_base_yuan if adjustment_base_yuan is not None else savings.adjustment_base(
        energy_yuan, basic.evidence["analysed_days"], basic.evidence["current_yuan"])
    out = [basic, savings.peak_shaving(site.id, t, p_kw, tariff, demand_billed=bool(site.contract_demand_kw)),
           savings.base_load_waste(site.id, t, p_kw, tariff)]
    if q_kvar is not None:
        out.append(savings.pf_correction(site.id, t, p_kw, q_kvar, base, site.pf_standard,
                                         rated_kva=kva if site.transformers else None,
                                         pk_kw=sum(tr.pk_kw for tr in site.transformers) or None,
                                         price_yuan_per_kwh=avg_price))
    if s_kva is not None and site.transformers:
        out.append(savings.transformer_operation(site.id, t, s_kva, [tr.rated_kva for tr in site.transformers],
                                                 [tr.p0_kw for tr in site.transformers],
                                                 [tr.pk_kw for tr in site.transformers], avg_price))
    out += _ev_pv_findings(site, data, t, p_kw, tariff)
    return savings.rank(out)


def _total(data: Mapping[str, Mapping[str, np.ndarray]], ids, name: str, n: int) -> np.ndarray | None:
    """Sum of channel ``name`` [W] over devices ``ids`` in [k], NaN as 0 (None if no device has it)."""
    arrs = [np.asarray(data[i][name], float) for i in ids if name in data[i] and len(data[i][name]) == n]
    return np.nansum(np.vstack(arrs), axis=0) / 1000.0 if arrs else None


def _billing_series(meters: list[str], data: Mapping[str, Mapping[str, np.ndarray]], min_days: float):
    """(time_ns, P [kW], Q [kvar], S [kVA]) summed over the incomer ``meters``, or None without ``min_days``
    of data."""
    t = _checks.time_ns(data[meters[0]]["time_ns"])
    if t.size < 60:
        return None
    p_kw, q_kvar, s_kva = (_total(data, meters, name, t.size)
                           for name in ("active_power", "reactive_power", "apparent_power"))
    if p_kw is None:
        return None
    valid = np.isfinite(np.vstack([np.asarray(data[m]["active_power"], float) for m in meters
                                   if "active_power" in data[m]])).any(axis=0)
    step_s = float(np.median(np.diff(t))) / NS
    if valid.sum() * step_s < min_days * 86400:
        return None         # a month's advice from a few hours of data would be wrong, not just rough
    return t, p_kw, q_kvar, s_kva


def _ev_pv_findings(site: Site, data: Mapping[str, Mapping[str, np.ndarray]], t, p_kw, tariff) -> list[Finding]:
    """EV valley charging and PV self-consumption findings, for the chargers and inverters present."""
    from analytics import savings

    out = []
    evs = [d.id for d in site.devices if d.kind == "ev_charger" and d.id in data]
    ev_kw = _total(data, evs, "active_power", t.size) if evs else None
    if ev_kw is not None:
        out.append(savings.tou_shift(site.id, t, ev_kw, tariff, 0.5, "ev_valley_charging"))
    pvs = [d.id for d in site.devices if d.kind == "pv_inverter" and d.id in data]
    pv_kw = _total(data, pvs, "active_power", t.size) if pvs else None
    if pv_kw is not None:
        out.append(savings.pv_self_consumption(site.id, t, pv_kw, p_kw, tariff))
    return out


def incomer_meters(site: Site, data: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[list[str], list[str]]:
    """The site's incomer (billing) meters with data in ``data``, and those without any finite active power.

    The incomers are the transformers' meters; a site without transformers counts its meter as the
    incomer only when it has exactly one (with several, which one bills the site is unknown: all missing).
    """
    ids = [tr.meter for tr in site.transformers]
    if not ids:
        ms = [d.id for d in site.devices if d.kind == "meter"]
        ids = ms if len(ms) == 1 else []
    have = [m for m in ids if m in data and np.isfinite(np.asarray(data[m].get("active_power", ()), float)).any()]
    return have, sorted(set(ids) - set(have)) if ids else ["(no incomer meter configured)"]


def _not_priced(site: Site, data, meters: list[str], missing: list[str]) -> Finding:
    """The savings of ``site`` are not priced: its incomer meters ``missing`` sent no data."""
    times = [np.asarray(v["time_ns"]) for v in data.values() if len(v.get("time_ns", ()))]
    start = int(min(t[0] for t in times)) if times else 0
    end = int(max(t[-1] for t in times)) if times else 0
    names = ", ".join(missing)
    return Finding(
        type="saving_not_priced", site_id=site.id, device_id=None, start_ns=start, end_ns=end, severity="warning",
        evidence={"incomer_meters": sorted(set(meters)), "without_data": missing, "reason": "incomer_no_data"},
        explanation_zh=f"主进线表无数据，本期节费不计算（{names}）；分路表不能代表全站用电。",
        explanation_en=f"The incomer meter sent no data: savings not priced ({names}); a feeder meter does "
                       f"not measure the whole site.",
        recommendation_zh="恢复主进线表通信后重新计算。", recommendation_en="Restore the incomer meter's "
                                                                      "communication, then re-run the analysis.")
