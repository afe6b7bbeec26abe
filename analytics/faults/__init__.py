"""Fault detection on device time series: pure, vectorised numpy flag functions.

Every flag function returns a boolean array (or a dict of them) with ``True`` =
problem.  NaN samples are "no data": they never raise a process flag (comms loss is
judged from timestamps and the collector's ``online`` channel, not from values).

Times are ns since the epoch (int64) and durations in [s].  Units of values are the
glossary units of ``core.channels`` ([V], [A], [W], [Wh], [degC], [W/m2]).

References: docs/standards.md §7 (transformers), §8 (PV), §9
(EV chargers), §10 (statistics, hysteresis, gaps); OPC UA Part 9 B.1.5 for deadband and
on/off delays; IEC 61724-1 for PV performance ratio; OCPP 1.6 / IEC 61851-1 states.

The package is split by topic: ``states`` (device state codes), ``runs`` (run helpers), ``quality``
(gaps, stale values, statistics), ``alarms`` (threshold alarms), ``transformer``, ``pv``, ``ev`` and
``counters``; every name is re-exported here, so ``from analytics import faults as fl`` gives them all.
"""

from __future__ import annotations

from analytics.faults.alarms import (  # noqa: F401
    hysteresis_alarm,
    threshold_alarm,
)
from analytics.faults.counters import (  # noqa: F401
    _step_bound,
    consumption_wh,
    counter_increments,
)
from analytics.faults.ev import (  # noqa: F401
    ev_charging_no_energy,
    ev_faulted,
    ev_session_stuck,
)
from analytics.faults.pv import (  # noqa: F401
    _clearsky_grid,
    clearsky_poa,
    expected_pv_power,
    inverter_offline_daylight,
    latched_alarm,
    performance_ratio,
    pv_underperformance,
    string_deficit,
    string_mismatch,
)
from analytics.faults.quality import (  # noqa: F401
    comms_loss,
    completeness,
    cusum_upper,
    ewma,
    gaps,
    out_of_range,
    rate_of_change,
    robust_z,
    stale_range,
    stale_values,
)
from analytics.faults.runs import (  # noqa: F401
    _latch,
    intervals,
    persistent,
    run_length,
    run_start,
)
from analytics.faults.states import (  # noqa: F401
    INVERTER_FAULT_STATES,
    OCPP_CHARGING,
    OCPP_FAULTED,
    OCPP_PREPARING,
    OCPP_UNAVAILABLE,
)
from analytics.faults.transformer import (  # noqa: F401
    load_rate,
    overload,
    temperature_trend,
)
