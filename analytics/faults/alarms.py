"""Threshold alarms with hysteresis, deadband and on/off delays (OPC UA Part 9 B.1.5).

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.faults.runs import _latch, persistent, run_length

# ---------------------------------------------------------------- threshold alarms


def hysteresis_alarm(x, on: float, off: float, on_delay_samples: int = 1, off_delay_samples: int = 1,
                     direction: str = "high") -> np.ndarray:
    """Limit alarm with deadband and on/off delays in samples, OPC UA Part 9 B.1.5.

    A high alarm raises when ``x >= on`` for ``on_delay_samples`` consecutive samples
    and clears when ``x <= off`` for ``off_delay_samples`` consecutive samples
    (``off = on - deadband``).  ``direction='low'`` mirrors it.  NaN holds the state.

    Returns
    -------
    ndarray of bool
        Alarm state per sample.
    """
    _checks.choice(direction, "direction", ("high", "low"))
    v = _checks.as_float(x, "x")
    if direction == "high" and not off < on or direction == "low" and not off > on:
        raise ValueError(f"off must be on the normal side of on for a {direction} alarm, got on={on} off={off}")
    for name, val in (("on_delay_samples", on_delay_samples), ("off_delay_samples", off_delay_samples)):
        if not isinstance(val, int | np.integer) or val < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {val!r}")
    with np.errstate(invalid="ignore"):
        beyond, back = (v >= on, v <= off) if direction == "high" else (v <= on, v >= off)
    return _latch(run_length(beyond) >= on_delay_samples, run_length(back) >= off_delay_samples)


def threshold_alarm(x, time_ns, limit: float, deadband: float, on_delay_s: float = 0.0,
                    off_delay_s: float = 0.0, direction: str = "high") -> np.ndarray:
    """Time-based limit alarm: beyond ``limit`` for ``on_delay_s``, back past ``limit ∓ deadband`` for ``off_delay_s``.

    OPC UA Part 9 B.1.5 / ISA-18.2 practice (deadband e.g. 1 % of span for temperature,
    delays 15-60 s).  Delays are measured as time since the first sample of the run.

    Returns
    -------
    ndarray of bool
        Alarm state per sample.
    """
    _checks.choice(direction, "direction", ("high", "low"))
    db = _checks.non_negative(deadband, "deadband")
    v = _checks.as_float(x, "x")
    with np.errstate(invalid="ignore"):
        if direction == "high":
            beyond, back = v >= limit, v < limit - db if db == 0 else v <= limit - db
        else:
            beyond, back = v <= limit, v > limit + db if db == 0 else v >= limit + db
    known = np.isfinite(v)            # NaN = not judged, like an absent sample (the state holds)
    return _latch(persistent(beyond, time_ns, on_delay_s, known), persistent(back, time_ns, off_delay_s, known))
