"""Transformer insulation ageing of one site: rate series, ``transformer_ageing`` findings, life consumed.

For each transformer of the site (no I/O; the arrays of :mod:`analytics.assess`):

* with a winding-temperature controller (``temperature_controller``, profile
  ``transformer_generic_bwdk``): hot spot = hottest measured winding + ``allowance_k``;
* without one: the IEC 60076-7 thermal model from its meter's load ``K = S / S_rated``
  (``rated_kva``) and the ambient (the site's ``outdoor_temperature`` when given, else
  ``default_ambient_c``).

The hot spot gives the relative ageing rate by the insulation's law (``insulation = "dry"``:
IEC 60076-12 with ``insulation_class``; ``"oil"``: IEC 60076-7, plain kraft paper).  A rate
above ``alarm_rate`` for ``on_delay_s`` is a ``transformer_ageing`` finding; the life consumed
is the time integral of the rate (:func:`analytics.ageing.loss_of_life`), per day and period.
Formulas and test values: docs/standards.md §7.5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from analytics import ageing
from analytics import faults as fl
from analytics import finding_types as ft
from core.config import Site, Transformer
from core.model import Finding
from core.units import NS

WINDINGS = ("winding_temperature_l1", "winding_temperature_l2", "winding_temperature_l3")


@dataclass(frozen=True)
class AgeingRules:
    """Level and delay of the ``transformer_ageing`` finding, and the model inputs."""

    alarm_rate: float = 2.0             # relative ageing rate (1 = design) above which ...
    on_delay_s: float = 3600.0          # ... for this long a finding is raised
    allowance_k: float = 15.0           # hot spot above the hottest measured winding (class F)
    default_ambient_c: float = 30.0     # ambient when the site has no outdoor temperature
    max_gap_s: float = 900.0            # a longer gap in the data is time not covered


@dataclass(frozen=True)
class AgeingSeries:
    transformer: str
    basis: str                   # "windings" (controller) or "load" (IEC 60076-7 model)
    time_ns: np.ndarray
    hot_spot_c: np.ndarray
    rate: np.ndarray


def _rate(tr: Transformer, hot: np.ndarray) -> np.ndarray:
    if tr.insulation == "oil":
        return ageing.relative_ageing_oil(hot)
    return ageing.relative_ageing_dry(hot, tr.insulation_class)


def _apparent(meter: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Apparent power [VA]: the meter's own, else ``sqrt(P² + Q²)``, else ``|P| / |PF|`` (PF ≥ 0.05).

    A channel that is present but holds no number (a query column of a field never written) does not count.
    """
    def ch(name: str) -> np.ndarray | None:
        v = meter.get(name)
        if v is None:
            return None
        v = np.asarray(v, float)
        return v if np.isfinite(v).any() else None

    s, p, q, pf = ch("apparent_power"), ch("active_power"), ch("reactive_power"), ch("power_factor")
    if s is not None:
        return s
    if p is not None and q is not None:
        return np.hypot(p, q)
    if p is not None and pf is not None:
        return np.abs(p) / np.where(np.abs(pf) >= 0.05, np.abs(pf), np.nan)
    return None


def ageing_series(site: Site, tr: Transformer, data: Mapping[str, Mapping[str, np.ndarray]],
                  rules: AgeingRules = AgeingRules(),
                  ambient: tuple[np.ndarray, np.ndarray] | None = None) -> AgeingSeries | None:
    """The hot spot and ageing rate of one transformer, or None when it has no usable data.

    ``ambient`` is ``(time_ns, outdoor_temperature)`` of the site, interpolated onto the load samples.
    """
    ctl = data.get(tr.temperature_controller or "") or {}
    if tr.temperature_controller and ctl.get("time_ns") is not None and any(w in ctl for w in WINDINGS):
        t = np.asarray(ctl["time_ns"], np.int64)
        w = np.column_stack([np.asarray(ctl[k], float) if k in ctl else np.full(t.size, np.nan) for k in WINDINGS])
        hot = ageing.dry_hot_spot_from_windings(w, rules.allowance_k)
        return AgeingSeries(tr.id, "windings", t, hot, _rate(tr, hot))
    meter = data.get(tr.meter or "") or {}
    s_va = _apparent(meter)
    if meter.get("time_ns") is None or s_va is None or len(meter["time_ns"]) < 2:
        return None
    t = np.asarray(meter["time_ns"], np.int64)
    k = fl.load_rate(s_va, tr.rated_kva)
    amb = np.full(t.size, rules.default_ambient_c)
    if ambient is not None and len(ambient[0]):
        amb = np.interp(t.astype(float), np.asarray(ambient[0], float), np.asarray(ambient[1], float))
    hot = ageing.hot_spot_dynamic(t, k, amb)
    return AgeingSeries(tr.id, "load", t, hot, _rate(tr, hot))


def transformer_ageing(site: Site, data: Mapping[str, Mapping[str, np.ndarray]], start_ns: int, end_ns: int,
                       rules: AgeingRules = AgeingRules(),
                       ambient: tuple[np.ndarray, np.ndarray] | None = None,
                       ) -> tuple[list[Finding], dict[str, ageing.LossOfLife]]:
    """``transformer_ageing`` findings and the life consumed in ``[start_ns, end_ns)`` per transformer."""
    findings: list[Finding] = []
    life: dict[str, ageing.LossOfLife] = {}
    for tr in site.transformers:
        s = ageing_series(site, tr, data, rules, ambient)
        if s is None:
            continue
        inside = (s.time_ns >= start_ns) & (s.time_ns < end_ns)
        t, rate, hot = s.time_ns[inside], s.rate[inside], s.hot_spot_c[inside]
        life[tr.id] = ageing.loss_of_life(t, rate, max_gap_s=rules.max_gap_s)
        if t.size < 2:
            continue
        high = np.where(np.isfinite(rate), rate, 0.0)
        flag = fl.threshold_alarm(high, t, rules.alarm_rate, 0.1 * rules.alarm_rate, rules.on_delay_s, 0.0)
        d = np.diff(np.r_[False, flag, False].astype(np.int8))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True):
            run = ageing.loss_of_life(t[a:b + 1], rate[a:b + 1], max_gap_s=rules.max_gap_s)
            ev = {"transformer": tr.id, "basis": s.basis, "rate": round(float(np.nanmax(rate[a:b + 1])), 2),
                  "mean_rate": round(run.mean_rate, 2) if np.isfinite(run.mean_rate) else None,
                  "hot_spot_c": round(float(np.nanmax(hot[a:b + 1])), 1),
                  "hours": round((t[b] - t[a]) / NS / 3600.0, 2), "life_h": round(run.days_consumed * 24.0, 2),
                  "limit": rules.alarm_rate, "insulation": tr.insulation, "insulation_class": tr.insulation_class}
            findings.append(Finding(type="transformer_ageing", site_id=site.id, device_id=tr.id,
                                    start_ns=int(t[a]), end_ns=int(t[b]), evidence=ev,
                                    **ft.texts("transformer_ageing", ev)))
    return findings, life


def life_per_day(series: AgeingSeries, day_starts_ns: np.ndarray, max_gap_s: float = 900.0) -> np.ndarray:
    """Days of life consumed in each day ``[day_starts_ns[i], day_starts_ns[i + 1])`` (last day open-ended +24 h)."""
    edges = np.r_[np.asarray(day_starts_ns, np.int64), day_starts_ns[-1] + 86_400 * NS]
    out = np.full(len(day_starts_ns), np.nan)
    for i in range(len(day_starts_ns)):
        m = (series.time_ns >= edges[i]) & (series.time_ns < edges[i + 1])
        if m.sum() >= 2:
            out[i] = ageing.loss_of_life(series.time_ns[m], series.rate[m], max_gap_s=max_gap_s).days_consumed
    return out


def load_sharing_saving(site: Site, data: Mapping[str, Mapping[str, np.ndarray]], start_ns: int, end_ns: int,
                        ambient_c: float = 30.0) -> Finding | None:
    """A priced saving: two parallel transformers loaded in proportion to their ratings age less in total.

    Both hot spots follow the IEC 60076-7 model from the meters' load (the same model for the
    actual and the balanced split, so the comparison is like for like); the life each would save
    is priced at ``replacement_cost_yuan`` per design life.  None when the site has no such pair,
    or balancing saves nothing.
    """
    trs = [tr for tr in site.transformers if tr.meter and tr.replacement_cost_yuan and tr.meter in data][:2]
    if len(trs) < 2:
        return None
    t = np.asarray(data[trs[0].meter]["time_ns"], np.int64)
    inside = (t >= start_ns) & (t < end_ns)
    t = t[inside]
    loads = []
    for tr in trs:
        s = _apparent(data[tr.meter])
        if s is None or t.size < 2:
            return None
        ts = np.asarray(data[tr.meter]["time_ns"], np.int64)
        loads.append(np.interp(t.astype(float), ts.astype(float), s, left=np.nan, right=np.nan))
    k_even = (loads[0] + loads[1]) / ((trs[0].rated_kva + trs[1].rated_kva) * 1000.0)
    ev: dict = {"transformers": [tr.id for tr in trs]}
    saved = 0.0
    for i, tr in enumerate(trs):
        now = ageing.loss_of_life(t, _rate(tr, ageing.hot_spot_dynamic(t, loads[i] / (tr.rated_kva * 1e3), ambient_c)))
        even = ageing.loss_of_life(t, _rate(tr, ageing.hot_spot_dynamic(t, k_even, ambient_c)))
        per_day = tr.replacement_cost_yuan / tr.design_life_days
        ev[f"t{i + 1}_days_now"], ev[f"t{i + 1}_days_balanced"] = round(now.days_consumed, 4), round(even.days_consumed, 4)
        ev[f"t{i + 1}_yuan_per_day"] = round(per_day, 4)
        ev["analysed_days"] = round(now.covered_days, 4)
        saved += (round(now.days_consumed, 4) - round(even.days_consumed, 4)) * round(per_day, 4)
    if saved <= 0 or not ev["analysed_days"]:
        return None
    yuan_month = round(saved * 30.4375 / ev["analysed_days"], 1)
    a, b = trs[0].id, trs[1].id
    return Finding(type="saving_transformer_ageing", site_id=site.id, device_id=None, start_ns=int(t[0]),
                   end_ns=int(t[-1]), severity="warning", evidence=ev,
                   explanation_zh=f"变压器 {a} 与 {b} 负载不均：按额定容量比例分配负载，两台绝缘老化合计少消耗寿命，"
                                  f"按更换成本折合每月约 {yuan_month:,.1f} 元。",
                   explanation_en=f"Transformers {a} and {b} share load unevenly: loading them in proportion to "
                                  f"their ratings would use less insulation life, worth about {yuan_month:,.1f} "
                                  "yuan a month at their replacement cost.",
                   recommendation_zh="调整母联或负荷分配，使两台变压器负载率接近。",
                   recommendation_en="Rebalance the feeders or the bus coupler so both units run at a similar load.",
                   kwh_month=0.0, yuan_month=yuan_month)
