"""Monthly power factor and the power-factor tariff adjustment.

Indicative values from meter data; conventions in :mod:`analytics.power_quality`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks

# ---------------------------------------------------------------- power factor


def monthly_power_factor(kwh, kvarh_import, kvarh_export=0.0):
    r"""Monthly average PF from energies, (83)水电财字第215号 §3, rounded half-up to 2 decimals.

    :math:`\cos\varphi = kWh/\sqrt{kWh^2+(|kvarh_{imp}|+|kvarh_{exp}|)^2}` — exported
    (capacitive) kvarh counts as if imported, as the rule requires.

    Parameters
    ----------
    kwh : array-like
        Active energy of the month [kWh] (≥ 0).
    kvarh_import, kvarh_export : array-like
        Reactive energy inductive / capacitive [kvarh].

    Returns
    -------
    ndarray
        PF rounded to 0.01; NaN where both energies are 0.
    """
    p = _checks.as_float(kwh, "kwh")
    if np.any(p < 0):
        raise ValueError("kwh must be ≥ 0 (monthly consumption)")
    q = np.abs(_checks.as_float(kvarh_import, "kvarh_import")) + np.abs(_checks.as_float(kvarh_export,
                                                                                           "kvarh_export"))
    s = np.hypot(p, q)
    with np.errstate(invalid="ignore", divide="ignore"):
        pf = np.where(s > 0, p / s, np.nan)
    return np.floor(pf * 100.0 + 0.5 + 1e-9) / 100.0


def pf_adjustment_pct(pf, standard: float = 0.90):
    """Power-factor adjustment [% of the adjustment base], (83)水电财字第215号 附表一-三.

    Positive = surcharge, negative = rebate.  PF is rounded half-up to 0.01 first.

    Parameters
    ----------
    pf : array-like
        Monthly power factor (0..1).
    standard : {0.90, 0.85, 0.80}
        Assessment standard of the customer.

    Returns
    -------
    ndarray
        Adjustment [%]; NaN where pf is NaN.
    """
    _checks.choice(round(float(standard), 2), "standard", (0.90, 0.85, 0.80))
    x = _checks.as_float(pf, "pf")
    if np.any((x < 0) | (x > 1)):
        raise ValueError("pf must be within 0..1")
    p = np.floor(x * 100.0 + 0.5 + 1e-9)          # integer hundredths
    s = round(float(standard) * 100)
    if s == 90:
        conds = [p >= 95, p >= 90, p >= 70, p >= 65]
        vals = [-0.75, -(p - 90) * 0.15, (90 - p) * 0.5, 10 + (70 - p)]
    elif s == 85:
        conds = [p >= 94, p >= 90, p >= 85, p >= 65, p >= 60]
        vals = [-1.10, -(0.5 + (p - 90) * 0.15), -(p - 85) * 0.1, (85 - p) * 0.5, 10 + (65 - p)]
    else:
        conds = [p >= 92, p >= 91, p >= 80, p >= 60, p >= 55]
        vals = [-1.30, -1.15, -(p - 80) * 0.1, (80 - p) * 0.5, 10 + (60 - p)]
    floor_pf = {90: 65, 85: 60, 80: 55}[s]
    out = np.select(conds, vals, 15 + (floor_pf - p) * 2.0)
    out = np.round(out, 4) + 0.0
    return np.where(np.isnan(x), np.nan, out)


def pf_adjustment_yuan(pf, base_yuan, standard: float = 0.90):
    """PF adjustment amount [yuan] = adjustment % × base (basic + energy charge, as configured)."""
    b = _checks.as_float(base_yuan, "base_yuan")
    if np.any(b < 0):
        raise ValueError("base_yuan must be ≥ 0")
    return pf_adjustment_pct(pf, standard) / 100.0 * b
