"""Energy-counter integrity: rollover, reset, replacement, spike, negative reading; consumption.

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks

# ---------------------------------------------------------------- energy counters


def counter_increments(counter, rollover_wh: float | None = None, max_step_wh: float | None = None,
                       reset_below_wh: float = 1000.0, resolution_wh: float = 50.0, time_ns=None,
                       max_power_w: float | None = None) -> dict:
    """Non-negative increments of a cumulative energy counter, with integrity events.

    * rollover: the counter falls and ``rollover_wh`` is set → ``rollover - prev + cur``;
    * reset: it falls to a value no larger than could have been counted from zero since the last
      sample (``reset_below_wh``, or the upward bound below) → the increment is ``cur``;
    * replacement: it falls to any other value → increment 0 (a new meter; energy across the swap is unknown);
    * spike: a rise above the upward bound → increment NaN (not counted): an implausible jump, e.g. a
      replacement meter whose register reads higher than the old one.

    The upward bound of a step is ``max_step_wh``, or with ``time_ns`` and ``max_power_w`` the
    energy the largest plausible power delivers between the two samples (+ ``resolution_wh``).
    NaN and negative readings (impossible for a counter; flagged ``invalid``) are
    skipped: the energy over a gap is attributed to the first valid sample after it.
    No increment is ever negative.

    Parameters
    ----------
    counter : array-like
        Cumulative counter [Wh] (``energy_import``, ``energy_export``, ...).
    rollover_wh : float, optional
        Counter modulus (e.g. 2**32 * resolution) [Wh].
    max_step_wh : float, optional
        Largest plausible increment between two valid samples [Wh].
    reset_below_wh : float
        A fall to a value below this is a reset to zero [Wh].
    resolution_wh : float
        Falls up to this size are quantisation, not events: two sources of one counter (a 1-min
        history and a live register of 10 Wh resolution, say) disagree by up to a register step.
        Such a fall holds the counter at its high-water mark, so the energy is neither lost nor
        counted twice [Wh].
    time_ns : array-like of int, optional
        Sample times [ns] (with ``max_power_w``).
    max_power_w : float, optional
        Largest plausible power through the counter [W] (e.g. 1.5 × the rating).

    Returns
    -------
    dict
        ``increment`` (n, first = 0) [Wh], ``rollover``, ``reset``, ``replacement``, ``spike``,
        ``invalid`` (bool, n).
    """
    c, invalid, idx = _valid_readings(counter)
    out = {"increment": np.zeros(c.size), **{k: np.zeros(c.size, bool) for k in _EVENTS}, "invalid": invalid}
    if idx.size < 2:
        return out
    res = _checks.non_negative(resolution_wh, "resolution_wh")
    bound = _step_bound(idx, max_step_wh, time_ns, max_power_w, res, c.size)
    steps = _classify_steps(_hold_small_falls(c[idx], res), rollover_wh, reset_below_wh, bound)
    for k, values in steps.items():
        out[k][idx[1:]] = values
    return out


_EVENTS = ("rollover", "reset", "replacement", "spike")


def _valid_readings(counter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The counter as floats, its negative (invalid) readings, and the indexes of its valid ones."""
    c = _checks.as_float(counter, "counter")
    if c.ndim != 1:
        raise ValueError(f"counter must be 1-D, got shape {c.shape}")
    with np.errstate(invalid="ignore"):
        invalid = c < 0
    return c, invalid, np.flatnonzero(np.isfinite(c) & ~invalid)


def _hold_small_falls(v: np.ndarray, resolution_wh: float) -> np.ndarray:
    """Valid readings with falls up to ``resolution_wh`` held at the high-water mark, segment by segment."""
    big = np.flatnonzero(np.diff(v) < -resolution_wh) + 1
    if big.size < v.size - 1:
        bounds = np.r_[0, big, v.size]
        v = np.concatenate([np.maximum.accumulate(v[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return v


def _classify_steps(v: np.ndarray, rollover_wh, reset_below_wh: float, bound) -> dict:
    """Increment and rollover/reset/replacement/spike flags of each step between readings ``v``."""
    prev, cur = v[:-1], v[1:]
    d = cur - prev
    fall = d < 0
    if rollover_wh is None:
        roll = np.zeros_like(fall)
    else:
        rollover_wh = _checks.positive(rollover_wh, "rollover_wh")
        roll = fall & (prev > rollover_wh / 2) & (cur < rollover_wh / 2)
    reset = fall & ~roll & (cur < (reset_below_wh if bound is None else np.maximum(reset_below_wh, bound)))
    repl = fall & ~roll & ~reset
    step = np.where(roll, (rollover_wh or 0.0) - prev + cur, np.where(reset, cur, np.where(repl, 0.0, d)))
    spike = np.zeros_like(fall) if bound is None else step > bound
    return {"increment": np.where(spike, np.nan, step), "rollover": roll, "reset": reset,
            "replacement": repl, "spike": spike}


def _step_bound(idx: np.ndarray, max_step_wh, time_ns, max_power_w, resolution_wh: float, n: int):
    """Upward bound [Wh] of each step between consecutive valid samples ``idx`` (None = no bound)."""
    if max_power_w is None:
        return None if max_step_wh is None else float(max_step_wh)
    if time_ns is None:
        raise ValueError("time_ns is required with max_power_w")
    t = _checks.time_ns(time_ns)
    if t.size != n:
        raise ValueError(f"time_ns and counter must have the same length, got {t.size} and {n}")
    dt_h = np.diff(t[idx]) / 3600e9
    b = _checks.positive(max_power_w, "max_power_w") * dt_h + resolution_wh
    return b if max_step_wh is None else np.minimum(b, float(max_step_wh))


def consumption_wh(counter, **kwargs) -> float:
    """Energy over the series [Wh] from a cumulative counter, robust to reset/rollover/replacement (≥ 0)."""
    return float(np.nansum(counter_increments(counter, **kwargs)["increment"]))
