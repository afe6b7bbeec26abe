"""Device state codes the flag functions test for (OCPP 1.6 and SunSpec).

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

OCPP_PREPARING, OCPP_CHARGING, OCPP_UNAVAILABLE, OCPP_FAULTED = 1, 2, 7, 8
INVERTER_FAULT_STATES = (1, 7)          # SunSpec: 1 off, 7 fault (2 sleeping, 4 MPPT, 5 throttled)
