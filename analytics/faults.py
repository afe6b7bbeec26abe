"""Fault detection on device time series: pure, vectorised numpy flag functions.

Every flag function returns a boolean array (or a dict of them) with ``True`` =
problem.  NaN samples are "no data": they never raise a process flag (comms loss is
judged from timestamps and the collector's ``online`` channel, not from values).

Times are ns since the epoch (int64) and durations in [s].  Units of values are the
glossary units of ``core.channels`` ([V], [A], [W], [Wh], [degC], [W/m2]).

References: docs/standards.md §7 (transformers), §8 (PV), §9
(EV chargers), §10 (statistics, hysteresis, gaps); OPC UA Part 9 B.1.5 for deadband and
on/off delays; IEC 61724-1 for PV performance ratio; OCPP 1.6 / IEC 61851-1 states.
"""

from __future__ import annotations

import functools

import numpy as np

from analytics import _checks
from core.units import NS

OCPP_PREPARING, OCPP_CHARGING, OCPP_UNAVAILABLE, OCPP_FAULTED = 1, 2, 7, 8
INVERTER_FAULT_STATES = (1, 7)          # SunSpec: 1 off, 7 fault (2 sleeping, 4 MPPT, 5 throttled)

# ---------------------------------------------------------------- run helpers


def run_length(mask) -> np.ndarray:
    """Number of consecutive True values ending at each index (0 where False).

    Parameters
    ----------
    mask : array-like of bool, 1-D

    Returns
    -------
    ndarray of int64
    """
    m = np.asarray(mask, bool)
    idx = np.arange(m.size)
    last_false = np.maximum.accumulate(np.where(m, -1, idx))
    return np.where(m, idx - last_false, 0)


def run_start(mask) -> np.ndarray:
    """Index of the first sample of the True run containing each index (-1 where False)."""
    m = np.asarray(mask, bool)
    return np.where(m, np.arange(m.size) - run_length(m) + 1, -1)


def persistent(mask, time_ns, min_duration_s: float, known=None) -> np.ndarray:
    """True where ``mask`` has been continuously True for at least ``min_duration_s``.

    The duration of a run at sample i is ``t[i] - t[start of run]`` (so a single
    sample has duration 0; ``min_duration_s=0`` returns ``mask``).

    Parameters
    ----------
    mask : array-like of bool
        Condition per sample.
    time_ns : array-like of int
        Sample times [ns].
    min_duration_s : float
        Required persistence [s].
    known : array-like of bool, optional
        False where the condition could not be judged (a NaN input): such a sample is treated
        exactly like an absent one — it neither breaks nor starts a run, and it is True only
        inside a run (between two True judged samples).
    """
    m = np.asarray(mask, bool)
    t = _checks.time_ns(time_ns)
    if m.shape != t.shape:
        raise ValueError(f"mask and time_ns must have the same shape, got {m.shape} and {t.shape}")
    d = _checks.non_negative(min_duration_s, "min_duration_s")
    if known is not None:
        k = np.asarray(known, bool)
        if k.shape != m.shape:
            raise ValueError(f"known and mask must have the same shape, got {k.shape} and {m.shape}")
        if k.all():
            return persistent(m, t, d)
        idx = np.flatnonzero(k)
        out = np.zeros(m.shape, bool)
        if idx.size == 0:
            return out
        out[idx] = persistent(m[idx], t[idx], d)
        pos = np.searchsorted(idx, np.arange(m.size))          # first judged sample at or after i
        prev = np.where(pos > 0, out[idx[np.maximum(pos - 1, 0)]], False)
        nxt = np.where(pos < idx.size, out[idx[np.minimum(pos, idx.size - 1)]], False)
        return np.where(k, out, prev & nxt)
    start = run_start(m)
    return m & (t - t[np.maximum(start, 0)] >= round(d * NS))


def intervals(mask, time_ns, period_s: float | None = None) -> list[tuple[int, int]]:
    """(start_ns, end_ns) of each True run; ``end_ns`` = last True sample (+ ``period_s`` if given)."""
    m = np.asarray(mask, bool)
    t = _checks.time_ns(time_ns)
    if m.size == 0:
        return []
    d = np.diff(np.r_[False, m, False].astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    add = 0 if period_s is None else round(period_s * NS)
    return [(int(t[s]), int(t[e]) + add) for s, e in zip(starts, ends, strict=True)]


def _latch(raise_ok: np.ndarray, clear_ok: np.ndarray) -> np.ndarray:
    """State that turns on at ``raise_ok`` and off at ``clear_ok`` (mutually exclusive), initially off."""
    ev = np.where(raise_ok, 1, np.where(clear_ok, 0, -1))
    idx = np.where(ev >= 0, np.arange(ev.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    return np.where(last >= 0, ev[np.maximum(last, 0)], 0).astype(bool)


# ---------------------------------------------------------------- data quality


def gaps(time_ns, period_s: float, factor: float = 1.5) -> dict:
    """Gaps in a sampled series, docs/standards.md §10.1 (comms loss / gaps).

    A gap follows sample i when ``t[i+1] - t[i] > factor * period``; it misses
    ``round(diff / period) - 1`` samples.

    Parameters
    ----------
    time_ns : array-like of int
        Sample times [ns], non-decreasing.
    period_s : float
        Expected sample period [s].
    factor : float
        Gap threshold in periods (1.5).

    Returns
    -------
    dict
        ``after_index`` (indices i), ``duration_s`` (t[i+1]-t[i]) [s], ``missing`` (samples).
    """
    t = _checks.time_ns(time_ns)
    p = _checks.positive(period_s, "period_s")
    dt = np.diff(t) / NS
    i = np.flatnonzero(dt > factor * p)
    return {"after_index": i, "duration_s": dt[i], "missing": np.rint(dt[i] / p).astype(np.int64) - 1}


def completeness(time_ns, values, period_s: float, start_ns: int, end_ns: int) -> float:
    """Completeness ``n_valid * period / (end - start)`` of a window, pvanalytics ``completeness_score``."""
    t = _checks.time_ns(time_ns)
    x = _checks.as_float(values, "values")
    if end_ns <= start_ns:
        raise ValueError(f"end_ns must be > start_ns, got {start_ns}..{end_ns}")
    inside = (t >= start_ns) & (t < end_ns) & np.isfinite(x)
    return float(inside.sum() * _checks.positive(period_s, "period_s") * NS / (end_ns - start_ns))


def comms_loss(time_ns, period_s: float, start_ns: int, end_ns: int, online=None, online_time_ns=None,
               min_missing: int = 2) -> list[tuple[int, int]]:
    """Communication-loss intervals of one device, docs/standards.md §10.1.

    Joins two sources: holes in the device's data timestamps (more than
    ``min_missing`` missing samples, including before the first and after the last
    sample of the window) and the collector's ``online == 0`` poll status.

    Parameters
    ----------
    time_ns : array-like of int
        Times of the device's samples [ns].
    period_s : float
        Poll / publish period [s].
    start_ns, end_ns : int
        Evaluated window [ns].
    online, online_time_ns : array-like, optional
        ``collector_status.online`` values (0/1) and their times [ns].
    min_missing : int
        Missing samples needed before a gap counts as comms loss.

    Returns
    -------
    list of (start_ns, end_ns)
        Merged loss intervals within the window.
    """
    t = _checks.time_ns(time_ns)
    p_ns = round(_checks.positive(period_s, "period_s") * NS)
    if end_ns <= start_ns:
        raise ValueError(f"end_ns must be > start_ns, got {start_ns}..{end_ns}")
    t = t[(t >= start_ns) & (t < end_ns)]
    edges = np.r_[start_ns - p_ns, t, end_ns]
    d = np.diff(edges)
    thr = (min_missing + 1) * p_ns
    i = np.flatnonzero(d > thr)
    out = [(int(edges[k] + p_ns), int(edges[k + 1])) for k in i]
    if online is not None:
        if online_time_ns is None:
            raise ValueError("online_time_ns is required with online")
        ot = _checks.time_ns(online_time_ns, "online_time_ns")
        ov = _checks.as_float(online, "online")
        _checks.same_shape("online", ov, "online_time_ns", ot)
        inside = (ot >= start_ns) & (ot < end_ns)
        off = ov[inside] == 0
        if off.any():
            out += [(s, min(e + p_ns, end_ns)) for s, e in intervals(off, ot[inside])]
    out.sort()
    merged: list[tuple[int, int]] = []
    for s, e in out:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def stale_values(x, window: int = 6, rtol: float = 1e-5, atol: float = 1e-8, ignore=None) -> np.ndarray:
    """Stuck / flat-lined sensor, pvanalytics ``stale_values_diff`` semantics (mark='tail').

    A run of at least ``window`` consecutive samples that each equal their
    predecessor (``|Δx| <= atol + rtol*|x|``) flags all its samples but the first.
    NaN breaks a run.

    Parameters
    ----------
    x : array-like
        1-D series.
    window : int
        Minimum run length [samples] (≥ 2); size it to the sensor's physics,
        e.g. 30 min of identical voltage on a live bus.
    rtol, atol : float
        Equality tolerances.
    ignore : array-like of bool, optional
        Samples where a constant value is legitimate (0 W PV at night, states); never flagged.

    Returns
    -------
    ndarray of bool
    """
    if not isinstance(window, int | np.integer) or window < 2:
        raise ValueError(f"window must be an integer ≥ 2, got {window!r}")
    v = _checks.as_float(x, "x")
    if v.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {v.shape}")
    with np.errstate(invalid="ignore"):
        same = np.r_[False, np.abs(np.diff(v)) <= atol + rtol * np.abs(v[1:])]
    rl = run_length(same)          # a run of L equal values has same-run length L - 1
    # propagate each run's final length back to its members (end = last index of the same-run)
    ends = np.where(np.r_[~same[1:], True], np.arange(v.size), v.size)
    next_end = np.minimum.accumulate(ends[::-1])[::-1]
    flags = same & (rl[np.minimum(next_end, v.size - 1)] >= window - 1)
    if ignore is not None:
        flags &= ~np.asarray(ignore, bool)
    return flags


def stale_range(x, window: int, resolution: float, min_valid_frac: float = 0.5) -> np.ndarray:
    """Frozen reading: True at sample i when the ``window`` samples ending at i span at most ``resolution``.

    Compares the whole window's range (max − min) with an absolute resolution in the channel's
    unit, not each sample with its predecessor: a value drifting slowly by a few mV per poll is a
    live value, a register that repeats itself is not.  NaN samples are missing, not a change;
    a window needs ``min_valid_frac`` of its samples valid to be judged.

    Parameters
    ----------
    x : array-like
        1-D series.
    window : int
        Window length [samples] (≥ 2); size it to the physics, e.g. 30 min of a live bus voltage.
    resolution : float
        Largest range that still counts as "unchanged" [unit of x], e.g. 0.01 V.
    min_valid_frac : float
        Share of valid samples a window needs.

    Returns
    -------
    ndarray of bool
        Flags at the end of each flat window (the reading is known frozen from then on).
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    if not isinstance(window, int | np.integer) or window < 2:
        raise ValueError(f"window must be an integer ≥ 2, got {window!r}")
    res = _checks.non_negative(resolution, "resolution")
    v = _checks.as_float(x, "x")
    if v.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {v.shape}")
    out = np.zeros(v.size, bool)
    if v.size < window:
        return out
    ok = np.isfinite(v)
    shift = (window - 1) // 2          # a centred filter at i - shift covers i - window + 1 .. i
    hi = maximum_filter1d(np.where(ok, v, -np.inf), window, mode="nearest")[window - 1 - shift:v.size - shift]
    lo = minimum_filter1d(np.where(ok, v, np.inf), window, mode="nearest")[window - 1 - shift:v.size - shift]
    cnt = np.convolve(ok.astype(np.int64), np.ones(window, np.int64), "valid")
    with np.errstate(invalid="ignore"):
        out[window - 1:] = (cnt >= max(2, int(np.ceil(min_valid_frac * window)))) & (hi - lo <= res)
    return out


def out_of_range(x, lower: float = -np.inf, upper: float = np.inf) -> np.ndarray:
    """True where ``x`` is outside the physically plausible [lower, upper] (NaN never flags)."""
    if not lower < upper:
        raise ValueError(f"lower must be < upper, got {lower} and {upper}")
    v = _checks.as_float(x, "x")
    with np.errstate(invalid="ignore"):
        return (v < lower) | (v > upper)


def rate_of_change(x, time_ns, max_rate_per_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Implausible rate of change, docs/standards.md §10.1: flag ``|Δx/Δt| > R_max`` at the later sample.

    Parameters
    ----------
    x : array-like
        1-D series (unit u).
    time_ns : array-like of int
        Sample times [ns].
    max_rate_per_s : float
        Maximum plausible rate [u/s] (e.g. 5 °C/min = 5/60).

    Returns
    -------
    rate : ndarray
        Rate [u/s] per step (length n-1).
    flags : ndarray of bool
        Length n; index 0 never flags.
    """
    v = _checks.as_float(x, "x")
    t = _checks.time_ns(time_ns)
    _checks.same_shape("x", v, "time_ns", t)
    r_max = _checks.positive(max_rate_per_s, "max_rate_per_s")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.diff(v) / (np.diff(t) / NS)
        return rate, np.r_[False, np.abs(rate) > r_max]


def robust_z(x) -> np.ndarray:
    """Robust z-score ``0.6745 (x - median) / MAD`` (Iglewicz & Hoaglin); NaN where MAD = 0."""
    v = _checks.as_float(x, "x")
    med = np.nanmedian(v, axis=-1, keepdims=True)
    mad = np.nanmedian(np.abs(v - med), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mad > 0, 0.6745 * (v - med) / mad, np.nan)


def cusum_upper(x, mu0: float, k: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Tabular upper CUSUM ``S_t = max(0, S_{t-1} + x_t - mu0 - k)``; alarm ``S > h`` (no reset)."""
    v = _checks.as_float(x, "x")
    s = np.empty_like(v)
    acc = 0.0
    for i, xi in enumerate(v):
        acc = max(0.0, acc + xi - mu0 - k) if np.isfinite(xi) else acc
        s[i] = acc
    return s, s > h


def ewma(x, mu0: float, sigma: float, lam: float = 0.2, L: float = 3.0) -> dict:
    """EWMA chart (Montgomery): ``z_t = λx_t + (1-λ)z_{t-1}``, time-varying limits ``μ0 ± Lσ√(...)``."""
    v = _checks.as_float(x, "x")
    if not 0 < lam <= 1:
        raise ValueError(f"lam must be in (0, 1], got {lam}")
    n = np.arange(1, v.size + 1)
    # z_t = (1-λ)^t μ0 + Σ λ(1-λ)^{t-i} x_i, by a cumulative sum in a scaled basis
    w = (1 - lam) ** -n.astype(float)
    z = (1 - lam) ** n * (mu0 + np.cumsum(lam * v * w))
    half = L * sigma * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * n)))
    return {"z": z, "ucl": mu0 + half, "lcl": mu0 - half, "alarm": (z > mu0 + half) | (z < mu0 - half)}


# ---------------------------------------------------------------- threshold alarms


def hysteresis_alarm(x, on: float, off: float, on_delay_samples: int = 1, off_delay_samples: int = 1,
                     direction: str = "high") -> np.ndarray:
    """Limit alarm with deadband and on/off delays in samples, OPC UA Part 9 B.1.5.

    A high alarm raises when ``x >= on`` for ``on_delay_samples`` consecutive samples
    and clears when ``x <= off`` for ``off_delay_samples`` consecutive samples
    (``off = on - deadband``).  ``direction='low'`` mirrors it.  NaN holds the state.

    Returns
    -------
    ndarray of bool
        Alarm state per sample.
    """
    _checks.choice(direction, "direction", ("high", "low"))
    v = _checks.as_float(x, "x")
    if direction == "high" and not off < on or direction == "low" and not off > on:
        raise ValueError(f"off must be on the normal side of on for a {direction} alarm, got on={on} off={off}")
    for name, val in (("on_delay_samples", on_delay_samples), ("off_delay_samples", off_delay_samples)):
        if not isinstance(val, int | np.integer) or val < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {val!r}")
    with np.errstate(invalid="ignore"):
        beyond, back = (v >= on, v <= off) if direction == "high" else (v <= on, v >= off)
    return _latch(run_length(beyond) >= on_delay_samples, run_length(back) >= off_delay_samples)


def threshold_alarm(x, time_ns, limit: float, deadband: float, on_delay_s: float = 0.0,
                    off_delay_s: float = 0.0, direction: str = "high") -> np.ndarray:
    """Time-based limit alarm: beyond ``limit`` for ``on_delay_s``, back past ``limit ∓ deadband`` for ``off_delay_s``.

    OPC UA Part 9 B.1.5 / ISA-18.2 practice (deadband e.g. 1 % of span for temperature,
    delays 15-60 s).  Delays are measured as time since the first sample of the run.

    Returns
    -------
    ndarray of bool
        Alarm state per sample.
    """
    _checks.choice(direction, "direction", ("high", "low"))
    db = _checks.non_negative(deadband, "deadband")
    v = _checks.as_float(x, "x")
    with np.errstate(invalid="ignore"):
        if direction == "high":
            beyond, back = v >= limit, v < limit - db if db == 0 else v <= limit - db
        else:
            beyond, back = v <= limit, v > limit + db if db == 0 else v >= limit + db
    known = np.isfinite(v)            # NaN = not judged, like an absent sample (the state holds)
    return _latch(persistent(beyond, time_ns, on_delay_s, known), persistent(back, time_ns, off_delay_s, known))


# ---------------------------------------------------------------- transformer


def load_rate(apparent_power_va, rated_kva: float):
    """Transformer load rate ``β = S / S_N`` [-], GB/T 13462-2008 §3 (S in [VA], S_N in [kVA])."""
    return _checks.as_float(apparent_power_va, "apparent_power_va") / (
        _checks.positive(rated_kva, "rated_kva") * 1000.0)


def overload(apparent_power_va, time_ns, rated_kva: float, limit: float = 1.0, on_delay_s: float = 600.0,
             deadband: float = 0.05) -> np.ndarray:
    """Sustained overload: load rate ≥ ``limit`` for ``on_delay_s``, clears below ``limit - deadband``."""
    return threshold_alarm(load_rate(apparent_power_va, rated_kva), time_ns, limit, deadband, on_delay_s, 0.0)


def temperature_trend(temperature, time_ns, trip_c: float = 150.0, alarm_c: float = 130.0,
                      window_s: float = 1800.0, horizon_s: float = 3600.0, min_rate_c_per_h: float = 2.0) -> dict:
    """Over-temperature trend warning before the trip point (dry-type F class defaults 130/150 °C).

    A least-squares line is fitted over a trailing window; the warning is raised when
    the temperature is rising by at least ``min_rate_c_per_h`` and the fit reaches
    ``trip_c`` within ``horizon_s``, or when the temperature is already ≥ ``alarm_c``.
    docs/standards.md §7.4 (controller settings are vendor defaults; configurable).

    Parameters
    ----------
    temperature : array-like
        Winding or top-oil temperature [degC].
    time_ns : array-like of int
        Sample times [ns].
    trip_c, alarm_c : float
        Trip and alarm set points [degC].
    window_s : float
        Regression window [s].
    horizon_s : float
        Warn when the trip is predicted within this time [s].
    min_rate_c_per_h : float
        Minimum slope for a trend warning [degC/h].

    Returns
    -------
    dict of ndarray
        ``slope_c_per_h``, ``eta_s`` (time to trip, inf if not rising), ``warning`` (bool).
    """
    if not alarm_c < trip_c:
        raise ValueError(f"alarm_c must be < trip_c, got {alarm_c} and {trip_c}")
    y = _checks.as_float(temperature, "temperature")
    t = _checks.time_ns(time_ns)
    _checks.same_shape("temperature", y, "time_ns", t)
    w = round(_checks.positive(window_s, "window_s") * NS)
    ok = np.isfinite(y)
    ts = np.where(ok, (t - (t[0] if t.size else 0)) / 3600e9, 0.0)     # hours, small numbers
    yv = np.where(ok, y, 0.0)
    c = [np.r_[0.0, np.cumsum(a)] for a in (ok.astype(float), ts, yv, ts * ts, ts * yv)]
    lo = np.searchsorted(t, t - w, side="left")
    hi = np.arange(t.size) + 1
    n, sx, sy, sxx, sxy = (ci[hi] - ci[lo] for ci in c)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = n * sxx - sx * sx
        slope = np.where((n >= 3) & (den > 0), (n * sxy - sx * sy) / den, np.nan)
        fit_now = np.where(n > 0, (sy - slope * sx) / n + slope * ts, np.nan)
        eta = np.where(slope > 0, (trip_c - fit_now) / slope * 3600.0, np.inf)
        rising = slope >= min_rate_c_per_h
        warning = ok & ((rising & (eta <= horizon_s)) | (y >= alarm_c))
    return {"slope_c_per_h": slope, "eta_s": np.maximum(eta, 0.0), "warning": warning}


# ---------------------------------------------------------------- PV


def performance_ratio(e_ac_kwh, p_stc_kw: float, poa_wm2, dt_h, t_cell=None, gamma=None) -> float:
    r"""Performance ratio, IEC 61724-1:2021 §10.4 (and PR'_STC with temperature correction).

    :math:`PR=\sum E_{AC}/(P_0\sum C_kG_k\tau_k/G_{STC})`, :math:`C_k=1+\gamma(T_k-25)`.

    Parameters
    ----------
    e_ac_kwh : array-like
        AC energy per interval [kWh].
    p_stc_kw : float
        DC nameplate at STC [kWp].
    poa_wm2 : array-like
        Plane-of-array irradiance per interval [W/m2].
    dt_h : float or array-like
        Interval length [h].
    t_cell, gamma : array-like, float, optional
        Cell temperature [degC] and Pmax temperature coefficient [1/degC] (negative).

    Returns
    -------
    float
        PR [-]; NaN if there is no irradiance.
    """
    p0 = _checks.positive(p_stc_kw, "p_stc_kw")
    g = _checks.as_float(poa_wm2, "poa_wm2")
    e = _checks.as_float(e_ac_kwh, "e_ac_kwh")
    if (t_cell is None) != (gamma is None):
        raise ValueError("t_cell and gamma must be given together")
    corr = 1.0 if t_cell is None else 1.0 + float(gamma) * (_checks.as_float(t_cell, "t_cell") - 25.0)
    ok = np.isfinite(g) & np.isfinite(e) & np.isfinite(corr * g)
    ref = np.sum(np.broadcast_to(corr * g * _checks.as_float(dt_h, "dt_h"), g.shape)[ok]) / 1000.0
    return float(np.sum(e[ok]) / (p0 * ref)) if ref > 0 else float("nan")


def expected_pv_power(poa_wm2, p_stc_kw: float, t_module=None, gamma: float = -0.0037,
                      system_pr: float = 0.85):
    """Expected AC power [W] = ``P_STC · G/1000 · (1 + γ(T - 25)) · PR_ref`` (PVWatts-style)."""
    g = _checks.as_float(poa_wm2, "poa_wm2")
    c = 1.0 if t_module is None else 1.0 + gamma * (_checks.as_float(t_module, "t_module") - 25.0)
    return _checks.positive(p_stc_kw, "p_stc_kw") * 1000.0 * np.clip(g, 0, None) / 1000.0 * c * system_pr


def clearsky_poa(time_ns, latitude: float, longitude: float, tilt_deg: float = 20.0,
                 azimuth_deg: float = 180.0, step_s: int = 300):
    """Clear-sky plane-of-array irradiance [W/m2] (pvlib Ineichen + isotropic transposition).

    Used when a site has no irradiance sensor; it is an upper bound, so judge
    underperformance on clear hours only or with a lower threshold.  The model is evaluated on a
    ``step_s`` grid aligned to the epoch and interpolated to ``time_ns`` (clear-sky irradiance is
    smooth; the solar position is most of the cost), and the grid's values are cached, so the
    inverters of one site share one evaluation.
    """
    t = _checks.time_ns(time_ns)
    if t.size == 0:
        return np.zeros(0)
    step = int(step_s) * NS
    g0, g1 = int(t[0] - t[0] % step), int(t[-1] - t[-1] % step + step)
    grid = np.arange(g0, g1 + 1, step, dtype=np.int64)
    poa = _clearsky_grid(float(latitude), float(longitude), float(tilt_deg), float(azimuth_deg), g0, g1, step)
    return np.interp(t.astype(float), grid.astype(float), poa)


@functools.lru_cache(maxsize=64)
def _clearsky_grid(latitude: float, longitude: float, tilt_deg: float, azimuth_deg: float, g0: int, g1: int,
                   step: int) -> np.ndarray:
    import warnings

    import pandas as pd
    from pvlib import irradiance, location

    t = pd.DatetimeIndex(np.arange(g0, g1 + 1, step, dtype=np.int64).astype("datetime64[ns]"), tz="UTC")
    loc = location.Location(latitude, longitude)
    with warnings.catch_warnings():
        # pvlib 0.16 calls DatetimeIndex.dayofyear, deprecated in pandas 3 (not our code)
        warnings.filterwarnings("ignore", message=".*dayofyear.*")
        sp = loc.get_solarposition(t)
        cs = loc.get_clearsky(t, model="ineichen", solar_position=sp)
    poa = irradiance.get_total_irradiance(tilt_deg, azimuth_deg, sp["apparent_zenith"], sp["azimuth"],
                                          cs["dni"], cs["ghi"], cs["dhi"])
    out = np.nan_to_num(poa["poa_global"].to_numpy(float))
    out.flags.writeable = False
    return out


def pv_underperformance(active_power_w, expected_w, rated_w: float, ratio_limit: float = 0.7,
                        min_expected_frac: float = 0.2) -> np.ndarray:
    """True where output < ``ratio_limit`` × expected while expected ≥ ``min_expected_frac`` × rating.

    Healthy C&I PR is 0.75-0.85; below ~0.70 warrants investigation (docs/standards.md §8.1).
    """
    p = _checks.as_float(active_power_w, "active_power_w")
    e = _checks.as_float(expected_w, "expected_w")
    r = _checks.positive(rated_w, "rated_w")
    with np.errstate(invalid="ignore"):
        return (e >= min_expected_frac * r) & (p < ratio_limit * e)


def inverter_offline_daylight(active_power_w, poa_wm2, rated_w: float, inverter_state=None,
                              min_poa_wm2: float = 150.0, min_frac: float = 0.01) -> np.ndarray:
    """Inverter tripped or idle in daylight: POA ≥ ``min_poa_wm2`` but AC ≈ 0 or state off/fault."""
    p = _checks.as_float(active_power_w, "active_power_w")
    g = _checks.as_float(poa_wm2, "poa_wm2")
    r = _checks.positive(rated_w, "rated_w")
    with np.errstate(invalid="ignore"):
        bad = p < min_frac * r
        if inverter_state is not None:
            s = _checks.as_float(inverter_state, "inverter_state")
            bad |= np.isin(s, INVERTER_FAULT_STATES)
        return (g >= min_poa_wm2) & bad


def string_mismatch(currents, poa_wm2=None, min_poa_wm2: float = 200.0, warn_pct: float = -10.0,
                    fault_pct: float = -20.0) -> dict:
    """String / MPPT mismatch: each input's deviation from the median of its peers, docs/standards.md §8.3.

    Parameters
    ----------
    currents : array-like
        Currents of k strings/MPPTs, shape (n, k) [A]; NaN = input absent.
    poa_wm2 : array-like, optional
        Irradiance (n,) [W/m2]; rows below ``min_poa_wm2`` are not judged.
    warn_pct, fault_pct : float
        Deviation limits [%] (negative).

    Returns
    -------
    dict
        ``deviation_pct`` (n, k), ``warning`` and ``fault`` (n, k) bool, ``dispersion_pct`` (n,)
        (σ/mean, population σ).
    """
    i = _checks.as_float(currents, "currents")
    if i.ndim != 2 or i.shape[1] < 2:
        raise ValueError(f"currents must have shape (n, k≥2), got {i.shape}")
    # nanmedian warns on all-NaN rows: compute on rows that have data
    has = np.isfinite(i).any(axis=1)
    med = np.full(i.shape[0], np.nan)
    med[has] = np.nanmedian(i[has], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(med[:, None] > 0, (i - med[:, None]) / med[:, None] * 100.0, np.nan)
        cnt = np.isfinite(i).sum(axis=1)
        mean = np.where(cnt > 0, np.nansum(i, axis=1) / np.maximum(cnt, 1), np.nan)
        var = np.where(cnt > 0, np.nansum((i - mean[:, None]) ** 2, axis=1) / np.maximum(cnt, 1), np.nan)
        disp = np.sqrt(var) / mean * 100.0
        judged = np.ones(i.shape[0], bool) if poa_wm2 is None else _checks.as_float(poa_wm2, "poa_wm2") >= min_poa_wm2
        return {"deviation_pct": dev, "warning": judged[:, None] & (dev <= warn_pct + 1e-9),
                "fault": judged[:, None] & (dev <= fault_pct + 1e-9), "dispersion_pct": disp}


def string_deficit(currents) -> dict:
    """Each MPPT/string input's deviation [%] from the best input of the same inverter at each sample.

    The best input is the reference, not the median: with three of four inputs lost the median
    is one of the dead ones.  Healthy inputs of one inverter see the same irradiance and differ
    by their ±1-2 % module mismatch.

    Parameters
    ----------
    currents : array-like
        Shape (n, k≥2) [A]; NaN = input not reported.

    Returns
    -------
    dict
        ``deviation_pct`` (n, k), ``reference_a`` (n,) (the best input; NaN if none).
    """
    i = _checks.as_float(currents, "currents")
    if i.ndim != 2 or i.shape[1] < 2:
        raise ValueError(f"currents must have shape (n, k≥2), got {i.shape}")
    ref = np.full(i.shape[0], np.nan)
    has = np.isfinite(i).any(axis=1)
    ref[has] = np.nanmax(i[has], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(ref[:, None] > 0, (i - ref[:, None]) / ref[:, None] * 100.0, np.nan)
    return {"deviation_pct": dev, "reference_a": ref}


def latched_alarm(bad, good, time_ns, judged, on_delay_s: float, off_delay_s: float) -> np.ndarray:
    """Alarm raised after ``bad`` persists ``on_delay_s`` and cleared after ``good`` persists ``off_delay_s``,
    counting only ``judged`` samples; between them (and while not judged: clouds, night) the state holds."""
    j = np.asarray(judged, bool)
    b, g = np.asarray(bad, bool) & j, np.asarray(good, bool) & j
    return _latch(persistent(b, time_ns, on_delay_s, j) & j, persistent(g, time_ns, off_delay_s, j) & j)


# ---------------------------------------------------------------- EV chargers


def ev_faulted(time_ns, ocpp_status=None, fault_code=None, charger_state=None,
               min_duration_s: float = 900.0) -> np.ndarray:
    """Charger faulted / unavailable for ``min_duration_s`` (OCPP 1.6 Faulted/Unavailable, fault code ≠ 0,
    IEC 61851-1 state E/F), docs/standards.md §9.2."""
    t = _checks.time_ns(time_ns)
    bad = np.zeros(t.shape, bool)
    with np.errstate(invalid="ignore"):
        if ocpp_status is not None:
            bad |= np.isin(_checks.as_float(ocpp_status, "ocpp_status"), (OCPP_UNAVAILABLE, OCPP_FAULTED))
        if fault_code is not None:
            fc = _checks.as_float(fault_code, "fault_code")
            bad |= np.isfinite(fc) & (fc != 0)
        if charger_state is not None:
            bad |= np.isin(_checks.as_float(charger_state, "charger_state"), (5, 6))
    return persistent(bad, t, min_duration_s)


def ev_session_stuck(time_ns, ocpp_status, max_preparing_s: float = 600.0) -> np.ndarray:
    """Session stuck in Preparing (plugged, never charging) for more than ``max_preparing_s``, §9.2."""
    s = _checks.as_float(ocpp_status, "ocpp_status")
    return persistent(s == OCPP_PREPARING, time_ns, max_preparing_s)


def ev_charging_no_energy(time_ns, ocpp_status, energy_wh, min_power_w: float = 500.0,
                          min_duration_s: float = 600.0) -> np.ndarray:
    """"Charging" with no energy increase: status Charging but the counter grows < ``min_power_w``
    for ``min_duration_s``, docs/standards.md §9.2 (0.5 kW for 10 min)."""
    t = _checks.time_ns(time_ns)
    s = _checks.as_float(ocpp_status, "ocpp_status")
    e = _checks.as_float(energy_wh, "energy_wh")
    _checks.same_shape("ocpp_status", s, "energy_wh", e)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.r_[np.nan, np.diff(e) / (np.diff(t) / 3600e9)]
        slow = (s == OCPP_CHARGING) & (np.nan_to_num(p, nan=0.0) < min_power_w)
    slow[0] = slow[0] & (s[0] == OCPP_CHARGING)
    return persistent(slow, t, min_duration_s)


# ---------------------------------------------------------------- energy counters


def counter_increments(counter, rollover_wh: float | None = None, max_step_wh: float | None = None,
                       reset_below_wh: float = 1000.0, resolution_wh: float = 50.0, time_ns=None,
                       max_power_w: float | None = None) -> dict:
    """Non-negative increments of a cumulative energy counter, with integrity events.

    * rollover: the counter falls and ``rollover_wh`` is set → ``rollover - prev + cur``;
    * reset: it falls to a value no larger than could have been counted from zero since the last
      sample (``reset_below_wh``, or the upward bound below) → the increment is ``cur``;
    * replacement: it falls to any other value → increment 0 (a new meter; energy across the swap is unknown);
    * spike: a rise above the upward bound → increment NaN (not counted): an implausible jump, e.g. a
      replacement meter whose register reads higher than the old one.

    The upward bound of a step is ``max_step_wh``, or with ``time_ns`` and ``max_power_w`` the
    energy the largest plausible power delivers between the two samples (+ ``resolution_wh``).
    NaN and negative readings (impossible for a counter; flagged ``invalid``) are
    skipped: the energy over a gap is attributed to the first valid sample after it.
    No increment is ever negative.

    Parameters
    ----------
    counter : array-like
        Cumulative counter [Wh] (``energy_import``, ``energy_export``, ...).
    rollover_wh : float, optional
        Counter modulus (e.g. 2**32 * resolution) [Wh].
    max_step_wh : float, optional
        Largest plausible increment between two valid samples [Wh].
    reset_below_wh : float
        A fall to a value below this is a reset to zero [Wh].
    resolution_wh : float
        Falls up to this size are quantisation, not events: two sources of one counter (a 1-min
        history and a live register of 10 Wh resolution, say) disagree by up to a register step.
        Such a fall holds the counter at its high-water mark, so the energy is neither lost nor
        counted twice [Wh].
    time_ns : array-like of int, optional
        Sample times [ns] (with ``max_power_w``).
    max_power_w : float, optional
        Largest plausible power through the counter [W] (e.g. 1.5 × the rating).

    Returns
    -------
    dict
        ``increment`` (n, first = 0) [Wh], ``rollover``, ``reset``, ``replacement``, ``spike``,
        ``invalid`` (bool, n).
    """
    c = _checks.as_float(counter, "counter")
    if c.ndim != 1:
        raise ValueError(f"counter must be 1-D, got shape {c.shape}")
    n = c.size
    with np.errstate(invalid="ignore"):
        invalid = c < 0
    ok = np.isfinite(c) & ~invalid
    idx = np.flatnonzero(ok)
    inc = np.zeros(n)
    flags = {k: np.zeros(n, bool) for k in ("rollover", "reset", "replacement", "spike")}
    flags["invalid"] = invalid
    if idx.size < 2:
        return {"increment": inc, **flags}
    res = _checks.non_negative(resolution_wh, "resolution_wh")
    bound = _step_bound(idx, max_step_wh, time_ns, max_power_w, res, n)
    v = c[idx]
    big = np.flatnonzero(np.diff(v) < -res) + 1
    if big.size < v.size - 1:      # hold small falls at the high-water mark, segment by segment
        bounds = np.r_[0, big, v.size]
        v = np.concatenate([np.maximum.accumulate(v[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    prev, cur = v[:-1], v[1:]
    d = cur - prev
    fall = d < 0
    if rollover_wh is None:
        roll = np.zeros_like(fall)
    else:
        rollover_wh = _checks.positive(rollover_wh, "rollover_wh")
        roll = fall & (prev > rollover_wh / 2) & (cur < rollover_wh / 2)
    reset = fall & ~roll & (cur < (reset_below_wh if bound is None else np.maximum(reset_below_wh, bound)))
    repl = fall & ~roll & ~reset
    step = np.where(roll, (rollover_wh or 0.0) - prev + cur, np.where(reset, cur, np.where(repl, 0.0, d)))
    spike = np.zeros_like(fall) if bound is None else step > bound
    step = np.where(spike, np.nan, step)
    j = idx[1:]
    inc[j] = step
    for k, f in (("rollover", roll), ("reset", reset), ("replacement", repl), ("spike", spike)):
        flags[k][j] = f
    return {"increment": inc, **flags}


def _step_bound(idx: np.ndarray, max_step_wh, time_ns, max_power_w, resolution_wh: float, n: int):
    """Upward bound [Wh] of each step between consecutive valid samples ``idx`` (None = no bound)."""
    if max_power_w is None:
        return None if max_step_wh is None else float(max_step_wh)
    if time_ns is None:
        raise ValueError("time_ns is required with max_power_w")
    t = _checks.time_ns(time_ns)
    if t.size != n:
        raise ValueError(f"time_ns and counter must have the same length, got {t.size} and {n}")
    dt_h = np.diff(t[idx]) / 3600e9
    b = _checks.positive(max_power_w, "max_power_w") * dt_h + resolution_wh
    return b if max_step_wh is None else np.minimum(b, float(max_step_wh))


def consumption_wh(counter, **kwargs) -> float:
    """Energy over the series [Wh] from a cumulative counter, robust to reset/rollover/replacement (≥ 0)."""
    return float(np.nansum(counter_increments(counter, **kwargs)["increment"]))
