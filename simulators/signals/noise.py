"""Seeded noise that is a pure function of (key, time): the same value in every process and call."""

from __future__ import annotations

import hashlib

import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def stable_key(*parts: object) -> int:
    """Stable 63-bit key of ``parts`` (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def uniform01(key: int, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) numbers, a pure function of (key, integer index): splitmix64."""
    x = np.asarray(index, dtype=np.float64).astype(np.int64).astype(np.uint64) * _GOLDEN + np.uint64(key)
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def smooth_noise(key: int, t: np.ndarray, period: float) -> np.ndarray:
    """Smooth value noise in [-1, 1] with knots every ``period`` seconds."""
    x = np.asarray(t, dtype=np.float64) / period
    knot = np.floor(x)
    frac = x - knot
    frac = frac * frac * (3.0 - 2.0 * frac)
    a, b = uniform01(key, knot), uniform01(key, knot + 1)
    return 2.0 * (a + (b - a) * frac) - 1.0
