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
        cs = fl.clearsky_poa(t, c.site.latitude, c.site.longitude)
        _clock(c, r, np.where(np.isfinite(poa), poa, np.nan) if has_poa else p,
               r.pv_string_min_poa_wm2 if has_poa else r.clock_min_power_frac * rated_w, cs)
        if has_poa:
            g, basis, min_g = poa, "measured POA", r.pv_min_poa_wm2
        else:
            # no irradiance sensor (SunSpec inverters rarely carry one): daylight from the pvlib
            # clear-sky POA, with a higher threshold because clear sky is an upper bound
            g, basis, min_g = cs, "clear-sky POA (no irradiance sensor)", r.pv_clearsky_min_poa_wm2
        off = fl.inverter_offline_daylight(p, g, rated_w, None, min_g)
        off = fl.persistent(off & ~trip, t, r.pv_offline_on_delay_s, np.isfinite(p))
        c.emit(off, "inverter_offline", lambda s, e: {
            "basis": basis, "poa_wm2": dc._stat(g, s, e, "mean", 0),
            "power_kw": None if dc._stat(p, s, e, "mean") is None else round(dc._stat(p, s, e, "mean") / 1000.0, 2)})
    if has_poa and "active_power" in ch:
        _underperformance(c, r, dc_kwp, rated_w, poa, trip | off)
    _strings(c, r, poa if has_poa else None)


def _clock(c: dc.Ctx, r: Rules, light: np.ndarray, min_light: float, cs: np.ndarray) -> None:
    """The sun is the reference clock: sustained PV output (or measured irradiance) while the sun is below
    the horizon at the device's timestamps means its clock is off.  With ≥ 12 h of data the offset is
    estimated as the shift between the light-weighted and the clear-sky-weighted mean time of day."""
    with np.errstate(invalid="ignore"):
        dark_light = (cs <= 0) & (light >= min_light)
    bad = fl.persistent(dark_light, c.t, r.clock_on_delay_s, np.isfinite(light))

    def ev(s, e):
        w = np.where(np.isfinite(light) & (light > 0), light, 0.0)
        return {"offset_h": _offset_h(c.t, w, cs) if c.t[-1] - c.t[0] >= 12 * 3600 * dc.NS else None,
                "minutes": c.minutes(s, e), "light_max": dc._stat(light, s, e, "max", 1)}
    c.emit(bad, "clock_offset", ev)


def _offset_h(t: np.ndarray, w: np.ndarray, ref: np.ndarray) -> float | None:
    """Circular difference [h] between the ``w``-weighted and the ``ref``-weighted mean time of day."""
    ang = (t % (86400 * dc.NS)) / (86400 * dc.NS) * 2 * np.pi
    if w.sum() <= 0 or ref.sum() <= 0:
        return None
    a = np.angle(np.sum(w * np.exp(1j * ang))) - np.angle(np.sum(ref * np.exp(1j * ang)))
    return round(float((a + np.pi) % (2 * np.pi) - np.pi) / (2 * np.pi) * 24.0, 2)


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
