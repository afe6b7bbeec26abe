"""10-min aggregation of 1-min readings and the EN 50160 voltage assessment.

Indicative values from meter data; conventions in :mod:`analytics.power_quality`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.power_quality.constants import _EPS, TEN_MIN_NS
from analytics.power_quality.voltage import voltage_deviation

# ---------------------------------------------------------------- aggregation


def aggregate_10min(time_ns, values, period_s: float = 60.0, method: str = "rms", min_fraction: float = 1.0):
    """Aggregate samples into 10-min values aligned to the UTC 10-min tick, IEC 61000-4-30 §5.

    Parameters
    ----------
    time_ns : array-like of int
        Sample times [ns since epoch], non-decreasing.
    values : array-like
        Samples, shape (n,) or (n, k) for k channels; NaN = missing.
    period_s : float
        Nominal sample period [s]; an interval is valid when it holds at least
        ``min_fraction * 600 / period_s`` finite samples.
    method : {'rms', 'mean', 'max'}
        Aggregation: root-mean-square (voltages, currents), arithmetic mean, or max.
    min_fraction : float
        Share of expected samples required for validity (1.0 = complete).

    Returns
    -------
    start_ns : ndarray of int64
        Start of each 10-min interval present in the data.
    agg : ndarray
        Aggregated values, shape (m,) or (m, k); NaN where no finite sample.
    valid : ndarray of bool
        Interval complete enough (per channel).
    """
    _checks.choice(method, "method", ("rms", "mean", "max"))
    period_s = _checks.positive(period_s, "period_s")
    t, x, one_d = _as_rows(time_ns, values)
    if t.size == 0:
        shape = (0,) if one_d else (0, x.shape[1])
        return np.zeros(0, np.int64), np.zeros(shape), np.zeros(shape, bool)
    b = t // TEN_MIN_NS
    first = b[0]
    b = b - first
    # bins present (t is sorted, so present bins are where b changes)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    agg, cnt = _reduce_bins(x, starts, method)
    need = max(1, int(np.ceil(min_fraction * 600.0 / period_s - 1e-9)))
    valid = cnt >= need
    start_ns = (b[starts] + first) * TEN_MIN_NS
    if one_d:
        return start_ns, agg[:, 0], valid[:, 0]
    return start_ns, agg, valid


def _as_rows(time_ns, values) -> tuple[np.ndarray, np.ndarray, bool]:
    """Checked times, values as (n, k) rows, and whether ``values`` was one-dimensional."""
    t = _checks.time_ns(time_ns)
    x = _checks.as_float(values, "values")
    one_d = x.ndim == 1
    if one_d:
        x = x[:, None]
    if x.shape[0] != t.shape[0]:
        raise ValueError(f"values has {x.shape[0]} rows but time_ns has {t.shape[0]}")
    return t, x, one_d


def _reduce_bins(x: np.ndarray, starts: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin aggregate (NaN where no finite sample) and finite-sample count of rows ``x``."""
    finite = np.isfinite(x)
    xz = np.where(finite, x, 0.0 if method != "max" else -np.inf)
    if method == "max":
        agg = np.maximum.reduceat(xz, starts, axis=0)
    else:
        agg = np.add.reduceat(xz * xz if method == "rms" else xz, starts, axis=0)
    cnt = np.add.reduceat(finite.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "rms":
            agg = np.sqrt(agg / cnt)
        elif method == "mean":
            agg = agg / cnt
    return np.where(cnt > 0, agg, np.nan), cnt


def count_outside(values, valid, lower, upper) -> tuple[int, int]:
    """Count valid values and valid values outside the inclusive band [lower, upper].

    Returns
    -------
    (n_valid, n_outside) : tuple of int
    """
    x = _checks.as_float(values, "values")
    v = np.asarray(valid, bool) & np.isfinite(x)
    with np.errstate(invalid="ignore"):
        out = v & ((x > upper + _EPS) | (x < lower - _EPS))
    return int(v.sum()), int(out.sum())


def en50160_voltage(voltage_10min, valid, nominal_v: float, lv: bool = True) -> dict:
    """EN 50160:2010 §4.2.2 supply-voltage-variation counters over one week.

    LV: N1 = valid 10-min values outside ±10 % (≤ 5 % of N allowed), N2 = outside
    +10 %/−15 % (none allowed).  MV: ±10 % for 99 %, ±15 % for 100 %.

    Parameters
    ----------
    voltage_10min : array-like
        10-min RMS voltages [V] (any shape; all phases pooled).
    valid : array-like of bool
        Interval validity (same shape).
    nominal_v : float
        Nominal voltage [V].
    lv : bool
        Low-voltage (True) or medium-voltage (False) rule.

    Returns
    -------
    dict
        ``n_valid``, ``n1``, ``n2``, ``n1_allowed``, ``compliant``.
    """
    d = voltage_deviation(voltage_10min, nominal_v)
    n, n1 = count_outside(d, valid, -10.0, 10.0)
    _, n2 = count_outside(d, valid, -15.0, 10.0 if lv else 15.0)
    share = 0.05 if lv else 0.01
    allowed = int(np.floor(share * n + 1e-9))
    return {"n_valid": n, "n1": n1, "n2": n2, "n1_allowed": allowed,
            "compliant": bool(n > 0 and n1 <= allowed and n2 == 0)}
