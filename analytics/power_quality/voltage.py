"""Voltage deviation (GB/T 12325) and frequency deviation (GB/T 15945).

Indicative values from meter data; conventions in :mod:`analytics.power_quality`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.power_quality.constants import _EPS

# ---------------------------------------------------------------- voltage deviation


def voltage_deviation(voltage, nominal_v):
    r"""Voltage deviation from nominal, GB/T 12325-2008 §3.

    Parameters
    ----------
    voltage : array-like
        Measured RMS voltage [V] (any shape; NaN = no data).
    nominal_v : float
        Nominal voltage of the same kind (phase-to-neutral or line) [V].

    Returns
    -------
    ndarray
        :math:`\delta U = (U - U_N)/U_N \cdot 100` [%].
    """
    nominal_v = _checks.positive(nominal_v, "nominal_v")
    return (_checks.as_float(voltage, "voltage") - nominal_v) / nominal_v * 100.0


def voltage_deviation_limits(voltage_level_kv: float, single_phase: bool = False) -> tuple[float, float]:
    """Permitted (lower, upper) deviation [%] per GB/T 12325-2008 §4 for supplies ≤ 20 kV.

    Parameters
    ----------
    voltage_level_kv : float
        Nominal supply voltage level [kV]; must be ≤ 20 (for 35 kV and above use
        :func:`deviation_span_35kv`, whose limit is on the sum of deviations).
    single_phase : bool
        True for a 220 V single-phase supply (+7 % / -10 %); False for three-phase
        supplies of 20 kV and below (±7 %).  The phase voltages of a three-phase
        0.4 kV supply are judged against ±7 % here.

    Returns
    -------
    tuple of float
        (lower, upper) [%], inclusive.
    """
    kv = _checks.positive(voltage_level_kv, "voltage_level_kv")
    if single_phase:
        if kv > 1.0:
            raise ValueError(f"single_phase=True applies to 220 V supplies only; voltage_level_kv={kv}")
        return (-10.0, 7.0)
    if kv > 20.0:
        raise ValueError(
            f"voltage_level_kv={kv}: GB/T 12325 gives ±7 % for 20 kV and below only; "
            "for 35 kV and above use deviation_span_35kv()")
    return (-7.0, 7.0)


def voltage_outside(voltage, nominal_v, lower_pct: float, upper_pct: float):
    """Flag voltages outside the inclusive band [lower_pct, upper_pct] of nominal, GB/T 12325 §4.

    Parameters
    ----------
    voltage : array-like
        RMS voltage [V]; NaN never flags.
    nominal_v : float
        Nominal voltage [V].
    lower_pct, upper_pct : float
        Band limits [%], e.g. -7 and +7.

    Returns
    -------
    ndarray of bool
        True where the voltage is outside the band (a problem).
    """
    if not lower_pct < upper_pct:
        raise ValueError(f"lower_pct must be < upper_pct, got {lower_pct} and {upper_pct}")
    d = voltage_deviation(voltage, nominal_v)
    with np.errstate(invalid="ignore"):
        return (d > upper_pct + _EPS) | (d < lower_pct - _EPS)


def deviation_span_35kv(max_deviation_pct, min_deviation_pct, limit_pct: float = 10.0):
    """GB/T 12325-2008 §4 rule for 35 kV and above: sum of |positive| and |negative| deviations.

    If both deviations have the same sign the larger absolute value is used.

    Parameters
    ----------
    max_deviation_pct, min_deviation_pct : array-like
        Largest and smallest deviation over the assessment period [%].
    limit_pct : float
        Limit on the span [%] (10 % in GB/T 12325-2008).

    Returns
    -------
    span : ndarray
        Assessed span [%].
    flag : ndarray of bool
        True where the span exceeds the limit.
    """
    hi = _checks.as_float(max_deviation_pct, "max_deviation_pct")
    lo = _checks.as_float(min_deviation_pct, "min_deviation_pct")
    same = np.sign(hi) * np.sign(lo) > 0
    span = np.where(same, np.maximum(np.abs(hi), np.abs(lo)), np.abs(hi) + np.abs(lo))
    with np.errstate(invalid="ignore"):
        return span, span > limit_pct + _EPS


def qualification_rate(voltage, nominal_v, lower_pct: float, upper_pct: float, weights=None) -> dict:
    """Voltage qualification rate (电压合格率), GB/T 12325-2008 §5.

    ``rate = (1 - (t_above + t_below) / t_monitored) * 100``; each valid sample counts
    its weight (its duration), NaN samples are not monitored time.

    Parameters
    ----------
    voltage : array-like
        RMS voltage samples [V] (e.g. 1-min values).
    nominal_v : float
        Nominal voltage [V].
    lower_pct, upper_pct : float
        Permitted band [%], inclusive.
    weights : array-like, optional
        Duration of each sample [min]; default 1 per sample.

    Returns
    -------
    dict
        ``rate_pct`` [%] (NaN if nothing monitored), ``t_monitored``, ``t_above``,
        ``t_below`` [unit of weights].
    """
    u = _checks.as_float(voltage, "voltage")
    w = np.ones_like(u) if weights is None else np.broadcast_to(_checks.as_float(weights, "weights"), u.shape)
    d = voltage_deviation(u, nominal_v)
    ok = np.isfinite(d)
    t_mon = float(w[ok].sum())
    t_above = float(w[ok & (d > upper_pct + _EPS)].sum())
    t_below = float(w[ok & (d < lower_pct - _EPS)].sum())
    rate = np.nan if t_mon == 0 else (1.0 - (t_above + t_below) / t_mon) * 100.0
    return {"rate_pct": rate, "t_monitored": t_mon, "t_above": t_above, "t_below": t_below}


# ---------------------------------------------------------------- frequency


def frequency_deviation(frequency, nominal_hz: float = 50.0):
    """Frequency deviation ``f - f_N`` [Hz], GB/T 15945-2008 §3.

    Parameters
    ----------
    frequency : array-like
        Measured frequency [Hz]; NaN = no data.
    nominal_hz : float
        Nominal frequency [Hz].
    """
    return _checks.as_float(frequency, "frequency") - _checks.positive(nominal_hz, "nominal_hz")


def frequency_outside(frequency, limit_hz: float = 0.2, nominal_hz: float = 50.0):
    """Flag frequency deviations beyond ±``limit_hz``, GB/T 15945-2008 §4.

    Parameters
    ----------
    frequency : array-like
        Frequency [Hz].
    limit_hz : float
        0.2 Hz normally; 0.5 Hz for small systems [Hz].
    nominal_hz : float
        Nominal frequency [Hz].

    Returns
    -------
    ndarray of bool
        True where |f - f_N| > limit (inclusive limit).
    """
    limit_hz = _checks.positive(limit_hz, "limit_hz")
    with np.errstate(invalid="ignore"):
        return np.abs(frequency_deviation(frequency, nominal_hz)) > limit_hz + _EPS
