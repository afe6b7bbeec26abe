"""Voltage and current unbalance (GB/T 15543, NEMA) and the neutral current.

Indicative values from meter data; conventions in :mod:`analytics.power_quality`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.power_quality.constants import _EPS, A

# ---------------------------------------------------------------- unbalance


def sequence_components(va, vb, vc):
    r"""Zero-, positive- and negative-sequence phasors, GB/T 15543-2008 §3 (Fortescue).

    :math:`V_0=(V_a+V_b+V_c)/3`, :math:`V_1=(V_a+aV_b+a^2V_c)/3`,
    :math:`V_2=(V_a+a^2V_b+aV_c)/3`, :math:`a=e^{j2\pi/3}`.

    Parameters
    ----------
    va, vb, vc : array-like of complex
        Fundamental phasors of the three phases [V] or [A].

    Returns
    -------
    tuple of ndarray (complex)
        (V0, V1, V2) in the unit of the input.
    """
    va, vb, vc = (np.asarray(v, dtype=complex) for v in (va, vb, vc))
    return (va + vb + vc) / 3, (va + A * vb + A * A * vc) / 3, (va + A * A * vb + A * vc) / 3


def phasors_from_channels(voltage_l1, voltage_l2, voltage_l3, voltage_angle_l2, voltage_angle_l3):
    """Build phasors from the meter channels (magnitudes [V], angles of U2, U3 rel. to U1 [deg])."""
    m1, m2, m3 = (_checks.as_float(v, n) for v, n in (
        (voltage_l1, "voltage_l1"), (voltage_l2, "voltage_l2"), (voltage_l3, "voltage_l3")))
    a2 = np.deg2rad(_checks.as_float(voltage_angle_l2, "voltage_angle_l2"))
    a3 = np.deg2rad(_checks.as_float(voltage_angle_l3, "voltage_angle_l3"))
    return m1 + 0j, m2 * np.exp(1j * a2), m3 * np.exp(1j * a3)


def unbalance_from_phasors(va, vb, vc):
    """Negative- and zero-sequence unbalance from phasors, GB/T 15543-2008 §3.2-3.3.

    Parameters
    ----------
    va, vb, vc : array-like of complex
        Fundamental phasors [V].

    Returns
    -------
    eps2, eps0 : ndarray
        ``|V2|/|V1|*100`` and ``|V0|/|V1|*100`` [%]; NaN where ``V1`` is 0.
    """
    v0, v1, v2 = sequence_components(va, vb, vc)
    m1 = np.abs(v1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = np.where(m1 > 0, m1, np.nan)
        return np.abs(v2) / m1 * 100.0, np.abs(v0) / m1 * 100.0


def unbalance_from_line_voltages(voltage_l12, voltage_l23, voltage_l31):
    r"""Negative-sequence unbalance from line-voltage magnitudes only, GB/T 15543-2008 Annex A.

    :math:`\beta=\sum U^4/(\sum U^2)^2`,
    :math:`\varepsilon_{U2}=\sqrt{(1-\sqrt{3-6\beta})/(1+\sqrt{3-6\beta})}\cdot 100`.
    Exact for fundamental line voltages (they contain no zero sequence); not valid
    for phase-to-neutral magnitudes.

    Parameters
    ----------
    voltage_l12, voltage_l23, voltage_l31 : array-like
        Line-to-line RMS voltages [V].

    Returns
    -------
    ndarray
        Negative-sequence unbalance [%]; NaN where any input is NaN or the three
        magnitudes cannot form a triangle.
    """
    u = [_checks.as_float(v, n) for v, n in (
        (voltage_l12, "voltage_l12"), (voltage_l23, "voltage_l23"), (voltage_l31, "voltage_l31"))]
    s2 = u[0] ** 2 + u[1] ** 2 + u[2] ** 2
    s4 = u[0] ** 4 + u[1] ** 4 + u[2] ** 4
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sqrt(3.0 - 6.0 * s4 / (s2 * s2))
        return np.sqrt((1.0 - r) / (1.0 + r)) * 100.0


def nema_unbalance(x1, x2, x3):
    """NEMA/IEEE LVUR: ``max|x_i - mean| / mean * 100`` [%] (for comparison with motor derating)."""
    x = np.stack([_checks.as_float(v, n) for v, n in ((x1, "x1"), (x2, "x2"), (x3, "x3"))])
    m = x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(x - m).max(axis=0) / m * 100.0


def prob95(values) -> float:
    """The "95 % probability value" of the Chinese PQ standards (GB/T 15543, 14549, 12325 practice).

    The values sorted from largest down, the largest 5 % (``floor(0.05 n)`` values) discarded,
    the largest remaining value: an observed value, never an interpolation between two.
    NaN values are left out; NaN when none is left.
    """
    x = _checks.as_float(values, "values").ravel()
    x = np.sort(x[np.isfinite(x)])
    if x.size == 0:
        return float("nan")
    return float(x[x.size - 1 - int(np.floor(0.05 * x.size + 1e-9))])


def unbalance_assessment(unbalance_10min, limit_95_pct: float = 2.0, limit_max_pct: float = 4.0) -> dict:
    """Weekly voltage-unbalance verdict, GB/T 15543-2008 §4 / §6.

    The 95 % probability value (:func:`prob95`) of the 10-min values must be ≤ 2 % and the maximum
    ≤ 4 % (normal-operation limits at the PCC).

    Parameters
    ----------
    unbalance_10min : array-like
        10-min negative-sequence unbalance values over (at least) one week [%];
        NaN (invalid intervals) are excluded.
    limit_95_pct, limit_max_pct : float
        Limits on the 95 % value and the maximum [%].

    Returns
    -------
    dict
        ``n_valid``, ``p95_pct``, ``max_pct``, ``fail_95``, ``fail_max``, ``fail``.
    """
    x = _checks.as_float(unbalance_10min, "unbalance_10min").ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n_valid": 0, "p95_pct": np.nan, "max_pct": np.nan,
                "fail_95": False, "fail_max": False, "fail": False}
    p95 = prob95(x)
    mx = float(x.max())
    f95, fmax = p95 > limit_95_pct + _EPS, mx > limit_max_pct + _EPS
    return {"n_valid": int(x.size), "p95_pct": p95, "max_pct": mx,
            "fail_95": f95, "fail_max": fmax, "fail": f95 or fmax}


def current_unbalance(current_l1, current_l2, current_l3):
    """Transformer load-current unbalance ``(Imax - Imin)/Imax * 100`` [%], SD 292-1988.

    Parameters
    ----------
    current_l1, current_l2, current_l3 : array-like
        Phase currents [A].

    Returns
    -------
    ndarray
        Unbalance [%]; NaN where Imax is 0 or any input is NaN.
    """
    i = np.stack([_checks.as_float(v, n) for v, n in (
        (current_l1, "current_l1"), (current_l2, "current_l2"), (current_l3, "current_l3"))])
    imax, imin = i.max(axis=0), i.min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(imax > 0, (imax - imin) / imax * 100.0, np.nan)


def rated_current(rated_kva: float, line_voltage_v: float = 400.0) -> float:
    """Rated current ``S / (sqrt(3) U)`` [A] of a three-phase transformer winding [kVA], [V]."""
    s = _checks.positive(rated_kva, "rated_kva")
    return s * 1000.0 / (np.sqrt(3.0) * _checks.positive(line_voltage_v, "line_voltage_v"))


def neutral_current_from_phases(current_l1, current_l2, current_l3):
    """Neutral current [A] of three phase currents assumed 120° apart with equal PF (no phasors)."""
    ia, ib, ic = (_checks.as_float(v, n) for v, n in (
        (current_l1, "current_l1"), (current_l2, "current_l2"), (current_l3, "current_l3")))
    return np.abs(ia + ib * A * A + ic * A)


def current_unbalance_flags(current_l1, current_l2, current_l3, current_n, rated_current_a: float,
                            unbalance_limit_pct: float = 15.0, neutral_limit_pct: float = 25.0,
                            min_load_pct: float = 10.0) -> dict:
    """Transformer current unbalance and neutral current flags, distribution O&M rule.

    Defaults are SD 292-1988 (unbalance ≤ 15 %, neutral ≤ 25 % of rated); the Dyn11
    variant (25 % / 40 %, Q/GDW 1519) is unconfirmed and can be set here.  Unbalance
    is not judged below ``min_load_pct`` of rated current (a ratio of small currents
    is meaningless).

    Parameters
    ----------
    current_l1, current_l2, current_l3 : array-like
        Phase currents [A].
    current_n : array-like or None
        Measured neutral current [A]; None = estimate from the phase magnitudes.
    rated_current_a : float
        Rated LV current of the transformer [A].
    unbalance_limit_pct, neutral_limit_pct, min_load_pct : float
        Limits [%].

    Returns
    -------
    dict of ndarray
        ``unbalance_pct``, ``neutral_pct`` [% of rated], ``unbalance_flag``, ``neutral_flag``.
    """
    ir = _checks.positive(rated_current_a, "rated_current_a")
    unb = current_unbalance(current_l1, current_l2, current_l3)
    imax = np.fmax(np.fmax(_checks.as_float(current_l1, "current_l1"),
                           _checks.as_float(current_l2, "current_l2")),
                   _checks.as_float(current_l3, "current_l3"))
    i_n = (neutral_current_from_phases(current_l1, current_l2, current_l3) if current_n is None
           else _checks.as_float(current_n, "current_n"))
    neutral_pct = i_n / ir * 100.0
    with np.errstate(invalid="ignore"):
        loaded = imax >= min_load_pct / 100.0 * ir
        return {"unbalance_pct": unb, "neutral_pct": neutral_pct,
                "unbalance_flag": loaded & (unb > unbalance_limit_pct + _EPS),
                "neutral_flag": neutral_pct > neutral_limit_pct + _EPS}
