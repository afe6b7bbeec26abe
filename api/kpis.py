"""Alarm-system performance KPIs (ANSI/ISA-18.2-2016 clause 16.5 / ISA TR18.2.5, EEMUA 191).

Pure functions on arrays of activation times [ns].  Thresholds (reliability.md §5,
standards.md §10.2):

* average rate ~1 per 10 min per operator "very likely acceptable", ~2 "maximum manageable";
* flood: starts when more than 10 alarms are annunciated in 10 min and ends when fewer
  than 5 arrive in 10 min (ISA-18.2 clause 16.5.3); target < 1 % of the time in flood;
* chattering: >= 3 activations of one alarm within 60 s (PAS/Hexagon criterion);
* stale: an alarm active for >= 24 h.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

NS = 10**9
TEN_MIN_NS = 600 * NS


def ten_minute_counts(times_ns: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
    """Alarm count per 10-min bin of [start, end) (a partial last bin is counted as a bin).

    Parameters
    ----------
    times_ns : activation times [ns]
    start_ns, end_ns : window [ns], ``end_ns > start_ns``
    """
    if end_ns <= start_ns:
        raise ValueError(f"window end {end_ns} must be after start {start_ns}")
    nbins = int(-(-(end_ns - start_ns) // TEN_MIN_NS))
    t = np.asarray(times_ns, dtype=np.int64)
    t = t[(t >= start_ns) & (t < end_ns)]
    return np.bincount((t - start_ns) // TEN_MIN_NS, minlength=nbins)[:nbins]


def flood_periods(counts: np.ndarray, start_above: int = 10, end_below: int = 5) -> list[tuple[int, int]]:
    """Flood periods as half-open bin ranges ``(first, last + 1)``.

    A flood starts in a bin with more than ``start_above`` alarms and ends at the first
    later bin with fewer than ``end_below`` (that bin is not part of the flood).
    """
    out: list[tuple[int, int]] = []
    start = None
    for i, c in enumerate(np.asarray(counts)):
        if start is None and c > start_above:
            start = i
        elif start is not None and c < end_below:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(counts)))
    return out


def chattering(keys: Sequence[str], times_ns: np.ndarray, n: int = 3, window_s: float = 60.0) -> list[str]:
    """Keys with at least ``n`` activations within any ``window_s`` seconds."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for k, t in zip(keys, np.asarray(times_ns, dtype=np.int64), strict=True):
        by_key[k].append(int(t))
    w = int(window_s * NS)
    out = []
    for k, ts in by_key.items():
        a = np.sort(np.asarray(ts, dtype=np.int64))
        if len(a) >= n and np.any(a[n - 1:] - a[: len(a) - n + 1] <= w):
            out.append(k)
    return sorted(out)


def group_kpis(keys: Sequence[str], times_ns: np.ndarray, severities: Sequence[str], start_ns: int, end_ns: int,
               stale_keys: Iterable[str] = ()) -> dict:
    """KPIs of one group (a site or an engineer group) over [start, end).

    Returns alarms, rate_per_10min, peak_per_10min, acceptable, manageable, flood_periods,
    flood_time_pct, chattering, stale, top10_share_pct, by_severity.
    """
    t = np.asarray(times_ns, dtype=np.int64)
    counts = ten_minute_counts(t, start_ns, end_ns)
    bins = max(len(counts), 1)
    n = int(counts.sum())
    rate = n / ((end_ns - start_ns) / TEN_MIN_NS)
    floods = flood_periods(counts)
    top = sum(c for _, c in Counter(keys).most_common(10))
    return {
        "alarms": n,
        "rate_per_10min": round(rate, 4),
        "peak_per_10min": int(counts.max()) if len(counts) else 0,
        "acceptable": rate <= 1.0,
        "manageable": rate <= 2.0,
        "flood_periods": len(floods),
        "flood_time_pct": round(100.0 * sum(b - a for a, b in floods) / bins, 3),
        "chattering": chattering(keys, t),
        "stale": sorted(set(stale_keys)),
        "top10_share_pct": round(100.0 * top / n, 3) if n else 0.0,
        "by_severity": dict(Counter(severities)),
    }
