"""PV inverter checks: trip with decoded SunSpec events, offline in daylight, PR, string/MPPT mismatch.

Texts and severities come from :data:`analytics.finding_types.TYPES`; see :mod:`analytics.device_checks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from analytics import device_checks as dc
from analytics import faults as fl

if TYPE_CHECKING:
    from analytics.assess import Rules


def pv_inverter(c: dc.Ctx, r: Rules, dc_kwp: float) -> None:
    ch, t = c.ch, c.t
    rated_w = (c.device.rated_power_kw or dc_kwp / 1.15) * 1000.0
    if "inverter_state" in ch:
        trip = fl.persistent(ch["inverter_state"] == 7, t, 0.0)
        ev = ch.get("inverter_events")
        c.emit(trip, "inverter_trip", lambda s, e: {"inverter_events": dc.code(ev, s, e),
                                                    "event_names": dc.ft.decode_evt1(dc.code(ev, s, e))[0]})
    else:
        trip = np.zeros(t.shape, bool)
    poa = ch.get("irradiance_poa")
    has_poa = poa is not None and bool(np.isfinite(poa).any())
    off = np.zeros(t.shape, bool)
    if "active_power" in ch:
        p = ch["active_power"]
        if has_poa:
            g, basis, min_g = poa, "measured POA", r.pv_min_poa_wm2
        else:
            # no irradiance sensor (SunSpec inverters rarely carry one): daylight from the pvlib
            # clear-sky POA, with a higher threshold because clear sky is an upper bound
            g = fl.clearsky_poa(t, c.site.latitude, c.site.longitude)
            basis, min_g = "clear-sky POA (no irradiance sensor)", r.pv_clearsky_min_poa_wm2
        off = fl.inverter_offline_daylight(p, g, rated_w, None, min_g)
        off = fl.persistent(off & ~trip, t, r.pv_offline_on_delay_s, np.isfinite(p))
        c.emit(off, "inverter_offline", lambda s, e: {
            "basis": basis, "poa_wm2": dc._stat(g, s, e, "mean", 0),
            "power_kw": None if dc._stat(p, s, e, "mean") is None else round(dc._stat(p, s, e, "mean") / 1000.0, 2)})
    if has_poa and "active_power" in ch:
        _underperformance(c, r, dc_kwp, rated_w, poa, trip | off)
    _strings(c, r, poa if has_poa else None)


def _underperformance(c: dc.Ctx, r: Rules, dc_kwp: float, rated_w: float, poa: np.ndarray,
                      excluded: np.ndarray) -> None:
    ch, t = c.ch, c.t
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
    c.emit(fl.persistent(under & ~excluded, t, r.pv_underperf_on_delay_s), "pv_underperformance", pr_ev)


def _strings(c: dc.Ctx, r: Rules, poa: np.ndarray | None) -> None:
    """An input well below the best input of the inverter, judged while the best input carries a measurable
    current (and, with a sensor, in daylight); raised after the on-delay, cleared after the input is back
    within ``string_fault_pct / 2`` for ``string_off_delay_s``, held through clouds and nights in between."""
    ch, t = c.ch, c.t
    mppt = [f"mppt{n}_dc_current" for n in range(1, 9) if f"mppt{n}_dc_current" in ch]
    if len(mppt) < 2:
        return
    cur = np.column_stack([ch[x] for x in mppt])
    sd = fl.string_deficit(cur)
    ref = sd["reference_a"]
    with np.errstate(invalid="ignore"):
        judged = ref >= r.string_min_current_a
        if poa is not None:
            judged &= poa >= r.pv_string_min_poa_wm2
        else:
            # no sensor: judge in good production only, the best input ≥ 20 % of its 95th percentile
            top = np.nanpercentile(ref, 95) if np.isfinite(ref).any() else np.nan
            judged &= ref >= 0.2 * top
    for k, name in enumerate(mppt):
        dev = sd["deviation_pct"][:, k]
        with np.errstate(invalid="ignore"):
            mk = fl.latched_alarm(dev <= r.string_fault_pct, dev > r.string_fault_pct / 2, t,
                                  judged & np.isfinite(dev), r.string_on_delay_s, r.string_off_delay_s)
        x = cur[:, k]
        c.emit(mk, "string_mismatch", lambda s, e, dev=dev, name=name, x=x: _string_ev(
            name, np.where(judged, x, np.nan), np.where(judged, ref, np.nan), np.where(judged, dev, np.nan), s, e))


def _string_ev(name: str, x: np.ndarray, ref: np.ndarray, dev: np.ndarray, s: int, e: int) -> dict:
    d = dc._stat(dev, s, e, "mean", 1)
    return {"input": name, "label": name.split("_")[0].upper(), "current_a": dc._stat(x, s, e, "mean", 2),
            "reference_a": dc._stat(ref, s, e, "mean", 2), "reference_zh": "同机最佳输入",
            "reference_en": "the inverter's best input", "deficit_pct": None if d is None else -d}
