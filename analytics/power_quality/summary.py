"""One site's power-quality compliance summary from its meter channels.

Indicative values from meter data; conventions in :mod:`analytics.power_quality`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.power_quality.aggregation import aggregate_10min, count_outside, en50160_voltage
from analytics.power_quality.constants import _EPS
from analytics.power_quality.harmonics import gbt14549_voltage_limits
from analytics.power_quality.unbalance import (
    phasors_from_channels,
    prob95,
    unbalance_assessment,
    unbalance_from_line_voltages,
    unbalance_from_phasors,
)
from analytics.power_quality.voltage import voltage_deviation

# ---------------------------------------------------------------- site summary


def compliance_summary(time_ns, channels: dict, nominal_voltage_v: float, voltage_level_kv: float = 0.4,
                       period_s: float = 60.0, nominal_hz: float = 50.0, frequency_limit_hz: float = 0.2) -> dict:
    """EN 50160-style summary of one site's LV meter data over a week or a month (indicative).

    Counts valid 10-min values and those outside limits per parameter: voltage
    (GB/T 12325 ±7 % and EN 50160 ±10 % / +10−15 %), frequency (GB/T 15945 ±0.2 Hz
    on 10-min means), negative-sequence unbalance (GB/T 15543 95 % ≤ 2 %, max ≤ 4 %,
    from line voltages, else from phasors), THD_u (GB/T 14549 Table 1 at 0.38 kV).
    A parameter whose channels are absent is left out; ``compliant`` is None when there is no
    valid 10-min value (no verdict without data).  Not IEC 61000-4-30 Class A.

    Parameters
    ----------
    time_ns : array-like of int
        Sample times [ns].
    channels : dict of str -> ndarray
        Meter channels by glossary name (``voltage_l1``.., ``voltage_l12``.., ``frequency``,
        ``thd_voltage_l1``.., ``voltage_angle_l2/3``) [V], [Hz], [%], [deg].
    nominal_voltage_v : float
        LV phase-to-neutral nominal [V].
    voltage_level_kv : float
        Level for the THD limit (0.4 → GB/T 14549 0.38 kV row) [kV].
    period_s : float
        Sample period [s].
    nominal_hz, frequency_limit_hz : float
        Frequency nominal and limit [Hz].

    Returns
    -------
    dict
        One entry per parameter with ``n_valid``, ``n_outside``, ``limit``, ``standard``,
        ``compliant`` and parameter-specific statistics.
    """
    t = _checks.time_ns(time_ns)
    parts = {
        "voltage": _voltage_part(t, channels, nominal_voltage_v, period_s),
        "frequency": _frequency_part(t, channels, period_s, nominal_hz, frequency_limit_hz),
        "unbalance": _unbalance_part(t, channels, period_s),
        "thd_voltage": _thd_part(t, channels, voltage_level_kv, period_s),
    }
    return {name: part for name, part in parts.items() if part is not None}


_PHASES = [f"voltage_l{p}" for p in (1, 2, 3)]


def _voltage_part(t, channels: dict, nominal_voltage_v: float, period_s: float) -> dict | None:
    """GB/T 12325 ±7 % on 10-min RMS phase voltages, with the EN 50160 counters beside it."""
    if not all(c in channels for c in _PHASES):
        return None
    u = np.column_stack([channels[c] for c in _PHASES])
    _, u10, ok = aggregate_10min(t, u, period_s)
    lo, hi = -7.0, 7.0
    n, nout = count_outside(voltage_deviation(u10, nominal_voltage_v), ok, lo, hi)
    en = en50160_voltage(u10, ok, nominal_voltage_v, lv=True)
    return {"n_valid": n, "n_outside": nout, "limit": "±7 % of nominal", "limit_pct": 7.0,
            "phases": 3, "per_value": True,
            "standard": "GB/T 12325-2008 §4", "compliant": nout == 0 if n else None,
            "qualification_rate_pct": (1 - nout / n) * 100 if n else np.nan,
            "en50160": en}


def _frequency_part(t, channels: dict, period_s: float, nominal_hz: float, limit_hz: float) -> dict | None:
    """GB/T 15945 on 10-min mean frequency."""
    if "frequency" not in channels:
        return None
    _, f10, ok = aggregate_10min(t, channels["frequency"], period_s, method="mean")
    n, nout = count_outside(f10 - nominal_hz, ok, -limit_hz, limit_hz)
    return {"n_valid": n, "n_outside": nout, "limit": f"±{limit_hz} Hz",
            "limit_hz": limit_hz, "phases": 1, "per_value": True,
            "standard": "GB/T 15945-2008 §4", "compliant": nout == 0 if n else None}


def _unbalance_part(t, channels: dict, period_s: float) -> dict | None:
    """GB/T 15543 from line voltages, else from phasors; None without either."""
    lines = ["voltage_l12", "voltage_l23", "voltage_l31"]
    with_angles = (*_PHASES, "voltage_angle_l2", "voltage_angle_l3")
    if all(c in channels for c in lines):
        eps = unbalance_from_line_voltages(*(channels[c] for c in lines))
    elif all(c in channels for c in with_angles):
        eps = unbalance_from_phasors(*phasors_from_channels(*(channels[c] for c in with_angles)))[0]
    else:
        return None
    _, e10, ok = aggregate_10min(t, eps, period_s)
    ass = unbalance_assessment(np.where(ok, e10, np.nan))
    n, nout = count_outside(e10, ok, -np.inf, 2.0)
    return {"n_valid": n, "n_outside": nout, "limit": "95 % ≤ 2 %, max ≤ 4 %", "phases": 1,
            "per_value": False,
            "standard": "GB/T 15543-2008 §4", "compliant": (not ass["fail"]) if n else None,
            "p95_pct": ass["p95_pct"], "max_pct": ass["max_pct"]}


def _thd_part(t, channels: dict, voltage_level_kv: float, period_s: float) -> dict | None:
    """GB/T 14549 Table 1 on the 95 % value of the worst phase's 10-min THD_u."""
    thd_ch = [f"thd_voltage_l{p}" for p in (1, 2, 3)]
    if not all(c in channels for c in thd_ch):
        return None
    lim = gbt14549_voltage_limits(voltage_level_kv)["thd_pct"]
    _, t10, ok = aggregate_10min(t, np.column_stack([channels[c] for c in thd_ch]), period_s, "rms")
    n, nout = count_outside(t10, ok, -np.inf, lim)
    worst = np.fmax.reduce(np.where(ok, t10, np.nan), axis=1) if t10.size else t10
    p95 = prob95(worst)
    return {"n_valid": n, "n_outside": nout, "limit": f"THD_u ≤ {lim} %", "limit_pct": lim,
            "phases": 3, "per_value": False,
            "standard": "GB/T 14549-1993 Table 1", "p95_pct": p95,
            "compliant": (not p95 > lim + _EPS) if n else None}
