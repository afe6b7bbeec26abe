"""Priced energy-saving recommendations, each a :class:`core.model.Finding`.

Every function analyses one site's data (arrays already in memory) and returns a
Finding of type ``saving_*`` with ``kwh_month`` and ``yuan_month`` per average month
(30.4375 days), the formula ``inputs``, the ``evidence`` numbers, and a bilingual
explanation and recommendation.

Window rule: an energy measured over the analysed window is scaled by
``30.4375 / analysed_days``; a price or charge that is already per month (the basic
charge, the PF adjustment base, the demand price) is never scaled.  ``evidence`` holds
``analysed_days`` and every number the 元/month is computed from (rounded as printed; the
figure is computed from the rounded numbers), so :func:`calculation` and any reader can
redo the sum from the evidence alone.  A saving that
does not apply returns a Finding with ``yuan_month = 0`` (the evidence says why), so a
report can show "checked, nothing to gain".  :func:`rank` orders them by yuan/month.

For shifting measures (TOU shifting, EV valley charging, PV self-consumption)
``kwh_month`` is the energy **moved**, not saved; ``inputs['kwh_meaning']`` says so.

Power [kW], energy [kWh], reactive [kvar]/[kvarh], money [yuan], time [ns] UTC.
References: docs/standards.md §5 (PF), §6 (tariffs), §7 (transformers), §8 (PV), §9.3 (EV).
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics import power_quality as pq
from analytics import tariffs as tf
from core.model import Finding

MONTH_DAYS = 30.4375
MONTH_NS = int(MONTH_DAYS * 86400 * 10**9)


def _span(t: np.ndarray) -> tuple[int, int, float]:
    """(start, end, analysed days) of a sampled window; scale a window energy with :func:`per_month`."""
    if t.size < 2:
        raise ValueError("time_ns must hold at least two samples")
    step = int(np.median(np.diff(t)))
    start, end = int(t[0]), int(t[-1]) + step
    return start, end, round((end - start) / 864e11, 6)


def per_month(window_value: float, analysed_days: float) -> float:
    """A quantity measured over ``analysed_days`` days, per average month (30.4375 days)."""
    return float(window_value) * MONTH_DAYS / analysed_days


def adjustment_base(energy_yuan_window: float, analysed_days: float, basic_yuan_month: float) -> float:
    """Monthly PF-adjustment base [yuan/month]: the window's energy charge per month + the monthly basic charge."""
    return round(per_month(energy_yuan_window, analysed_days) + float(basic_yuan_month), 2)


def _finding(kind: str, site_id: str, start: int, end: int, kwh: float, yuan: float, inputs: dict,
             evidence: dict, zh: str, en: str, rec_zh: str, rec_en: str, device_id: str | None = None) -> Finding:
    sev = "minor" if yuan >= 1000 else "warning"
    return Finding(type=f"saving_{kind}", site_id=site_id, device_id=device_id, start_ns=start, end_ns=end,
                   severity=sev, evidence=evidence, explanation_zh=zh, explanation_en=en,
                   recommendation_zh=rec_zh, recommendation_en=rec_en,
                   kwh_month=round(float(kwh), 1), yuan_month=round(float(yuan), 1), inputs=inputs)


def capacitor_kvar(p_kw, pf_from, pf_to):
    """Shunt compensation ``Q_c = P (tan φ1 − tan φ2)`` [kvar], docs/standards.md §5.3 (textbook).

    Parameters
    ----------
    p_kw : array-like
        Active power to compensate [kW].
    pf_from, pf_to : array-like
        Present and target power factor (0 < PF ≤ 1).
    """
    a, b = _checks.as_float(pf_from, "pf_from"), _checks.as_float(pf_to, "pf_to")
    if np.any((a <= 0) | (a > 1)) or np.any((b <= 0) | (b > 1)):
        raise ValueError("pf_from and pf_to must be in (0, 1]")
    return _checks.as_float(p_kw, "p_kw") * (np.tan(np.arccos(a)) - np.tan(np.arccos(b)))


def transformer_losses(load_rate, p0_kw, pk_kw, q0_kvar=0.0, qk_kvar=0.0, kq=0.0):
    """Integrated transformer loss ``(P0 + K_Q Q0) + β² (Pk + K_Q Qk)`` [kW], GB/T 13462-2008 §5."""
    b = _checks.as_float(load_rate, "load_rate")
    return (p0_kw + kq * q0_kvar) + b * b * (pk_kw + kq * qk_kvar)


def economic_load_rate(p0_kw, pk_kw, q0_kvar=0.0, qk_kvar=0.0, kq=0.0):
    """Economic load rate ``β_J = sqrt(P0Z / PkZ)`` [-], GB/T 13462-2008 §5 (efficiency maximum)."""
    return np.sqrt((_checks.positive(p0_kw, "p0_kw") + kq * q0_kvar) / (_checks.positive(pk_kw, "pk_kw")
                                                                         + kq * qk_kvar))


# ---------------------------------------------------------------- power factor


def pf_correction(site_id: str, time_ns, active_power_kw, reactive_power_kvar, adjustment_base_yuan: float,
                  standard: float = 0.90, target_pf: float = 0.95, capacitor_yuan_per_kvar: float = 120.0,
                  rated_kva: float | None = None, pk_kw: float | None = None, price_yuan_per_kwh: float = 0.65
                  ) -> Finding:
    """Power-factor correction: kvar to install, PF adjustment avoided, payback ((83)水电财字第215号).

    Parameters
    ----------
    site_id : str
    time_ns : array-like of int
        Sample times [ns] (1-min).
    active_power_kw, reactive_power_kvar : array-like
        Site import P [kW] and Q [kvar] (+ inductive; capacitive counts as |Q| for the rule).
    adjustment_base_yuan : float
        Monthly basic + energy charge the adjustment % applies to [yuan].
    standard : {0.90, 0.85, 0.80}
        Customer's PF standard.
    target_pf : float
        PF the compensation aims at.
    capacitor_yuan_per_kvar : float
        Installed cost of automatic LV capacitor banks [yuan/kvar] (assumption; ask a supplier).
    rated_kva, pk_kw : float, optional
        Transformer rating and load loss, to price the load-loss reduction [kVA], [kW].
    price_yuan_per_kwh : float
        Average energy price for the loss reduction [yuan/kWh].
    """
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    p = np.clip(_checks.as_float(active_power_kw, "active_power_kw"), 0, None)
    q = np.abs(_checks.as_float(reactive_power_kvar, "reactive_power_kvar"))
    dt_h = np.r_[np.diff(t), np.median(np.diff(t))] / 3600e9
    ok = np.isfinite(p) & np.isfinite(q)
    kwh, kvarh = float(np.sum(p[ok] * dt_h[ok])), float(np.sum(q[ok] * dt_h[ok]))
    pf_now = float(pq.monthly_power_factor(kwh, kvarh))
    pct_now = float(pq.pf_adjustment_pct(pf_now, standard))
    pct_target = float(pq.pf_adjustment_pct(target_pf, standard))
    base = round(float(adjustment_base_yuan), 2)          # per month already: never scaled by the window
    p95 = float(np.percentile(p[ok], 95)) if ok.any() else 0.0
    kvar = float(capacitor_kvar(p95, pf_now, target_pf)) if pf_now < target_pf else 0.0
    loss_kwh = _load_loss_saved_kwh(p[ok], q[ok], dt_h[ok], rated_kva, pk_kw, target_pf) \
        if pf_now < target_pf else 0.0
    kwh_month = per_month(loss_kwh, days)
    yuan = max(0.0, (pct_now - pct_target) / 100.0 * base) + kwh_month * price_yuan_per_kwh
    cost = kvar * capacitor_yuan_per_kvar
    payback_months = cost / yuan if yuan > 0 else float("inf")
    ev = {"kwh": round(kwh, 1), "kvarh": round(kvarh, 1), "pf_month": pf_now, "adjust_pct_now": pct_now,
          "adjust_pct_target": pct_target, "adjustment_base_yuan_month": base, "loss_kwh": loss_kwh,
          "price_yuan_per_kwh": price_yuan_per_kwh, "analysed_days": days, "p95_kw": round(p95, 1),
          "kvar_to_install": round(kvar, 1), "investment_yuan": round(cost), "payback_months": round(payback_months, 1)}
    inputs = {"formula": "yuan/month = (adj%_now - adj%_target) × monthly base + loss kWh × 30.4375/days × price; "
              "Qc = P95 (tanφ1 - tanφ2)",
              "adjustment_base_yuan": adjustment_base_yuan, "standard": standard, "target_pf": target_pf,
              "capacitor_yuan_per_kvar": capacitor_yuan_per_kvar, "rated_kva": rated_kva, "pk_kw": pk_kw}
    return _finding("pf_correction", site_id, start, end, kwh_month, yuan, inputs, ev,
                    *_pf_texts(pf_now, standard, pct_now, target_pf, kvar, cost, payback_months))


def _load_loss_saved_kwh(p, q, dt_h, rated_kva, pk_kw, target_pf: float) -> float:
    """Transformer load-loss energy [kWh] saved over the samples by raising the PF to ``target_pf``."""
    if not (rated_kva and pk_kw):
        return 0.0
    # load loss falls with S^2: S = P/PF per sample, PF raised to the target
    s_now = np.hypot(p, q)
    s_new = np.hypot(p, np.minimum(q, p * np.tan(np.arccos(target_pf))))
    return round(float(np.sum(pk_kw * ((s_now / rated_kva) ** 2 - (s_new / rated_kva) ** 2) * dt_h)), 3)


def _pf_texts(pf_now: float, standard: float, pct_now: float, target_pf: float, kvar: float, cost: float,
              payback_months: float) -> tuple[str, str, str, str]:
    """Finding and advice texts (zh, en) of the power-factor correction."""
    return (
        f"月平均功率因数 {pf_now:.2f}（考核标准 {standard:.2f}），力调电费 {pct_now:+.2f}%。",
        f"Monthly average PF {pf_now:.2f} (standard {standard:.2f}); PF adjustment {pct_now:+.2f} %.",
        f"加装约 {kvar:.0f} kvar 自动无功补偿，将功率因数提高到 {target_pf:.2f}，投资约 {cost:,.0f} 元，"
        f"回收期约 {payback_months:.1f} 个月。" if kvar > 0 else "功率因数已达目标，无需加装补偿。",
        f"Install about {kvar:.0f} kvar of automatic capacitor banks to reach PF {target_pf:.2f}; "
        f"investment about {cost:,.0f} yuan, payback about {payback_months:.1f} months." if kvar > 0
        else "PF already at target; no compensation needed.",
    )


# ---------------------------------------------------------------- basic charge


def contract_demand(max_demand_kw: float, threshold: float = 1.05, floor_kw: float = 0.0,
                    headroom_pct: float = 0.0) -> tuple[float, float]:
    """Contract demand to declare [kW] (whole kW, rounded **up**) and its margin [kW].

    The smallest whole kW ``C ≥ floor`` with ``threshold × C ≥ D_max × (1 + headroom)``, so the
    observed maximum never lands in the double-charged band; margin = ``threshold × C − D_max``.
    """
    need = max_demand_kw * (1 + headroom_pct / 100.0) / threshold
    c = max(float(np.ceil(need - 1e-9)), float(np.ceil(floor_kw - 1e-9)))
    while threshold * c < max_demand_kw:          # guard the float edge of ceil
        c += 1.0
    return c, round(threshold * c - max_demand_kw, 2)


_BASIC_ZH = {"capacity": "按容量计收", "demand_actual": "按实际最大需量计收", "demand_contract": "按合同需量计收"}
_BASIC_EN = {"capacity": "by capacity", "demand_actual": "by actual maximum demand",
             "demand_contract": "by contract demand"}


def basic_charge_choice(site_id: str, time_ns, active_power_kw, rated_kva: float, tariff: tf.Tariff,
                        current_method: str = "capacity", contract_kw: float | None = None,
                        headroom_pct: float = 0.0) -> Finding:
    """Basic-charge method: capacity vs maximum-demand billing and the contract demand to declare.

    Demand billing is cheaper when ``D_max < (p_cap / p_dem) S`` (docs/standards.md §6.1); the
    contract demand is :func:`contract_demand` (above 105 % of it the excess is charged double,
    国家电网财〔2016〕633号) and never below 40 % of kVA.  All charges are per month already.
    """
    _checks.choice(current_method, "current_method", ("capacity", "demand"))
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    d = tf.max_demand_kw(_checks.as_float(active_power_kw, "active_power_kw"), tariff.demand_window_min,
                         tariff.demand_sliding)
    if np.isnan(d):
        raise ValueError("active_power_kw has no complete demand window")
    d = round(d, 2)
    s = _checks.positive(rated_kva, "rated_kva")
    floor = tariff.contract_floor_fraction * s
    c, margin = contract_demand(d, tariff.contract_excess_threshold, floor, headroom_pct)
    excess = (tariff.contract_excess_threshold, tariff.contract_excess_rule)
    options = {"capacity": tf.capacity_charge(s, tariff.capacity_price),
               "demand_actual": tf.demand_charge(max(d, floor), tariff.demand_price),
               "demand_contract": tf.demand_charge(d, tariff.demand_price, c, *excess)}
    options = {k: round(v, 2) for k, v in options.items()}
    if current_method == "capacity":
        now, now_name = options["capacity"], "capacity"
    elif contract_kw is not None:
        now, now_name = round(tf.demand_charge(d, tariff.demand_price, contract_kw, *excess), 2), "demand_contract"
    else:
        now, now_name = options["demand_actual"], "demand_actual"
    best = min(options, key=options.get)
    yuan = max(0.0, now - options[best])
    ev = {"max_demand_kw": d, "rated_kva": s, "breakeven_kw": round(tariff.capacity_price / tariff.demand_price * s, 1)
          if tariff.demand_price else None, "floor_kw": floor, "options_yuan": options,
          "current_method": current_method, "current_yuan": now, "best": best, "best_yuan": options[best],
          "recommended_contract_kw": c, "contract_margin_kw": margin, "analysed_days": days}
    inputs = {"formula": "yuan/month = current basic charge - cheapest option (both per month)",
              "capacity_price": tariff.capacity_price, "demand_price": tariff.demand_price,
              "window_min": tariff.demand_window_min, "contract_kw": contract_kw,
              "excess_rule": tariff.contract_excess_rule, "headroom_pct": headroom_pct}
    zh = (f"本期最大需量 {d:,.0f} kW，变压器容量 {s:,.0f} kVA。现行{_BASIC_ZH[now_name]}基本电费 {now:,.0f} 元/月；"
          f"{_BASIC_ZH[best]}最低，为 {options[best]:,.0f} 元/月。")
    en = (f"Maximum demand {d:,.0f} kW on {s:,.0f} kVA. The basic charge is now {now:,.0f} yuan/month "
          f"({_BASIC_EN[now_name]}); billed {_BASIC_EN[best]} it would be {options[best]:,.0f} yuan/month.")
    if best == now_name and yuan == 0:
        return _finding("basic_charge", site_id, start, end, 0.0, 0.0, inputs, ev, zh, en,
                        "现行计费方式已最省。", "The present billing method is already the cheapest.")
    tc = tariff.contract_excess_threshold
    rec_zh = f"建议改为{_BASIC_ZH[best]}基本电费" + (
        f"，合同需量申报 {c:,.0f} kW（{tc:.0%} 为 {tc * c:,.1f} kW，高于本期最大需量 {margin:,.1f} kW，"
        "超出部分才加倍收费）。" if best == "demand_contract" else "。")
    rec_en = f"Switch to billing {_BASIC_EN[best]}" + (
        f", declaring {c:,.0f} kW contract demand ({tc:.0%} of it is {tc * c:,.1f} kW, {margin:,.1f} kW above "
        "this period's maximum demand; only demand above that is charged double)." if best == "demand_contract"
        else ".")
    return _finding("basic_charge", site_id, start, end, 0.0, yuan, inputs, ev, zh, en, rec_zh, rec_en)


# ---------------------------------------------------------------- peak shaving


def peak_shaving(site_id: str, time_ns, active_power_kw, tariff: tf.Tariff, cap_quantile: float = 0.98,
                 max_windows: int = 5, demand_billed: bool = True) -> Finding:
    """Peak shaving: which 15-min peaks set the demand charge and what capping them is worth.

    The cap is the ``cap_quantile`` of the 15-min demands; the saving is
    ``(D_max − cap) × demand price`` per month and the energy to shave or shift is the
    energy above the cap.  A site billed by capacity (``demand_billed=False``) saves nothing
    by shaving peaks: the figure is 0 and the finding says why.
    """
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    p = _checks.as_float(active_power_kw, "active_power_kw")
    w = tariff.demand_window_min
    if p.size < w:
        raise ValueError(f"active_power_kw needs at least {w} samples")
    c = np.r_[0.0, np.cumsum(np.nan_to_num(p))]
    dem = (c[w:] - c[:-w]) / w
    dmax = round(float(dem.max()), 2)
    cap = round(float(np.quantile(dem, cap_quantile)), 2)
    dt_h = float(np.median(np.diff(t))) / 3600e9
    kwh_above = round(float(np.sum(np.clip(p - cap, 0, None)) * dt_h), 3)
    order = np.argsort(dem)[::-1]
    peaks, used = [], np.zeros(dem.size, bool)
    for i in order:
        if len(peaks) >= max_windows or dem[i] <= cap:
            break
        if used[max(0, i - w):i + w].any():
            continue
        used[i] = True
        peaks.append({"start_ns": int(t[i]), "demand_kw": round(float(dem[i]), 1)})
    # the demand price is per month: not scaled; under capacity billing a lower peak saves nothing
    yuan = (dmax - cap) * tariff.demand_price if demand_billed else 0.0
    ev = {"max_demand_kw": dmax, "cap_kw": cap, "demand_price": tariff.demand_price, "kwh_above_cap": kwh_above,
          "demand_billed": demand_billed, "analysed_days": days, "peaks": peaks}
    inputs = {"formula": "yuan/month = (Dmax - cap) × demand price", "cap_quantile": cap_quantile,
              "demand_price": tariff.demand_price, "window_min": w, "kwh_meaning": "energy above the cap to "
              "shave or shift"}
    return _finding(
        "peak_shaving", site_id, start, end, per_month(kwh_above, days), yuan, inputs, ev,
        f"最大需量 {dmax:.0f} kW 由少数尖峰决定，{cap_quantile:.0%} 分位需量仅 {cap:.0f} kW。",
        f"Maximum demand {dmax:.0f} kW is set by a few peaks; the {cap_quantile:.0%} quantile is {cap:.0f} kW.",
        f"错开大功率设备启动或配置储能，将需量控制在 {cap:.0f} kW 以下，需转移约 {kwh_above:.0f} kWh。"
        if demand_billed else "本站按容量计收基本电费，削减尖峰需量不减少电费。",
        f"Stagger large loads or add storage to hold demand under {cap:.0f} kW; about {kwh_above:.0f} kWh "
        "must be shaved or shifted." if demand_billed else
        "The site's basic charge is billed by capacity: a lower peak demand does not lower the bill.")


# ---------------------------------------------------------------- TOU shifting


def tou_shift(site_id: str, time_ns, flexible_power_kw, tariff: tf.Tariff, shift_fraction: float = 0.5,
              kind: str = "tou_shift", device_id: str | None = None) -> Finding:
    """TOU shifting of flexible load (or EV charging) from peak/critical/flat into the valley.

    ``ΔC = Σ E_shifted (p_from − p_valley)`` (docs/standards.md §9.3), with
    ``E_shifted = shift_fraction × E`` of the flexible load outside the valley.

    Parameters
    ----------
    flexible_power_kw : array-like
        Power of the load that can move (an EV charger, a batch process) [kW].
    shift_fraction : float
        Share of its non-valley energy that can be moved (0..1).
    kind : {'tou_shift', 'ev_valley_charging'}
        Finding type suffix.
    """
    _checks.choice(kind, "kind", ("tou_shift", "ev_valley_charging"))
    if not 0 <= shift_fraction <= 1:
        raise ValueError(f"shift_fraction must be within 0..1, got {shift_fraction}")
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    p_w = np.clip(_checks.as_float(flexible_power_kw, "flexible_power_kw"), 0, None) * 1000.0
    e = tf.interval_energy_kwh(t, p_w, max_gap_s=600)
    by = tf.energy_by_period(t, e, tariff)
    low = "valley" if "valley" in tariff.periods else tariff.periods[0]
    p_low = tariff.price(low)
    moved = {k: round(v * shift_fraction, 3) for k, v in by.items() if k not in (low, "deep_valley")}
    yuan = per_month(sum(v * (tariff.price(k) - p_low) for k, v in moved.items()), days)
    kwh = per_month(sum(moved.values()), days)
    ev = {"kwh_by_period": {k: round(v, 1) for k, v in by.items()}, "kwh_moved": moved,
          "prices": {k: tariff.price(k) for k in tariff.periods}, "to_period": low, "analysed_days": days}
    inputs = {"formula": "yuan = Σ E_shifted × (p_from - p_valley)", "shift_fraction": shift_fraction,
              "prices": {k: tariff.price(k) for k in tariff.periods}, "kwh_meaning": "energy moved to valley"}
    what_zh, what_en = ("电动汽车充电", "EV charging") if kind == "ev_valley_charging" else ("可调负荷",
                                                                                       "flexible load")
    return _finding(
        kind, site_id, start, end, kwh, yuan, inputs, ev,
        f"{what_zh}在非低谷时段用电 {sum(v for k, v in by.items() if k != low):.0f} kWh。",
        f"{what_en} used {sum(v for k, v in by.items() if k != low):.0f} kWh outside valley hours.",
        f"将约 {shift_fraction:.0%} 的{what_zh}移至低谷时段（有序充电/排产）。",
        f"Move about {shift_fraction:.0%} of the {what_en} into valley hours (smart charging / scheduling).",
        device_id=device_id)


# ---------------------------------------------------------------- transformer economic operation


def transformer_operation(site_id: str, time_ns, apparent_power_kva, rated_kva, p0_kw, pk_kw,
                          price_yuan_per_kwh: float, max_single_load: float = 0.8) -> Finding:
    """Transformer economic operation: losses vs the economic load rate; consolidating parallel units.

    For each sample the loss with all units sharing the load by rating is compared
    with the loss of the best single unit able to carry it at ≤ ``max_single_load``
    (GB/T 13462-2008 §6; critical load ``S_cr = S_N sqrt(2 P0 / Pk)`` for two equal units).

    Parameters
    ----------
    apparent_power_kva : array-like
        Total apparent power through the parallel units [kVA].
    rated_kva, p0_kw, pk_kw : sequence of float
        Per-unit nameplate rating [kVA], no-load and load losses [kW].
    price_yuan_per_kwh : float
        Average energy price [yuan/kWh].
    """
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    sn, p0, pk = (np.atleast_1d(_checks.as_float(v, n)) for v, n in
                  ((rated_kva, "rated_kva"), (p0_kw, "p0_kw"), (pk_kw, "pk_kw")))
    if not sn.shape == p0.shape == pk.shape or (sn <= 0).any():
        raise ValueError("rated_kva, p0_kw and pk_kw must be equal-length sequences with rated_kva > 0")
    s = np.nan_to_num(_checks.as_float(apparent_power_kva, "apparent_power_kva"))
    dt_h = np.r_[np.diff(t), np.median(np.diff(t))] / 3600e9
    beta_all = s / sn.sum()
    loss_all = np.sum(p0) + np.sum(pk[:, None] * beta_all[None, :] ** 2, axis=0)
    best = loss_all.copy()
    if sn.size > 1:
        for i in range(sn.size):
            b = s / sn[i]
            li = p0[i] + pk[i] * b * b
            best = np.where((b <= max_single_load) & (li < best), li, best)
    saved_kwh = round(float(np.sum((loss_all - best) * dt_h)), 3)
    kwh = per_month(saved_kwh, days)
    beta_econ = np.sqrt(p0 / pk)
    s_cr = float(sn[0] * np.sqrt(2 * p0[0] / pk[0])) if sn.size == 2 and sn[0] == sn[1] else None
    share = float(np.mean(best < loss_all)) if s.size else 0.0
    ev = {"mean_load_rate": round(float(np.mean(beta_all)), 3), "economic_load_rate": np.round(beta_econ,
                                                                                               3).tolist(),
          "loss_kwh_month": round(per_month(float(np.sum(loss_all * dt_h)), days), 1), "critical_kva": s_cr,
          "share_of_time_one_unit_enough": round(share, 3), "loss_saved_kwh": saved_kwh,
          "price_yuan_per_kwh": price_yuan_per_kwh, "analysed_days": days}
    inputs = {"formula": "ΔP = ΣP0 + ΣPk β²; best single unit where β ≤ max_single_load", "rated_kva":
              sn.tolist(), "p0_kw": p0.tolist(), "pk_kw": pk.tolist(), "price": price_yuan_per_kwh,
              "max_single_load": max_single_load}
    return _finding(
        "transformer_operation", site_id, start, end, kwh, kwh * price_yuan_per_kwh, inputs, ev,
        f"变压器平均负载率 {np.mean(beta_all):.0%}，经济负载率约 {beta_econ.mean():.0%}；"
        f"{share:.0%} 的时间单台即可承担负荷。",
        f"Mean transformer load rate {np.mean(beta_all):.0%} vs economic {beta_econ.mean():.0%}; a single unit "
        f"could carry the load {share:.0%} of the time.",
        "低负荷时段（夜间、节假日）退出一台变压器运行（经供电企业同意，冷备用可申请暂停基本电费）。",
        "Take one unit out of service in light-load hours (nights, holidays); a sealed cold-standby unit "
        "may also stop its capacity charge with the utility's consent.")


# ---------------------------------------------------------------- base load


def base_load_waste(site_id: str, time_ns, active_power_kw, tariff: tf.Tariff, work_start_h: int = 8,
                    work_end_h: int = 18, work_days: tuple[int, ...] = (0, 1, 2, 3, 4),
                    floor_quantile: float = 0.1) -> Finding:
    """Night and holiday base-load waste: off-hours load above the site's achievable floor.

    Off hours = outside ``work_start_h``..``work_end_h`` local, plus non-working days.
    The floor is the ``floor_quantile`` of off-hours power on whole local days (what the
    site reaches when things are switched off); the waste is ``Σ max(P − floor, 0)`` over off hours of
    the median off-hours excess, priced at the TOU price of each interval.
    """
    if not 0 <= work_start_h < work_end_h <= 24:
        raise ValueError(f"work hours must satisfy 0 ≤ start < end ≤ 24, got {work_start_h}..{work_end_h}")
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    p = np.clip(np.nan_to_num(_checks.as_float(active_power_kw, "active_power_kw")), 0, None)
    loc = tf.local_fields(t, tariff.timezone)
    weekday, hour = loc["weekday"], loc["minute"] // 60
    off = ~np.isin(weekday, work_days) | (hour < work_start_h) | (hour >= work_end_h)
    if off.sum() < 10:
        raise ValueError("not enough off-hours samples to judge base load")
    # floor and median from whole local days only: a partial day would weigh its hours twice
    # and move the quantiles with the window length
    step_s = float(np.median(np.diff(t))) / 1e9
    _, inv, cnt = np.unique(loc["day"], return_inverse=True, return_counts=True)
    judged = off & (cnt[inv] * step_s >= 86400 - step_s)
    judged = judged if judged.sum() >= 10 else off
    floor = float(np.quantile(p[judged], floor_quantile))
    typical = float(np.median(p[judged]))
    excess = np.where(off, np.clip(np.minimum(p, typical) - floor, 0, None), 0.0)
    dt_h = np.r_[np.diff(t), np.median(np.diff(t))] / 3600e9
    waste = {k: round(v, 3) for k, v in tf.energy_by_period(t, excess * dt_h, tariff).items()}
    kwh = per_month(sum(waste.values()), days)
    yuan = per_month(sum(v * tariff.price(k) for k, v in waste.items()), days)
    ev = {"off_hours_floor_kw": round(floor, 1), "off_hours_median_kw": round(typical, 1),
          "off_hours_share": round(float(off.mean()), 3), "waste_kwh_by_period": waste,
          "prices": {k: tariff.price(k) for k in tariff.periods}, "analysed_days": days}
    inputs = {"formula": "kWh = Σ_off (min(P, median_off) - floor) dt; yuan at the TOU price",
              "work_hours": [work_start_h, work_end_h], "work_days": list(work_days),
              "floor_quantile": floor_quantile}
    return _finding(
        "base_load", site_id, start, end, kwh, yuan, inputs, ev,
        f"非工作时段典型负荷 {typical:.0f} kW，而可达到的最低负荷为 {floor:.0f} kW。",
        f"Typical off-hours load {typical:.0f} kW while the site can reach {floor:.0f} kW.",
        "排查夜间和节假日未关闭的设备（空压机、照明、空调、待机设备），加装定时或联锁控制。",
        "Find what stays on at night and on holidays (compressors, lighting, HVAC, idle machines); add "
        "timers or interlocks.")


# ---------------------------------------------------------------- PV


def pv_self_consumption(site_id: str, time_ns, pv_power_kw, grid_power_kw, tariff: tf.Tariff,
                        feed_in_yuan_per_kwh: float = 0.391, shift_fraction: float = 0.3) -> Finding:
    """PV self-consumption vs export: value of moving load into export hours.

    Exported PV earns the feed-in price; each exported kWh used on site instead avoids
    the TOU price of that interval.  ``yuan = shift_fraction × Σ E_export (p_t − p_feed_in)``.

    Parameters
    ----------
    pv_power_kw : array-like
        PV AC production [kW] (sum of inverters).
    grid_power_kw : array-like
        Grid meter active power [kW], > 0 import, < 0 export (glossary sign rule).
    feed_in_yuan_per_kwh : float
        Price paid for exported energy (e.g. the provincial coal benchmark price) [yuan/kWh].
    shift_fraction : float
        Share of exported energy that load shifting could absorb (0..1).
    """
    if not 0 <= shift_fraction <= 1:
        raise ValueError(f"shift_fraction must be within 0..1, got {shift_fraction}")
    t = _checks.time_ns(time_ns)
    start, end, days = _span(t)
    pv = np.clip(np.nan_to_num(_checks.as_float(pv_power_kw, "pv_power_kw")), 0, None)
    g = np.nan_to_num(_checks.as_float(grid_power_kw, "grid_power_kw"))
    dt_h = np.r_[np.diff(t), np.median(np.diff(t))] / 3600e9
    e_pv = float(np.sum(pv * dt_h))
    exp = np.clip(-g, 0, None) * dt_h
    e_exp = float(exp.sum())
    by = {k: round(v, 3) for k, v in tf.energy_by_period(t, exp, tariff).items()}
    yuan = per_month(shift_fraction * sum(v * max(tariff.price(k) - feed_in_yuan_per_kwh, 0.0)
                                          for k, v in by.items()), days)
    ratio = (e_pv - e_exp) / e_pv if e_pv > 0 else float("nan")
    ev = {"pv_kwh": round(e_pv, 1), "export_kwh": round(e_exp, 1), "self_consumption_ratio": round(ratio, 3)
          if e_pv > 0 else None, "export_kwh_by_period": by, "prices": {k: tariff.price(k) for k in tariff.periods},
          "feed_in_yuan_per_kwh": feed_in_yuan_per_kwh, "shift_fraction": shift_fraction, "analysed_days": days}
    inputs = {"formula": "yuan = f × Σ E_export (p_tou - p_feed_in)", "feed_in": feed_in_yuan_per_kwh,
              "shift_fraction": shift_fraction, "kwh_meaning": "exported energy moved to self-consumption"}
    return _finding(
        "pv_self_consumption", site_id, start, end, per_month(shift_fraction * sum(by.values()), days), yuan, inputs, ev,
        f"光伏发电 {e_pv:.0f} kWh，其中上网 {e_exp:.0f} kWh，自用率 {ratio:.0%}。" if e_pv > 0 else
        "本期无光伏发电。",
        f"PV produced {e_pv:.0f} kWh, exported {e_exp:.0f} kWh; self-consumption {ratio:.0%}." if e_pv > 0 else
        "No PV production in the period.",
        "将可调负荷（充电、蓄冷/蓄热、批量生产）安排在光伏出力时段，或配置储能。",
        "Schedule flexible load (EV charging, thermal storage, batch work) into PV hours, or add storage.")


def rank(findings) -> list[Finding]:
    """Savings sorted by yuan/month, largest first (non-savings and None last)."""
    return sorted(findings, key=lambda f: -(f.yuan_month or 0.0))


# ---------------------------------------------------------------- the printed calculation

FINDING_KINDS = ("pf_correction", "basic_charge", "peak_shaving", "tou_shift", "ev_valley_charging",
                 "transformer_operation", "base_load", "pv_self_consumption")
_PERIOD_ZH = {"critical": "尖峰", "peak": "高峰", "flat": "平段", "valley": "低谷", "deep_valley": "深谷"}


def _per_period(amounts: dict, prices: dict, less: float, lang: str) -> str:
    name = (lambda k: _PERIOD_ZH.get(k, k)) if lang == "zh" else (lambda k: k.replace("_", " "))
    price = (lambda k: f"{prices[k]:.4f}") if not less else (lambda k: f"({prices[k]:.4f} − {less:.4f})")
    return " + ".join(f"{name(k)} {v:,.3f} kWh × {price(k)}" for k, v in amounts.items() if v) or "0"


def calculation(f: Finding, lang: str = "zh") -> str:
    """The sum behind ``f.yuan_month``, written with the numbers of ``f.evidence`` only (zh or en)."""
    ev, kind = f.evidence, f.type.removeprefix("saving_")
    yuan = "元" if lang == "zh" else "yuan"
    days = f" × 30.4375 / {ev['analysed_days']:g} {'天' if lang == 'zh' else 'days'}" if "analysed_days" in ev else ""
    if kind == "pf_correction":
        s = (f"({ev['adjust_pct_now']:.2f} % − ({ev['adjust_pct_target']:.2f} %)) × "
             f"{ev['adjustment_base_yuan_month']:,.2f} {yuan}/{'月' if lang == 'zh' else 'month'}")
        if ev["loss_kwh"]:
            s += f" + {ev['loss_kwh']:,.3f} kWh{days} × {ev['price_yuan_per_kwh']:.4f} {yuan}/kWh"
    elif kind == "basic_charge":
        s = f"{ev['current_yuan']:,.2f} − {ev['best_yuan']:,.2f}"
    elif kind == "peak_shaving":
        s = f"({ev['max_demand_kw']:,.2f} − {ev['cap_kw']:,.2f}) kW × {ev['demand_price']:g} {yuan}/kW"
        if not ev.get("demand_billed", True):
            s = "0 (" + ("按容量计费" if lang == "zh" else "billed by capacity") + ")"
    elif kind in ("tou_shift", "ev_valley_charging"):
        low = ev["prices"][ev["to_period"]]
        s = f"[{_per_period(ev['kwh_moved'], ev['prices'], low, lang)}]{days}"
    elif kind == "transformer_operation":
        s = f"{ev['loss_saved_kwh']:,.3f} kWh{days} × {ev['price_yuan_per_kwh']:.4f} {yuan}/kWh"
    elif kind == "base_load":
        s = f"[{_per_period(ev['waste_kwh_by_period'], ev['prices'], 0.0, lang)}]{days}"
    elif kind == "pv_self_consumption":
        feed = ev["feed_in_yuan_per_kwh"]
        prices = {k: max(v, feed) for k, v in ev["prices"].items()}
        s = f"{ev['shift_fraction']:g} × [{_per_period(ev['export_kwh_by_period'], prices, feed, lang)}]{days}"
    elif kind == "transformer_ageing":
        s = (f"[({ev['t1_days_now']:g} − {ev['t1_days_balanced']:g}) × {ev['t1_yuan_per_day']:g} + "
             f"({ev['t2_days_now']:g} − {ev['t2_days_balanced']:g}) × {ev['t2_yuan_per_day']:g}] {yuan}{days}")
    else:
        raise ValueError(f"no calculation for finding type {f.type!r}")
    return f"{s} = {f.yuan_month:,.1f} {yuan}/{'月' if lang == 'zh' else 'month'}"
