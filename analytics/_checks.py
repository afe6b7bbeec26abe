"""Argument checks shared by the analytics modules.

Every check raises :class:`ValueError` whose message names the bad argument and the
allowed values, so a caller never has to guess what was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def as_float(x, name: str) -> np.ndarray:
    """Return ``x`` as a float ndarray (a view when possible); reject non-numeric input."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric (scalar or array-like), got {type(x).__name__}") from None
    return arr


def positive(value, name: str) -> float:
    """Return ``value`` as a float; it must be finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def non_negative(value, name: str) -> float:
    """Return ``value`` as a float; it must be finite and >= 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def choice(value, name: str, allowed: Iterable) -> object:
    """Return ``value`` if it is one of ``allowed``; else ``ValueError`` listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Raise if two arrays cannot be compared element-wise (shapes differ)."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")


def time_ns(t, name: str = "time_ns") -> np.ndarray:
    """Return timestamps [ns since epoch] as int64, checking they are 1-D and non-decreasing."""
    arr = np.asarray(t)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").astype(np.int64)
    elif arr.dtype.kind not in "iu":
        if arr.size and not np.all(np.isfinite(arr.astype(float))):
            raise ValueError(f"{name} must be finite integers [ns]")
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.int64, copy=False)
    if arr.size > 1 and np.any(np.diff(arr) < 0):
        i = int(np.argmax(np.diff(arr) < 0))
        raise ValueError(f"{name} must be non-decreasing; it goes back at index {i + 1}")
    return arr
