"""Exact integrals of piecewise-linear signals (energy counters integrate power this way)."""

from __future__ import annotations

import numpy as np


def cumulative_trapezoid(y: np.ndarray, dt: float | np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral [unit·s] on an even step ``dt``, starting at 0, same length as ``y``."""
    segments = (y[:-1] + y[1:]) * (0.5 * dt)
    out = np.empty(len(y))
    out[0] = 0.0
    np.cumsum(segments, out=out[1:])
    return out


def cumulative_trapezoid_uneven(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of (s, y) with uneven steps, starting at 0."""
    out = np.zeros(len(s))
    if len(s) > 1:
        np.cumsum((y[:-1] + y[1:]) * 0.5 * np.diff(s), out=out[1:])
    return out


def integral_at(s: np.ndarray, y: np.ndarray, cumulative: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Exact integral from ``s[0]`` to ``t`` of the piecewise-linear function through (s, y)."""
    t = np.clip(t, s[0], s[-1])
    k = np.clip(np.searchsorted(s, t, side="right") - 1, 0, len(s) - 2)
    step = s[k + 1] - s[k]
    frac = np.where(step > 0, (t - s[k]) / np.where(step > 0, step, 1.0), 0.0)
    y_t = y[k] + (y[k + 1] - y[k]) * frac
    return np.minimum(cumulative[k] + (t - s[k]) * 0.5 * (y[k] + y_t), cumulative[k + 1])
