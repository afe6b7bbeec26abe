"""Power-quality assessment from meter data (indicative).

Everything here is computed from 1-min (or faster) meter readings or from sampled
waveforms handed in by the caller.  The results are **indicative**: the meters are not
IEC 61000-4-30 Class A instruments, the 10-min values are built from 1-min RMS
readings, and the flagging thresholds are the limits of the Chinese national standards
(GB/T 12325, 15945, 15543, 14549) plus EN 50160 / IEEE 519 for comparison.

Conventions: voltages in [V], currents in [A], frequency in [Hz], percentages of
nominal or of the fundamental in [%].  Flags are ``True`` = problem.  NaN inputs are
"no data": they never raise a flag and are excluded from every rate and count.

References: docs/standards.md §§1-5 (clauses cited per function).

The package is split by topic: ``voltage`` (deviation, frequency), ``unbalance``, ``aggregation``
(10-min values, EN 50160), ``harmonics``, ``power_factor`` and ``summary``; every name is
re-exported here, so ``from analytics import power_quality as pq`` gives them all.
"""

from __future__ import annotations

from analytics.power_quality.aggregation import (  # noqa: F401
    aggregate_10min,
    count_outside,
    en50160_voltage,
)
from analytics.power_quality.constants import (  # noqa: F401
    _EPS,
    TEN_MIN_NS,
    A,
)
from analytics.power_quality.harmonics import (  # noqa: F401
    _IEEE519_BANDS,
    _LEVEL_ALIASES,
    GBT14549_220KV_BASE_MVA,
    GBT14549_CURRENT,
    GBT14549_VOLTAGE,
    _gbt14549_level,
    gbt14549_current_limit,
    gbt14549_voltage_limits,
    harmonic_ratio,
    harmonic_spectrum,
    harmonic_voltage_flags,
    ieee519_current_limits,
    ieee519_voltage_limits,
    tdd,
    thd,
)
from analytics.power_quality.power_factor import (  # noqa: F401
    monthly_power_factor,
    pf_adjustment_pct,
    pf_adjustment_yuan,
)
from analytics.power_quality.summary import (  # noqa: F401
    compliance_summary,
)
from analytics.power_quality.unbalance import (  # noqa: F401
    current_unbalance,
    current_unbalance_flags,
    nema_unbalance,
    neutral_current_from_phases,
    phasors_from_channels,
    prob95,
    rated_current,
    sequence_components,
    unbalance_assessment,
    unbalance_from_line_voltages,
    unbalance_from_phasors,
)
from analytics.power_quality.voltage import (  # noqa: F401
    deviation_span_35kv,
    frequency_deviation,
    frequency_outside,
    qualification_rate,
    voltage_deviation,
    voltage_deviation_limits,
    voltage_outside,
)
