"""Fixtures of the signal-model tests: the fleet, its signals, a week of values, a faulted copy."""

from __future__ import annotations

import numpy as np
import pytest
from support.signal_fleet import DAY, FLEET_RAW, MON, SCHEDULE, local

from core.config import parse_fleet
from simulators.signals import FleetSignals


@pytest.fixture(scope="module")
def fleet():
    return parse_fleet(FLEET_RAW)


@pytest.fixture(scope="module")
def sig(fleet):
    return FleetSignals(fleet, seed=7)


@pytest.fixture(scope="module")
def week(sig):
    """One week of 1-min values of every device."""
    t = np.arange(MON, MON + 7 * DAY, 60.0)
    return t, {d: sig.values_array(d, t) for d in sig.fleet.devices}


@pytest.fixture(scope="module")
def faulted(fleet, sig):
    f = FleetSignals(fleet, seed=7)
    f.schedule(SCHEDULE)
    # EV faults inside real charging periods of each charger on Wednesday
    t = np.arange(local(2, 0), local(3, 0), 60.0)
    for dev, fault in (("s1-ev1", "ev_fault"), ("s1-ev2", "ev_stuck")):
        charging = t[sig.values_array(dev, t)["charger_state"] == 3]
        assert len(charging) > 40, f"{dev} has no charging on Wednesday"
        a = float(charging[5])
        params = {"code": 17} if fault == "ev_fault" else {}
        f.schedule([(dev, fault, a, a + 1800.0, params)])
    return f

