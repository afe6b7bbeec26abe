"""Data quality and statistics: gaps, completeness, comms loss, stale values, rate of change, robust z, CUSUM, EWMA.

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.faults.runs import intervals, run_length
from core.units import NS

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
