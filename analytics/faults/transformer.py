"""Transformer load rate, overload and the temperature trend that warns before the trip.

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.faults.alarms import threshold_alarm
from core.units import NS

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
