"""Run helpers: run lengths, persistence with on-delay, intervals, latching.

Conventions in :mod:`analytics.faults`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from core.units import NS

# ---------------------------------------------------------------- run helpers


def run_length(mask) -> np.ndarray:
    """Number of consecutive True values ending at each index (0 where False).

    Parameters
    ----------
    mask : array-like of bool, 1-D

    Returns
    -------
    ndarray of int64
    """
    m = np.asarray(mask, bool)
    idx = np.arange(m.size)
    last_false = np.maximum.accumulate(np.where(m, -1, idx))
    return np.where(m, idx - last_false, 0)


def run_start(mask) -> np.ndarray:
    """Index of the first sample of the True run containing each index (-1 where False)."""
    m = np.asarray(mask, bool)
    return np.where(m, np.arange(m.size) - run_length(m) + 1, -1)


def persistent(mask, time_ns, min_duration_s: float, known=None) -> np.ndarray:
    """True where ``mask`` has been continuously True for at least ``min_duration_s``.

    The duration of a run at sample i is ``t[i] - t[start of run]`` (so a single
    sample has duration 0; ``min_duration_s=0`` returns ``mask``).

    Parameters
    ----------
    mask : array-like of bool
        Condition per sample.
    time_ns : array-like of int
        Sample times [ns].
    min_duration_s : float
        Required persistence [s].
    known : array-like of bool, optional
        False where the condition could not be judged (a NaN input): such a sample is treated
        exactly like an absent one — it neither breaks nor starts a run, and it is True only
        inside a run (between two True judged samples).
    """
    m = np.asarray(mask, bool)
    t = _checks.time_ns(time_ns)
    if m.shape != t.shape:
        raise ValueError(f"mask and time_ns must have the same shape, got {m.shape} and {t.shape}")
    d = _checks.non_negative(min_duration_s, "min_duration_s")
    if known is not None:
        k = np.asarray(known, bool)
        if k.shape != m.shape:
            raise ValueError(f"known and mask must have the same shape, got {k.shape} and {m.shape}")
        if k.all():
            return persistent(m, t, d)
        idx = np.flatnonzero(k)
        out = np.zeros(m.shape, bool)
        if idx.size == 0:
            return out
        out[idx] = persistent(m[idx], t[idx], d)
        pos = np.searchsorted(idx, np.arange(m.size))          # first judged sample at or after i
        prev = np.where(pos > 0, out[idx[np.maximum(pos - 1, 0)]], False)
        nxt = np.where(pos < idx.size, out[idx[np.minimum(pos, idx.size - 1)]], False)
        return np.where(k, out, prev & nxt)
    start = run_start(m)
    return m & (t - t[np.maximum(start, 0)] >= round(d * NS))


def intervals(mask, time_ns, period_s: float | None = None) -> list[tuple[int, int]]:
    """(start_ns, end_ns) of each True run; ``end_ns`` = last True sample (+ ``period_s`` if given)."""
    m = np.asarray(mask, bool)
    t = _checks.time_ns(time_ns)
    if m.size == 0:
        return []
    d = np.diff(np.r_[False, m, False].astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    add = 0 if period_s is None else round(period_s * NS)
    return [(int(t[s]), int(t[e]) + add) for s, e in zip(starts, ends, strict=True)]


def _latch(raise_ok: np.ndarray, clear_ok: np.ndarray) -> np.ndarray:
    """State that turns on at ``raise_ok`` and off at ``clear_ok`` (mutually exclusive), initially off."""
    ev = np.where(raise_ok, 1, np.where(clear_ok, 0, -1))
    idx = np.where(ev >= 0, np.arange(ev.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    return np.where(last >= 0, ev[np.maximum(last, 0)], 0).astype(bool)
