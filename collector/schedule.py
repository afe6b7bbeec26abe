"""Poll schedule: each device's fixed phase into its slots, the slot of a time, lag figures."""

from __future__ import annotations

import math
import zlib

import numpy as np

LAG_WINDOW_S, LAG_KEEP = 30.0, 100_000   # stats() reports the schedule lag of the polls of the last 30 s
PHASE_SPREAD_S = 10.0          # polls are spread over min(interval, this) by a fixed per-device phase


def lag_stats(lags, times, since: float) -> dict:
    """p50/p99/max of the schedule lag (poll end minus its scheduled start) of the polls that ended
    after ``since`` [ms]."""
    t = np.fromiter(times, float, len(times))
    recent = np.fromiter(lags, float, len(lags))[t >= since]
    if not recent.size:
        return {}
    p50, p99, top = np.percentile(recent, [50, 99, 100]) * 1000.0
    return {"lag_ms_p50": round(float(p50), 3), "lag_ms_p99": round(float(p99), 3), "lag_ms_max": round(float(top), 3)}


def device_phase_ns(device_id: str, interval_ns: int) -> int:
    """A device's fixed offset into each of its slots [ns]: spreads the fleet's polls across
    ``min(interval, PHASE_SPREAD_S)`` instead of starting every device's poll at the same instant.

    Stable across restarts and processes (CRC-32 of the id, not Python's salted ``hash``).  The
    Point keeps the slot's start as its timestamp, so series of different devices stay aligned.
    """
    spread_ns = min(interval_ns, round(PHASE_SPREAD_S * 1e9))
    return zlib.crc32(device_id.encode()) * spread_ns >> 32


def poll_time_ns(t: float, interval_s: float) -> int:
    """The scheduled slot time at or before ``t`` for ``interval_s`` (a multiple of the interval) [ns]."""
    interval_ns = round(interval_s * 1e9)
    return int(math.floor(t * 1e9 / interval_ns) * interval_ns)
