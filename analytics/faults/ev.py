"""EV charger flags: faulted, stuck in Preparing, charging without energy.

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.faults.runs import persistent
from analytics.faults.states import OCPP_CHARGING, OCPP_FAULTED, OCPP_PREPARING, OCPP_UNAVAILABLE

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
