"""Run every check on one site's arrays already in memory and return :class:`core.model.Finding` s.

This is the composition layer between the pure topic modules (``faults``, ``power_quality``,
``savings``) and the jobs that read InfluxDB (``analytics.jobs``): it knows which check applies
to which device kind and channel, and turns flag arrays into findings with evidence and a
bilingual explanation.  No I/O.

Data shape: ``data[device_id]`` is a mapping with ``time_ns`` (int64, sorted) and one float
array per glossary channel; ``status[device_id]`` (optional) is ``(time_ns, online)`` from
``collector_status``.  Thresholds and delays live in :class:`Rules`; defaults suit 1-min data
and the live 5-s polling alike (delays are in seconds, not samples).

Detection map (fault → finding type): comms loss → ``comms_loss``; voltage out of the
GB/T 12325 band → ``voltage_deviation``; low PF → ``low_power_factor``; THD_u above
GB/T 14549 → ``harmonic_voltage``; THD_i → ``harmonic_current``; current unbalance (SD 292)
→ ``current_unbalance``; neutral current → ``neutral_current``; counter reset/replacement
→ ``counter_reset``; stuck values → ``stale_value``; out-of-range → ``out_of_range``;
transformer over-temperature trend → ``transformer_overtemp``; overload → ``transformer_overload``;
inverter fault state → ``inverter_trip``; no output in daylight → ``inverter_offline``; MPPT
mismatch → ``string_mismatch``; low PR → ``pv_underperformance``; charger fault → ``ev_fault``;
charging without energy → ``ev_stuck``; stuck in Preparing → ``ev_session_stuck``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from analytics import _checks
from analytics import faults as fl
from analytics import power_quality as pq
from core.config import Device, Site
from core.model import Finding

NS = 10**9


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
    stale_window_s: float = 1800.0
    overload_limit: float = 1.0
    overload_on_delay_s: float = 600.0
    temp_alarm_c: float = 130.0            # dry-type F class controller defaults (standards.md §7.4)
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


class _Ctx:
    """One device's evaluation context: builds findings from flag arrays."""

    def __init__(self, site: Site, device: Device, t: np.ndarray, ch: Mapping[str, np.ndarray], period_s: float):
        self.site, self.device, self.t, self.ch, self.period = site, device, t, ch, period_s
        self.out: list[Finding] = []

    def has(self, *names: str) -> bool:
        return all(n in self.ch for n in names)

    def emit(self, mask, type_: str, severity: str, zh: str, en: str, rec_zh: str = "", rec_en: str = "",
             evidence=None, device_id: str | None = None) -> None:
        """One finding per True run of ``mask``; ``evidence(i0, i1)`` gives numbers for a run."""
        m = np.asarray(mask, bool)
        if not m.any():
            return
        d = np.diff(np.r_[False, m, False].astype(np.int8))
        for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True):
            ev = evidence(s, e) if evidence is not None else {}
            self.out.append(Finding(
                type=type_, site_id=self.site.id, device_id=device_id or self.device.id,
                start_ns=int(self.t[s]), end_ns=int(self.t[e] + round(self.period * NS)), severity=severity,
                evidence=ev, explanation_zh=zh, explanation_en=en, recommendation_zh=rec_zh,
                recommendation_en=rec_en))


def _span_stats(x: np.ndarray, s: int, e: int, digits: int = 2) -> dict:
    seg = x[s:e + 1]
    seg = seg[np.isfinite(seg)]
    if seg.size == 0:
        return {}
    return {"min": round(float(seg.min()), digits), "max": round(float(seg.max()), digits),
            "mean": round(float(seg.mean()), digits)}


# ---------------------------------------------------------------- per kind


def _meter(c: _Ctx, r: Rules, rated_kva: float | None) -> None:
    t, ch, site = c.t, c.ch, c.site
    phases = [f"voltage_l{p}" for p in (1, 2, 3) if f"voltage_l{p}" in ch]
    if phases:
        u = np.vstack([ch[p] for p in phases])
        with np.errstate(invalid="ignore"):
            umin, umax = np.fmin.reduce(u, axis=0), np.fmax.reduce(u, axis=0)
        nom = site.nominal_voltage_v
        lo, hi = nom * (1 - r.voltage_band_pct / 100), nom * (1 + r.voltage_band_pct / 100)
        low = fl.threshold_alarm(umin, t, lo, 0.01 * nom, r.voltage_on_delay_s, 0.0, "low")
        high = fl.threshold_alarm(umax, t, hi, 0.01 * nom, r.voltage_on_delay_s, 0.0, "high")
        band = f"±{r.voltage_band_pct:g} %"
        c.emit(low | high, "voltage_deviation", "major",
               f"电压超出 GB/T 12325 允许偏差 {band}（标称 {nom:g} V）。",
               f"Voltage outside the GB/T 12325 band {band} of {nom:g} V nominal.",
               "检查变压器分接头、线路压降和上级电源；持续时通知供电企业。",
               "Check transformer tap, feeder voltage drop and the upstream supply; report to the utility if it "
               "persists.",
               lambda s, e: {"min_v": _span_stats(umin, s, e).get("min"), "max_v": _span_stats(umax, s, e).get("max"),
                             "nominal_v": nom, "band_pct": r.voltage_band_pct})
        rng = fl.out_of_range(umax, -1.0, 2.0 * nom) | fl.out_of_range(umin, -1.0, 2.0 * nom)
        c.emit(rng, "out_of_range", "minor", "电压读数超出物理可能范围（传感器或通信故障）。",
               "Voltage reading outside the physically possible range (sensor or decoding fault).")
        w = max(2, int(np.ceil(r.stale_window_s / c.period)))
        st = fl.stale_values(ch[phases[0]], w)
        c.emit(st, "stale_value", "minor", f"电压读数 {r.stale_window_s / 60:g} 分钟不变（读数冻结）。",
               f"Voltage reading unchanged for {r.stale_window_s / 60:g} min (frozen value).",
               "检查电表和采集链路。", "Check the meter and the acquisition chain.")
    s_ref = None
    if c.has("apparent_power"):
        s_va = np.abs(ch["apparent_power"])
        s_ref = rated_kva * 1000.0 if rated_kva else (np.nanpercentile(s_va, 99) if np.isfinite(s_va).any()
                                                       else None)
    if c.has("power_factor", "active_power") and s_ref:
        p = ch["active_power"]
        pf = np.abs(ch["power_factor"])
        with np.errstate(invalid="ignore"):
            loaded = (p > 0) & (np.abs(ch.get("apparent_power", p)) >= r.pf_min_load_frac * s_ref)
        bad = fl.persistent(loaded & (pf < r.pf_limit), t, r.pf_on_delay_s)
        c.emit(bad, "low_power_factor", "minor",
               f"功率因数持续低于 {r.pf_limit}，将产生力调电费。",
               f"Power factor below {r.pf_limit} for a sustained period: PF surcharge risk.",
               "检查无功补偿装置（电容器投切、熔断器、控制器）。",
               "Check the capacitor bank (steps, fuses, controller).",
               lambda s, e: {"pf": _span_stats(pf, s, e, 3), "limit": r.pf_limit})
    thd_u = [f"thd_voltage_l{p}" for p in (1, 2, 3) if f"thd_voltage_l{p}" in ch]
    if thd_u:
        lim = pq.gbt14549_voltage_limits(0.38)["thd_pct"]
        worst = np.fmax.reduce(np.vstack([ch[x] for x in thd_u]), axis=0)
        bad = fl.threshold_alarm(worst, t, lim, 0.2, r.harmonic_on_delay_s, 0.0)
        c.emit(bad, "harmonic_voltage", "minor", f"电压总谐波畸变率超过 GB/T 14549 限值 {lim} %（0.38 kV）。",
               f"Voltage THD above the GB/T 14549 limit of {lim} % (0.38 kV).",
               "查找非线性负荷（变频器、整流设备），考虑有源滤波。",
               "Find the non-linear loads (drives, rectifiers); consider an active filter.",
               lambda s, e: {"thd_u_pct": _span_stats(worst, s, e), "limit_pct": lim})
    thd_i = [f"thd_current_l{p}" for p in (1, 2, 3) if f"thd_current_l{p}" in ch]
    cur = [f"current_l{p}" for p in (1, 2, 3)]
    if thd_i and c.has(*cur):
        imax = np.fmax.reduce(np.vstack([ch[x] for x in cur]), axis=0)
        ref = np.nanpercentile(imax, 99) if np.isfinite(imax).any() else np.nan
        worst = np.fmax.reduce(np.vstack([ch[x] for x in thd_i]), axis=0)
        with np.errstate(invalid="ignore"):
            bad = fl.persistent((imax >= 0.1 * ref) & (worst > r.thd_current_limit_pct), t, r.harmonic_on_delay_s)
        c.emit(bad, "harmonic_current", "warning", f"电流谐波畸变率超过 {r.thd_current_limit_pct:g} %。",
               f"Current THD above {r.thd_current_limit_pct:g} %.",
               "评估谐波源并按 IEEE 519 / GB/T 14549 核算注入电流。",
               "Assess the harmonic source against IEEE 519 TDD / GB/T 14549 injection limits.",
               lambda s, e: {"thd_i_pct": _span_stats(worst, s, e)})
    if c.has(*cur):
        ia, ib, ic = (ch[x] for x in cur)
        if rated_kva:
            ir = pq.rated_current(rated_kva, site.nominal_voltage_v * np.sqrt(3))
        else:
            imax = np.fmax.reduce(np.vstack([ia, ib, ic]), axis=0)
            ir = float(np.nanpercentile(imax, 99)) if np.isfinite(imax).any() else 0.0
        if ir > 0:
            f = pq.current_unbalance_flags(ia, ib, ic, ch.get("current_n") if rated_kva else None, ir,
                                           r.unbalance_limit_pct, r.neutral_limit_pct)
            unb = f["unbalance_pct"]
            c.emit(fl.persistent(f["unbalance_flag"], t, r.unbalance_on_delay_s), "current_unbalance", "minor",
                   f"三相电流不平衡度超过 {r.unbalance_limit_pct:g} %（SD 292-1988）。",
                   f"Three-phase current unbalance above {r.unbalance_limit_pct:g} % (SD 292-1988).",
                   "调整单相负荷在三相间的分配。", "Rebalance single-phase loads across the phases.",
                   lambda s, e: {"unbalance_pct": _span_stats(unb, s, e), "limit_pct": r.unbalance_limit_pct})
            if rated_kva:
                c.emit(fl.persistent(f["neutral_flag"], t, r.unbalance_on_delay_s), "neutral_current", "minor",
                       f"中性线电流超过额定电流的 {r.neutral_limit_pct:g} %。",
                       f"Neutral current above {r.neutral_limit_pct:g} % of rated current.",
                       "调整三相负荷平衡，检查三次谐波。", "Rebalance the phases; check triplen harmonics.",
                       lambda s, e: {"neutral_pct": _span_stats(f["neutral_pct"], s, e)})


def _counters(c: _Ctx) -> None:
    for name in ("energy_import", "energy_export", "reactive_energy_import", "reactive_energy_export"):
        if name not in c.ch:
            continue
        r = fl.counter_increments(c.ch[name])
        ev_mask = r["reset"] | r["replacement"] | r["rollover"]
        for i in np.flatnonzero(ev_mask):
            kind = "reset" if r["reset"][i] else "replacement" if r["replacement"][i] else "rollover"
            prev = c.ch[name][:i][np.isfinite(c.ch[name][:i])]
            c.out.append(Finding(
                type="counter_reset", site_id=c.site.id, device_id=c.device.id, start_ns=int(c.t[i]),
                end_ns=int(c.t[i] + round(c.period * NS)), severity="warning",
                evidence={"channel": name, "kind": kind, "before_wh": float(prev[-1]) if prev.size else None,
                          "after_wh": float(c.ch[name][i])},
                explanation_zh=f"电能计数器 {name} 回退（{kind}）：已按清零/换表处理，报表不会出现负电量。",
                explanation_en=f"Energy counter {name} went backwards ({kind}); handled as reset/replacement so no "
                               "report shows negative consumption.",
                recommendation_zh="核实是否换表或电表复位，并记录表底数。",
                recommendation_en="Confirm a meter replacement or reset and record the readings."))
            break   # one finding per channel per evaluation is enough; evidence names the first


def _transformer(c: _Ctx, r: Rules) -> None:
    wt = [f"winding_temperature_l{p}" for p in (1, 2, 3) if f"winding_temperature_l{p}" in c.ch]
    if not wt:
        return
    temp = np.fmax.reduce(np.vstack([c.ch[x] for x in wt]), axis=0)
    tr = fl.temperature_trend(temp, c.t, r.temp_trip_c, r.temp_alarm_c, window_s=1800.0,
                              horizon_s=r.temp_horizon_s)
    warn = tr["warning"]
    if "temperature_alarm" in c.ch:
        warn = warn | (c.ch["temperature_alarm"] == 1)
    trip = temp >= r.temp_trip_c
    if "temperature_trip" in c.ch:
        trip = trip | (c.ch["temperature_trip"] == 1)
    c.emit(warn & ~trip, "transformer_overtemp", "major",
           f"绕组温度上升趋势预计将达到跳闸值 {r.temp_trip_c:g} °C（或已超报警值 {r.temp_alarm_c:g} °C）。",
           f"Winding temperature trend heading for the {r.temp_trip_c:g} °C trip point (or above the "
           f"{r.temp_alarm_c:g} °C alarm).",
           "检查风机和通风、降低负荷，准备转移负荷。", "Check fans and ventilation, reduce load, prepare to "
           "transfer load.",
           lambda s, e: {"temperature_c": _span_stats(temp, s, e, 1),
                         "eta_to_trip_s": float(np.nanmin(tr["eta_s"][s:e + 1]))})
    c.emit(trip, "transformer_overtemp", "critical", f"绕组温度达到跳闸值 {r.temp_trip_c:g} °C。",
           f"Winding temperature at the {r.temp_trip_c:g} °C trip point.",
           "立即到现场处置。", "Attend on site immediately.",
           lambda s, e: {"temperature_c": _span_stats(temp, s, e, 1)})
    _, roc = fl.rate_of_change(temp, c.t, r.temp_max_rate_c_per_min / 60.0)
    c.emit(roc, "implausible_rate", "minor", "温度变化速率不合理（传感器故障？）。",
           "Implausible temperature rate of change (sensor fault?).", "检查 PT100 传感器接线。",
           "Check the PT100 sensor wiring.")


def _overload(site: Site, c: _Ctx, r: Rules) -> None:
    for tr in site.transformers:
        if tr.meter == c.device.id and "apparent_power" in c.ch:
            beta = fl.load_rate(c.ch["apparent_power"], tr.rated_kva)
            ov = fl.overload(c.ch["apparent_power"], c.t, tr.rated_kva, r.overload_limit, r.overload_on_delay_s)
            c.emit(ov, "transformer_overload", "major", f"变压器 {tr.id} 负载率超过 {r.overload_limit:.0%}。",
                   f"Transformer {tr.id} loaded above {r.overload_limit:.0%} of its rating.",
                   "转移或削减负荷；评估增容或并列运行。", "Shift or shed load; consider more capacity.",
                   lambda s, e, beta=beta, kva=tr.rated_kva: {"load_rate": _span_stats(beta, s, e, 3),
                                                              "rated_kva": kva}, device_id=tr.id)


def _pv(c: _Ctx, r: Rules, dc_kwp: float) -> None:
    ch, t = c.ch, c.t
    rated_w = (c.device.rated_power_kw or dc_kwp / 1.15) * 1000.0
    if "inverter_state" in ch:
        trip = fl.persistent(ch["inverter_state"] == 7, t, 0.0)
        ev = ch.get("inverter_events")
        c.emit(trip, "inverter_trip", "major", "逆变器故障停机（SunSpec 状态 FAULT）。",
               "Inverter tripped (SunSpec state FAULT).", "查看事件码，现场检查绝缘和直流侧。",
               "Read the event code; check insulation and the DC side on site.",
               lambda s, e: {"inverter_events": int(np.nanmax(ev[s:e + 1])) if ev is not None else None})
    else:
        trip = np.zeros(t.shape, bool)
    poa = ch.get("irradiance_poa")
    has_poa = poa is not None and bool(np.isfinite(poa).any())
    off = np.zeros(t.shape, bool)
    if "active_power" in ch:
        if has_poa:
            off = fl.inverter_offline_daylight(ch["active_power"], poa, rated_w, None, r.pv_min_poa_wm2)
            why = {"basis": "measured POA"}
        else:
            # no irradiance sensor (SunSpec inverters rarely carry one): daylight from the pvlib
            # clear-sky POA, with a higher threshold because clear sky is an upper bound
            cs = fl.clearsky_poa(t, c.site.latitude, c.site.longitude)
            off = fl.inverter_offline_daylight(ch["active_power"], cs, rated_w, None, r.pv_clearsky_min_poa_wm2)
            why = {"basis": "clear-sky POA (no irradiance sensor)"}
        off = fl.persistent(off & ~trip, t, r.pv_offline_on_delay_s)
        c.emit(off, "inverter_offline", "major", "白天有辐照但逆变器无输出。", "No inverter output in daylight.",
               "检查交流开关、并网条件和逆变器状态。", "Check the AC breaker, grid conditions and inverter state.",
               lambda s, e: why | ({"poa_wm2": _span_stats(poa, s, e, 0)} if has_poa else {}))
    if has_poa and "active_power" in ch:
        tmod = ch.get("temperature_module")
        tmod = tmod if tmod is not None and bool(np.isfinite(tmod).any()) else None
        exp = fl.expected_pv_power(poa, dc_kwp, tmod, r.pv_gamma, r.pv_system_pr)
        under = fl.pv_underperformance(ch["active_power"], exp, rated_w, r.pv_ratio_limit)
        dt_h = c.period / 3600.0
        e_ac = np.clip(np.nan_to_num(ch["active_power"]), 0, None) * dt_h / 1000.0

        def pr_ev(s, e):
            tm = ch.get("temperature_module")
            tm_ok = tm is not None and bool(np.isfinite(tm[s:e + 1]).all())
            return {"pr": round(fl.performance_ratio(e_ac[s:e + 1], dc_kwp, poa[s:e + 1], dt_h), 3),
                    "pr_stc": round(fl.performance_ratio(e_ac[s:e + 1], dc_kwp, poa[s:e + 1], dt_h, tm[s:e + 1],
                                                         r.pv_gamma), 3) if tm_ok else None, "dc_kwp": dc_kwp}
        c.emit(fl.persistent(under & ~trip & ~off, t, r.pv_underperf_on_delay_s), "pv_underperformance", "minor",
               "光伏出力低于按辐照度和温度修正的期望值（IEC 61724-1 PR 偏低）。",
               "PV output below the irradiance- and temperature-corrected expectation (low IEC 61724-1 PR).",
               "检查组件遮挡、积灰、组串和逆变器限功率。", "Check shading, soiling, strings and curtailment.", pr_ev)
    mppt = [f"mppt{n}_dc_current" for n in range(1, 9) if f"mppt{n}_dc_current" in ch]
    if len(mppt) >= 2:
        cur = np.column_stack([ch[x] for x in mppt])
        sm = fl.string_mismatch(cur, poa if has_poa else None, warn_pct=r.string_fault_pct / 2,
                                fault_pct=r.string_fault_pct)
        fault = sm["fault"]
        if not has_poa:
            # judge only in good production: the peers' median current ≥ 20 % of its 95th percentile
            med = np.full(cur.shape[0], np.nan)
            rows = np.isfinite(cur).any(axis=1)
            med[rows] = np.nanmedian(cur[rows], axis=1)
            ref = np.nanpercentile(med, 95) if np.isfinite(med).any() else np.nan
            with np.errstate(invalid="ignore"):
                fault = fault & ((med >= 0.2 * ref) & (med >= r.string_min_current_a))[:, None]
        for k, name in enumerate(mppt):
            mk = fl.persistent(fault[:, k], t, r.string_on_delay_s)
            dev = sm["deviation_pct"][:, k]
            c.emit(mk, "string_mismatch", "minor", f"{name.split('_')[0].upper()} 电流明显低于同机其他输入。",
                   f"{name.split('_')[0].upper()} current well below the other inputs of the inverter.",
                   "检查该路组串熔断器、连接器和遮挡。", "Check that string's fuse, connectors and shading.",
                   lambda s, e, dev=dev, name=name: {"input": name, "deviation_pct": _span_stats(dev, s, e, 1)})


def _ev(c: _Ctx, r: Rules) -> None:
    ch, t = c.ch, c.t
    faulted = fl.ev_faulted(t, ch.get("ocpp_status"), ch.get("fault_code"), ch.get("charger_state"),
                            r.ev_fault_on_delay_s)
    fc = ch.get("fault_code")
    c.emit(faulted, "ev_fault", "major", "充电桩故障（OCPP Faulted / 故障码）。", "Charger faulted (OCPP Faulted / "
           "fault code).", "远程复位，无效则派单现场检修。", "Try a remote reset; dispatch a technician if it persists.",
           lambda s, e: {"fault_code": int(np.nanmax(fc[s:e + 1])) if fc is not None else None})
    if c.has("ocpp_status", "energy_import"):
        stuck = fl.ev_charging_no_energy(t, ch["ocpp_status"], ch["energy_import"], r.ev_min_power_w,
                                         r.ev_stuck_on_delay_s)
        if "active_power" in ch:
            with np.errstate(invalid="ignore"):
                stuck &= ~(ch["active_power"] >= r.ev_min_power_w)
        c.emit(stuck, "ev_stuck", "minor", "状态为“充电中”但电量不增加。", "Status 'Charging' but no energy delivered.",
               "检查车辆连接和充电桩接触器。", "Check the vehicle connection and the charger contactor.")
    if "ocpp_status" in ch:
        c.emit(fl.ev_session_stuck(t, ch["ocpp_status"], r.ev_preparing_max_s), "ev_session_stuck", "warning",
               "插枪后长时间未开始充电。", "Plugged in but charging never started.",
               "检查鉴权和车辆通信。", "Check authorisation and vehicle communication.")


def _comms(c: _Ctx, r: Rules, start_ns: int, end_ns: int, status) -> None:
    online, ot = (None, None) if status is None else (status[1], status[0])
    for s, e in fl.comms_loss(c.t, c.period, start_ns, end_ns, online, ot, r.comms_min_missing):
        c.out.append(Finding(
            type="comms_loss", site_id=c.site.id, device_id=c.device.id, start_ns=s, end_ns=e, severity="major",
            evidence={"duration_s": round((e - s) / NS, 1), "period_s": c.period},
            explanation_zh="设备通信中断，无数据。", explanation_en="Device not communicating: no data.",
            recommendation_zh="检查设备供电、通信线路和网关。", recommendation_en="Check power, cabling and the gateway."))


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
    c = _Ctx(site, device, t, ch, _period_s(t, device))
    _comms(c, r, start_ns, end_ns, status)
    if t.size < 2:
        return c.out
    rated = next((tr.rated_kva for tr in site.transformers if tr.meter == device.id), None)
    if device.kind == "meter":
        _meter(c, r, rated)
        _overload(site, c, r)
    elif device.kind == "transformer":
        _transformer(c, r)
    elif device.kind == "pv_inverter":
        pvs = [d for d in site.devices if d.kind == "pv_inverter"]
        tot = sum(d.rated_power_kw or 0.0 for d in pvs)
        dc = (site.pv_capacity_kwp * (device.rated_power_kw or 0.0) / tot if site.pv_capacity_kwp and tot
              else 1.15 * (device.rated_power_kw or 100.0))
        _pv(c, r, dc)
        _meter_voltage_only(c, r)
    elif device.kind == "ev_charger":
        _ev(c, r)
    if device.kind in ("meter", "pv_inverter", "ev_charger"):
        _counters(c)
    return c.out


def _meter_voltage_only(c: _Ctx, r: Rules) -> None:
    """Voltage-band check on a non-meter device that measures its terminals (PV inverter)."""
    phases = [f"voltage_l{p}" for p in (1, 2, 3) if f"voltage_l{p}" in c.ch]
    if not phases:
        return
    umin = np.fmin.reduce(np.vstack([c.ch[p] for p in phases]), axis=0)
    nom = c.site.nominal_voltage_v
    # at night an inverter may report 0 V: judge only while producing
    producing = np.nan_to_num(c.ch.get("active_power", np.ones_like(umin))) > 0
    lo = nom * (1 - r.voltage_band_pct / 100)
    with np.errstate(invalid="ignore"):
        low = fl.persistent(producing & (umin < lo), c.t, r.voltage_on_delay_s)
    c.emit(low, "voltage_deviation", "major", "逆变器交流侧电压低于允许偏差。",
           "Inverter AC voltage below the permitted deviation.", "检查并网点电压。", "Check the grid-connection voltage.",
           lambda s, e: {"min_v": _span_stats(umin, s, e).get("min"), "nominal_v": nom})


def assess_site(site: Site, data: Mapping[str, Mapping[str, np.ndarray]], start_ns: int, end_ns: int,
                status: Mapping[str, tuple] | None = None, rules: Rules | None = None) -> list[Finding]:
    """Run :func:`assess_device` for every device of ``site`` (a device with no data is all comms loss)."""
    out: list[Finding] = []
    for d in site.devices:
        dd = data.get(d.id) or {"time_ns": np.zeros(0, np.int64)}
        out += assess_device(site, d, dd, start_ns, end_ns, (status or {}).get(d.id), rules)
    return out


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
    scaled from the data to an average month).
    """
    from analytics import savings
    from analytics import tariffs as tf

    meters = [tr.meter for tr in site.transformers if tr.meter in data] or [
        d.id for d in site.devices if d.kind == "meter" and d.id in data][:1]
    if not meters:
        return []
    t = _checks.time_ns(data[meters[0]]["time_ns"])
    if t.size < 60:
        return []

    def total(ids, name):
        arrs = [np.asarray(data[i][name], float) for i in ids if name in data[i] and len(data[i][name]) == t.size]
        return np.nansum(np.vstack(arrs), axis=0) / 1000.0 if arrs else None

    p_kw, q_kvar, s_kva = total(meters, "active_power"), total(meters, "reactive_power"), total(meters,
                                                                                                "apparent_power")
    if p_kw is None:
        return []
    valid = np.isfinite(np.vstack([np.asarray(data[m]["active_power"], float) for m in meters
                                   if "active_power" in data[m]])).any(axis=0)
    step_s = float(np.median(np.diff(t))) / NS
    if valid.sum() * step_s < min_days * 86400:
        return []           # a month's advice from a few hours of data would be wrong, not just rough
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
    evs = [d.id for d in site.devices if d.kind == "ev_charger" and d.id in data]
    ev_kw = total(evs, "active_power") if evs else None
    if ev_kw is not None:
        out.append(savings.tou_shift(site.id, t, ev_kw, tariff, 0.5, "ev_valley_charging"))
    pvs = [d.id for d in site.devices if d.kind == "pv_inverter" and d.id in data]
    pv_kw = total(pvs, "active_power") if pvs else None
    if pv_kw is not None:
        out.append(savings.pv_self_consumption(site.id, t, pv_kw, p_kw, tariff))
    return savings.rank(out)
