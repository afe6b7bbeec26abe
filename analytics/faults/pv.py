"""PV checks: performance ratio, expected power, clear-sky POA, underperformance, offline in daylight, string mismatch.

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import functools

import numpy as np

from analytics import _checks
from analytics.faults.runs import _latch, persistent
from analytics.faults.states import INVERTER_FAULT_STATES
from core.units import NS

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
