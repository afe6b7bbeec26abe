"""The per-kind checks of one device: flag arrays → findings with evidence.

Each check computes a flag array with :mod:`analytics.faults` and an evidence dict per run of
flags; the severity and the zh/en texts come from the finding's row in
:data:`analytics.finding_types.TYPES`, formatted with that evidence.  Called by
:func:`analytics.assess.assess_device`; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from analytics import faults as fl
from analytics import finding_types as ft
from analytics import power_quality as pq
from core.config import Device, Site
from core.model import Finding
from core.units import NS

if TYPE_CHECKING:
    from analytics.assess import Rules



class Ctx:
    """One device's evaluation context: builds findings from flag arrays."""

    def __init__(self, site: Site, device: Device, t: np.ndarray, ch: Mapping[str, np.ndarray], period_s: float):
        self.site, self.device, self.t, self.ch, self.period = site, device, t, ch, period_s
        self.out: list[Finding] = []

    def has(self, *names: str) -> bool:
        return all(n in self.ch for n in names)

    def finding(self, type_: str, start_ns: int, end_ns: int, evidence: dict, device_id: str | None = None) -> None:
        """Append one finding of ``type_``; its severity and texts come from the type's table row."""
        ev = {k: _plain(v) for k, v in evidence.items()}
        self.out.append(Finding(type=type_, site_id=self.site.id, device_id=device_id or self.device.id,
                                start_ns=int(start_ns), end_ns=int(end_ns), evidence=ev, **ft.texts(type_, ev)))

    def emit(self, mask, type_: str, evidence: Callable[[int, int], dict] | None = None,
             device_id: str | None = None) -> None:
        """One finding per True run of ``mask``; ``evidence(i0, i1)`` gives the numbers of a run."""
        m = np.asarray(mask, bool)
        if not m.any():
            return
        d = np.diff(np.r_[False, m, False].astype(np.int8))
        for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True):
            self.finding(type_, self.t[s], self.t[e] + round(self.period * NS),
                         evidence(int(s), int(e)) if evidence is not None else {}, device_id)

    def minutes(self, s: int, e: int) -> float:
        return round((self.t[e] - self.t[s]) / NS / 60.0 + self.period / 60.0, 1)


def _plain(v):
    """Evidence values as JSON-friendly Python numbers (NaN/inf → None)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def span_stats(x: np.ndarray, s: int, e: int, digits: int = 2) -> dict:
    seg = x[s:e + 1]
    seg = seg[np.isfinite(seg)]
    if seg.size == 0:
        return {}
    return {"min": round(float(seg.min()), digits), "max": round(float(seg.max()), digits),
            "mean": round(float(seg.mean()), digits)}


def _stat(x: np.ndarray, s: int, e: int, how: str, digits: int = 2) -> float | None:
    return span_stats(x, s, e, digits).get(how)


def code(x: np.ndarray | None, s: int, e: int) -> int | None:
    """The largest finite code (state, event word, fault code) of samples ``s..e``; None if there is none."""
    if x is None:
        return None
    seg = x[s:e + 1]
    seg = seg[np.isfinite(seg)]
    return int(seg.max()) if seg.size else None


# ---------------------------------------------------------------- meters


def voltage(c: Ctx, r: Rules, umin: np.ndarray, umax: np.ndarray, low_only_when=None) -> None:
    """GB/T 12325 band on the lowest and highest phase voltage (``low_only_when``: judge only these samples)."""
    nom = c.site.nominal_voltage_v
    lo, hi = nom * (1 - r.voltage_band_pct / 100), nom * (1 + r.voltage_band_pct / 100)
    umin_j = umin if low_only_when is None else np.where(low_only_when, umin, np.nan)
    umax_j = umax if low_only_when is None else np.where(low_only_when, umax, np.nan)
    low = fl.threshold_alarm(umin_j, c.t, lo, 0.01 * nom, r.voltage_on_delay_s, 0.0, "low")
    high = fl.threshold_alarm(umax_j, c.t, hi, 0.01 * nom, r.voltage_on_delay_s, 0.0, "high")
    for mask, x, how in ((low, umin, "min"), (high & ~low, umax, "max")):
        def ev(s, e, x=x, how=how):
            worst = _stat(x, s, e, how, 1)
            return {"worst_v": worst, "min_v": _stat(umin, s, e, "min", 1), "max_v": _stat(umax, s, e, "max", 1),
                    "deviation_pct": None if worst is None else round((worst / nom - 1) * 100, 1),
                    "nominal_v": nom, "band_pct": r.voltage_band_pct}
        c.emit(mask, "voltage_deviation", ev)


def meter(c: Ctx, r: Rules, rated_kva: float | None) -> None:
    ch = c.ch
    phases = [f"voltage_l{p}" for p in (1, 2, 3) if f"voltage_l{p}" in ch]
    if phases:
        u = np.vstack([ch[p] for p in phases])
        with np.errstate(invalid="ignore"):
            umin, umax = np.fmin.reduce(u, axis=0), np.fmax.reduce(u, axis=0)
        voltage(c, r, umin, umax)
        nom = c.site.nominal_voltage_v
        for name in phases:
            x = ch[name]
            c.emit(fl.out_of_range(x, -1.0, 2.0 * nom), "out_of_range",
                   lambda s, e, x=x, name=name: {"channel": name, "value": _extreme(x, s, e), "lower": -1.0,
                                                 "upper": 2.0 * nom})
        stale(c, r, phases[0])
    _power_factor(c, r, rated_kva)
    _harmonics(c, r)
    _unbalance(c, r, rated_kva)


def _extreme(x: np.ndarray, s: int, e: int) -> float | None:
    seg = x[s:e + 1][np.isfinite(x[s:e + 1])]
    return None if seg.size == 0 else round(float(seg[np.argmax(np.abs(seg))]), 3)


def stale(c: Ctx, r: Rules, name: str) -> None:
    """A frozen reading: the channel's range over ``stale_window_s`` within the channel resolution."""
    x = c.ch[name]
    w = max(2, int(round(r.stale_window_s / c.period)) + 1)
    st = fl.stale_range(x, w, r.stale_resolution_v)

    def ev(s, e):
        s0 = max(0, s - w + 1)
        seg = x[s0:e + 1][np.isfinite(x[s0:e + 1])]
        return {"channel": name, "value": round(float(seg[-1]), 3) if seg.size else None,
                "change": round(float(np.ptp(seg)), 4) if seg.size else None, "resolution": r.stale_resolution_v,
                "minutes": c.minutes(s0, e)}
    c.emit(st, "stale_value", ev)


def _power_factor(c: Ctx, r: Rules, rated_kva: float | None) -> None:
    ch = c.ch
    if not c.has("power_factor", "active_power", "apparent_power"):
        return
    s_va = np.abs(ch["apparent_power"])
    s_ref = rated_kva * 1000.0 if rated_kva else (np.nanpercentile(s_va, 99) if np.isfinite(s_va).any() else None)
    if not s_ref:
        return
    pf = np.abs(ch["power_factor"])
    with np.errstate(invalid="ignore"):
        loaded = (ch["active_power"] > 0) & (s_va >= r.pf_min_load_frac * s_ref)
    known = np.isfinite(pf) & np.isfinite(ch["active_power"]) & np.isfinite(s_va)
    bad = fl.persistent(loaded & (pf < r.pf_limit), c.t, r.pf_on_delay_s, known)
    c.emit(bad, "low_power_factor", lambda s, e: {"pf_mean": _stat(pf, s, e, "mean", 3),
                                                  "pf_min": _stat(pf, s, e, "min", 3), "limit": r.pf_limit,
                                                  "minutes": c.minutes(s, e)})


def _harmonics(c: Ctx, r: Rules) -> None:
    ch, t = c.ch, c.t
    thd_u = [f"thd_voltage_l{p}" for p in (1, 2, 3) if f"thd_voltage_l{p}" in ch]
    if thd_u:
        lim = pq.gbt14549_voltage_limits(0.38)["thd_pct"]
        worst = np.fmax.reduce(np.vstack([ch[x] for x in thd_u]), axis=0)
        bad = fl.threshold_alarm(worst, t, lim, 0.2, r.harmonic_on_delay_s, 0.0)
        c.emit(bad, "harmonic_voltage", lambda s, e: {"thd_max": _stat(worst, s, e, "max"),
                                                      "thd_mean": _stat(worst, s, e, "mean"), "limit_pct": lim})
    thd_i = [f"thd_current_l{p}" for p in (1, 2, 3) if f"thd_current_l{p}" in ch]
    cur = [f"current_l{p}" for p in (1, 2, 3)]
    if thd_i and c.has(*cur):
        imax = np.fmax.reduce(np.vstack([ch[x] for x in cur]), axis=0)
        ref = np.nanpercentile(imax, 99) if np.isfinite(imax).any() else np.nan
        worst = np.fmax.reduce(np.vstack([ch[x] for x in thd_i]), axis=0)
        with np.errstate(invalid="ignore"):
            bad = fl.persistent((imax >= 0.1 * ref) & (worst > r.thd_current_limit_pct), t, r.harmonic_on_delay_s,
                                np.isfinite(imax) & np.isfinite(worst))
        c.emit(bad, "harmonic_current", lambda s, e: {"thd_max": _stat(worst, s, e, "max"),
                                                      "thd_mean": _stat(worst, s, e, "mean"),
                                                      "limit_pct": r.thd_current_limit_pct})


def _unbalance(c: Ctx, r: Rules, rated_kva: float | None) -> None:
    cur = [f"current_l{p}" for p in (1, 2, 3)]
    if not c.has(*cur):
        return
    ia, ib, ic = (c.ch[x] for x in cur)
    imax = np.fmax.reduce(np.vstack([ia, ib, ic]), axis=0)
    if rated_kva:
        ir = pq.rated_current(rated_kva, c.site.nominal_voltage_v * np.sqrt(3))
    else:
        ir = float(np.nanpercentile(imax, 99)) if np.isfinite(imax).any() else 0.0
    if not ir > 0:
        return
    f = pq.current_unbalance_flags(ia, ib, ic, c.ch.get("current_n") if rated_kva else None, ir,
                                   r.unbalance_limit_pct, r.neutral_limit_pct, r.unbalance_min_load_pct)
    unb = f["unbalance_pct"]
    known = np.isfinite(ia) & np.isfinite(ib) & np.isfinite(ic)
    c.emit(fl.persistent(f["unbalance_flag"], c.t, r.unbalance_on_delay_s, known), "current_unbalance",
           lambda s, e: {"unbalance_max": _stat(unb, s, e, "max", 1), "unbalance_mean": _stat(unb, s, e, "mean", 1),
                         "imax_a": _stat(imax, s, e, "max", 1), "limit_pct": r.unbalance_limit_pct})
    if rated_kva:
        c.emit(fl.persistent(f["neutral_flag"], c.t, r.unbalance_on_delay_s), "neutral_current",
               lambda s, e: {"neutral_max": _stat(f["neutral_pct"], s, e, "max", 1),
                             "limit_pct": r.neutral_limit_pct})


def overload(c: Ctx, r: Rules) -> None:
    for tr in c.site.transformers:
        if tr.meter == c.device.id and "apparent_power" in c.ch:
            beta = fl.load_rate(c.ch["apparent_power"], tr.rated_kva)
            ov = fl.overload(c.ch["apparent_power"], c.t, tr.rated_kva, r.overload_limit, r.overload_on_delay_s)
            c.emit(ov, "transformer_overload",
                   lambda s, e, beta=beta, tr=tr: {"transformer": tr.id, "load_pct": _pct(_stat(beta, s, e, "max", 4)),
                                                   "limit_pct": r.overload_limit * 100, "rated_kva": tr.rated_kva},
                   device_id=tr.id)


def _pct(x: float | None) -> float | None:
    return None if x is None else round(x * 100, 1)


# ---------------------------------------------------------------- counters


def counter_bounds(site: Site, device: Device, ch: Mapping[str, np.ndarray]) -> dict:
    """``counter_increments`` keywords bounding a counter's upward step by the largest plausible power:
    1.5 × the transformer or device rating, else 3 × the largest power seen in ``ch`` (none without either)."""
    kva = next((tr.rated_kva for tr in site.transformers if tr.meter == device.id), None)
    p_max = 1500.0 * kva if kva else 1500.0 * device.rated_power_kw if device.rated_power_kw else None
    if p_max is None:
        seen = [np.abs(ch[k]) for k in ("apparent_power", "active_power") if k in ch]
        seen = [a[np.isfinite(a)] for a in seen]
        top = max((float(a.max()) for a in seen if a.size), default=0.0)
        p_max = 3.0 * top if top > 0 else None
    return {} if p_max is None else {"time_ns": ch["time_ns"] if "time_ns" in ch else None, "max_power_w": p_max}


def counters(c: Ctx) -> None:
    """Every reset, replacement, rollover and implausible upward jump of each energy counter."""
    bounds = counter_bounds(c.site, c.device, {"time_ns": c.t, **c.ch})
    for name in ("energy_import", "energy_export", "reactive_energy_import", "reactive_energy_export"):
        if name not in c.ch:
            continue
        x = c.ch[name]
        r = fl.counter_increments(x, **bounds)
        ev_mask = r["reset"] | r["replacement"] | r["rollover"] | r["spike"]
        ok = np.flatnonzero(np.isfinite(x) & (x >= 0))
        for i in np.flatnonzero(ev_mask):
            kind = ("reset" if r["reset"][i] else "replacement" if r["replacement"][i] else
                    "rollover" if r["rollover"][i] else "jump")
            before = ok[ok < i]
            c.finding("counter_reset", c.t[i], c.t[i] + round(c.period * NS),
                      {"channel": name, "kind": kind, "before_wh": float(x[before[-1]]) if before.size else None,
                       "after_wh": float(x[i]), "max_power_w": bounds.get("max_power_w")})


# ---------------------------------------------------------------- transformers


def transformer(c: Ctx, r: Rules) -> None:
    wt = [f"winding_temperature_l{p}" for p in (1, 2, 3) if f"winding_temperature_l{p}" in c.ch]
    if not wt:
        return
    temp = np.fmax.reduce(np.vstack([c.ch[x] for x in wt]), axis=0)
    tr = fl.temperature_trend(temp, c.t, r.temp_trip_c, r.temp_alarm_c, window_s=1800.0,
                              horizon_s=r.temp_horizon_s)
    warn = tr["warning"]
    if "temperature_alarm" in c.ch:
        warn = warn | (c.ch["temperature_alarm"] == 1)
    with np.errstate(invalid="ignore"):
        trip = temp >= r.temp_trip_c
    if "temperature_trip" in c.ch:
        trip = trip | (c.ch["temperature_trip"] == 1)

    def ev(s, e):
        return {"temperature_c": None if not np.isfinite(temp[s]) else round(float(temp[s]), 1),
                "max_c": _stat(temp, s, e, "max", 1),
                "rate_c_per_h": None if not np.isfinite(tr["slope_c_per_h"][s]) else round(
                    float(tr["slope_c_per_h"][s]), 2),
                "eta_to_trip_s": None if not np.isfinite(tr["eta_s"][s]) else round(float(tr["eta_s"][s])),
                "alarm_c": r.temp_alarm_c, "trip_c": r.temp_trip_c}
    c.emit(warn & ~trip, "transformer_overtemp", ev)
    c.emit(trip, "transformer_trip", lambda s, e: {"temperature_c": _stat(temp, s, e, "max", 1),
                                                   "trip_c": r.temp_trip_c})
    rate, roc = fl.rate_of_change(temp, c.t, r.temp_max_rate_c_per_min / 60.0)
    dts = np.r_[np.nan, np.diff(c.t) / NS]

    def roc_ev(s, e):
        seg = np.abs(np.nan_to_num(rate[max(s - 1, 0):e], nan=0.0))
        k = max(s - 1, 0) + int(np.argmax(seg)) if seg.size else s - 1
        return {"channel": "winding_temperature", "delta": round(float(rate[k] * dts[k + 1]), 2),
                "dt_s": float(dts[k + 1]), "rate_per_min": round(float(abs(rate[k]) * 60.0), 2),
                "limit_per_min": r.temp_max_rate_c_per_min}
    c.emit(roc, "implausible_rate", roc_ev)


# ---------------------------------------------------------------- EV chargers


def ev_charger(c: Ctx, r: Rules) -> None:
    ch, t = c.ch, c.t
    faulted = fl.ev_faulted(t, ch.get("ocpp_status"), ch.get("fault_code"), ch.get("charger_state"),
                            r.ev_fault_on_delay_s)
    c.emit(faulted, "ev_fault", lambda s, e: {"fault_code": code(ch.get("fault_code"), s, e),
                                              "ocpp_status": code(ch.get("ocpp_status"), s, e)})
    if c.has("ocpp_status", "energy_import"):
        stuck = fl.ev_charging_no_energy(t, ch["ocpp_status"], ch["energy_import"], r.ev_min_power_w,
                                         r.ev_stuck_on_delay_s)
        if "active_power" in ch:
            with np.errstate(invalid="ignore"):
                stuck &= ~(ch["active_power"] >= r.ev_min_power_w)
        charging = ch["ocpp_status"] == fl.OCPP_CHARGING
        first = fl.run_start(charging)
        energy = ch["energy_import"]

        def stuck_ev(s, e):
            s0 = int(first[s]) if first[s] >= 0 else s
            seg = energy[s0:e + 1][np.isfinite(energy[s0:e + 1])]
            wh = float(seg[-1] - seg[0]) if seg.size else None
            h = (t[e] - t[s0]) / NS / 3600.0
            return {"minutes": c.minutes(s0, e), "energy_wh": wh, "min_power_w": r.ev_min_power_w,
                    "power_w": None if wh is None or h <= 0 else round(wh / h, 1)}
        c.emit(stuck, "ev_stuck", stuck_ev)
    if "ocpp_status" in ch:
        prep = ch["ocpp_status"] == fl.OCPP_PREPARING
        first = fl.run_start(prep)
        c.emit(fl.ev_session_stuck(t, ch["ocpp_status"], r.ev_preparing_max_s), "ev_session_stuck",
               lambda s, e: {"minutes": c.minutes(int(first[s]), e), "limit_min": r.ev_preparing_max_s / 60.0})


# ---------------------------------------------------------------- comms


def comms(c: Ctx, r: Rules, start_ns: int, end_ns: int, status) -> None:
    online, ot = (None, None) if status is None else (status[1], status[0])
    text = status[2] if status is not None and len(status) > 2 else None
    for s, e in fl.comms_loss(c.t, c.period, start_ns, end_ns, online, ot, r.comms_min_missing):
        ev = {"duration_s": round((e - s) / NS, 1), "duration_min": round((e - s) / NS / 60.0, 1),
              "period_s": c.period}
        if text is not None:
            txt = np.asarray(text, object)
            k = np.flatnonzero((ot >= s) & (ot < e) & (np.asarray(online, float) == 0))
            last = str(txt[k[-1]]) if k.size and isinstance(txt[k[-1]], str) else ""
            if last:
                ev["status"] = last
                if last.startswith("exception_") and last[10:].isdigit():
                    ev["modbus_exception"] = int(last[10:])
        c.finding("comms_loss", s, e, ev)


def clock_offset(c: Ctx, r: Rules) -> None:
    """A measured clock offset beyond ``r.clock_offset_limit_s`` for ``r.clock_offset_on_delay_s``.

    ``device_clock_offset`` (MQTT: a message's own timestamp minus its arrival, stored by the collector
    at the arrival time when ≥ 90 s off) and ``meter_clock_offset`` (DL/T 645: the meter clock read at
    the poll) are both stamped with our clock, so the finding is live however far the device clock is
    off, and a gateway's backlog (old readings arriving in one burst of seconds) is too short to count.
    """
    for name, source in (("device_clock_offset", "mqtt_arrival"), ("meter_clock_offset", "meter_clock")):
        if name not in c.ch:
            continue
        off = c.ch[name]
        known = np.isfinite(off)
        if not known.any():
            continue
        with np.errstate(invalid="ignore"):
            bad = fl.persistent(np.abs(off) > r.clock_offset_limit_s, c.t, r.clock_offset_on_delay_s, known)

        def ev(s, e, off=off, source=source):
            worst = s + int(np.nanargmax(np.abs(off[s:e + 1])))
            return {"offset_s": round(float(off[worst]), 1), "limit_s": r.clock_offset_limit_s, "source": source,
                    "minutes": c.minutes(s, e)}
        c.emit(bad, "clock_offset", ev)
